package tune

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/optictl/optictl/pkg/bench"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/quant"
	"github.com/optictl/optictl/pkg/runtime"
)

// Options configure Run.
type Options struct {
	Model string
	// Out is OUTDIR: candidates/, cache/, the plot and serve.json go there.
	Out string
	// Calib is --calib; CalibSamples caps the samples read (0: 64).
	Calib        string
	CalibSamples int
	// Data and Labels are --data and --labels; Samples caps the evaluation
	// samples read from Data (0: 200).
	Data, Labels string
	Samples      int
	// Variants narrows the variants by name (nil: all of Variants).
	Variants []string
	// PruneRatios are the structured pruning fractions tried (each in
	// (0, 1)); nil tries none.
	PruneRatios []float64
	// Train is --train: training inputs for a distillation-recovered
	// pruned candidate per prune ratio ("" tries none); TrainEpochs are its
	// epochs (0: 1) and TrainSamples caps the samples read (0: 2000).
	Train        string
	TrainEpochs  int
	TrainSamples int
	// Backends narrows the backends (nil: every registered one).
	Backends []string
	// Threads and Batches are the settings measured (nil: [1]).
	Threads, Batches []int
	// Devices are the devices tried on each backend that lists them in
	// its Capabilities (nil: cpu). A session that would run elsewhere
	// (a CPU fallback) is skipped, never reported as the device.
	Devices []string
	// Shapes fixes dynamic input dims (--shape).
	Shapes map[string][]int64
	// TimeBudget bounds the search (0: none): when the long measurement of
	// every candidate would not fit, only the better ones get it.
	TimeBudget time.Duration
	// ShortIters and LongIters are the timed inferences of the two
	// successive-halving rungs (0: 20 and 100); Rounds interleaves them.
	ShortIters, LongIters, Rounds int
	// RemeasureIters are the timed inferences bench gives chosen and the
	// original after the search (0: three times LongIters); negative
	// skips the re-measurement.
	RemeasureIters int
	Seed           int64
	// Budget is the accuracy a chosen candidate must keep (the zero value:
	// numerics.DefaultBudget).
	Budget *numerics.Budget
	// Constraints pick the chosen candidate.
	Constraints Constraints
	// Log gets a line per candidate as it finishes (nil: none).
	Log io.Writer
}

// Accuracy is a candidate's accuracy against the original model.
type Accuracy struct {
	// Metric is numerics' metric name (top1, agreement, cosine, iou@T).
	Metric string `json:"metric"`
	// Value is the metric's value (percent for top1 and agreement).
	Value float64 `json:"value"`
	// Drop is how much worse than the original: points for top1 and
	// agreement, 1 - value for cosine and IoU.
	Drop float64 `json:"drop"`
	// Within reports whether the accuracy budget holds.
	Within bool `json:"within_budget"`
	// Detail is the full comparison.
	Detail numerics.Accuracy `json:"detail"`
}

// Candidate is one variant on one backend at one setting.
type Candidate struct {
	ID      string `json:"id"`
	Variant string `json:"variant"`
	Recipe  string `json:"recipe"`
	Backend string `json:"backend"`
	Device  string `json:"device"`
	Threads int    `json:"threads"`
	Batch   int    `json:"batch"`
	// P50MS and P99MS are latencies per inference; on a simulated device
	// (fpga) they are the device's simulated latency (HostP50MS is the
	// simulation's wall time).
	P50MS          float64  `json:"p50_ms"`
	P99MS          float64  `json:"p99_ms"`
	ThroughputPerS float64  `json:"throughput_per_s"`
	HostP50MS      float64  `json:"host_p50_ms"`
	Simulated      bool     `json:"simulated,omitempty"`
	Accuracy       Accuracy `json:"accuracy"`
	// Speedup is the baseline's p50 over this p50 (measured interleaved
	// when the baseline runs on the same backend).
	Speedup float64 `json:"speedup"`
	// Iterations is the rung that measured it (short or long).
	Iterations int    `json:"iterations"`
	Pareto     bool   `json:"pareto"`
	Path       string `json:"path"`
	SHA256     string `json:"sha256"`
	Cached     bool   `json:"cached"`
	Note       string `json:"note,omitempty"`
}

