package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
)

// Opener opens one session of the model at path.
type Opener func(path string, opts runtime.Options) (runtime.Session, error)

// Target is one (backend, device) pair of a sweep.
type Target struct {
	Backend string `json:"backend"`
	Device  string `json:"device"`
}

// Config is one bench run.
type Config struct {
	// Models are model paths; the first is the reference.
	Models  []string
	Backend string
	// Targets, when there are several, are a sweep: every model is
	// measured on every (backend, device) target, interleaved, one row
	// each ("model@backend[:device]"); the first model on the first
	// target is the reference. Empty means Backend on Options.Device.
	Targets []Target
	// Options are passed to every session (Device, Threads, Shapes...).
	Options runtime.Options
	// Batches and Concurrency are the points measured (default [1] each).
	Batches     []int
	Concurrency []int
	// Load selects the closed loop (Rate 0) or the open loop.
	Load Load
	// Iterations (> 0) or Duration bound the timed inferences of each
	// model at each point, split evenly over Rounds.
	Iterations int
	Duration   time.Duration
	// Warmup inferences per session at each point, not timed.
	Warmup int
	// Rounds interleaves the models: at each point, round r runs model 1,
	// model 2, ... each for 1/Rounds of its budget (default 5).
	Rounds int
	// Data is --data (empty: seeded random inputs); DataLimit caps the
	// samples read (0: all).
	Data      string
	DataLimit int
	// Labels is --labels (needs Data).
	Labels string
	// Images normalize image data (an image folder or idx images) read
	// from Data; their Shapes default to Options.Shapes (--shape).
	Images ImageOptions
	// Samples, without Data, are in-memory input sets (in the models'
	// input order) used as Data's would be: the caller's held-out or
	// seeded samples (optictl tune).
	Samples []Sample
	// AccuracySamples is the number of seeded random input sets compared
	// when there is no Data (default 8).
	AccuracySamples int
	// Seed seeds inputs, Poisson arrivals and the bootstrap.
	Seed int64
	// MaxInputBytes bounds one set of seeded or stacked inputs
	// (--max-memory; 0: numerics.DefaultMaxMemory, negative: none).
	MaxInputBytes int64
	// Resamples and Level configure the p50 bootstrap (default 1000, 0.95).
	Resamples int
	Level     float64
	// Open overrides how sessions are opened (tests); nil loads the model
	// with graph.Load and opens it with runtime.Open(Backend, ...).
	Open Opener
	// Progress, when set, is called after each measured slice.
	Progress func(done, total int)
}

// Validate checks a Config without running anything; its errors are usage
// errors.
func (c *Config) Validate() error {
	if len(c.Models) == 0 {
		return fmt.Errorf("bench: no model")
	}
	for _, b := range c.Batches {
		if b < 1 {
			return fmt.Errorf("bench: batch %d is not positive", b)
		}
	}
	for _, n := range c.Concurrency {
		if n < 1 || n > 4096 {
			return fmt.Errorf("bench: concurrency %d is not in 1..4096", n)
		}
	}
	if c.Iterations < 0 || c.Duration < 0 || c.Warmup < 0 || c.Rounds < 0 || c.DataLimit < 0 || c.AccuracySamples < 0 {
		return fmt.Errorf("bench: iterations, duration, warmup, rounds and sample counts must not be negative")
	}
	if c.Iterations > 0 && c.Duration > 0 {
		return fmt.Errorf("bench: give either iterations or a duration, not both")
	}
	if c.Iterations == 0 && c.Duration == 0 {
		return fmt.Errorf("bench: give iterations or a duration")
	}
	if c.Load.Rate < 0 || math.IsNaN(c.Load.Rate) || math.IsInf(c.Load.Rate, 0) {
		return fmt.Errorf("bench: rate %v is not a positive number", c.Load.Rate)
	}
	switch c.Load.Arrival {
	case "", "constant", "poisson":
	default:
		return fmt.Errorf("bench: arrival %q is not constant or poisson", c.Load.Arrival)
	}
	if c.Labels != "" && c.Data == "" {
		return fmt.Errorf("bench: --labels needs --data (the labels name the classes of the data's samples)")
	}
	if c.Resamples < 0 || (c.Level != 0 && !(c.Level > 0 && c.Level < 1)) {
		return fmt.Errorf("bench: bootstrap resamples must not be negative and the level must be in (0, 1)")
	}
	return nil
}

