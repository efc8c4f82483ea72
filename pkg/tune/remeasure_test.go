package tune

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
)

func TestSpeedupAgreement(t *testing.T) {
	for _, tc := range []struct {
		tune, bench float64
		ratio       float64
		warn        string
	}{
		{1.5, 1.5, 1, ""},
		{1.5, 1.4, 1.5 / 1.4, ""},
		{2, 1.5, 2 / 1.5, "differs from bench's re-measurement (1.5x) by 33%"},
		{1, 1.2, 1 / 1.2, "by 17%"},
		{0, 1.2, math.NaN(), "no speedup to compare"},
	} {
		r, w := speedupAgreement(tc.tune, tc.bench)
		if (math.IsNaN(tc.ratio) != math.IsNaN(r)) || (!math.IsNaN(r) && math.Abs(r-tc.ratio) > 1e-9) || (tc.warn == "") != (w == "") || !strings.Contains(w, tc.warn) {
			t.Errorf("speedupAgreement(%g, %g) = %g, %q; want %g, %q", tc.tune, tc.bench, r, w, tc.ratio, tc.warn)
		}
	}
}

// TestRemeasureChosen re-measures a pruned MLP against the original with
// bench on interp: the report carries both speedups and their ratio, and
// a second call takes bench's figure from the cache.
func TestRemeasureChosen(t *testing.T) {
	out := t.TempDir()
	o := Options{
		Model: "../../testmodels/mlp.onnx", Out: out, Backends: []string{"interp"},
		Variants: []string{"original", "prune-0.5"}, PruneRatios: []float64{0.5},
		ShortIters: 4, LongIters: 6, Rounds: 2, Constraints: Constraints{MaxDrop: -1}, RemeasureIters: -1,
	}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ChosenRemeasured != nil {
		t.Fatalf("re-measured with RemeasureIters -1: %+v", rep.ChosenRemeasured)
	}
	p := rep.Candidate("prune-0.5@interp")
	if p == nil || rep.Baseline != "original@interp" {
		t.Fatalf("baseline %q, candidates %+v, skipped %+v", rep.Baseline, rep.Candidates, rep.Skipped)
	}
	for i := range 2 {
		tu := &tuner{opts: o, rep: &Report{Chosen: p.ID, Baseline: rep.Baseline}}
		tu.opts.Samples, tu.opts.RemeasureIters = 8, 10
		if tu.orig, err = graph.Load(o.Model); err != nil {
			t.Fatal(err)
		}
		if err := tu.loadSamples(); err != nil {
			t.Fatal(err)
		}
		var items []*item
		for _, c := range rep.Candidates {
			items = append(items, &item{c: c, model: c.Path, sha: c.SHA256, dev: "cpu"})
		}
		if err := tu.remeasure(context.Background(), items); err != nil {
			t.Fatal(err)
		}
		r := tu.rep.ChosenRemeasured
		if r == nil || r.ID != p.ID || r.Iterations != 10 || r.SpeedupTune != p.Speedup || !(r.SpeedupBench > 0) || r.P50MS <= 0 || r.BaselineP50MS <= 0 {
			t.Fatalf("run %d: re-measured %+v (chosen %+v)", i, r, p)
		}
		if math.Abs(r.Ratio-r.SpeedupTune/r.SpeedupBench) > 1e-9 || (math.Abs(r.Ratio-1) > RemeasureTolerance) != (r.Warning != "") {
			t.Fatalf("run %d: ratio %g, warning %q for %g / %g", i, r.Ratio, r.Warning, r.SpeedupTune, r.SpeedupBench)
		}
		if r.Cached != (i == 1) {
			t.Fatalf("run %d: cached %v", i, r.Cached)
		}
	}
}
