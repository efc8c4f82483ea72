package tune

import (
	"context"
	"fmt"

	"github.com/optictl/optictl/pkg/bench"
	"github.com/optictl/optictl/pkg/distill"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// distilled trains the pruned model pm (the student) to reproduce the
// original (the teacher) on the training samples, as optictl distill
// --student-prune does: pure knowledge distillation (no labels), Adam,
// TrainEpochs epochs. The teacher's outputs are computed once per run.
func (t *tuner) distilled(v Variant, pm *graph.Model, note string) (*graph.Model, string, error) {
	if err := t.loadTrain(); err != nil {
		return nil, "", err
	}
	res, err := distill.Train(context.Background(), pm, t.train, t.trainOut, nil, distill.Options{
		Epochs: t.opts.TrainEpochs, Batch: min(32, len(t.train)), LR: 1e-3, Temperature: 4, Alpha: 1, Seed: t.opts.Seed,
	})
	if err != nil {
		return nil, "", fmt.Errorf("tune: %s: %w", v.Name, err)
	}
	last := res.Epochs[len(res.Epochs)-1]
	return pm, fmt.Sprintf("%s; distilled %d epoch(s) on %d --train samples (loss %.4g)", note, len(res.Epochs), len(t.train), last.Loss), nil
}

// loadTrain reads --train and runs the original over it once (on the
// verification backend).
func (t *tuner) loadTrain() error {
	if t.train != nil {
		return nil
	}
	ss, err := bench.LoadData(t.opts.Train, infosOf(t.orig), t.opts.TrainSamples)
	if err != nil {
		return fmt.Errorf("tune: --train: %w", err)
	}
	if len(ss) == 0 {
		return fmt.Errorf("tune: --train %s: no samples", t.opts.Train)
	}
	train := make([][]*runtime.Tensor, len(ss))
	for i := range ss {
		train[i] = ss[i]
	}
	s, err := runtime.Open(t.verifyBackend, t.orig, runtime.Options{})
	if err != nil {
		return fmt.Errorf("tune: teacher for --train: %w", err)
	}
	out, err := distill.TeacherOutputs(context.Background(), s, train)
	s.Close()
	if err != nil {
		return fmt.Errorf("tune: %w", err)
	}
	t.train, t.trainOut = train, out
	return nil
}
