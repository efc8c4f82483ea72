package distill_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/distill"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// perturbed is the student train() uses: m with its float weights scaled.
func perturbed(m *graph.Model) *graph.Model {
	s := m.Clone()
	for i, in := range s.Graph.Initializers {
		if in.DType != graph.Float {
			continue
		}
		v, err := in.Float32s()
		if err != nil {
			continue
		}
		w := make([]float32, len(v))
		for k := range v {
			w[k] = v[k] * 0.7
		}
		s.Graph.Initializers[i] = graph.NewFloat32(in.Name, in.Dims, w)
	}
	return s
}

// TestCheckpointResume: two epochs straight and one epoch interrupted by a
// cancel (Ctrl-C) then resumed for the second give identical weights: the
// checkpoint holds the weights, Adam's moments and step count, and the
// resume replays the seeded sample orders of the epochs done.
func TestCheckpointResume(t *testing.T) {
	m := mnistModel(t)
	samples, labels := mnistSamples(t, m, 96)
	s, err := runtime.Open("interp", m, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tout, err := distill.TeacherOutputs(context.Background(), s, samples)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []struct {
		name     string
		schedule string
		workers  int
	}{{"constant-1-worker", distill.ScheduleConstant, 1}, {"cosine-2-workers", distill.ScheduleCosine, 2}} {
		t.Run(cfg.name, func(t *testing.T) {
			base := distill.Options{Epochs: 2, Batch: 32, LR: 1e-3, Temperature: 4, Alpha: 0.5, Seed: 3, Schedule: cfg.schedule, Workers: cfg.workers}
			checkResume(t, m, samples, tout, labels, base)
		})
	}
	// A cosine schedule spans the run's epochs: a resume with more epochs
	// is refused, saying why.
	dir := filepath.Join(t.TempDir(), "cos.ckpt")
	o := distill.Options{Epochs: 1, Batch: 32, LR: 1e-3, Temperature: 4, Seed: 3, Schedule: distill.ScheduleCosine, CheckpointDir: dir}
	if _, err := distill.Train(context.Background(), perturbed(m), samples, tout, nil, o); err != nil {
		t.Fatal(err)
	}
	o.Epochs, o.Resume = 2, true
	if _, err := distill.Train(context.Background(), perturbed(m), samples, tout, nil, o); err == nil || !strings.Contains(err.Error(), "cosine") {
		t.Errorf("cosine resume with more epochs: %v, want a refusal naming the schedule", err)
	}
}

func checkResume(t *testing.T, m *graph.Model, samples, tout [][]*runtime.Tensor, labels []int, base distill.Options) {
	straight := perturbed(m)
	o := base
	o.CheckpointDir = filepath.Join(t.TempDir(), "straight.ckpt")
	var err error
	if _, err := distill.Train(context.Background(), straight, samples, tout, labels, o); err != nil {
		t.Fatal(err)
	}
	ck, err := distill.ReadCheckpoint(o.CheckpointDir)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Epoch != 2 || len(ck.History) != 2 || ck.Seed != 3 || ck.Options.Batch != 32 || !(ck.Loss > 0) {
		t.Errorf("checkpoint after 2 epochs: %+v", ck)
	}
	if _, err := os.Stat(filepath.Join(o.CheckpointDir, "epoch-1.onnx")); err == nil {
		t.Error("epoch 1's checkpoint files were not removed after epoch 2's")
	}
	// A fresh 1-epoch run into the same folder replaces that checkpoint
	// and removes its files.
	o.Epochs = 1
	if _, err := distill.Train(context.Background(), perturbed(m), samples, tout, labels, o); err != nil {
		t.Fatal(err)
	}
	if ck, err := distill.ReadCheckpoint(o.CheckpointDir); err != nil || ck.Epoch != 1 {
		t.Errorf("after a fresh run: %+v, %v", ck, err)
	}
	if _, err := os.Stat(filepath.Join(o.CheckpointDir, "epoch-2.onnx")); err == nil {
		t.Error("a fresh run left the previous run's epoch-2 files")
	}

	// Interrupted: the validation after epoch 1 cancels the context, as a
	// Ctrl-C during that epoch would; training stops before epoch 2.
	dir := filepath.Join(t.TempDir(), "run.ckpt")
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	o = base
	o.CheckpointDir = dir
	o.Val = func(*graph.Model) (float64, error) {
		if calls++; calls == 2 {
			cancel()
		}
		return 0.5, nil
	}
	stopped := perturbed(m)
	before := stopped.Clone()
	if _, err := distill.Train(ctx, stopped, samples, tout, labels, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: err %v, want context.Canceled", err)
	}
	if !sameWeights(stopped, before) {
		t.Error("an interrupted Train changed the student")
	}
	ck, err = distill.ReadCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Epoch != 1 || ck.ValTop1 == nil || *ck.ValTop1 != 0.5 {
		t.Errorf("checkpoint after the interrupt: %+v", ck)
	}
	// The checkpoint's student is a complete model.
	if _, err := graph.Load(filepath.Join(dir, ck.Student)); err != nil {
		t.Fatalf("checkpoint student: %v", err)
	}

	// A resume with other options is refused.
	o = base
	o.CheckpointDir, o.Resume, o.Seed = dir, true, 4
	if _, err := distill.Train(context.Background(), perturbed(m), samples, tout, labels, o); err == nil {
		t.Error("resume with another seed was accepted")
	}
	o.Seed = 3
	resumed := perturbed(m)
	res, err := distill.Train(context.Background(), resumed, samples, tout, labels, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Epochs) != 2 {
		t.Errorf("resumed run reports %d epochs, want 2 (1 from the checkpoint)", len(res.Epochs))
	}
	if !sameWeights(resumed, straight) {
		t.Error("1 epoch + resume 1 epoch gave other weights than 2 epochs straight")
	}
	if sameWeights(resumed, before) {
		t.Error("the resumed run did not train")
	}

	o.CheckpointDir = filepath.Join(t.TempDir(), "empty")
	if _, err := distill.Train(context.Background(), perturbed(m), samples, tout, labels, o); !errors.Is(err, distill.ErrNoCheckpoint) {
		t.Errorf("resume without a checkpoint: %v, want ErrNoCheckpoint", err)
	}
}

func sameWeights(a, b *graph.Model) bool {
	if len(a.Graph.Initializers) != len(b.Graph.Initializers) {
		return false
	}
	for i, in := range a.Graph.Initializers {
		if !bytes.Equal(in.Raw, b.Graph.Initializers[i].Raw) {
			return false
		}
	}
	return true
}
