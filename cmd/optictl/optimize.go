package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/spf13/cobra"

	"github.com/optictl/optictl/pkg/bench"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/passes"
	"github.com/optictl/optictl/pkg/prune"
	"github.com/optictl/optictl/pkg/quant"
	"github.com/optictl/optictl/pkg/runtime"
)

func init() { commands = append(commands, newOptimizeCmd) }

// optimizeOptions are the parsed flags of `optictl optimize`.
type optimizeOptions struct {
	Model     string
	Out       string
	Level     string
	Target    string
	Passes    []string
	Disable   []string
	DumpAfter []string
	Explain   []string // --explain: passes whose mismatches are printed
	Shapes    []string
	NoVerify  bool
	// EachPass checks numerically after every pass (--verify-each-pass,
	// on by default); EachPassSet records that the flag was given.
	EachPass, EachPassSet bool
	Backend               string
	Data                  string
	ATol                  float64
	RTol                  float64
	JSON                  bool
	FoldMax               int64
	FoldGrow              bool
	Freeze                bool
	// NCHWc is --nchwc: off, auto, 8 or 16 (ONNX Runtime's blocked layout).
	NCHWc string
	// Strict (--strict) fails (exit 3, nothing written) when a pass was
	// rolled back; by default the model is written without it, with a
	// warning.
	Strict bool
	// MaxMemory is --max-memory; maxMem is its parsed value.
	MaxMemory string
	maxMem    memoryBound

	// quantization (after the graph passes)
	Quantize     string
	QuantTarget  string
	Calib        string
	CalibSamples int
	Calibrate    string
	Percentile   float64
	PerChannel   bool
	Symmetric    bool
	ReduceRange  bool
	OpTypes      []string
	ExcludeNodes []string
	KeepIO       bool
	// RequireSpeedup fails (exit 3) unless the quantized model is faster
	// than the float one on ORT at 1 thread.
	RequireSpeedup bool
	// TimeBudget bounds int8-auto's and int8-mixed's search (0: none);
	// deadline is when it ends and progress reports each step.
	TimeBudget time.Duration
	deadline   time.Time
	progress   quant.Progress
	// Force writes an int8-mixed model even when it measures slower than
	// the float one (default: fewer int8 layers, else exit 3).
	Force bool

	// accuracy budget (accuracy.go)
	MaxDrop   float64 // points; < 0: the default budget
	Metric    string  // --metric; "" chooses from the output's shape
	MinMetric string  // --min-metric METRIC=VALUE
	Labels    string

	// pruning (after the graph passes, before quantization)
	Prune         float64
	PruneMode     string
	PruneNorm     string
	PruneMultiple int
	PruneGlobal   bool
	// structured pruning: reconstruction and accuracy budget
	PruneReconstruct bool
	PruneMinCosine   float64
	PruneMinTop1     float64
	// --recover distill (optimize_recover.go)
	recoverOptions
}

// checkQuantFlags validates the quantization and pruning flags (usage errors).
func (o *optimizeOptions) checkQuantFlags() error {
	if err := o.checkAccuracyFlags(); err != nil {
		return err
	}
	if o.Prune < 0 || o.Prune >= 1 || o.Prune != o.Prune {
		return usageErr("--prune %v: want a fraction in [0, 1)", o.Prune)
	}
	if o.PruneNorm != "" && o.PruneNorm != "l1" && o.PruneNorm != "l2" {
		return usageErr("--prune-norm %q: want l1 or l2", o.PruneNorm)
	}
	if o.PruneMultiple < 0 {
		return usageErr("--prune-multiple must be >= 0")
	}
	if o.PruneMode != prune.Structured && o.PruneMode != prune.Unstructured {
		return usageErr("--prune-mode %q: want structured or unstructured", o.PruneMode)
	}
	if err := o.checkPruneFlags(); err != nil {
		return err
	}
	if err := o.checkRecoverFlags(); err != nil {
		return err
	}
	if o.Quantize == "" {
		if o.Calib != "" && o.Prune == 0 {
			return usageErr("--calib needs --quantize (a recipe that calibrates) or --prune")
		}
		if o.QuantTarget != "" {
			return usageErr("--quant-target needs --quantize")
		}
		if o.RequireSpeedup {
			return usageErr("--require-speedup needs --quantize")
		}
		if o.Force {
			return usageErr("--force needs --quantize int8-mixed")
		}
		if o.TimeBudget != 0 {
			return usageErr("--time-budget needs --quantize int8-auto or int8-mixed")
		}
		return nil
	}
	if o.TimeBudget < 0 {
		return usageErr("--time-budget must not be negative")
	}
	if o.TimeBudget > 0 && o.Quantize != "int8-mixed" && o.Quantize != "int8-auto" {
		return usageErr("--time-budget is only used by --quantize int8-auto and int8-mixed")
	}
	if o.Force && o.Quantize != "int8-mixed" {
		return usageErr("--force is only used by --quantize int8-mixed (it writes the model even when slower than float)")
	}
	if o.Quantize == "int8-mixed" && o.NoVerify && !o.Force {
		return usageErr("--quantize int8-mixed times the result against the float model and --no-verify skips that: add --force to write it untimed")
	}
	if err := checkRecipeFlags(o); err != nil {
		return err
	}
	switch o.Calibrate {
	case quant.MinMax, quant.Percentile, quant.Entropy:
	default:
		return usageErr("--calibrate %q: want minmax, percentile or entropy", o.Calibrate)
	}
	if o.Percentile <= 0 || o.Percentile > 100 {
		return usageErr("--percentile %g: want a value in (0, 100]", o.Percentile)
	}
	if o.CalibSamples < 1 {
		return usageErr("--calib-samples %d: want at least 1", o.CalibSamples)
	}
	return nil
}

func filepathClean(p string) string {
	p = strings.TrimRight(p, "/")
	if p == "" {
		return "/"
	}
	return p
}