func (c *Config) defaults() {
	if len(c.Batches) == 0 {
		c.Batches = []int{1}
	}
	if len(c.Concurrency) == 0 {
		c.Concurrency = []int{1}
	}
	if c.Rounds == 0 {
		c.Rounds = 5
	}
	if c.Iterations > 0 && c.Rounds > c.Iterations {
		c.Rounds = c.Iterations
	}
	if c.AccuracySamples == 0 {
		c.AccuracySamples = 8
	}
	if c.Resamples == 0 {
		c.Resamples = 1000
	}
	if c.Level == 0 {
		c.Level = 0.95
	}
	if c.Load.Rate > 0 && c.Load.Arrival == "" {
		c.Load.Arrival = "constant"
	}
}

// model is one model's state during a run.
type model struct {
	info     ModelInfo
	path     string
	backend  string
	dev      string
	open     Opener
	opts     runtime.Options
	sessions []runtime.Session
	infos    []runtime.IOInfo
	samples  []Sample // --data samples, in the model's input order
}

// VariantNames names models after their files; when two share a base name
// the parent folder is prefixed, and a remaining clash gets its position.
func VariantNames(paths []string) []string {
	out := make([]string, len(paths))
	count := map[string]int{}
	for i, p := range paths {
		out[i] = filepath.Base(p)
		count[out[i]]++
	}
	for i, p := range paths {
		if count[filepath.Base(p)] > 1 {
			out[i] = filepath.Join(filepath.Base(filepath.Dir(p)), filepath.Base(p))
		}
	}
	seen := map[string]int{}
	for i := range out {
		seen[out[i]]++
		if seen[out[i]] > 1 {
			out[i] = fmt.Sprintf("%s#%d", out[i], i+1)
		}
	}
	return out
}

