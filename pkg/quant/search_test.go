package quant

import (
	"testing"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/testmodels"
)

func TestSearch(t *testing.T) {
	m := cnnO2()
	samples := seeded(t, m, 4, 2, 7)
	calib := seeded(t, m, 4, 2, 1000)
	vs := Int8Variants(m, calib, StaticOptions{PerChannel: true}, DynamicOptions{})
	if len(vs) != 4 || vs[0].Name != "static-u8" {
		t.Fatalf("variants %v", vs)
	}
	if got := Int8Variants(m, nil, StaticOptions{}, DynamicOptions{}); len(got) != 1 || got[0].Name != "dynamic" {
		t.Fatalf("without calibration data: %v", got)
	}
	broken := Variant{Name: "broken", Quantize: func([]string) (*graph.Model, *Report, error) {
		return Static(m, calib, StaticOptions{Calibrate: "median"})
	}}
	// speed on interp keeps the test independent of ORT; nothing below
	// depends on which variant is faster
	for _, tc := range []struct {
		name    string
		maxDrop float64
		met     bool
	}{
		{"loose", 5, true},
		{"impossible", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cands, best, err := Search(m, append(vs, broken), samples, nil, SearchOptions{SpeedBackend: "interp", MaxDrop: tc.maxDrop, Rounds: 5, Budget: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if len(cands) != 5 || cands[4].Err == "" {
				t.Fatalf("candidates %+v", cands)
			}
			if !tc.met {
				if best != -1 {
					t.Fatalf("best %d with an impossible limit", best)
				}
				for _, c := range cands[:4] {
					if c.Speed != nil || c.Accuracy == nil || c.Accuracy.Met {
						t.Fatalf("%s: timed or met under an impossible limit: %+v", c.Variant, c)
					}
				}
				return
			}
			if best < 0 || cands[best].Speed == nil {
				t.Fatalf("no best: %+v", cands)
			}
			for _, c := range cands[:4] {
				if c.Err != "" || c.Speed == nil || !c.Accuracy.Met || c.Model == nil {
					t.Fatalf("%s: %+v", c.Variant, c)
				}
				if c.Speed.Speedup > cands[best].Speed.Speedup*(1+SearchTieMargin) {
					t.Fatalf("%s (%.2fx) is faster than the pick %s (%.2fx)", c.Variant, c.Speed.Speedup, cands[best].Variant, cands[best].Speed.Speedup)
				}
				if err := c.Model.Verify(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	if _, _, err := Search(m, nil, samples, nil, SearchOptions{}); err == nil {
		t.Fatal("no error without variants")
	}
	if _, _, err := Search(testmodels.MLP(), vs, nil, nil, SearchOptions{}); err == nil {
		t.Fatal("no error without samples")
	}
}

// TestSearchTimeBudget: with its deadline already past, Search tries the
// first variant only, with one accuracy attempt (Stopped says why), marks
// the others not tried, and reports one progress line per step.
func TestSearchTimeBudget(t *testing.T) {
	m := cnnO2()
	samples := seeded(t, m, 2, 2, 7)
	calib := seeded(t, m, 2, 2, 1000)
	vs := Int8Variants(m, calib, StaticOptions{PerChannel: true}, DynamicOptions{})
	var lines []string
	cands, _, err := Search(m, vs, samples, nil, SearchOptions{SpeedBackend: "interp", MaxDrop: -1, Rounds: 5, Budget: 50 * time.Millisecond,
		Deadline: time.Now().Add(-time.Second), Progress: func(_, _ int, line string) { lines = append(lines, line) }})
	if err != nil {
		t.Fatal(err)
	}
	first := cands[0]
	if first.Accuracy == nil || len(first.Accuracy.Tried) != 1 || first.Accuracy.Stopped == "" {
		t.Fatalf("first variant: want one attempt and a stop reason, got %+v", first.Accuracy)
	}
	for _, c := range cands[1:] {
		if c.Accuracy != nil || c.Err != "not tried: the time budget was spent" {
			t.Errorf("%s: %+v, want not tried", c.Variant, c)
		}
	}
	// one accuracy attempt, then one line per variant
	if len(lines) != 1+len(vs) {
		t.Errorf("progress lines %d, want %d: %q", len(lines), 1+len(vs), lines)
	}
}