// quantizeResult is the quantization part of the optimize report.
type quantizeResult struct {
	Report   *quant.Report      `json:"report"`
	Accuracy *numerics.Accuracy `json:"accuracy,omitempty"`
	// Checked says on what the accuracy was measured.
	Checked string `json:"checked,omitempty"`
	// Speed is the interleaved ORT comparison (nil when not measured;
	// SpeedNote then says why).
	Speed     *quant.Speed `json:"speed,omitempty"`
	SpeedNote string       `json:"speed_note,omitempty"`
	// Control is the --max-accuracy-drop outcome.
	Control *quant.AccuracyResult `json:"accuracy_control,omitempty"`
	// Search lists every variant int8-auto tried (accuracy, speed, or why
	// it was not usable); Picked names the one written.
	Search []quant.Candidate `json:"search,omitempty"`
	Picked string            `json:"picked,omitempty"`
	// SpeedTries are int8-mixed's fallbacks when the planned model was
	// slower than float (quant.KeepFaster).
	SpeedTries []quant.SpeedTry `json:"speed_tries,omitempty"`
}

// sessionInfos describes a model's real inputs for data loading.
func sessionInfos(m *graph.Model) []runtime.IOInfo {
	var out []runtime.IOInfo
	for _, v := range m.Graph.RealInputs() {
		sh := make([]int64, len(v.Shape))
		for i, d := range v.Shape {
			sh[i] = d.Size
		}
		out = append(out, runtime.IOInfo{Name: v.Name, DType: v.DType, Shape: sh})
	}
	return out
}

// applyQuantize quantizes the optimized model and measures it against the
// float one (on --data when given, else on seeded inputs).
func applyQuantize(o *optimizeOptions, m *graph.Model) (*graph.Model, *quantizeResult, error) {
	var calib [][]*runtime.Tensor
	r := quantRecipe(o)
	if o.Calib != "" {
		samples, err := bench.LoadData(o.Calib, sessionInfos(m), o.CalibSamples)
		if err != nil {
			return nil, nil, usageErr("--calib: %v", err)
		}
		for i := range samples {
			calib = append(calib, samples[i])
		}
	}
	qf := func(extra []string) (*graph.Model, *quant.Report, error) {
		ro := recipeOptions(o, extra)
		ro.Calib = calib
		return r.Quantize(m, ro)
	}
	var labels []int
	if o.Labels != "" {
		l, err := bench.LoadLabels(o.Labels)
		if err != nil {
			return nil, nil, usageErr("--labels: %v", err)
		}
		labels = l
	}
	if r.Search() {
		return searchInt8(o, r, m, calib, labels)
	}
	if o.NoVerify || r.SameInputs != nil && !r.SameInputs(recipeOptions(o, nil)) {
		// nothing to measure with: the budget cannot apply, and says so
		q, rep, err := qf(nil)
		if err != nil {
			return nil, nil, err
		}
		if err := rep.NothingQuantized(); err != nil {
			return nil, nil, fmt.Errorf("--quantize %s: %w; nothing was written", o.Quantize, err)
		}
		return q, &quantizeResult{Report: rep, SpeedNote: "accuracy and speed not checked, no budget applied (--no-verify, or the quantized model takes other input types: fp16 without --keep-io)"}, nil
	}
	ctl, err := o.accuracyControl()
	if err != nil {
		return nil, nil, err
	}
	ctl.Deadline, ctl.Progress = o.deadline, o.progress
	samples, kept, checked, err := evalSamples(o, m, calib)
	if err != nil {
		return nil, nil, err
	}
	calib = kept // held-out samples never calibrate
	q, rep, ar, err := quant.ControlledBy(m, qf, o.Backend, samples, labels, ctl)
	if err != nil {
		return nil, nil, err
	}
	if err := rep.NothingQuantized(); err != nil {
		return nil, nil, fmt.Errorf("--quantize %s: %w; nothing was written", o.Quantize, err)
	}
	res := &quantizeResult{Report: rep, Accuracy: &ar.Accuracy, Control: ar, Checked: checked}
	if !ar.Met {
		return nil, res, failedErr(fmt.Errorf("accuracy budget: %s %s, outside %s even with %d of %d layers put back in float; nothing was written (--max-accuracy-drop or --min-metric loosen the budget)",
			ar.Metric, ar.Verdict.ValueString(), ar.Verdict.Limit, len(rep.LeftInFloat), len(rep.LeftInFloat)+len(rep.Quantized)))
	}
	sp, err := quant.MeasureSpeed(m, q, "ort", samples[0], 200, time.Second)
	if err != nil {
		res.SpeedNote = fmt.Sprintf("speed not checked: %v", err)
	} else {
		res.Speed = &sp
	}
	if len(rep.Profile) > 0 && !o.Force {
		// int8-mixed: never slower than float (--force writes it anyway)
		if err != nil {
			return nil, res, failedErr(fmt.Errorf("--quantize %s: the result could not be timed against the float model (%v); nothing was written (--force writes it untimed)", o.Quantize, err))
		}
		q2, rep2, sp2, tries, ok, err := quant.KeepFaster(m, q, rep, sp, qf, "ort", samples[0], 200, time.Second)
		res.SpeedTries = tries
		if err != nil {
			return nil, res, err
		}
		if !ok {
			return nil, res, failedErr(fmt.Errorf("--quantize %s: %s, even with int8 only on the layer that gains most; nothing was written (--force writes it anyway)", o.Quantize, sp.String()))
		}
		if len(tries) > 0 {
			// fewer int8 layers: measured again against the budget
			met, err := numerics.ParseMetric(ar.Metric)
			if err != nil {
				return nil, res, err
			}
			acc, refTop1, err := quant.CompareAt(m, q2, o.Backend, samples, labels, met.Threshold)
			if err != nil {
				return nil, res, err
			}
			v, err := ctl.Budget.Judge(met, acc, refTop1)
			if err != nil {
				return nil, res, err
			}
			res.Accuracy, res.Control.Verdict, res.Control.Met, res.Control.Accuracy = &acc, v, v.Met, acc
			if met.IsDrop() {
				res.Control.Drop = v.Value
			}
			if !v.Met {
				return nil, res, failedErr(fmt.Errorf("--quantize %s: with fewer int8 layers (to be faster than float) %s %s is outside %s; nothing was written", o.Quantize, ar.Metric, v.ValueString(), v.Limit))
			}
		}
		q, res.Report, res.Speed = q2, rep2, &sp2
	}
	return q, res, nil
}