// Skipped is a candidate (or variant) not measured, with the reason.
type Skipped struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// Report is what tune found; it is what --json writes.
type Report struct {
	Model string `json:"model"`
	Out   string `json:"out"`
	// AccuracyOn says which samples measured accuracy.
	AccuracyOn string `json:"accuracy_on"`
	// AccuracyNote warns when the figure rests on few samples.
	AccuracyNote string      `json:"accuracy_note,omitempty"`
	Metric       string      `json:"metric"`
	Baseline     string      `json:"baseline"`
	Chosen       string      `json:"chosen"`
	ChosenWhy    string      `json:"chosen_why"`
	Candidates   []Candidate `json:"candidates"`
	Skipped      []Skipped   `json:"skipped,omitempty"`
	// Measured and Cached count measurements made and reused.
	Measured    int     `json:"measured"`
	Cached      int     `json:"cached"`
	WallS       float64 `json:"wall_s"`
	TimeBudgetS float64 `json:"time_budget_s,omitempty"`
	// Halved lists the candidates left at the short rung (budget).
	Halved []string `json:"halved,omitempty"`
	// ChosenRemeasured is chosen timed again by bench against the
	// original (nil when nothing but the baseline was chosen).
	ChosenRemeasured *Remeasured `json:"chosen_remeasured,omitempty"`
	Plot             string      `json:"plot,omitempty"`
	Serve            string      `json:"serve,omitempty"`
}

// Candidate returns the candidate with the id, or nil.
func (r *Report) Candidate(id string) *Candidate {
	for i := range r.Candidates {
		if r.Candidates[i].ID == id {
			return &r.Candidates[i]
		}
	}
	return nil
}

type tuner struct {
	opts          Options
	orig          *graph.Model
	origSHA       string
	o2Model       *graph.Model
	calib         [][]*runtime.Tensor
	calibID       string
	eval          []bench.Sample
	evalReal      bool
	labels        []int
	verifyBackend string
	start         time.Time
	rep           *Report
	ref           [][]*runtime.Tensor // the original's outputs on eval
	metric        numerics.Metric
	refTop1       *float64
	budget        numerics.Budget
	// the int8 profile of the -O2 model on ort, made once
	profiled bool
	int8Why  string
	// --train samples and the original's outputs on them, read once
	train, trainOut [][]*runtime.Tensor
}

// item is one candidate during the search.
type item struct {
	c     Candidate
	model string // path
	sha   string
	err   string // why it could not be measured
	dev   string // the device asked for
}

