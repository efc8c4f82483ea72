package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/optictl/optictl/pkg/distill"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/passes"
	"github.com/optictl/optictl/pkg/prune"
	"github.com/optictl/optictl/pkg/runtime"
)

// recoverOptions are optimize's --recover flags: after --prune, train the
// pruned model back to the unpruned one (knowledge distillation). The
// training flags mean what distill's do, with distill's defaults and
// checks; where optimize's other commands give a name another meaning
// (--batch and --seed are input batch sizes and seeded inputs in bench,
// tune, run and compare; --backend is optimize's verification backend;
// --limit reads like a bound on --data), the name has a train- prefix.
type recoverOptions struct {
	Recover     string
	Train       string
	TrainLabels string
	// TrainLimit is distill's --limit; Batch its --batch, Seed its --seed,
	// TrainBackend its --backend.
	TrainLimit    int
	Epochs        int
	Batch         int
	LR, T, Alpha  float64
	Seed          int64
	Val           string
	ValLabels     string
	CheckpointDir string
	Resume        bool
	TrainBackend  string
	Workers       int
	Standardize   bool
	Schedule      string
	Loss          []string
	// changed reports whether a flag was given (cmd.Flags().Changed).
	changed func(name string) bool
}

// recoverFlagNames are the flags that only --recover distill uses, in the
// order --help lists them.
var recoverFlagNames = []string{"train", "train-labels", "train-limit", "epochs", "train-batch", "lr", "temperature", "alpha", "train-seed", "val", "val-labels", "checkpoint-dir", "resume", "train-backend", "train-workers", "kd-standardize", "lr-schedule", "loss"}

// recoverSettings are the training settings --recover distill ran with.
type recoverSettings struct {
	Epochs      int     `json:"epochs"`
	Batch       int     `json:"batch"`
	LR          float64 `json:"lr"`
	Temperature float64 `json:"temperature"`
	Alpha       float64 `json:"alpha"`
	Seed        int64   `json:"seed"`
	Workers     int     `json:"workers"`
	Standardize bool    `json:"kd_standardize"`
	Schedule    string  `json:"lr_schedule"`
}

// recoverResult reports --recover distill.
type recoverResult struct {
	Method   string          `json:"method"`
	Train    string          `json:"train"`
	Samples  int             `json:"samples"`
	Loss     string          `json:"loss"`
	Settings recoverSettings `json:"settings"`
	// Backend ran the teacher (and --val); "" when the teacher did not run
	// (labels only, --alpha 0) and there was no --val. BackendNote says
	// why it is not ONNX Runtime when optictl chose it.
	Backend     string `json:"teacher_backend"`
	BackendNote string `json:"teacher_backend_note,omitempty"`
	Val         string `json:"val,omitempty"`
	ValSamples  int    `json:"val_samples,omitempty"`
	// CheckpointDir holds the last epoch's checkpoint (--checkpoint-dir);
	// Resumed says the run continued from it (--resume).
	CheckpointDir string `json:"checkpoint_dir,omitempty"`
	Resumed       bool   `json:"resumed,omitempty"`
	*distill.Result
}