// namedSample keys one sample by m's input names.
func namedSample(m *graph.Model, sample []*runtime.Tensor) map[string]*runtime.Tensor {
	out := map[string]*runtime.Tensor{}
	for i, v := range m.Graph.RealInputs() {
		if i < len(sample) {
			out[v.Name] = sample[i]
		}
	}
	return out
}

// loadSamples reads up to limit samples of --data in m's input order.
func loadSamples(path string, m *graph.Model, limit int) ([][]*runtime.Tensor, error) {
	ss, err := bench.LoadData(path, sessionInfos(m), limit)
	if err != nil {
		return nil, usageErr("--data: %v", err)
	}
	samples := make([][]*runtime.Tensor, len(ss))
	for i, s := range ss {
		samples[i] = s
	}
	return samples, nil
}

// searchInt8 is --quantize int8-auto: every int8 recipe (quant.Int8Variants;
// the static ones only with --calib) under accuracy control on --data (else
// held-out calibration samples, evalSamples),
// each one that meets the limit timed against the float model on ORT;
// the fastest is written.
func searchInt8(o *optimizeOptions, r *quant.Recipe, m *graph.Model, calib [][]*runtime.Tensor, labels []int) (*graph.Model, *quantizeResult, error) {
	samples, calib, checked, err := evalSamples(o, m, calib)
	if err != nil {
		return nil, nil, err
	}
	ctl, err := o.accuracyControl()
	if err != nil {
		return nil, nil, err
	}
	ctl.Deadline, ctl.Progress = o.deadline, o.progress
	ro := recipeOptions(o, nil)
	ro.Calib = calib
	variants := r.Variants(m, ro)
	cands, best, err := quant.Search(m, variants, samples, labels, quant.SearchOptions{Backend: o.Backend, Control: &ctl, Deadline: o.deadline, Progress: o.progress})
	if err != nil {
		return nil, nil, err
	}
	res := &quantizeResult{Search: cands, Checked: checked}
	if best < 0 {
		return nil, res, failedErr(fmt.Errorf("--quantize %s: no int8 variant stays within the accuracy budget (or none could be timed); nothing was written", r.Name))
	}
	c := cands[best]
	res.Report, res.Control, res.Speed, res.Picked = c.Report, c.Accuracy, c.Speed, c.Variant
	res.Accuracy = &c.Accuracy.Accuracy
	return c.Model, res, nil
}

// toPassOptions turns flags into passes.Options (usage errors for bad flags).
func (o *optimizeOptions) toPassOptions() (passes.Options, error) {
	var po passes.Options
	lvl, err := passes.ParseLevel(o.Level)
	if err != nil {
		return po, usageErr("%v", err)
	}
	if o.Target != passes.TargetGeneric && o.Target != passes.TargetORTCPU {
		return po, usageErr("--target %q: want %s or %s", o.Target, passes.TargetGeneric, passes.TargetORTCPU)
	}
	shapes, err := parseShapeFlags(o.Shapes)
	if err != nil {
		return po, err
	}
	if o.maxMem, err = parseMaxMemory(o.MaxMemory); err != nil {
		return po, err
	}
	if !o.NoVerify {
		if _, err := runtime.Get(o.Backend); err != nil {
			return po, usageErr("--backend: %v", err)
		}
	}
	if o.ATol < 0 || o.RTol < 0 {
		return po, usageErr("--atol and --rtol must not be negative")
	}
	if o.EachPass && o.EachPassSet && o.NoVerify {
		return po, usageErr("--verify-each-pass and --no-verify contradict each other")
	}
	block, err := o.nchwcBlock(lvl)
	if err != nil {
		return po, err
	}
	po = passes.Options{
		NCHWcBlock: block,
		Level:      lvl, Target: o.Target, Passes: o.Passes, Disable: int8Disable(o), DumpAfter: o.DumpAfter, Explain: o.Explain,
		Shapes: shapes, Verify: !o.NoVerify, VerifyEachPass: o.EachPass, Backend: o.Backend,
		Tolerance: numerics.Tolerance{ATol: o.ATol, RTol: o.RTol},
		MaxMemory: o.maxMem.seeded, SessionMaxMemory: o.maxMem.session,
		FoldMaxBytes: o.FoldMax, FoldGrow: o.FoldGrow, FreezeInitializers: o.Freeze,
	}
	loop, final, err := passes.ResolvePasses(po)
	if err != nil {
		return po, usageErr("%v", err)
	}
	if err := checkExplain(po, append(loop, final...)); err != nil {
		return po, err
	}
	return po, nil
}

// nchwcBlock parses --nchwc into a block size (0: off) and checks that it
// can take effect.
func (o *optimizeOptions) nchwcBlock(lvl passes.Level) (int, error) {
	named := slices.Contains(o.Passes, "layout-nchwc")
	var block int
	switch o.NCHWc {
	case "", "off":
		if named {
			return 0, usageErr("--passes layout-nchwc needs --nchwc auto, 8 or 16 (the CPU's block size)")
		}
		return 0, nil
	case "auto":
		if block = runtime.HostNCHWcBlock(); block == 0 {
			return 0, usageErr("--nchwc auto: ONNX Runtime has no NCHWc kernels optictl knows of on this CPU (x86-64 with AVX2+FMA uses 8, AVX-512F 16); give --nchwc 8 or 16 for the CPU that will run the model")
		}
	case "8":
		block = 8
	case "16":
		block = 16
	default:
		return 0, usageErr("--nchwc %q: want off, auto, 8 or 16", o.NCHWc)
	}
	if !named && (lvl < passes.O3 || o.Target != passes.TargetORTCPU) {
		return 0, usageErr("--nchwc needs -O3 --target ort-cpu (it writes ONNX Runtime CPU ops)")
	}
	if o.Quantize != "" || o.Prune > 0 {
		return 0, usageErr("--nchwc does not combine with --quantize or --prune: they rewrite the Conv ops the layout replaces")
	}
	return block, nil
}

// int8Disable is --disable, plus fuse-hardswish when quantizing to int8
// (unless --passes names it): int8 runs hard swish as QLinearAdd +
// QLinearMul only in its written-out form (Clip folds into the
// quantization range, /6 into the scale), while HardSigmoid would stay
// float between a DequantizeLinear and a QuantizeLinear.
func int8Disable(o *optimizeOptions) []string {
	if r := quantRecipe(o); r == nil || !r.Int8 || slices.Contains(o.Passes, "fuse-hardswish") || slices.Contains(o.Disable, "fuse-hardswish") {
		return o.Disable
	}
	return append(append([]string(nil), o.Disable...), "fuse-hardswish")
}

