package tune

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/optictl/optictl/pkg/bench"
	"github.com/optictl/optictl/pkg/runtime"
)

// RemeasureTolerance is how far (as a fraction) tune's claimed speedup
// for chosen may differ from bench's before the report warns.
const RemeasureTolerance = 0.10

// Remeasured is chosen timed again by bench against the original after
// the search: interleaved, on chosen's backend, device and settings, with
// more iterations than the search's long rung.
type Remeasured struct {
	ID         string `json:"id"`
	Backend    string `json:"backend"`
	Device     string `json:"device"`
	Iterations int    `json:"iterations"`
	Rounds     int    `json:"rounds"`
	// SpeedupTune is what the search reported; SpeedupBench is bench's
	// (the original's p50 over chosen's); Ratio is tune's over bench's.
	SpeedupTune  float64 `json:"speedup_tune"`
	SpeedupBench float64 `json:"speedup_bench"`
	Ratio        float64 `json:"ratio"`
	// P50MS and BaselineP50MS are bench's p50s of chosen and the original.
	P50MS         float64 `json:"p50_ms"`
	BaselineP50MS float64 `json:"baseline_p50_ms"`
	Cached        bool    `json:"cached,omitempty"`
	// Warning is set when the ratio is off by more than
	// RemeasureTolerance.
	Warning string `json:"warning,omitempty"`
}

// remeasure runs bench on the original and chosen (cached like the
// search's measurements). Nothing to do when nothing or the baseline was
// chosen; an error of bench is a note, not a failure of the search.
func (t *tuner) remeasure(ctx context.Context, items []*item) error {
	var ch, bl *item
	for _, it := range items {
		if it.c.ID == t.rep.Chosen {
			ch = it
		}
		if it.c.ID == t.rep.Baseline {
			bl = it
		}
	}
	if ch == nil || bl == nil || ch == bl {
		return nil
	}
	iters := t.opts.RemeasureIters
	if iters == 0 {
		iters = 3 * t.opts.LongIters
	}
	rounds := min(2*t.opts.Rounds, iters)
	r := &Remeasured{ID: ch.c.ID, Backend: ch.c.Backend, Device: ch.dev, Iterations: iters, Rounds: rounds, SpeedupTune: ch.c.Speedup}
	key := sha([]byte(strings.Join([]string{"remeasure", t.origSHA, ch.sha, bl.c.Backend, ch.c.Backend, ch.dev,
		fmt.Sprintf("t%d b%d i%d r%d s%d", ch.c.Threads, ch.c.Batch, iters, rounds, t.opts.Seed), fmt.Sprint(t.opts.Shapes)}, "\x00")))
	path := filepath.Join(t.opts.Out, "cache", "remeasure-"+key[:24]+".json")
	var cached Remeasured
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &cached) == nil && cached.SpeedupBench > 0 {
		r.SpeedupBench, r.P50MS, r.BaselineP50MS, r.Cached = cached.SpeedupBench, cached.P50MS, cached.BaselineP50MS, true
	} else {
		// The original on the baseline's backend against chosen on its
		// own: one bench run, or a sweep of the two targets (every model
		// on both, interleaved) when the backends differ.
		models := []string{t.opts.Model, ch.model}
		var targets []bench.Target
		if bl.c.Backend != ch.c.Backend || bl.dev != ch.dev {
			targets = []bench.Target{{Backend: bl.c.Backend, Device: bl.dev}, {Backend: ch.c.Backend, Device: ch.dev}}
			if ch.c.Variant == "original" {
				models = models[:1]
			}
		}
		cfg := bench.Config{
			Models: models, Backend: ch.c.Backend, Targets: targets,
			Options: runtime.Options{Threads: ch.c.Threads, Device: ch.dev, Shapes: t.opts.Shapes},
			Batches: []int{ch.c.Batch}, Iterations: iters, Warmup: 5, Rounds: rounds, Seed: t.opts.Seed,
			Samples: t.eval[:1], AccuracySamples: 1, Resamples: 200,
		}
		rep, err := bench.Run(ctx, cfg)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.Warning = "bench could not re-measure chosen against the original: " + firstLine(err.Error())
			t.rep.ChosenRemeasured = r
			t.logf("warn  %s\n", r.Warning)
			return nil
		}
		if want := len(models) * max(1, len(targets)); len(rep.Results) != want {
			return fmt.Errorf("tune: re-measure: bench gave %d results, want %d", len(rep.Results), want)
		}
		base, c := rep.Results[0], rep.Results[len(rep.Results)-1]
		r.P50MS, r.BaselineP50MS = c.LatencyMS.P50, base.LatencyMS.P50
		if c.Device != nil && c.Device.Simulated {
			r.P50MS = c.Device.LatencyMS
		}
		if base.Device != nil && base.Device.Simulated {
			r.BaselineP50MS = base.Device.LatencyMS
		}
		if r.P50MS > 0 {
			r.SpeedupBench = r.BaselineP50MS / r.P50MS
		}
		if b, err := json.Marshal(r); err == nil {
			writeAtomic(path, b)
		}
	}
	r.Ratio, r.Warning = speedupAgreement(r.SpeedupTune, r.SpeedupBench)
	t.rep.ChosenRemeasured = r
	t.logf("check %-28s speedup: tune %.3gx, bench %.3gx (%d iterations, ratio %.3f)\n", r.ID, r.SpeedupTune, r.SpeedupBench, iters, r.Ratio)
	if r.Warning != "" {
		t.logf("warn  %s\n", r.Warning)
	}
	return nil
}

// speedupAgreement is tune's claimed speedup over bench's and a warning
// when they differ by more than RemeasureTolerance.
func speedupAgreement(tune, bench float64) (ratio float64, warning string) {
	if !(tune > 0) || !(bench > 0) {
		return math.NaN(), fmt.Sprintf("no speedup to compare (tune %.3g, bench %.3g)", tune, bench)
	}
	ratio = tune / bench
	if math.Abs(ratio-1) > RemeasureTolerance {
		warning = fmt.Sprintf("tune's speedup for chosen (%.3gx) differs from bench's re-measurement (%.3gx) by %.0f%%, more than %.0f%%; bench's figure (interleaved, more iterations) is the one to trust",
			tune, bench, 100*math.Abs(ratio-1), 100*RemeasureTolerance)
	}
	return ratio, warning
}