// Run searches and returns the report; the caller writes it and the plot.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Out == "" {
		return nil, errors.New("tune: no output folder (-o)")
	}
	if o.Labels != "" && o.Data == "" {
		return nil, errors.New("tune: --labels needs --data")
	}
	if len(o.Threads) == 0 {
		o.Threads = []int{1}
	}
	if len(o.Batches) == 0 {
		o.Batches = []int{1}
	}
	if len(o.Devices) == 0 {
		o.Devices = []string{"cpu"}
	}
	for _, n := range append(slices.Clone(o.Threads), o.Batches...) {
		if n < 1 {
			return nil, fmt.Errorf("tune: threads and batch sizes must be positive, got %d", n)
		}
	}
	if o.ShortIters == 0 {
		o.ShortIters = 20
	}
	if o.LongIters == 0 {
		o.LongIters = 100
	}
	if o.Rounds == 0 {
		o.Rounds = 5
	}
	if o.Samples == 0 {
		o.Samples = 200
	}
	if o.CalibSamples == 0 {
		o.CalibSamples = 64
	}
	if o.TrainEpochs == 0 {
		o.TrainEpochs = 1
	}
	if o.TrainSamples == 0 {
		o.TrainSamples = 2000
	}
	if o.TrainEpochs < 0 || o.TrainSamples < 0 {
		return nil, fmt.Errorf("tune: training epochs and samples must be positive, got %d and %d", o.TrainEpochs, o.TrainSamples)
	}
	if len(o.Backends) == 0 {
		o.Backends = runtime.Names()
	}
	for _, b := range o.Backends {
		if _, err := runtime.Get(b); err != nil {
			return nil, fmt.Errorf("tune: --backends: %w", err)
		}
	}
	t := &tuner{opts: o, start: time.Now(), budget: numerics.DefaultBudget}
	if o.Budget != nil {
		t.budget = *o.Budget
	}
	t.rep = &Report{Model: o.Model, Out: o.Out, TimeBudgetS: o.TimeBudget.Seconds()}
	for _, d := range []string{"candidates", "cache"} {
		if err := os.MkdirAll(filepath.Join(o.Out, d), 0o755); err != nil {
			return nil, fmt.Errorf("tune: %w", err)
		}
	}
	raw, err := os.ReadFile(o.Model)
	if err != nil {
		return nil, fmt.Errorf("tune: %w", err)
	}
	t.origSHA = sha(raw)
	if t.orig, err = graph.Load(o.Model); err != nil {
		return nil, err
	}
	if err := t.orig.Check(); err != nil {
		return nil, fmt.Errorf("%s: %w", o.Model, err)
	}
	t.verifyBackend = "interp"
	if slices.Contains(runtime.Names(), "ort") {
		t.verifyBackend = "ort"
	}
	if err := t.loadSamples(); err != nil {
		return nil, err
	}
	for _, r := range o.PruneRatios {
		if !(r > 0 && r < 1) {
			return nil, fmt.Errorf("tune: prune ratio %g is not in (0, 1)", r)
		}
	}
	vs, skipped := Variants(len(t.calib) > 0, o.PruneRatios)
	vs = append(vs, distillVariants(vs, o.Train != "", o.TrainEpochs, skipped)...)
	if len(o.Variants) > 0 {
		known := VariantNames(o.PruneRatios)
		for _, n := range o.Variants {
			if !slices.Contains(known, n) {
				return nil, fmt.Errorf("tune: --recipes: unknown %q (want some of %s)", n, strings.Join(known, ", "))
			}
			if r, ok := skipped[n]; ok {
				t.skip(n, r)
			}
		}
		vs = slices.DeleteFunc(vs, func(v Variant) bool { return !slices.Contains(o.Variants, v.Name) })
	} else {
		for _, n := range sortedKeys(skipped) {
			t.skip(n, skipped[n])
		}
	}
	// The baseline always runs: every speedup is against it.
	if !slices.ContainsFunc(vs, func(v Variant) bool { return v.Name == "original" }) {
		all, _ := Variants(false, nil)
		vs = append([]Variant{all[0]}, vs...)
	}
	if err := t.reference(ctx); err != nil {
		return nil, err
	}
	items, err := t.candidates(ctx, vs)
	if err != nil {
		return nil, err
	}
	if err := t.measure(ctx, items); err != nil {
		return nil, err
	}
	var ok []*item
	for _, it := range items {
		if it.err != "" {
			t.skip(it.c.ID, it.err)
		} else {
			ok = append(ok, it)
		}
	}
	t.finish(ok)
	if o.RemeasureIters >= 0 {
		if err := t.remeasure(ctx, ok); err != nil {
			return nil, err
		}
	}
	t.rep.WallS = time.Since(t.start).Seconds()
	return t.rep, nil
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (t *tuner) skip(id, reason string) {
	t.rep.Skipped = append(t.rep.Skipped, Skipped{ID: id, Reason: reason})
	t.logf("skip  %-28s %s\n", id, reason)
}

func (t *tuner) logf(format string, args ...any) {
	if t.opts.Log != nil {
		fmt.Fprintf(t.opts.Log, format, args...)
	}
}