// loadData reads the first sample of --data (a test_data_set folder or a
// folder of them, a .pb/.npy/.npz file, or an MNIST idx file: whatever
// bench reads) as inputs named after the model's inputs.
func loadData(path string, m *graph.Model) (map[string]*runtime.Tensor, error) {
	infos := sessionInfos(m)
	ss, err := bench.LoadData(path, infos, 1)
	if err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	if len(ss) == 0 {
		return nil, fmt.Errorf("--data %s: no samples", path)
	}
	in := map[string]*runtime.Tensor{}
	for i, info := range infos {
		if i >= len(ss[0]) || ss[0][i] == nil {
			return nil, fmt.Errorf("--data %s: no tensor for input %q", path, info.Name)
		}
		in[info.Name] = ss[0][i]
	}
	return in, nil
}

// softMemoryLimit asks the garbage collector to keep the heap near three
// times the model's size (a soft limit: it makes collection more eager and
// never fails an allocation), unless GOMEMLIMIT is set. Passes that rewrite
// weights (Conv+BatchNormalization) hold old and new weights at once, and
// quantization and pruning copy them; without it the heap may double
// before a collection. (Numeric verification runs large models in
// segments of bounded size, see pkg/passes/segment.go.)
func softMemoryLimit(path string) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	st, err := os.Stat(path)
	if err != nil {
		return
	}
	debug.SetMemoryLimit(3*st.Size() + 128<<20)
}

type optimizeResult struct {
	Model  string          `json:"model"`
	Output string          `json:"output"`
	Wrote  bool            `json:"wrote"`
	Report *passes.Report  `json:"report"`
	Error  string          `json:"error,omitempty"`
	Failed *failedPassInfo `json:"failed,omitempty"`
	// Quantize is set with --quantize.
	Quantize *quantizeResult `json:"quantize,omitempty"`
	// Prune is set with --prune; PruneAccuracy is its budget check.
	Prune         *prune.Report  `json:"prune,omitempty"`
	PruneAccuracy *pruneAccuracy `json:"prune_accuracy,omitempty"`
	// Recover is set with --recover distill.
	Recover *recoverResult `json:"recover,omitempty"`
	// RolledBack lists each pass that was rolled back (once, with its
	// first failure) and a command that reproduces the failure.
	RolledBack []rolledBackPass `json:"rolled_back,omitempty"`
}

// rolledBackPass is a pass that broke the model and was undone.
type rolledBackPass struct {
	Pass   string   `json:"pass"`
	Times  int      `json:"times"`
	Reason string   `json:"reason"`
	Output string   `json:"output,omitempty"`
	Node   string   `json:"node,omitempty"`
	Inputs []string `json:"inputs,omitempty"`
	// Reproduce is an optictl command that shows the failure: the pass
	// alone on the input model when that reproduces it, else the whole
	// run with --strict.
	Reproduce string `json:"reproduce"`
}

type failedPassInfo struct {
	Pass   string `json:"pass,omitempty"`
	Output string `json:"output,omitempty"`
}

func runOptimize(g *globalOptions, o *optimizeOptions) error {
	po, err := o.toPassOptions()
	if err != nil {
		return err
	}
	if err := o.checkQuantFlags(); err != nil {
		return err
	}
	m, err := graph.Load(o.Model)
	if err != nil {
		return err
	}
	// A model ONNX Runtime would abort on is refused before any pass runs
	// or any output is written.
	if err := m.Check(); err != nil {
		return fmt.Errorf("%s: %w", o.Model, err)
	}
	softMemoryLimit(o.Model)
	if o.Data != "" {
		if po.Inputs, err = loadData(o.Data, m); err != nil {
			return usageErr("%v", err)
		}
	} else if o.Calib != "" {
		// Without --data, seeded inputs take their dynamic dims from the
		// calibration samples.
		in, err := loadData(o.Calib, m)
		if err != nil {
			return usageErr("--calib: %v", strings.TrimPrefix(err.Error(), "--data: "))
		}
		po.DataShapes = numerics.ShapesOf(in)
	}
	if len(po.DumpAfter) > 0 {
		po.Dump = g.Stderr
	}
	out, rep, err := passes.Optimize(m, po)
	res := optimizeResult{Model: o.Model, Output: o.Out, Report: rep}
	var ve *passes.VerificationError
	switch {
	case errors.As(err, &ve):
		res.Error = err.Error()
		res.Failed = &failedPassInfo{Pass: ve.Pass, Output: ve.Output}
		printOptimize(g, o, &res)
		return failedErr(fmt.Errorf("%w; nothing was written", err))
	case err != nil:
		var se *numerics.SizeError
		if !errors.As(err, &se) && strings.Contains(err.Error(), "--shape") {
			return usageErr("%v", err)
		}
		return err
	}
	if len(rep.Rollbacks) > 0 {
		// A rolled-back pass is a rewrite that broke the model. The model
		// left is the other passes' verified work (and passed the final
		// check): it is written, and the failure is reported loudly, with
		// a command that reproduces it. --strict refuses it instead.
		res.RolledBack = rolledBack(m, o, po, rep.Rollbacks)
		if o.Strict {
			rb := res.RolledBack[0]
			err := fmt.Errorf("--strict: %s; nothing was written (rerun without --strict to write the model without it, or with --disable %s)", rollbackMessage(rb), rb.Pass)
			res.Error = err.Error()
			res.Failed = &failedPassInfo{Pass: rb.Pass, Output: rb.Output}
			printOptimize(g, o, &res)
			return failedErr(err)
		}
	}
	if o.Prune > 0 {
		var pm *graph.Model
		var prep *prune.Report
		if o.Recover != "" {
			pm, prep, res.Recover, err = applyPruneRecover(g, o, out)
		} else {
			pm, prep, err = applyPrune(g, o, out)
		}
		if err != nil {
			if prep != nil {
				res.Prune, res.Error = prep, err.Error()
				printOptimize(g, o, &res)
			}
			return err
		}
		pa, err := checkPruneBudget(o, out, pm)
		if res.PruneAccuracy = pa; err != nil {
			res.Prune, res.Error = prep, err.Error()
			printOptimize(g, o, &res)
			return err
		}
		out, res.Prune = pm, prep
	}
	if o.Quantize != "" {
		if r := quantRecipe(o); r != nil && (r.Search() || r.Name == "int8-mixed") {
			p, done := quantProgress(g.Stderr)
			defer done()
			o.progress = p
			if o.TimeBudget > 0 {
				o.deadline = time.Now().Add(o.TimeBudget)
			}
		}
		q, qres, err := applyQuantize(o, out)
		if err != nil {
			if qres != nil {
				res.Quantize, res.Error = qres, err.Error()
				printOptimize(g, o, &res)
			}
			return err
		}
		out, res.Quantize = q, qres
		if o.RequireSpeedup && (qres.Speed == nil || qres.Speed.Speedup <= 1 || !qres.Speed.Significant) {
			why := qres.SpeedNote
			if qres.Speed != nil {
				why = qres.Speed.String()
			}
			err := fmt.Errorf("--require-speedup: %s; nothing was written", why)
			res.Error = err.Error()
			printOptimize(g, o, &res)
			return failedErr(err)
		}
	}
	if err := out.Verify(); err != nil {
		return failedErr(fmt.Errorf("the optimized model fails verification, nothing was written: %w", err))
	}
	if err := out.Save(o.Out); err != nil {
		return err
	}
	res.Wrote = true
	for _, rb := range res.RolledBack {
		fmt.Fprintf(g.Stderr, "warning: %s; %s was written without it (--strict: exit 3 instead)\n  reproduce: %s\n", rollbackMessage(rb), o.Out, rb.Reproduce)
	}
	if po.NCHWcBlock != 0 && slices.ContainsFunc(out.Graph.Nodes, func(n *graph.Node) bool { return n.Domain == graph.NCHWcDomain }) {
		kind := map[int]string{8: "x86-64 with AVX2 and without AVX-512F", 16: "x86-64 with AVX-512F"}[po.NCHWcBlock]
		fmt.Fprintf(g.Stderr, "note: %s uses ONNX Runtime's NCHWc layout with block %d: run it only on %s (optictl refuses it elsewhere; plain ONNX Runtime would compute wrong results)\n", o.Out, po.NCHWcBlock, kind)
	}
	return printOptimize(g, o, &res)
}