// Run benchmarks the models and returns the report (gates not applied).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	dev := cfg.Options.Device
	if dev == "" {
		dev = "cpu"
	}
	rep := &Report{
		SchemaVersion: SchemaVersion,
		Backend:       cfg.Backend,
		Device:        dev,
		Threads:       cfg.Options.Threads,
		IOBinding:     cfg.Options.IOBinding,
		Mode:          "closed",
		Iterations:    cfg.Iterations,
		DurationS:     cfg.Duration.Seconds(),
		Warmup:        cfg.Warmup,
		Rounds:        cfg.Rounds,
		Seed:          cfg.Seed,
		Data:          cfg.Data,
		Labels:        cfg.Labels,
		Host:          Host{OS: goruntime.GOOS, Arch: goruntime.GOARCH, CPUs: goruntime.NumCPU(), Go: goruntime.Version()},
	}
	if cfg.Load.Rate > 0 {
		rep.Mode, rep.Arrival, rep.Rate = "open", cfg.Load.Arrival, cfg.Load.Rate
	}
	// Sessions serve every batch point, so they only get --shape fixed in
	// the backend when batch 1 is the only point.
	opts := cfg.Options
	for _, b := range cfg.Batches {
		if b > 1 {
			opts.Shapes = nil
		}
	}
	sizes := map[string]int64{}
	// The sweep: every model on every (backend, device); without one, the
	// single backend and device.
	targets := cfg.Targets
	if len(targets) == 0 {
		targets = []Target{{Backend: cfg.Backend, Device: dev}}
	}
	sweep := len(targets) > 1
	multiDev := false
	if sweep {
		var bs, ds []string
		for _, t := range targets {
			if t.Device == "" {
				t.Device = "cpu"
			}
			if !slices.Contains(bs, t.Backend) {
				bs = append(bs, t.Backend)
			}
			if !slices.Contains(ds, t.Device) {
				ds = append(ds, t.Device)
			}
		}
		rep.Backend, rep.Device = strings.Join(bs, ","), strings.Join(ds, ",")
		multiDev = len(ds) > 1
	}
	base := VariantNames(cfg.Models)
	var paths, names []string
	var tg []Target
	for _, t := range targets {
		if t.Device == "" {
			t.Device = "cpu"
		}
		for i, p := range cfg.Models {
			paths = append(paths, p)
			tg = append(tg, t)
			n := base[i]
			if sweep {
				n += "@" + t.Backend
				if multiDev || t.Device != "cpu" {
					n += ":" + t.Device
				}
			}
			names = append(names, n)
		}
	}
	models := make([]*model, len(paths))
	defer func() {
		for _, m := range models {
			if m == nil {
				continue
			}
			for _, s := range m.sessions {
				s.Close()
			}
		}
	}()
	var labels []int
	if cfg.Labels != "" {
		var err error
		if labels, err = LoadLabels(cfg.Labels); err != nil {
			return nil, err
		}
	}
	for i, p := range paths {
		m := &model{path: p, backend: tg[i].Backend, dev: tg[i].Device, opts: opts, open: cfg.Open,
			info: ModelInfo{Model: p, Variant: names[i], Reference: i == 0}}
		if sweep {
			m.info.Backend = m.backend
		}
		m.opts.Device = m.dev
		if m.opts.Device == "cpu" && cfg.Options.Device == "" {
			m.opts.Device = ""
		}
		if m.open == nil {
			m.open = defaultOpener(m.backend, sizes)
		}
		goruntime.GC()
		before := RSS()
		s, err := openChecked(m.open, p, m.opts, m.dev)
		if err != nil {
			if sweep && i > 0 && errors.Is(err, runtime.ErrUnsupported) {
				// a sweep measures what each backend can run
				rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s: %v", m.info.Variant, err))
				continue
			}
			return nil, err
		}
		models[i] = m
		m.sessions = append(m.sessions, s)
		m.infos = s.Inputs()
		m.info.Device = s.Device()
		if sz, ok := sizes[p]; ok {
			m.info.SizeBytes = sz
		} else if st, err := os.Stat(p); err == nil {
			m.info.SizeBytes = st.Size()
		}
		if cfg.Data != "" {
			img := cfg.Images
			if img.Shapes == nil {
				img.Shapes = cfg.Options.Shapes
			}
			d, err := LoadDataWith(cfg.Data, m.infos, cfg.DataLimit, img)
			if err != nil {
				return nil, fmt.Errorf("%w (model %s)", err, m.info.Variant)
			}
			m.samples = d.Samples
		} else if len(cfg.Samples) > 0 {
			m.samples = cfg.Samples
		}
		// A first run warms the session for the RSS figure and catches a
		// model that cannot run at all before any timing.
		in, err := m.inputs(cfg, 1)
		if err != nil {
			return nil, err
		}
		if _, err := s.Run(ctx, in); err != nil {
			return nil, fmt.Errorf("bench: %s: %w", m.info.Variant, err)
		}
		goruntime.GC()
		m.info.SessionRSSBytes = max(0, RSS()-before)
	}
	// rows of a sweep that could not open were skipped
	models = slices.DeleteFunc(models, func(m *model) bool { return m == nil })
	if err := accuracy(ctx, cfg, models, labels); err != nil {
		return nil, err
	}
	rep.Reference = models[0].info.Variant
	for _, m := range models {
		rep.Models = append(rep.Models, m.info)
	}

	total := len(cfg.Batches) * len(cfg.Concurrency) * cfg.Rounds * len(models)
	done := 0
	for _, b := range cfg.Batches {
		inputs := make([][]*runtime.Tensor, len(models))
		for i, m := range models {
			in, err := m.inputs(cfg, b)
			if err != nil {
				return nil, err
			}
			inputs[i] = in
		}
		for _, conc := range cfg.Concurrency {
			workers := make([][]Worker, len(models))
			for i, m := range models {
				for len(m.sessions) < conc {
					s, err := openChecked(m.open, m.path, m.opts, m.dev)
					if err != nil {
						return nil, err
					}
					m.sessions = append(m.sessions, s)
				}
				for _, s := range m.sessions[:conc] {
					w := Worker{Session: s, Inputs: inputs[i]}
					for range cfg.Warmup {
						if _, err := s.Run(ctx, inputs[i]); err != nil {
							return nil, fmt.Errorf("bench: %s: warm-up: %w", m.info.Variant, err)
						}
					}
					if m.opts.IOBinding {
						br, ok := s.(BoundRunner)
						if !ok {
							return nil, fmt.Errorf("bench: %s: io binding: the %s session cannot run on bound inputs", m.info.Variant, m.backend)
						}
						// The last Run binds this point's inputs (another
						// point's, or the accuracy pass's, were bound before).
						if _, err := s.Run(ctx, inputs[i]); err != nil {
							return nil, fmt.Errorf("bench: %s: binding the inputs: %w", m.info.Variant, err)
						}
						w.Bound = br
					}
					workers[i] = append(workers[i], w)
				}
			}
			lat := make([][]int64, len(models))
			wall := make([]time.Duration, len(models))
			for r := range cfg.Rounds {
				iters := 0
				if cfg.Iterations > 0 {
					iters = cfg.Iterations / cfg.Rounds
					if r < cfg.Iterations%cfg.Rounds {
						iters++
					}
				}
				for i, m := range models {
					load := cfg.Load
					// Every model of a round gets the same arrival schedule.
					load.Seed = cfg.Seed + int64(r)
					run, err := Measure(ctx, workers[i], load, iters, cfg.Duration/time.Duration(cfg.Rounds))
					if err != nil {
						return nil, fmt.Errorf("bench: %s (batch %d, concurrency %d): %w", m.info.Variant, b, conc, err)
					}
					lat[i] = append(lat[i], run.Latencies...)
					wall[i] += run.Wall
					done++
					if cfg.Progress != nil {
						cfg.Progress(done, total)
					}
				}
			}
			peak := PeakRSS()
			var refCI CI
			var refP50 float64
			for i, m := range models {
				res, err := result(cfg, m, b, conc, lat[i], wall[i])
				if err != nil {
					return nil, err
				}
				res.PeakRSSBytes = peak
				res.Mode = rep.Mode
				if st, ok := m.sessions[0].(runtime.SimulatedTimer); ok {
					iv, lt, note := st.SimulatedTiming()
					dt := &DeviceTiming{Simulated: true, LatencyMS: float64(lt) / 1e6, IntervalMS: float64(iv) / 1e6, Note: note}
					if iv > 0 {
						dt.ThroughputPerS = float64(b) / iv.Seconds()
					}
					res.Device = dt
				}
				if i == 0 {
					refCI, refP50 = res.P50CIms, res.LatencyMS.P50
				}
				if res.LatencyMS.P50 > 0 {
					res.Speedup = refP50 / res.LatencyMS.P50
				}
				res.SpeedupSignificant = i > 0 && !res.P50CIms.Overlaps(refCI)
				rep.Results = append(rep.Results, res)
			}
		}
	}
	rep.PeakRSSBytes = PeakRSS()
	return rep, nil
}