func (r *recoverOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&r.Recover, "recover", "", "after --prune (structured), recover accuracy: distill = train the pruned model on the unpruned one's outputs over --train (then the budget check runs on the trained model)")
	f.StringVar(&r.Train, "train", "", "training inputs of --recover distill (idx, .npy/.npz, .pb, test_data_set folders)")
	f.StringVar(&r.TrainLabels, "train-labels", "", "labels of --train (idx or one integer a line): --recover distill mixes KD with cross-entropy (--alpha)")
	f.IntVar(&r.TrainLimit, "train-limit", 0, "--recover distill: use at most this many --train samples (0: all; distill's --limit)")
	f.IntVar(&r.Epochs, "epochs", 3, "training epochs of --recover distill")
	f.IntVar(&r.Batch, "train-batch", 32, "--recover distill: training batch size (distill's --batch)")
	f.Float64Var(&r.LR, "lr", 3e-3, "--recover distill: Adam learning rate (the peak of the cosine schedule)")
	f.Var((*temperatureValue)(&r.T), "temperature", "--recover distill: "+temperatureUsage)
	f.IntVar(&r.Workers, "train-workers", 2, "--recover distill: split every batch into this many parts trained in parallel, one core each (distill's --workers)")
	f.BoolVar(&r.Standardize, "kd-standardize", true, "--recover distill: "+standardizeUsage)
	f.StringVar(&r.Schedule, "lr-schedule", distill.ScheduleCosine, "--recover distill: learning-rate schedule, cosine (decay from --lr to 0 over all epochs) or constant")
	f.StringSliceVar(&r.Loss, "loss", nil, "--recover distill: loss against the teacher, auto, kd, mse or cosine, for every output or as OUTPUT=KIND (distill's --loss)")
	f.Float64Var(&r.Alpha, "alpha", 0.5, "--recover distill: weight of the KD term against cross-entropy on --train-labels (0: labels only, the teacher does not run)")
	f.Int64Var(&r.Seed, "train-seed", 1, "--recover distill: seed of the sample order; the same seed gives the same weights (distill's --seed)")
	f.StringVar(&r.Val, "val", "", "--recover distill: validation inputs; the student's top-1 is measured before training and after each epoch (needs --val-labels)")
	f.StringVar(&r.ValLabels, "val-labels", "", "--recover distill: labels of --val")
	f.StringVar(&r.CheckpointDir, "checkpoint-dir", "", "--recover distill: checkpoint the student after each epoch into this folder (default: no checkpoints)")
	f.BoolVar(&r.Resume, "resume", false, "--recover distill: continue from the checkpoint in --checkpoint-dir (same model, pruning, options and data; --epochs may grow with --lr-schedule constant)")
	f.StringVar(&r.TrainBackend, "train-backend", "", "--recover distill: backend that runs the teacher and --val (default: ort when it loads the model, else interp; --backend is the verification's; distill's --backend)")
}

// checkRecoverFlags validates --recover and its flags (usage errors).
func (o *optimizeOptions) checkRecoverFlags() error {
	r := &o.recoverOptions
	changed := r.changed
	if changed == nil {
		changed = func(string) bool { return false }
	}
	if r.Recover == "" {
		for _, name := range recoverFlagNames {
			if changed(name) {
				return usageErr("--%s is for --recover distill (%s are its training flags)", name, strings.Join(dashed(recoverFlagNames), ", "))
			}
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
	case r.Epochs < 1 || r.Batch < 1 || !(r.LR > 0) || !(r.T >= 0) || !(r.Alpha >= 0 && r.Alpha <= 1) || r.TrainLimit < 0:
		return usageErr("--recover distill: want --epochs >= 1, --train-batch >= 1, --lr > 0, --temperature auto or > 0, --alpha in [0,1], --train-limit >= 0 (got %d, %d, %g, %g, %g, %d)", r.Epochs, r.Batch, r.LR, r.T, r.Alpha, r.TrainLimit)
	case r.Workers < 1 || r.Workers > r.Batch:
		return usageErr("--recover distill: --train-workers %d must be in [1, --train-batch %d]", r.Workers, r.Batch)
	case r.Schedule != distill.ScheduleCosine && r.Schedule != distill.ScheduleConstant:
		return usageErr("--recover distill: --lr-schedule %q: want cosine or constant", r.Schedule)
	case changed("alpha") && r.TrainLabels == "":
		return usageErr("--alpha weighs KD against --train-labels; without labels --recover distill is pure KD")
	case (r.Val == "") != (r.ValLabels == ""):
		return usageErr("--val and --val-labels go together (top-1 needs labels)")
	case r.Resume && r.CheckpointDir == "":
		return usageErr("--resume needs --checkpoint-dir (the folder of the run it continues)")
	}
	if r.TrainBackend != "" {
		if _, err := runtime.Get(r.TrainBackend); err != nil {
			return usageErr("--train-backend: %v", err)
		}
	}
	// -O3 --target ort-cpu writes com.microsoft fused ops (FusedConv,
	// FusedGemm, ...): pruning does not follow them and the trainer has no
	// gradients for them.
	if lvl, err := passes.ParseLevel(o.Level); err == nil && lvl >= passes.O3 && o.Target == passes.TargetORTCPU {
		return usageErr("--recover distill does not combine with -O3 --target ort-cpu: its com.microsoft fused ops (FusedConv, FusedGemm, ...) can be neither pruned nor trained; run --prune --recover distill at -O2 (or -O3 --target generic), then optimize the result with -O3 --target ort-cpu")
	}
	return nil
}

func dashed(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "--" + n
	}
	return out
}

