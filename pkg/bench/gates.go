package bench

import (
	"fmt"
	"time"

	"github.com/optictl/optictl/pkg/numerics"
)

// Gates are CI limits; a zero field is not checked. Latency and throughput
// gates apply to every variant (every model after the first) at every
// point; with a single model, to that model. Speedup and accuracy-drop
// gates apply to the variants only.
type Gates struct {
	MaxP99        time.Duration
	MaxP50        time.Duration
	MinSpeedup    float64
	MinThroughput float64 // inferences per second
	// MaxAccuracyDrop is in percentage points: with labels, the reference's
	// top-1 accuracy minus the variant's; without, 100 x (1 - top-1
	// agreement with the reference).
	MaxAccuracyDrop float64
	// AccuracyDropSet distinguishes --max-accuracy-drop 0 from unset.
	AccuracyDropSet bool
}

// Any reports whether a gate is set.
func (g Gates) Any() bool {
	return g.MaxP99 > 0 || g.MaxP50 > 0 || g.MinSpeedup > 0 || g.MinThroughput > 0 || g.AccuracyDropSet
}

// Check applies the gates to the report's results and returns every
// outcome; failed ones have Passed false.
func (g Gates) Check(rep *Report) []GateResult {
	var out []GateResult
	single := len(rep.Models) <= 1
	var refAcc numerics.Accuracy
	for _, m := range rep.Models {
		if m.Reference {
			refAcc = m.Accuracy
		}
	}
	accErr := map[string]string{}
	for _, m := range rep.Models {
		accErr[m.Variant] = m.AccuracyError
	}
	for _, r := range rep.Results {
		if r.Reference && !single {
			continue
		}
		add := func(gate string, measured, limit float64, unit string, passed bool, note string) {
			out = append(out, GateResult{Gate: gate, Variant: r.Variant, Batch: r.Batch, Concurrency: r.Concurrency,
				Measured: measured, Limit: limit, Unit: unit, Passed: passed, Note: note})
		}
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		if g.MaxP99 > 0 {
			add("max-p99", r.LatencyMS.P99, ms(g.MaxP99), "ms", r.LatencyMS.P99 <= ms(g.MaxP99), "")
		}
		if g.MaxP50 > 0 {
			add("max-p50", r.LatencyMS.P50, ms(g.MaxP50), "ms", r.LatencyMS.P50 <= ms(g.MaxP50), "")
		}
		if g.MinThroughput > 0 {
			add("min-throughput", r.ThroughputPerS, g.MinThroughput, "inferences/s", r.ThroughputPerS >= g.MinThroughput, "")
		}
		if r.Reference {
			continue
		}
		if g.MinSpeedup > 0 {
			add("min-speedup", r.Speedup, g.MinSpeedup, "x", r.Speedup >= g.MinSpeedup, "")
		}
		if g.AccuracyDropSet {
			drop, how, ok := accuracyDrop(refAcc, r.Accuracy)
			if !ok {
				note := "accuracy not measured"
				if e := accErr[r.Variant]; e != "" {
					note += ": " + e
				} else if sh := r.Accuracy.OutputShape; sh != nil && !numerics.ClassShape(sh) {
					note = fmt.Sprintf("top-1 does not apply: the first output %v is not a class vector ([N,C] or [N,C,1,1])", sh)
				}
				add("max-accuracy-drop", 0, g.MaxAccuracyDrop, "pp", false, note)
			} else {
				add("max-accuracy-drop", drop, g.MaxAccuracyDrop, "pp", drop <= g.MaxAccuracyDrop, how)
			}
		}
	}
	return out
}

// accuracyDrop is the drop in percentage points and what it is based on.
func accuracyDrop(ref, v numerics.Accuracy) (float64, string, bool) {
	if ref.Top1Accuracy != nil && v.Top1Accuracy != nil {
		return 100 * (*ref.Top1Accuracy - *v.Top1Accuracy), "top-1 accuracy on the labels", true
	}
	if v.Top1Agreement != nil {
		return 100 * (1 - *v.Top1Agreement), "top-1 disagreement with the reference", true
	}
	return 0, "", false
}

// String is the one line printed for a failed gate.
func (r GateResult) String() string {
	verdict := "passed"
	if !r.Passed {
		verdict = "FAILED"
	}
	s := fmt.Sprintf("gate %s %s: %s (batch %d, concurrency %d): measured %s, limit %s",
		r.Gate, verdict, r.Variant, r.Batch, r.Concurrency, fmtUnit(r.Measured, r.Unit), fmtUnit(r.Limit, r.Unit))
	if r.Note != "" {
		s += " (" + r.Note + ")"
	}
	return s
}

func fmtUnit(v float64, unit string) string {
	switch unit {
	case "x":
		return fmt.Sprintf("%.3gx", v)
	case "pp":
		return fmt.Sprintf("%.3g pp", v)
	case "ms":
		return fmt.Sprintf("%.4g ms", v)
	}
	return fmt.Sprintf("%.4g %s", v, unit)
}