func result(cfg Config, m *model, b, conc int, lat []int64, wall time.Duration) (Result, error) {
	res := Result{
		Model: m.path, Variant: m.info.Variant, Reference: m.info.Reference,
		Batch: b, Concurrency: conc, Count: len(lat),
		SizeBytes: m.info.SizeBytes, Accuracy: m.info.Accuracy,
	}
	if m.info.Backend != "" {
		res.Backend, res.DeviceName = m.backend, m.dev
	}
	if len(lat) == 0 {
		return res, fmt.Errorf("bench: %s (batch %d, concurrency %d): no inference completed", m.info.Variant, b, conc)
	}
	ms := DurationsMS(lat)
	res.LatencyMS = Summarize(ms)
	if cv := CV(ms); !math.IsNaN(cv) {
		res.CV = cv
	}
	ci, err := BootstrapQuantileCI(ms, 0.5, cfg.Resamples, cfg.Level, cfg.Seed)
	if err != nil {
		return res, err
	}
	res.P50CIms = ci
	if wall > 0 {
		res.ThroughputPerS = float64(len(lat)) / wall.Seconds()
		res.SamplesPerS = res.ThroughputPerS * float64(b)
	}
	return res, nil
}

func openChecked(open Opener, path string, opts runtime.Options, dev string) (runtime.Session, error) {
	s, err := open(path, opts)
	if err != nil {
		return nil, fmt.Errorf("bench: open %s: %w", path, err)
	}
	// No silent CPU numbers: a session asked for a GPU must run on one.
	if dev != "cpu" && (s.Device() == "" || strings.HasPrefix(s.Device(), "cpu")) {
		s.Close()
		return nil, fmt.Errorf("bench: %s: asked for --device %s but the session runs on %q; refusing to report CPU numbers as %s", path, dev, s.Device(), dev)
	}
	return s, nil
}