// backendOpener opens a session (runtime.Open; tests replace it).
type backendOpener func(backend string, m *graph.Model) (runtime.Session, error)

func openBackend(backend string, m *graph.Model) (runtime.Session, error) {
	return runtime.Open(backend, m, runtime.Options{})
}

// pickTrainBackend opens m on --train-backend when given, else on ONNX
// Runtime when it loads m, else on interp; it returns the session, the
// backend and, when optictl fell back to interp, why.
func pickTrainBackend(want string, m *graph.Model, open backendOpener) (runtime.Session, string, string, error) {
	if want != "" {
		s, err := open(want, m)
		if err != nil {
			return nil, want, "", fmt.Errorf("--train-backend %s: %w", want, err)
		}
		return s, want, "", nil
	}
	s, err := open("ort", m)
	if err == nil {
		return s, "ort", "", nil
	}
	note := fmt.Sprintf("ONNX Runtime did not load the model (%v), so interp ran it", err)
	s, err2 := open("interp", m)
	if err2 != nil {
		return nil, "interp", note, fmt.Errorf("neither ort (%v) nor interp (%w) runs the model", err, err2)
	}
	return s, "interp", note, nil
}

// applyPruneRecover prunes m (the optimized, unpruned model) by --prune
// uniformly per layer (no sensitivity search: the training recovers the
// accuracy) and distills it from m on --train. The caller checks the
// result against the accuracy budget as for --prune.
func applyPruneRecover(g *globalOptions, o *optimizeOptions, m *graph.Model) (*graph.Model, *prune.Report, *recoverResult, error) {
	return pruneRecover(g, o, m, openBackend)
}