func infosOf(m *graph.Model) []runtime.IOInfo {
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

// loadSamples reads --calib and --data and picks the evaluation samples:
// --data, else calibration samples held out from calibration, else seeded.
func (t *tuner) loadSamples() error {
	o := t.opts
	infos := infosOf(t.orig)
	if o.Calib != "" {
		ss, err := bench.LoadData(o.Calib, infos, o.CalibSamples)
		if err != nil {
			return fmt.Errorf("tune: --calib: %w", err)
		}
		for _, s := range ss {
			t.calib = append(t.calib, s)
		}
		t.calibID = fmt.Sprintf("%s:%d", o.Calib, len(ss))
	}
	switch {
	case o.Data != "":
		ss, err := bench.LoadData(o.Data, infos, o.Samples)
		if err != nil {
			return fmt.Errorf("tune: --data: %w", err)
		}
		t.eval, t.evalReal = ss, true
		if o.Labels != "" {
			if t.labels, err = bench.LoadLabels(o.Labels); err != nil {
				return fmt.Errorf("tune: --labels: %w", err)
			}
		}
		t.rep.AccuracyOn = fmt.Sprintf("%d samples of --data %s", len(ss), o.Data)
		if len(t.labels) > 0 {
			t.rep.AccuracyOn += " with --labels"
		}
	case len(t.calib) > 1:
		hold := max(1, len(t.calib)/4)
		for _, s := range t.calib[len(t.calib)-hold:] {
			t.eval = append(t.eval, s)
		}
		t.calib = t.calib[:len(t.calib)-hold]
		t.evalReal = true
		t.rep.AccuracyOn = fmt.Sprintf("%d calibration samples held out from calibration (calibrated on %d)", hold, len(t.calib))
	case len(t.calib) == 1:
		t.eval, t.evalReal = []bench.Sample{t.calib[0]}, true
		t.rep.AccuracyOn = "the 1 calibration sample, also used to calibrate (too few to hold one out; pass --data)"
	default:
		dims := numerics.VerifyDims(t.orig)[0]
		if len(o.Shapes) > 0 {
			dims.Shapes = o.Shapes
		}
		ss, err := quant.SeededSamples(t.orig, 8, o.Seed, dims, numerics.DefaultMaxMemory)
		if err != nil {
			return fmt.Errorf("tune: %w", err)
		}
		for _, s := range ss {
			t.eval = append(t.eval, s)
		}
		t.rep.AccuracyOn = "8 seeded random inputs (no --data or --calib: representative inputs, not real samples)"
	}
	if len(t.eval) == 0 {
		return errors.New("tune: no evaluation samples")
	}
	if len(t.eval) < fewSamples {
		t.rep.AccuracyNote = fmt.Sprintf("only %d evaluation %s: a top-1 metric counts as within budget only when the outputs' cosine is too; pass --data for a real figure", len(t.eval), map[bool]string{true: "sample", false: "samples"}[len(t.eval) == 1])
	}
	return nil
}

// refInfo is what the accuracy of every candidate is judged with; the
// cache keeps it so that a rerun need not run the original at all.
type refInfo struct {
	Metric  numerics.Metric `json:"metric"`
	RefTop1 *float64        `json:"ref_top1,omitempty"`
}

// samplesKey names the evaluation samples (and labels) in cache keys.
func (t *tuner) samplesKey() string {
	return sha([]byte(strings.Join([]string{t.origSHA, t.rep.AccuracyOn, t.opts.Labels, fmt.Sprint(t.opts.Seed), fmt.Sprint(t.opts.Shapes)}, "\x00")))
}

// reference picks the metric from the original's outputs on the
// evaluation samples (from the cache when a run already did).
func (t *tuner) reference(ctx context.Context) error {
	path := filepath.Join(t.opts.Out, "cache", "ref-"+t.samplesKey()[:24]+".json")
	var ri refInfo
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &ri) == nil && ri.Metric.Kind != "" {
		t.metric, t.refTop1 = ri.Metric, ri.RefTop1
		t.rep.Metric = t.metric.String()
		return nil
	}
	if err := t.ensureRef(ctx); err != nil {
		return err
	}
	var self numerics.AccuracyMeter
	for j := range t.eval {
		if err := self.Add(t.ref[j], t.ref[j], t.labels); err != nil {
			return fmt.Errorf("tune: %w", err)
		}
	}
	a := self.Result()
	t.metric = numerics.ChooseMetric(a, len(t.labels) > 0)
	t.refTop1 = a.Top1Accuracy
	t.rep.Metric = t.metric.String()
	if b, err := json.Marshal(refInfo{Metric: t.metric, RefTop1: t.refTop1}); err == nil {
		writeAtomic(path, b)
	}
	return nil
}

// ensureRef runs the original on the evaluation samples once; every
// candidate's accuracy is against these outputs.
func (t *tuner) ensureRef(ctx context.Context) error {
	if t.ref != nil {
		return nil
	}
	var err error
	for _, b := range append([]string{t.verifyBackend}, t.opts.Backends...) {
		var outs [][]*runtime.Tensor
		if outs, err = runAll(ctx, t.orig, b, "cpu", t.eval); err == nil {
			t.ref = outs
			return nil
		}
	}
	return fmt.Errorf("tune: no backend runs the original model: %w", err)
}