// rollbackMessage says which pass broke the model, where and how.
func rollbackMessage(rb rolledBackPass) string {
	msg := fmt.Sprintf("pass %s broke the model and was rolled back", rb.Pass)
	if rb.Times > 1 {
		msg += fmt.Sprintf(" (%d times)", rb.Times)
	}
	if rb.Node != "" {
		msg += " at node " + rb.Node
	}
	msg += ": " + rb.Reason
	if len(rb.Inputs) > 0 {
		msg += " (inputs " + strings.Join(rb.Inputs, "; ") + ")"
	}
	return msg
}

// rolledBack lists each rolled-back pass once, with a command that
// reproduces its failure. The pass alone on the input model (with the same
// target, shapes, data and tolerances) is tried first, as a user would
// report it; when that does not fail (the pass broke only what earlier
// passes made of the model), the command is the whole run with --strict.
func rolledBack(m *graph.Model, o *optimizeOptions, po passes.Options, rbs []passes.Rollback) []rolledBackPass {
	var out []rolledBackPass
	index := map[string]int{}
	for _, rb := range rbs {
		if i, ok := index[rb.Pass]; ok {
			out[i].Times++
			continue
		}
		index[rb.Pass] = len(out)
		out = append(out, rolledBackPass{Pass: rb.Pass, Times: 1, Reason: rb.Reason, Output: rb.Output, Node: rb.Node, Inputs: rb.Inputs})
	}
	for i := range out {
		name := out[i].Pass
		alone := po
		alone.Passes, alone.Disable, alone.DumpAfter, alone.Dump = []string{name}, nil, nil, nil
		if alone.Verify {
			alone.VerifyEachPass = true
		}
		out[i].Reproduce = reproduceCommand(o, po, []string{name})
		if _, rep, err := passes.Optimize(m, alone); err == nil && rep != nil && slices.ContainsFunc(rep.Rollbacks, func(r passes.Rollback) bool { return r.Pass == name }) {
			continue
		}
		out[i].Reproduce = reproduceCommand(o, po, nil)
	}
	return out
}