func pruneRecover(g *globalOptions, o *optimizeOptions, m *graph.Model, open backendOpener) (*graph.Model, *prune.Report, *recoverResult, error) {
	r := &o.recoverOptions
	var foreign []string
	for _, n := range m.Graph.Nodes {
		if !n.IsDefaultDomain() && !slices.Contains(foreign, n.Domain+"."+n.OpType) {
			foreign = append(foreign, n.Domain+"."+n.OpType)
		}
	}
	if len(foreign) > 0 {
		return nil, nil, nil, usageErr("--recover distill: the optimized model has %s nodes, which can be neither pruned nor trained (leave out the passes that write them, e.g. -O3 --target ort-cpu)", strings.Join(foreign, ", "))
	}
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
	infos := sessionInfos(pm)
	samples, err := distillSamples(r.Train, infos, r.TrainLimit, "--train")
	if err != nil {
		return nil, rep, nil, usageErr("%v", err)
	}
	if len(samples) < r.Batch {
		return nil, rep, nil, usageErr("--recover distill: --train has %d samples, fewer than one --train-batch of %d (lower --train-batch)", len(samples), r.Batch)
	}
	var labels []int
	if r.TrainLabels != "" {
		if labels, err = distillLabels(r.TrainLabels, len(samples), r.TrainLimit > 0, "--train-labels"); err != nil {
			return nil, rep, nil, usageErr("%v", err)
		}
	}
	var valSamples [][]*runtime.Tensor
	var valLabels []int
	if r.Val != "" {
		if valSamples, err = distillSamples(r.Val, infos, 0, "--val"); err != nil {
			return nil, rep, nil, usageErr("%v", err)
		}
		if valLabels, err = distillLabels(r.ValLabels, len(valSamples), false, "--val-labels"); err != nil {
			return nil, rep, nil, usageErr("%v", err)
		}
	}
	meta := map[string]string{"model": absPath(o.Model), "level": o.Level, "target": o.Target, "prune": strconv.FormatFloat(o.Prune, 'g', -1, 64),
		"prune-norm": o.PruneNorm, "prune-multiple": strconv.Itoa(o.PruneMultiple), "train": absPath(r.Train)}
	if r.Resume {
		if err := checkResumeMeta(r.CheckpointDir, meta); err != nil {
			return nil, rep, nil, err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res := &recoverResult{Method: "distill", Train: r.Train, Samples: len(samples), Val: r.Val, ValSamples: len(valSamples),
		CheckpointDir: r.CheckpointDir, Resumed: r.Resume,
		Settings: recoverSettings{Epochs: r.Epochs, Batch: r.Batch, LR: r.LR, Temperature: r.T, Alpha: r.Alpha, Seed: r.Seed, Workers: r.Workers, Standardize: r.Standardize, Schedule: r.Schedule}}
	lossSpec, err := distill.ParseLoss(r.Loss)
	if err != nil {
		return nil, rep, nil, usageErr("--recover distill: %v", err)
	}
	var tout [][]*runtime.Tensor
	if labels == nil || r.Alpha > 0 {
		s, backend, note, err := pickTrainBackend(r.TrainBackend, m, open)
		if err != nil {
			return nil, rep, nil, fmt.Errorf("--recover distill: teacher: %w", err)
		}
		res.Backend, res.BackendNote = backend, note
		tout, err = distill.TeacherOutputs(ctx, s, samples)
		s.Close()
		if err != nil {
			return nil, rep, nil, fmt.Errorf("--recover distill: %w", err)
		}
	}
	dopts := distill.Options{Epochs: r.Epochs, Batch: r.Batch, LR: r.LR, Temperature: r.T, Alpha: r.Alpha, Seed: r.Seed,
		Workers: r.Workers, Standardize: r.Standardize, Schedule: r.Schedule, Loss: lossSpec,
		CheckpointDir: r.CheckpointDir, Resume: r.Resume, Meta: meta}
	var plan []distill.OutputLoss
	if res.Loss, plan, err = describeLoss(pm, tout, dopts, labels != nil); err != nil {
		return nil, rep, nil, fmt.Errorf("--recover distill: %w", err)
	}
	for _, l := range plan {
		if l.Kind == distill.LossKD {
			res.Settings.Temperature = l.Temperature // the (first) KD output's, auto resolved
			break
		}
	}
	// A progress bar on a terminal (stderr, not with --json), as distill.
	showBar, _ := progressMode("auto", o.JSON, g.Stderr)
	bar := newProgressBar(g.Stderr, showBar)
	defer bar.Done()
	if showBar {
		dopts.Progress = bar.Update
	}
	if g.Verbose {
		dopts.Log = bar.ClearBefore(prefixWriter{g.Stderr, "recover: "})
	}
	if valSamples != nil {
		valOpen := func(sm *graph.Model) (runtime.Session, error) {
			if res.Backend == "" {
				// labels only: the backend is chosen on the student
				s, backend, note, err := pickTrainBackend(r.TrainBackend, sm, open)
				res.Backend, res.BackendNote = backend, note
				return s, err
			}
			return open(res.Backend, sm)
		}
		dopts.Val = func(sm *graph.Model) (float64, error) { return top1(ctx, valOpen, sm, valSamples, valLabels) }
	}
	// optimize keeps a soft memory limit near the model's size
	// (softMemoryLimit); the training set and the training graphs are
	// far larger, and under that limit the collector runs nonstop (3x
	// slower epochs on MNIST's 60k images). Lift it while training.
	if os.Getenv("GOMEMLIMIT") == "" {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	}
	if res.Result, err = distill.Train(ctx, pm, samples, tout, labels, dopts); err != nil {
		if errors.Is(err, distill.ErrNoCheckpoint) {
			return nil, rep, nil, usageErr("--recover distill: --resume: %v", err)
		}
		return nil, rep, nil, fmt.Errorf("--recover distill: %w", err)
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("uniform structured pruning, then --recover distill: %d %s on %d --train samples", r.Epochs, plural(r.Epochs, "epoch"), len(samples)))
	return pm, rep, res, nil
}

// checkResumeMeta refuses --resume from a checkpoint of another model,
// pruning or training set: its student would not fit this run's.
func checkResumeMeta(dir string, want map[string]string) error {
	ck, err := distill.ReadCheckpoint(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return usageErr("--resume: no checkpoint in %s (%s is missing)", dir, distill.CheckpointFile)
		}
		return usageErr("--resume: %v", err)
	}
	var diff []string
	for _, k := range []string{"model", "level", "target", "prune", "prune-norm", "prune-multiple", "train"} {
		if ck.Meta[k] != want[k] {
			diff = append(diff, fmt.Sprintf("%s %q (this run: %q)", k, ck.Meta[k], want[k]))
		}
	}
	if len(diff) > 0 {
		return usageErr("--resume: the checkpoint in %s was made by another optimize run: %s", dir, strings.Join(diff, ", "))
	}
	return nil
}

// printRecover writes the --recover lines of the optimize report.
func printRecover(w io.Writer, r *recoverResult) {
	if r == nil || r.Result == nil || len(r.Epochs) == 0 {
		return
	}
	s := r.Settings
	last := r.Epochs[len(r.Epochs)-1]
	teacher := "teacher not run (labels only)"
	if r.Backend != "" && r.Loss != "cross-entropy on labels" {
		teacher = "teacher on " + r.Backend
	}
	fmt.Fprintf(w, "recovered by distillation: %d %s on %d samples (%s; batch %d, lr %g, seed %d), %s, final loss %.5f\n",
		len(r.Epochs), plural(len(r.Epochs), "epoch"), r.Samples, r.Loss, s.Batch, s.LR, s.Seed, teacher, last.Loss)
	if r.BackendNote != "" {
		fmt.Fprintf(w, "  %s\n", r.BackendNote)
	}
	if r.ValBefore != nil {
		fmt.Fprintf(w, "  before training: val top-1 %.2f%% (%d --val samples, on %s)\n", 100**r.ValBefore, r.ValSamples, r.Backend)
	}
	for _, e := range r.Epochs {
		line := fmt.Sprintf("  epoch %d: loss %.5f", e.Epoch, e.Loss)
		if e.ValTop1 != nil {
			line += fmt.Sprintf(", val top-1 %.2f%%", 100**e.ValTop1)
		}
		fmt.Fprintf(w, "%s, %.1fs\n", line, e.Seconds)
	}
	if r.CheckpointDir != "" {
		how := "checkpoint"
		if r.Resumed {
			how = "resumed from and checkpointed to"
		}
		fmt.Fprintf(w, "  %s %s\n", how, r.CheckpointDir)
	}
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

// recoverHelp is --recover's paragraph in optimize --help.
const recoverHelp = `Recovering a pruned model: --prune F --recover distill --train DATA prunes
the optimized model uniformly (F of every prunable layer's channels, no
sensitivity search: training recovers the accuracy), trains it to
reproduce the unpruned optimized model on --train (knowledge
distillation, as 'optictl distill'), then applies --prune's accuracy
budget to the trained model. The training flags are distill's, with its
defaults and checks: --epochs 3, --lr 3e-3, --lr-schedule cosine,
--temperature auto, --kd-standardize (z-scored KD), --loss auto, --alpha
0.5 (needs --train-labels; loss alpha·KD + (1-alpha)·cross-entropy), --val
and --val-labels (top-1 before training and after each epoch),
--checkpoint-dir (here no checkpoints without it) and --resume. Five
carry a train- prefix because optimize or its sibling commands use the
plain name otherwise: --train-batch 32 (distill --batch), --train-seed 1
(--seed), --train-workers 2 (--workers), --train-limit (--limit) and
--train-backend (--backend: it runs
the teacher and --val, by default ort when it loads the model, else
interp; --backend remains the verification backend). The report gives
the settings, the teacher's backend (and why, when optictl fell back to
interp), the loss and val top-1 per epoch. Each training flag without
--recover distill is a usage error. With --quantize the trained model is
quantized next (prune -> distill -> quantize; --quantize's budget
compares with the trained model). -O3 --target ort-cpu is refused: its
com.microsoft fused ops can be neither pruned nor trained (prune at -O2,
then optimize the result with -O3 --target ort-cpu).`
