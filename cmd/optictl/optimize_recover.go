package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"

	"github.com/spf13/pflag"

	"github.com/optictl/optictl/pkg/distill"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/passes"
	"github.com/optictl/optictl/pkg/prune"
	"github.com/optictl/optictl/pkg/runtime"
)

// recoverOptions are optimize's --recover flags: after --prune, train the
// pruned model back to the unpruned one (knowledge distillation).
type recoverOptions struct {
	Recover     string
	Train       string
	TrainLabels string
	Epochs      int
	epochsSet   bool
}

// recoverResult reports --recover distill.
type recoverResult struct {
	Method  string `json:"method"`
	Train   string `json:"train"`
	Samples int    `json:"samples"`
	Loss    string `json:"loss"`
	Backend string `json:"teacher_backend"`
	*distill.Result
}

func (r *recoverOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&r.Recover, "recover", "", "after --prune (structured), recover accuracy: distill = train the pruned model on the unpruned one's outputs over --train (then the budget check runs on the trained model)")
	f.StringVar(&r.Train, "train", "", "training inputs of --recover distill (idx, .npy/.npz, .pb, test_data_set folders)")
	f.StringVar(&r.TrainLabels, "train-labels", "", "labels of --train: --recover distill mixes KD with cross-entropy (0.5 each)")
	f.IntVar(&r.Epochs, "epochs", 3, "training epochs of --recover distill")
}

// checkRecoverFlags validates --recover and its flags (usage errors).
func (o *optimizeOptions) checkRecoverFlags() error {
	r := &o.recoverOptions
	if r.Recover == "" {
		if r.Train != "" || r.TrainLabels != "" || r.epochsSet {
			return usageErr("--train, --train-labels and --epochs are for --recover distill")
		}
		return nil
	}
	switch {
	case r.Recover != "distill":
		return usageErr("--recover %q: want distill", r.Recover)
	case o.Prune == 0:
		return usageErr("--recover distill needs --prune F")
	case o.PruneMode != prune.Structured:
		return usageErr("--recover distill needs --prune-mode structured (training would refill the zeros of unstructured pruning)")
	case r.Train == "":
		return usageErr("--recover distill needs --train DATA")
	case r.Epochs < 1:
		return usageErr("--epochs %d: want at least 1", r.Epochs)
	}
	return nil
}

// applyPruneRecover prunes m (the optimized, unpruned model) by --prune
// uniformly per layer (no sensitivity search: the training recovers the
// accuracy) and distills it from m on --train. The caller checks the
// result against the accuracy budget as for --prune.
func applyPruneRecover(g *globalOptions, o *optimizeOptions, m *graph.Model) (*graph.Model, *prune.Report, *recoverResult, error) {
	r := &o.recoverOptions
	pm := m.Clone()
	rep, err := prune.Prune(pm, prune.Options{Fraction: o.Prune, Mode: prune.Structured, Norm: o.PruneNorm, Multiple: o.PruneMultiple})
	if err != nil {
		return nil, nil, nil, err
	}
	if len(rep.Layers) == 0 {
		rep.Notes = append(rep.Notes, "nothing was pruned: no layer's output channels can be removed (see the skipped layers); --recover distill not run")
		return pm, rep, nil, nil
	}
	if slices.ContainsFunc(pm.Graph.Nodes, func(n *graph.Node) bool { return n.Is("BatchNormalization") }) {
		if pm, _, err = passes.Optimize(pm, passes.Options{Level: passes.O2}); err != nil {
			return nil, rep, nil, fmt.Errorf("--recover distill: folding BatchNormalization (-O2): %w", err)
		}
	}
	samples, err := distillSamples(r.Train, sessionInfos(pm), 0, "--train")
	if err != nil {
		return nil, rep, nil, usageErr("%v", err)
	}
	var labels []int
	if r.TrainLabels != "" {
		if labels, err = distillLabels(r.TrainLabels, len(samples), false, "--train-labels"); err != nil {
			return nil, rep, nil, usageErr("%v", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	backend := o.Backend
	var s runtime.Session
	if backend == "" {
		if s, err = runtime.Open("ort", m, runtime.Options{}); err == nil {
			backend = "ort"
		} else {
			backend = "interp"
		}
	}
	if s == nil {
		if s, err = runtime.Open(backend, m, runtime.Options{}); err != nil {
			return nil, rep, nil, fmt.Errorf("--recover distill: teacher: %w", err)
		}
	}
	tout, err := distill.TeacherOutputs(ctx, s, samples)
	s.Close()
	if err != nil {
		return nil, rep, nil, fmt.Errorf("--recover distill: %w", err)
	}
	dopts := distill.Options{Epochs: r.Epochs, Batch: 32, LR: 1e-3, Temperature: 4, Alpha: 0.5, Seed: 1}
	if len(samples) < dopts.Batch {
		dopts.Batch = len(samples)
	}
	res := &recoverResult{Method: "distill", Train: r.Train, Samples: len(samples), Backend: backend, Loss: fmt.Sprintf("KD(T=%g), no labels", dopts.Temperature)}
	if labels != nil {
		res.Loss = fmt.Sprintf("%g·KD(T=%g) + %g·cross-entropy", dopts.Alpha, dopts.Temperature, 1-dopts.Alpha)
	}
	if g.Verbose {
		dopts.Log = prefixWriter{g.Stderr, "recover: "}
	}
	if res.Result, err = distill.Train(ctx, pm, samples, tout, labels, dopts); err != nil {
		return nil, rep, nil, fmt.Errorf("--recover distill: %w", err)
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("uniform structured pruning, then --recover distill: %d epochs on %d --train samples", r.Epochs, len(samples)))
	return pm, rep, res, nil
}

// printRecover writes the --recover line of the optimize report.
func printRecover(w io.Writer, r *recoverResult) {
	if r == nil || r.Result == nil || len(r.Epochs) == 0 {
		return
	}
	last := r.Epochs[len(r.Epochs)-1]
	fmt.Fprintf(w, "recovered by distillation: %d epochs on %d samples (%s, teacher on %s), final loss %.5f\n", len(r.Epochs), r.Samples, r.Loss, r.Backend, last.Loss)
}

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := fmt.Fprintf(p.w, "%s%s", p.prefix, b); err != nil {
		return 0, err
	}
	return len(b), nil
}