// accCache is one candidate model's accuracy on one backend, or why the
// backend cannot run it.
type accCache struct {
	Accuracy numerics.Accuracy `json:"accuracy"`
	Err      string            `json:"error,omitempty"`
}

// accuracyOf runs the model on the backend over the evaluation samples
// and compares with the original (cached by model bytes, backend and
// samples). A backend that cannot run it gives the reason.
func (t *tuner) accuracyOf(ctx context.Context, m *graph.Model, modelSHA, backend, device string) (numerics.Accuracy, string, error) {
	path := filepath.Join(t.opts.Out, "cache", "acc-"+sha([]byte(modelSHA + "\x00" + backend + "\x00" + device + "\x00" + t.samplesKey()))[:32]+".json")
	var ac accCache
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &ac) == nil {
		return ac.Accuracy, ac.Err, nil
	}
	outs, err := runAll(ctx, m, backend, device, t.eval)
	if err != nil {
		if ctx.Err() != nil {
			return ac.Accuracy, "", ctx.Err()
		}
		ac.Err = firstLine(err.Error())
		if !errors.Is(err, runtime.ErrUnsupported) {
			// the environment (a missing library or GPU), not the
			// model: try again next run
			return ac.Accuracy, ac.Err, nil
		}
	} else {
		if err := t.ensureRef(ctx); err != nil {
			return ac.Accuracy, "", err
		}
		var meter numerics.AccuracyMeter
		for j := range outs {
			if err := meter.Add(t.ref[j], outs[j], t.labels); err != nil {
				return ac.Accuracy, "", fmt.Errorf("tune: on %s: %w", backend, err)
			}
		}
		ac.Accuracy = meter.Result()
	}
	if b, err := json.Marshal(ac); err == nil {
		writeAtomic(path, b)
	}
	return ac.Accuracy, ac.Err, nil
}

func runAll(ctx context.Context, m *graph.Model, backend, device string, samples []bench.Sample) ([][]*runtime.Tensor, error) {
	s, err := runtime.Open(backend, m, runtime.Options{Threads: 1, Device: device})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if device != "cpu" && (s.Device() == "" || strings.HasPrefix(s.Device(), "cpu")) {
		return nil, fmt.Errorf("tune: asked for device %s, the session runs on %q", device, s.Device())
	}
	out := make([][]*runtime.Tensor, len(samples))
	for j, in := range samples {
		if err := runtime.CheckInputs(s.Inputs(), in); err != nil {
			return nil, err
		}
		o, err := s.Run(ctx, in)
		if err != nil {
			return nil, err
		}
		out[j] = make([]*runtime.Tensor, len(o))
		for k, x := range o {
			out[j][k] = x.Clone()
		}
	}
	return out, nil
}

// fewSamples is the evaluation set size below which a top-1 metric alone
// does not put a candidate within the budget.
const fewSamples = 8

// judge turns a comparison with the original into tune's Accuracy.
func (t *tuner) judge(a numerics.Accuracy) Accuracy {
	acc := Accuracy{Metric: t.metric.String(), Detail: a}
	v, err := t.budget.Judge(t.metric, a, t.refTop1)
	if err != nil {
		acc.Value, acc.Drop = math.NaN(), math.NaN()
		return acc
	}
	acc.Within = v.Met
	// A top-1 figure on a handful of samples says little: there the
	// outputs must also stay close (cosine within the budget).
	if t.metric.IsDrop() && a.Samples < fewSamples {
		acc.Within = acc.Within && a.Cosine != nil && *a.Cosine >= t.budget.MinCosine
	}
	switch t.metric.Kind {
	case numerics.MetricTop1:
		acc.Value, acc.Drop = 100**a.Top1Accuracy, v.Value
	case numerics.MetricAgreement:
		acc.Value, acc.Drop = 100-v.Value, v.Value
	default:
		acc.Value, acc.Drop = v.Value, 1-v.Value
	}
	return acc
}