// reproduceCommand is the optimize command line of o with --strict (and an
// explicit NCHWc block): with only the given passes when only is set.
func reproduceCommand(o *optimizeOptions, po passes.Options, only []string) string {
	args := []string{"optictl", "optimize", shellQuote(o.Model), "-o", "/tmp/optictl-repro.onnx"}
	add := func(a ...string) { args = append(args, a...) }
	if only != nil {
		add("--passes", strings.Join(only, ","))
	} else {
		if po.Level != passes.O2 {
			add("-" + po.Level.String())
		}
		if len(o.Passes) > 0 {
			add("--passes", strings.Join(o.Passes, ","))
		}
		if len(o.Disable) > 0 {
			add("--disable", strings.Join(o.Disable, ","))
		}
	}
	if o.Target != passes.TargetGeneric {
		add("--target", o.Target)
	}
	if po.NCHWcBlock != 0 {
		add("--nchwc", strconv.Itoa(po.NCHWcBlock))
	}
	for _, sh := range o.Shapes {
		add("--shape", shellQuote(sh))
	}
	if o.Data != "" {
		add("--data", shellQuote(o.Data))
	}
	if o.NoVerify {
		add("--no-verify")
	} else if o.EachPassSet && !o.EachPass && only == nil {
		add("--verify-each-pass=false")
	}
	if o.Backend != "interp" {
		add("--backend", o.Backend)
	}
	if o.ATol != numerics.DefaultTolerance.ATol {
		add("--atol", strconv.FormatFloat(o.ATol, 'g', -1, 64))
	}
	if o.RTol != numerics.DefaultTolerance.RTol {
		add("--rtol", strconv.FormatFloat(o.RTol, 'g', -1, 64))
	}
	if o.Freeze {
		add("--freeze-initializers")
	}
	if o.FoldGrow {
		add("--fold-grow")
	}
	if o.FoldMax != 1<<20 {
		add("--fold-max-bytes", strconv.FormatInt(o.FoldMax, 10))
	}
	add("--strict")
	return strings.Join(args, " ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=,:+@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func printOptimize(g *globalOptions, o *optimizeOptions, res *optimizeResult) error {
	if o.JSON {
		enc := json.NewEncoder(g.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	rep := res.Report
	if rep == nil {
		return nil
	}
	w := g.Stdout
	t := tablewriter.NewTable(w)
	t.Header("Pass", "Level", "Runs", "Changed", "Nodes -", "Nodes +", "Params Δ", "Bytes Δ", "FLOPs Δ", "Time", "Notes")
	for _, st := range rep.Passes {
		notes := strings.Join(st.Notes, "; ")
		if st.RolledBack > 0 {
			notes = fmt.Sprintf("ROLLED BACK x%d; %s", st.RolledBack, notes)
		}
		if len(notes) > 70 {
			notes = notes[:67] + "..."
		}
		if err := t.Append([]string{st.Pass, st.Level, strconv.Itoa(st.Runs), strconv.Itoa(st.Changed),
			strconv.Itoa(st.NodesRemoved), strconv.Itoa(st.NodesAdded), signed(st.ParamsDelta), signed(st.BytesDelta), signed(st.FLOPsDelta),
			st.Time.Round(10 * time.Microsecond).String(), notes}); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	printSummary(w, rep)
	for _, rb := range rep.Rollbacks {
		fmt.Fprintf(w, "rolled back: pass %s (round %d): %s\n", rb.Pass, rb.Round, rb.Reason)
		if len(rb.Inputs) > 0 {
			fmt.Fprintf(w, "  checked on inputs %s\n", strings.Join(rb.Inputs, "; "))
		}
	}
	for _, rb := range res.RolledBack {
		fmt.Fprintf(w, "reproduce %s: %s\n", rb.Pass, rb.Reproduce)
	}
	for _, s := range rep.NumericSkips {
		fmt.Fprintf(w, "checked structurally only: %s\n", s)
	}
	printExplain(w, rep, o.Explain)
	fmt.Fprintf(w, "verification: %s\n", rep.Numeric)
	if rep.NumericMode != "" && rep.NumericMode != "off" {
		fmt.Fprintf(w, "numeric checks: %s\n", rep.NumericMode)
	}
	if res.Prune != nil {
		fmt.Fprint(w, res.Prune.String())
		if !strings.HasSuffix(res.Prune.String(), "\n") {
			fmt.Fprintln(w)
		}
	}
	printRecover(w, res.Recover)
	if err := printPruneAccuracy(w, o, res.PruneAccuracy); err != nil {
		return err
	}
	if qr := res.Quantize; qr != nil && len(qr.Search) > 0 {
		fmt.Fprintf(w, "int8 variants (accuracy on %s; speed on ORT, 1 thread, vs the float model):\n", qr.Checked)
		for _, c := range qr.Search {
			line := fmt.Sprintf("  %-18s", c.Variant)
			if c.Accuracy != nil {
				line += fmt.Sprintf(" %s %s", c.Accuracy.Metric, c.Accuracy.Verdict.ValueString())
				if c.Report != nil {
					line += fmt.Sprintf(", %d nodes left in float", len(c.Report.LeftInFloat))
				}
			}
			if c.Speed != nil {
				line += fmt.Sprintf(", %.2fx", c.Speed.Speedup)
				if !c.Speed.Significant {
					line += " (within noise)"
				}
			}
			if c.Err != "" {
				line += ": " + c.Err
			}
			if c.Variant == qr.Picked {
				line += "  <- picked"
			}
			fmt.Fprintln(w, line)
		}
	}
	if qr := res.Quantize; qr != nil && !res.Wrote {
		if rows := triedRows(qr, o.Quantize); len(rows) > 0 {
			fmt.Fprintf(w, "accuracy budget, what was tried (%s):\n", qr.Checked)
			if err := printTried(w, rows); err != nil {
				return err
			}
		}
	}
	if qr := res.Quantize; qr != nil && qr.Report != nil {
		fmt.Fprint(w, qr.Report.String())
		if a := qr.Accuracy; a != nil {
			fmt.Fprintf(w, "quantized vs float (%s):", qr.Checked)
			if a.Top1Accuracy != nil {
				fmt.Fprintf(w, " top-1 accuracy %.2f%%", 100**a.Top1Accuracy)
			}
			if a.Top1Agreement != nil { // class vectors only
				fmt.Fprintf(w, " top-1 agreement %.2f%%", 100**a.Top1Agreement)
			}
			if a.IoU != nil {
				fmt.Fprintf(w, " IoU@%g %.4f", a.IoUThreshold, *a.IoU)
			}
			if a.Cosine != nil {
				fmt.Fprintf(w, " cosine %.5f", *a.Cosine)
			}
			if a.SQNRdB != nil {
				fmt.Fprintf(w, " SQNR %.1f dB", *a.SQNRdB)
			}
			fmt.Fprintln(w)
		}
		if c := qr.Control; c != nil {
			met := "within"
			if !c.Met {
				met = "OUTSIDE"
			}
			fmt.Fprintf(w, "accuracy budget: %s %s, %s %s after %d %s", c.Metric, c.Verdict.ValueString(), met, c.Verdict.Limit, len(c.Tried), plural(len(c.Tried), "attempt"))
			if c.Stopped != "" {
				fmt.Fprintf(w, " (--time-budget: %s)", c.Stopped)
			}
			if len(c.LayerSQNR) > 0 {
				fmt.Fprint(w, "; worst layers by output SQNR:")
			}
			for i, l := range c.LayerSQNR {
				if i == 5 {
					break
				}
				fmt.Fprintf(w, " %s %.1f dB", l.Node, l.DB)
			}
			fmt.Fprintln(w)
		}
		for _, t := range qr.SpeedTries {
			fmt.Fprintf(w, "  slower than float, tried with %d more layers in float (%s): %.2fx\n", len(t.BackInFloat), strings.Join(t.BackInFloat, ", "), t.Speed.Speedup)
		}
		if qr.Speed != nil {
			fmt.Fprintln(w, qr.Speed.String())
		} else if qr.SpeedNote != "" {
			fmt.Fprintln(w, qr.SpeedNote)
		}
	}
	if res.Wrote {
		fmt.Fprintf(w, "wrote %s (%s, %d rounds, %s)\n", res.Output, rep.Level, rep.Rounds, rep.Time.Round(time.Millisecond))
	} else if res.Error != "" {
		fmt.Fprintf(w, "FAILED: %s\n", res.Error)
	}
	return nil
}

func printSummary(w io.Writer, rep *passes.Report) {
	fmt.Fprintf(w, "nodes   %d -> %d\n", rep.Before.Nodes, rep.After.Nodes)
	fmt.Fprintf(w, "params  %d -> %d\n", rep.Before.Params, rep.After.Params)
	fmt.Fprintf(w, "bytes   %d -> %d\n", rep.Before.Bytes, rep.After.Bytes)
	fmt.Fprintf(w, "FLOPs   %d -> %d (cost model; dynamic dims as in --data or 1; ops it does not model count 0)\n", rep.Before.FLOPs, rep.After.FLOPs)
	fmt.Fprintf(w, "peak activation memory %d -> %d bytes (cost model, as ordered)\n", rep.Before.PeakActivationBytes, rep.After.PeakActivationBytes)
	var ops []string
	seen := map[string]bool{}
	for op := range rep.Before.Ops {
		seen[op] = true
	}
	for op := range rep.After.Ops {
		seen[op] = true
	}
	for op := range seen {
		if rep.Before.Ops[op] != rep.After.Ops[op] {
			ops = append(ops, fmt.Sprintf("%s %d->%d", op, rep.Before.Ops[op], rep.After.Ops[op]))
		}
	}
	sort.Strings(ops)
	if len(ops) > 0 {
		fmt.Fprintf(w, "ops     %s\n", strings.Join(ops, ", "))
	}
}

func signed(v int64) string {
	if v > 0 {
		return "+" + strconv.FormatInt(v, 10)
	}
	return strconv.FormatInt(v, 10)
}

func newOptimizeCmd(g *globalOptions) *cobra.Command {
	o := &optimizeOptions{}
	cmd := &cobra.Command{
		Use:   "optimize MODEL -o OUT",
		Short: "Rewrite a model into a faster one and verify it computes the same thing",
		Long: `Rewrite MODEL with optictl's pass pipeline (see 'optictl passes') and write
the result to OUT.

Every pass is followed by a structural check and, unless --no-verify, by a
numeric one: the outputs on seeded inputs are compared with the original's
on --backend. A pass that breaks either is rolled back and the others go
on. The final model is checked again on a second seed and the --data
inputs; if it differs beyond --atol/--rtol, nothing is written and the exit
code is 3. A rolled-back pass does not cost the other passes' verified
work: the model is written without it, exit 0, with a warning that names
the pass, the failure (output, error, input shapes checked) and an optictl
command that reproduces it (also in --json under "rolled_back").
--strict makes a rollback fail instead: exit 3, nothing written.
--verify-each-pass=false checks numerically only the final model (faster
on big models); if that check fails, the pipeline is replayed with per-pass
checks to find, name and roll back the pass.

Levels: O0 nothing, O1 safe cleanups, O2 (default) + fusions and reordering,
O3 + target-specific rewrites (--target ort-cpu: com.microsoft FusedConv,
FusedGemm, Gelu, BiasGelu, Attention, SkipLayerNormalization).

--nchwc auto (with -O3 --target ort-cpu) also writes ONNX Runtime's blocked
NCHWc CPU layout (com.microsoft.nchwc ops, reordered filters), what ORT's
own optimizer does at level "all": the model then runs as fast with ORT's
optimizations off. The layout depends on the CPU's SIMD width (block 8 for
AVX2, 16 for AVX-512F): the model records it, optictl refuses it on the
other kind of CPU, and plain ONNX Runtime there would compute wrong
results. Use it for a fleet of one CPU kind.

` + budgetHelp + `

` + recoverHelp + `

  optictl optimize model.onnx -o model.opt.onnx
  optictl optimize model.onnx -o opt.onnx -O3 --target ort-cpu
  optictl optimize model.onnx -o opt.onnx -O3 --target ort-cpu --nchwc auto
  optictl optimize model.onnx -o opt.onnx --shape x=1x3x48x320 --json
  optictl optimize model.onnx -o small.onnx --prune 0.5 --recover distill \
      --train train-images.gz --train-labels train-labels.gz --epochs 2 \
      --val val-images.gz --val-labels val-labels.gz --data held-out.npz`,
		Args: func(cmd *cobra.Command, args []string) error {
			if o.Quantize == "list" {
				return exactArgs(0, "no model with --quantize list")(cmd, args)
			}
			return exactArgs(1, "one model")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Quantize == "list" {
				return printRecipes(g, o.JSON)
			}
			o.Model = args[0]
			if o.Out == "" {
				return usageErr("optimize needs -o OUT")
			}
			o.EachPassSet = cmd.Flags().Changed("verify-each-pass")
			o.changed = cmd.Flags().Changed
			return runOptimize(g, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Out, "output", "o", "", "where to write the optimized model")
	f.StringVarP(&o.Level, "level", "O", "O2", "optimization level: O0, O1, O2 or O3")
	f.StringVar(&o.Target, "target", passes.TargetGeneric, "target: generic or ort-cpu")
	f.BoolVar(&o.Strict, "strict", false, "exit 3 and write nothing when a pass was rolled back (default: write the model without that pass, with a warning)")
	f.StringVar(&o.NCHWc, "nchwc", "off", "with -O3 --target ort-cpu: write ONNX Runtime's blocked NCHWc layout for this CPU (auto) or block size 8 (AVX2) / 16 (AVX-512F); CPU-specific")
	f.StringSliceVar(&o.Passes, "passes", nil, "run exactly these passes (comma-separated), whatever the level")
	f.StringSliceVar(&o.Disable, "disable", nil, "passes to skip (comma-separated)")
	f.StringSliceVar(&o.DumpAfter, "dump-after", nil, "print the model's text form to stderr after these passes")
	f.StringSliceVar(&o.Explain, "explain", nil, "print, for these fusion passes, each candidate node they did not rewrite and why")
	f.StringArrayVar(&o.Shapes, "shape", nil, shapeFlagUsage+"; the optimized model declares these dims")
	addMaxMemoryFlag(cmd, &o.MaxMemory)
	f.BoolVar(&o.NoVerify, "no-verify", false, "skip numeric verification (structural checks still run)")
	f.BoolVar(&o.EachPass, "verify-each-pass", true, "check outputs numerically after every pass that changed something; false: only the final model (replaying per pass if it fails)")
	f.StringVar(&o.Backend, "backend", "interp", "backend for numeric verification: interp or ort")
	f.StringVar(&o.Data, "data", "", "test_data_set folder (input_K.pb) for the final numeric check")
	f.Float64Var(&o.ATol, "atol", numerics.DefaultTolerance.ATol, "absolute tolerance")
	f.Float64Var(&o.RTol, "rtol", numerics.DefaultTolerance.RTol, "relative tolerance")
	f.BoolVar(&o.JSON, "json", false, "print the report as one JSON object")
	f.Int64Var(&o.FoldMax, "fold-max-bytes", 1<<20, "largest tensor constant folding may create")
	f.BoolVar(&o.FoldGrow, "fold-grow", false, "let folding create constants larger than its inputs (e.g. ConstantOfShape weights)")
	f.BoolVar(&o.Freeze, "freeze-initializers", false, "treat weights listed as graph inputs (IR < 4 files) as constants and drop them from the inputs")
	f.StringVar(&o.Quantize, "quantize", "", quantizeFlagHelp())
	f.StringVar(&o.QuantTarget, "quant-target", "", "where the int8 model will run, which shapes QDQ placement: "+strings.Join(quant.TargetNames(), ", ")+" (default "+quant.DefaultTarget+")")
	f.StringVar(&o.Calib, "calib", "", "calibration inputs for int8-static and --prune (test_data_set folders, .pb/.npy/.npz, MNIST idx); must be disjoint from --data")
	f.IntVar(&o.CalibSamples, "calib-samples", 100, "calibration samples to read from --calib")
	f.StringVar(&o.Calibrate, "calibrate", quant.MinMax, "calibration method: minmax, percentile or entropy")
	f.Float64Var(&o.Percentile, "percentile", 99.999, "percentile for --calibrate percentile")
	f.BoolVar(&o.PerChannel, "per-channel", true, "one weight scale per output channel (int8)")
	f.BoolVar(&o.Symmetric, "symmetric", false, "int8-static: symmetric int8 activations (s8s8); the default asymmetric uint8 is the form ONNX Runtime's x86 CPU provider fuses into QLinear kernels")
	f.BoolVar(&o.ReduceRange, "reduce-range", true, "7-bit weights: avoids int16 saturation of ORT's int8 kernels on CPUs without VNNI; false for full 8 bits")
	f.StringSliceVar(&o.OpTypes, "op-types", nil, "quantize only these op types (Conv, MatMul, Gemm)")
	f.StringSliceVar(&o.ExcludeNodes, "exclude-nodes", nil, "node names to leave in float")
	f.BoolVar(&o.KeepIO, "keep-io", true, "fp16: keep graph inputs and outputs float32")
	f.Float64Var(&o.MaxDrop, "max-accuracy-drop", -1, "accuracy budget for --quantize/--prune: top-1 drop of at most PCT points (top-1 accuracy with --labels, else top-1 agreement); -1: the default budget, 1 point; exit 3 if not met")
	f.StringVar(&o.Metric, "metric", "", "accuracy metric for the budget: top1, agreement, cosine, sqnr or iou[@T] (default: from the output's shape, see above)")
	f.StringVar(&o.MinMetric, "min-metric", "", "accuracy budget as METRIC=MIN: cosine=0.995, sqnr=25, iou=0.97, iou@0.5=0.9 (defaults cosine 0.99, sqnr 20 dB, iou 0.95)")
	f.StringVar(&o.Labels, "labels", "", "labels for --data (MNIST idx, .npy): the budget then bounds the top-1 accuracy drop")
	f.Float64Var(&o.Prune, "prune", 0, "after the passes, prune this fraction of weights (unstructured) or output channels (structured, per-layer ratios chosen by sensitivity, reconstructed on --calib, checked on held-out samples under the default budget of --prune-min-cosine/--prune-min-top1), in [0, 1)")
	f.StringVar(&o.PruneMode, "prune-mode", "structured", "pruning mode: structured (channels, L1 norm) or unstructured (magnitude)")
	f.StringVar(&o.PruneNorm, "prune-norm", "l1", "channel ranking for structured pruning: l1 or l2")
	f.IntVar(&o.PruneMultiple, "prune-multiple", 0, "round kept channels per layer to a multiple of this (8 suits ONNX Runtime's blocked x86 conv kernels; 0 keeps the exact fraction)")
	f.BoolVar(&o.PruneReconstruct, "prune-reconstruct", true, "structured: after removing channels, re-fit the next layers by least squares on --calib activations and correct BatchNorm statistics")
	f.Float64Var(&o.PruneMinCosine, "prune-min-cosine", prune.DefaultMinCosine, "accuracy budget of --prune, the least mean output cosine against the unpruned model on held-out samples (always applies; below 0.9 or all-zero output is a collapse); outside it exit 3, nothing written")
	f.Float64Var(&o.PruneMinTop1, "prune-min-top1", prune.DefaultMinTop1, "accuracy budget of --prune, the least top-1 agreement with the unpruned model for [N,K] class outputs")
	f.BoolVar(&o.PruneGlobal, "prune-global", false, "unstructured: one magnitude threshold across all layers instead of per layer")
	o.recoverOptions.addFlags(f)
	f.DurationVar(&o.TimeBudget, "time-budget", 0, "bound int8-auto's and int8-mixed's search (e.g. 2m): when it runs out, the best candidate measured so far is kept and the report says so (0: no bound)")
	f.BoolVar(&o.Force, "force", false, "write an int8-mixed model even when it measures slower than the float one (default: fewer int8 layers, else exit 3)")
	f.BoolVar(&o.RequireSpeedup, "require-speedup", false, "exit 3 (writing nothing) unless the quantized model is faster than the float one on ORT at 1 thread")
	return cmd
}