// defaultOpener loads each model once and opens sessions with the named
// backend; it records each model's size on disk (external data included).
func defaultOpener(backend string, sizes map[string]int64) Opener {
	loaded := map[string]*graph.Model{}
	return func(path string, opts runtime.Options) (runtime.Session, error) {
		m, ok := loaded[path]
		if !ok {
			var err error
			if m, err = graph.Load(path); err != nil {
				return nil, err
			}
			loaded[path] = m
			sizes[path] = ModelSize(path, m)
		}
		return runtime.Open(backend, m, opts)
	}
}

// ModelSize is the size on disk of the model file plus the distinct
// external data files its initializers name.
func ModelSize(path string, m *graph.Model) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	n := st.Size()
	if m == nil || m.Graph == nil {
		return n
	}
	seen := map[string]bool{}
	m.Graph.Walk(func(g *graph.Graph) error {
		for _, t := range g.Initializers {
			if t.External == nil || seen[t.External.Location] {
				continue
			}
			seen[t.External.Location] = true
			if p, err := graph.SafeJoin(filepath.Dir(path), t.External.Location); err == nil {
				if st, err := os.Stat(p); err == nil {
					n += st.Size()
				}
			}
		}
		return nil
	})
	return n
}

// inputs builds the inputs of one inference at batch b: --data samples
// (stacked along the first axis for b > 1) or seeded random tensors.
func (m *model) inputs(cfg Config, b int) ([]*runtime.Tensor, error) {
	if b > 1 {
		for _, in := range m.infos {
			if len(in.Shape) == 0 {
				return nil, fmt.Errorf("bench: %s: --batch %d: input %q is a scalar; only inputs with a dynamic first dim can be batched", m.info.Variant, b, in.Name)
			}
			if d := in.Shape[0]; d >= 0 && d != int64(b) {
				return nil, fmt.Errorf("bench: %s: --batch %d: input %q has a fixed first dim of %d; only models with a dynamic first dim can be batched", m.info.Variant, b, in.Name, d)
			}
		}
	}
	if len(m.samples) == 0 {
		shapes := cfg.Options.Shapes
		if b > 1 && len(shapes) > 0 {
			// --shape gives the shape at batch 1; a dynamic first dim
			// takes the batch.
			shapes = make(map[string][]int64, len(cfg.Options.Shapes))
			for k, v := range cfg.Options.Shapes {
				shapes[k] = v
			}
			for _, in := range m.infos {
				if s, ok := shapes[in.Name]; ok && len(s) > 0 && in.Shape[0] < 0 {
					s = append([]int64{}, s...)
					s[0] = int64(b)
					shapes[in.Name] = s
				}
			}
		}
		return seededInputs(m.infos, shapes, b, cfg.Seed, cfg.MaxInputBytes)
	}
	if b == 1 {
		return m.samples[0], nil
	}
	limit := cfg.MaxInputBytes
	if limit == 0 {
		limit = numerics.DefaultMaxMemory
	}
	var total int64
	for k := range m.infos {
		total += int64(b) * int64(len(m.samples[0][k].Raw)+16*len(m.samples[0][k].Strings))
		if limit > 0 && total > limit {
			return nil, fmt.Errorf("bench: %s: --batch %d: input %q would take the batch over %s (--max-memory)", m.info.Variant, b, m.infos[k].Name, numerics.FormatBytes(limit))
		}
	}
	out := make([]*runtime.Tensor, len(m.infos))
	for k, in := range m.infos {
		if in.Shape[0] >= 0 { // fixed and equal to b: use the sample as is
			out[k] = m.samples[0][k]
			continue
		}
		parts := make([]*runtime.Tensor, b)
		for j := range parts {
			parts[j] = m.samples[j%len(m.samples)][k]
			if len(parts[j].Shape) == 0 || parts[j].Shape[0] != 1 {
				return nil, fmt.Errorf("bench: %s: --batch %d: input %q of --data has shape %v; stacking needs samples with a first dim of 1", m.info.Variant, b, in.Name, parts[j].Shape)
			}
		}
		t, err := Stack(in.Name, parts)
		if err != nil {
			return nil, err
		}
		out[k] = t
	}
	return out, nil
}