// candidates produces every variant's model and checks, for each backend,
// that it can run it (Capabilities first, then a real run of the
// evaluation samples, which also measures its accuracy).
func (t *tuner) candidates(ctx context.Context, vs []Variant) ([]*item, error) {
	var items []*item
	var ests []estimate
	for _, v := range vs {
		g, err := t.produce(v)
		if err != nil {
			if v.Name == "original" {
				return nil, err
			}
			t.skip(v.Name, err.Error())
			continue
		}
		m, err := graph.Load(g.Path)
		if err != nil {
			return nil, err
		}
		if e, err := estimateOf(v.Name, g.SHA256, accClass(v), m); err == nil {
			why := ""
			for _, p := range ests {
				if why = dominatedBy(e, p); why != "" {
					break
				}
			}
			if why != "" && v.Name != "original" {
				t.skip(v.Name, why)
				continue
			}
			ests = append(ests, e)
		}
		for _, b := range t.opts.Backends {
			if op := unsupportedOp(m, b); op != "" {
				t.skip(v.Name+"@"+b, "the backend does not run "+op)
				continue
			}
			if b == "ort" && v.quant != nil && v.quant.Int8 {
				if why := t.int8Verdict(); why != "" {
					t.skip(v.Name+"@"+b, why)
					continue
				}
			}
			caps, _ := runtime.Get(b)
			for _, dev := range t.opts.Devices {
				id := v.Name + "@" + b
				if dev != "cpu" {
					id += ":" + dev
				}
				if !caps.Capabilities().HasDevice(dev) {
					if len(t.opts.Devices) > 1 {
						t.skip(id, "the backend has no device "+dev)
					}
					continue
				}
				a, why, err := t.accuracyOf(ctx, m, g.SHA256, b, dev)
				if err != nil {
					return nil, fmt.Errorf("tune: %s: %w", v.Name, err)
				}
				if why != "" {
					t.skip(id, why)
					continue
				}
				acc := t.judge(a)
				for _, th := range t.opts.Threads {
					for _, bs := range t.opts.Batches {
						c := Candidate{
							ID: id, Variant: v.Name, Recipe: v.Recipe, Backend: b, Device: dev,
							Threads: th, Batch: bs, Accuracy: acc, Path: g.Path, SHA256: g.SHA256, Note: g.Note,
						}
						if len(t.opts.Threads) > 1 || len(t.opts.Batches) > 1 {
							c.ID += fmt.Sprintf("/t%d/b%d", th, bs)
						}
						items = append(items, &item{c: c, model: g.Path, sha: g.SHA256, dev: dev})
					}
				}
			}
		}
	}
	return items, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// measurement is what the cache keeps for one candidate at one rung.
type measurement struct {
	P50MS, P99MS, ThroughputPerS, HostP50MS float64
	Simulated                               bool
	Device                                  string
	Speedup                                 float64
}

func (t *tuner) cacheKey(it *item, iters int) string {
	return sha([]byte(strings.Join([]string{it.sha, it.c.Recipe, it.c.Backend, it.dev, fmt.Sprintf("t%d b%d i%d r%d s%d", it.c.Threads, it.c.Batch, iters, t.opts.Rounds, t.opts.Seed), t.rep.AccuracyOn, fmt.Sprint(t.opts.Shapes)}, "\x00")))
}

func (t *tuner) cachePath(key string) string {
	return filepath.Join(t.opts.Out, "cache", key[:32]+".json")
}

func (t *tuner) cached(it *item, iters int) (measurement, bool) {
	var m measurement
	b, err := os.ReadFile(t.cachePath(t.cacheKey(it, iters)))
	if err != nil || json.Unmarshal(b, &m) != nil {
		return m, false
	}
	return m, true
}

func (t *tuner) store(it *item, iters int, m measurement) {
	if b, err := json.MarshalIndent(m, "", "  "); err == nil {
		writeAtomic(t.cachePath(t.cacheKey(it, iters)), b)
	}
}

// group is the candidates measured in one interleaved bench run.
type group struct {
	backend, device string
	threads, batch  int
	items           []*item // the baseline first when the backend runs it
}

func groups(items []*item) []*group {
	var out []*group
	for _, it := range items {
		var g *group
		for _, x := range out {
			if x.backend == it.c.Backend && x.device == it.dev && x.threads == it.c.Threads && x.batch == it.c.Batch {
				g = x
			}
		}
		if g == nil {
			g = &group{backend: it.c.Backend, device: it.dev, threads: it.c.Threads, batch: it.c.Batch}
			out = append(out, g)
		}
		g.items = append(g.items, it)
	}
	return out
}

// measure runs the two rungs: every candidate briefly, then the long
// measurement for those that fit the time budget (all when it is 0).
func (t *tuner) measure(ctx context.Context, items []*item) error {
	gs := groups(items)
	short := map[*item]measurement{}
	for _, g := range gs {
		if err := t.rung(ctx, g, g.items, t.opts.ShortIters, short); err != nil {
			return err
		}
	}
	keep := t.survivors(items, short)
	long := map[*item]measurement{}
	for _, g := range gs {
		var sel []*item
		for _, it := range g.items {
			if keep[it] && it.err == "" {
				sel = append(sel, it)
			}
		}
		if len(sel) == 0 {
			continue
		}
		if err := t.rung(ctx, g, sel, t.opts.LongIters, long); err != nil {
			return err
		}
	}
	for _, it := range items {
		m, iters := long[it], t.opts.LongIters
		if !keep[it] {
			m, iters = short[it], t.opts.ShortIters
			t.rep.Halved = append(t.rep.Halved, it.c.ID)
		}
		it.c.P50MS, it.c.P99MS, it.c.ThroughputPerS, it.c.HostP50MS = m.P50MS, m.P99MS, m.ThroughputPerS, m.HostP50MS
		it.c.Simulated, it.c.Speedup, it.c.Iterations = m.Simulated, m.Speedup, iters
		if m.Device != "" {
			it.c.Device = m.Device
		}
		if m.Simulated {
			it.c.Device += " (simulated)"
		}
	}
	return nil
}

// survivors picks who gets the long rung: everyone when the estimate fits
// what is left of the budget, else the frontier of the short rung and then
// the fastest, at most half of the rest (successive halving).
func (t *tuner) survivors(items []*item, short map[*item]measurement) map[*item]bool {
	keep := map[*item]bool{}
	cost := func(its []*item) time.Duration {
		var ms float64
		for _, it := range its {
			if _, ok := t.cached(it, t.opts.LongIters); !ok {
				ms += short[it].HostP50MS * float64(t.opts.LongIters)
			}
		}
		return time.Duration(ms * float64(time.Millisecond))
	}
	left := t.opts.TimeBudget - time.Since(t.start)
	if t.opts.TimeBudget == 0 || cost(items) <= left {
		for _, it := range items {
			keep[it] = true
		}
		return keep
	}
	var pts []point
	for _, it := range items {
		pts = append(pts, point{it: it, lat: short[it].P50MS, drop: it.c.Accuracy.Drop})
	}
	front := paretoSet(pts)
	var rest []*item
	for _, it := range items {
		if front[it] || it.c.Variant == "original" {
			keep[it] = true
		} else {
			rest = append(rest, it)
		}
	}
	sort.SliceStable(rest, func(i, j int) bool { return short[rest[i]].P50MS < short[rest[j]].P50MS })
	var chosen []*item
	for it := range keep {
		chosen = append(chosen, it)
	}
	for _, it := range rest[:len(rest)/2] {
		if cost(append(chosen, it)) > left {
			break
		}
		chosen = append(chosen, it)
		keep[it] = true
	}
	return keep
}

// rung measures the group's selected items at iters, from the cache when
// it has them; uncached ones run in one interleaved bench run with the
// baseline first.
func (t *tuner) rung(ctx context.Context, g *group, sel []*item, iters int, out map[*item]measurement) error {
	var todo []*item
	for _, it := range sel {
		if m, ok := t.cached(it, iters); ok {
			out[it] = m
			it.c.Cached = true
			t.rep.Cached++
			t.line(it, m, iters, true)
		} else {
			todo = append(todo, it)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	var base *item
	if g.items[0].c.Variant == "original" {
		base = g.items[0]
	}
	models := []*item{}
	if base != nil && !slices.Contains(todo, base) {
		models = append(models, base)
	}
	models = append(models, todo...)
	var paths []string
	for _, it := range models {
		paths = append(paths, it.model)
	}
	cfg := bench.Config{
		Models: paths, Backend: g.backend, Options: runtime.Options{Threads: g.threads, Device: g.device, Shapes: t.opts.Shapes},
		Batches: []int{g.batch}, Iterations: iters, Warmup: 2, Rounds: min(t.opts.Rounds, iters), Seed: t.opts.Seed,
		Samples: t.eval[:1], AccuracySamples: 1, Resamples: 200,
	}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// A setting the models cannot take (a batch on a fixed first
		// dim, say) skips the group, not the search.
		for _, it := range todo {
			it.err = firstLine(err.Error())
		}
		return nil
	}
	for i, it := range models {
		r := rep.Results[i]
		m := measurement{P50MS: r.LatencyMS.P50, P99MS: r.LatencyMS.P99, ThroughputPerS: r.ThroughputPerS, HostP50MS: r.LatencyMS.P50, Device: rep.Models[i].Device}
		if base != nil {
			m.Speedup = r.Speedup
		}
		if r.Device != nil && r.Device.Simulated {
			m.Simulated = true
			m.P50MS, m.P99MS, m.ThroughputPerS = r.Device.LatencyMS, r.Device.LatencyMS, r.Device.ThroughputPerS
		}
		if !slices.Contains(todo, it) {
			continue // the baseline, already measured: only timed alongside
		}
		t.store(it, iters, m)
		t.rep.Measured++
		out[it] = m
		t.line(it, m, iters, false)
	}
	return nil
}

func (t *tuner) line(it *item, m measurement, iters int, cached bool) {
	how := "measured"
	if cached {
		how = "cached"
	}
	t.logf("done  %-28s p50 %8.3f ms  p99 %8.3f ms  %s %s  (%d iters, %s)\n", it.c.ID, m.P50MS, m.P99MS,
		t.metric.String(), fmtAcc(it.c.Accuracy), iters, how)
}

func fmtAcc(a Accuracy) string {
	if math.IsNaN(a.Value) {
		return "n/a"
	}
	return fmt.Sprintf("%.4g (drop %.3g)", a.Value, a.Drop)
}

// finish fills in speedups against the baseline where the backend could
// not run it, marks the frontier and picks the chosen candidate.
func (t *tuner) finish(items []*item) {
	baseline := map[[2]int]*item{}
	for _, it := range items {
		k := [2]int{it.c.Threads, it.c.Batch}
		if it.c.Variant == "original" && it.dev == "cpu" && (baseline[k] == nil || it.c.Backend == t.verifyBackend) {
			baseline[k] = it
		}
	}
	for _, it := range items {
		if b := baseline[[2]int{it.c.Threads, it.c.Batch}]; b != nil && (it.c.Speedup == 0 || it.c.Backend != b.c.Backend || it.dev != b.dev) && it.c.P50MS > 0 {
			it.c.Speedup = b.c.P50MS / it.c.P50MS
		}
	}
	if b := baseline[[2]int{t.opts.Threads[0], t.opts.Batches[0]}]; b != nil {
		t.rep.Baseline = b.c.ID
	}
	var pts []point
	for _, it := range items {
		pts = append(pts, point{it: it, lat: it.c.P50MS, drop: it.c.Accuracy.Drop})
	}
	front := paretoSet(pts)
	for _, it := range items {
		it.c.Pareto = front[it]
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].c.P50MS < items[j].c.P50MS })
	for _, it := range items {
		t.rep.Candidates = append(t.rep.Candidates, it.c)
	}
	t.rep.Chosen, t.rep.ChosenWhy = Choose(t.rep.Candidates, t.opts.Constraints)
}

type point struct {
	it        *item
	lat, drop float64
}

// paretoSet marks the points no other point beats on both latency and
// accuracy drop (lower is better for both); unmeasured accuracy never
// makes the frontier.
func paretoSet(pts []point) map[*item]bool {
	out := map[*item]bool{}
	for i, p := range pts {
		if math.IsNaN(p.drop) || p.lat <= 0 {
			continue
		}
		dominated := false
		for j, q := range pts {
			if i == j || math.IsNaN(q.drop) || q.lat <= 0 {
				continue
			}
			if q.lat <= p.lat && q.drop <= p.drop && (q.lat < p.lat || q.drop < p.drop) {
				dominated = true
				break
			}
		}
		out[p.it] = !dominated
	}
	return out
}
