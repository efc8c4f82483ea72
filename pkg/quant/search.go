package quant

import (
	"fmt"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
)

// Variant is one quantization recipe Search tries.
type Variant struct {
	Name     string
	Quantize QuantizeFunc
}

// Candidate is one variant's outcome in Search.
type Candidate struct {
	Variant  string          `json:"variant"`
	Report   *Report         `json:"report,omitempty"`
	Accuracy *AccuracyResult `json:"accuracy,omitempty"`
	// Speed is measured only for variants within the accuracy limit.
	Speed *Speed `json:"speed,omitempty"`
	// Err says why the variant was not usable (it failed to quantize, to
	// run, or to be timed).
	Err   string       `json:"error,omitempty"`
	Model *graph.Model `json:"-"`
}

// SearchOptions configure Search.
type SearchOptions struct {
	// Backend measures accuracy (default "interp").
	Backend string
	// SpeedBackend times the variants (default "ort").
	SpeedBackend string
	// MaxDrop is the accuracy limit in points (see Controlled); used only
	// when Control is nil.
	MaxDrop float64
	// Control, when set, is the metric and budget each variant is held to
	// (ControlledBy).
	Control *Control
	// Rounds and Budget bound each interleaved timing (defaults 200, 2s).
	Rounds int
	Budget time.Duration
	// Deadline, when set, bounds the whole search: variants not started
	// when it passes are not tried (Candidate.Err says so) and accuracy
	// control inside a variant stops (AccuracyResult.Stopped); the
	// fastest variant measured so far is kept.
	Deadline time.Time
	// Progress gets one line per accuracy attempt and per variant.
	Progress Progress
}

// SearchTieMargin is how much faster (as a fraction) a later variant must
// measure to be picked over an earlier one: timings on a shared machine
// wander by a few percent, and the variants come in the order that is
// fastest in general.
const SearchTieMargin = 0.05

// Search runs accuracy control (Controlled) for every variant, times each
// variant that meets the limit against the float model ref (interleaved
// A/B medians, one thread, on the first sample) and returns all candidates
// and the index of the fastest (ties within SearchTieMargin go to the
// earlier variant), or -1 when no variant met the limit or could be
// timed. It does not pretend: the fastest variant may still be
// slower than ref (its Speed says so).
func Search(ref *graph.Model, variants []Variant, samples [][]*runtime.Tensor, labels []int, o SearchOptions) ([]Candidate, int, error) {
	if len(variants) == 0 {
		return nil, -1, fmt.Errorf("quant: search: no variants")
	}
	if len(samples) == 0 {
		return nil, -1, fmt.Errorf("quant: search: no samples")
	}
	if o.Backend == "" {
		o.Backend = "interp"
	}
	if o.SpeedBackend == "" {
		o.SpeedBackend = "ort"
	}
	if o.Rounds <= 0 {
		o.Rounds = 200
	}
	if o.Budget <= 0 {
		o.Budget = 2 * time.Second
	}
	out := make([]Candidate, len(variants))
	best := -1
	for i, v := range variants {
		c := &out[i]
		c.Variant = v.Name
		if v.Quantize == nil {
			c.Err = "no quantize function"
			o.Progress.report(i+1, len(variants), "%s: %s", v.Name, c.Err)
			continue
		}
		if i > 0 && pastDeadline(o.Deadline) {
			c.Err = "not tried: the time budget was spent"
			o.Progress.report(i+1, len(variants), "%s: not tried, time budget spent", v.Name)
			continue
		}
		ctl := Control{Budget: numerics.DefaultBudget}
		ctl.Budget.MaxDrop = o.MaxDrop
		if o.Control != nil {
			ctl = *o.Control
		}
		if ctl.Deadline.IsZero() {
			ctl.Deadline = o.Deadline
		}
		if o.Progress != nil {
			ctl.Progress = func(_, _ int, line string) { o.Progress(i, len(variants), v.Name+": "+line) }
		}
		q, rep, acc, err := ControlledBy(ref, v.Quantize, o.Backend, samples, labels, ctl)
		if err != nil {
			c.Err = err.Error()
			o.Progress.report(i+1, len(variants), "%s: %s", v.Name, c.Err)
			continue
		}
		c.Report, c.Accuracy, c.Model = rep, acc, q
		if err := rep.NothingQuantized(); err != nil {
			c.Err = err.Error()
			o.Progress.report(i+1, len(variants), "%s: %s", v.Name, c.Err)
			continue
		}
		if !acc.Met {
			c.Err = fmt.Sprintf("%s %s, outside the budget (%s) even with %d nodes in float", acc.Metric, acc.Verdict.ValueString(), acc.Verdict.Limit, len(rep.LeftInFloat))
			if acc.Stopped != "" {
				c.Err += " (" + acc.Stopped + ")"
			}
			o.Progress.report(i+1, len(variants), "%s: %s", v.Name, c.Err)
			continue
		}
		sp, err := MeasureSpeed(ref, q, o.SpeedBackend, samples[0], o.Rounds, o.Budget)
		if err != nil {
			c.Err = fmt.Sprintf("not timed: %v", err)
			o.Progress.report(i+1, len(variants), "%s: %s", v.Name, c.Err)
			continue
		}
		c.Speed = &sp
		o.Progress.report(i+1, len(variants), "%s: %s %s, %d left in float, %.2fx of float", v.Name, acc.Metric, acc.Verdict.ValueString(), len(rep.LeftInFloat), sp.Speedup)
		if best < 0 || sp.Speedup > out[best].Speed.Speedup*(1+SearchTieMargin) {
			best = i
		}
	}
	return out, best, nil
}

// Int8Variants returns the int8 recipes worth trying on ONNX Runtime's CPU
// provider, in the order this package measured them from fastest to
// slowest on an AVX2 CPU without VNNI (see doc.go):
//
//   - static-u8: QDQ with uint8 activations over the whole int8 region
//     (Conv/MatMul/Gemm and the Add/Mul/pools between them);
//   - dynamic: MatMul/Gemm with run-time activation ranges;
//   - static-u8-weights: QDQ on Conv/MatMul/Gemm only;
//   - static-s8: QDQ with int8 activations (s8s8), which ORT's x86 CPU
//     provider does not fuse into QLinear ops: correct, but slow there.
//
// With no calibration samples only dynamic is returned. static and dyn
// give the other options (calibration, per-channel, reduce range, op
// lists, exclusions); their activation type and op lists are overridden
// per variant.
func Int8Variants(m *graph.Model, calib [][]*runtime.Tensor, static StaticOptions, dyn DynamicOptions) []Variant {
	exclude := func(base, extra []string) []string {
		return append(append([]string(nil), base...), extra...)
	}
	dynamic := Variant{Name: "dynamic", Quantize: func(ex []string) (*graph.Model, *Report, error) {
		o := dyn
		o.ExcludeNodes = exclude(dyn.ExcludeNodes, ex)
		return Dynamic(m, o)
	}}
	if len(calib) == 0 {
		return []Variant{dynamic}
	}
	st := func(name string, asym bool, ops []string) Variant {
		return Variant{Name: name, Quantize: func(ex []string) (*graph.Model, *Report, error) {
			o := static
			o.Asymmetric = asym
			if ops != nil && len(static.OpTypes) == 0 {
				o.OpTypes = ops
			}
			o.ExcludeNodes = exclude(static.ExcludeNodes, ex)
			return Static(m, calib, o)
		}}
	}
	return []Variant{
		st("static-u8", true, nil),
		dynamic,
		st("static-u8-weights", true, []string{"Conv", "MatMul", "Gemm"}),
		st("static-s8", false, nil),
	}
}