// accuracy compares every model with the reference on the same inputs
// (--data samples, or AccuracySamples seeded input sets) and fills in each
// model's Accuracy. The reference is compared with itself, which gives
// agreement 1 and error 0 by construction and its accuracy on the labels.
func accuracy(ctx context.Context, cfg Config, models []*model, labels []int) error {
	ref := models[0]
	var sets []Sample
	if len(ref.samples) > 0 {
		sets = ref.samples
	} else {
		for i := range cfg.AccuracySamples {
			in, err := seededInputs(ref.infos, cfg.Options.Shapes, 1, cfg.Seed+int64(i), cfg.MaxInputBytes)
			if err != nil {
				return err
			}
			sets = append(sets, in)
		}
	}
	refOut := make([][]*runtime.Tensor, len(sets))
	for j, in := range sets {
		out, err := ref.sessions[0].Run(ctx, in)
		if err != nil {
			return fmt.Errorf("bench: %s: accuracy input %d: %w", ref.info.Variant, j, err)
		}
		refOut[j] = cloneAll(out)
	}
	for _, m := range models {
		if !sameInputs(ref.infos, m.infos) {
			m.info.AccuracyError = "inputs differ from the reference's; not compared"
			continue
		}
		var meter numerics.AccuracyMeter
		for j, in := range sets {
			if len(m.samples) > 0 {
				in = m.samples[j]
			} else if err := runtime.CheckInputs(m.infos, in); err != nil {
				m.info.AccuracyError = "the reference's inputs do not fit: " + err.Error()
				break
			}
			out, err := m.sessions[0].Run(ctx, in)
			if err != nil {
				return fmt.Errorf("bench: %s: accuracy input %d: %w", m.info.Variant, j, err)
			}
			if err := meter.Add(refOut[j], out, labels); err != nil {
				m.info.AccuracyError = err.Error()
				break
			}
		}
		if m.info.AccuracyError == "" {
			m.info.Accuracy = meter.Result()
		}
	}
	return nil
}

func cloneAll(ts []*runtime.Tensor) []*runtime.Tensor {
	out := make([]*runtime.Tensor, len(ts))
	for i, t := range ts {
		out[i] = t.Clone()
	}
	return out
}

func sameInputs(a, b []runtime.IOInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].DType != b[i].DType || len(a[i].Shape) != len(b[i].Shape) {
			return false
		}
	}
	return true
}
