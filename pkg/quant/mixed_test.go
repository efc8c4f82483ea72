package quant

import (
	"strings"
	"testing"
	"time"

	"github.com/optictl/optictl/pkg/graph"
)

// TestPlan checks the per-layer decisions on wideCNN's graph with given
// timings (no timing is measured): a layer whose int8 kernel is faster
// is quantized only when it still is with the QuantizeLinear and
// DequantizeLinear it pays at float neighbours.
func TestPlan(t *testing.T) {
	us := time.Microsecond
	// conv_0 stem, conv_2/conv_4 the residual block, conv_8 the wide conv
	// (fed through Add/Relu/MaxPool, read through Relu/GAP/Flatten by
	// gemm_12), gemm_12 the head (read by an Identity graph output)
	lp := func(node string, float, int8, q, dq time.Duration) LayerProfile {
		return LayerProfile{Node: node, Float: float * us, Int8: int8 * us, Quant: q * us, Dequant: dq * us}
	}
	base := func(gemmInt8 time.Duration) []LayerProfile {
		return []LayerProfile{
			lp("conv_0", 100, 60, 5, 5),    // kernel 2x: pays with Q and DQ
			lp("conv_2", 100, 130, 5, 5),   // kernel slower: float
			lp("conv_4", 100, 60, 5, 5),    // pays
			lp("conv_8", 100, 100, 30, 30), // kernel 2.5x, 1.43x with Q only, 1.0x with Q and DQ
			lp("gemm_12", 100, gemmInt8, 10, 10),
		}
	}
	cases := []struct {
		name      string
		gemmInt8  time.Duration
		int8      map[string]bool
		boundary8 string
	}{
		{"head fast: the wide conv needs no DQ", 60, map[string]bool{"conv_0": true, "conv_4": true, "conv_8": true, "gemm_12": true}, "Q in"},
		{"head slow: the wide conv pays Q and DQ", 130, map[string]bool{"conv_0": true, "conv_4": true}, "Q in + DQ out"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prof := base(c.gemmInt8)
			for i := range prof {
				prof[i].Kernel = ratio(prof[i].Float, prof[i].kernel())
			}
			Plan(wideCNN().Graph, prof, MixedMargin, nil)
			for _, l := range prof {
				if l.Int8Chosen != c.int8[l.Node] {
					t.Errorf("%s: int8 %v, want %v (%s)", l.Node, l.Int8Chosen, c.int8[l.Node], l.Why)
				}
				if l.Why == "" {
					t.Errorf("%s: no reason given", l.Node)
				}
			}
			if prof[3].Boundary != c.boundary8 {
				t.Errorf("conv_8 boundary %q, want %q", prof[3].Boundary, c.boundary8)
			}
			if !c.int8["conv_8"] && !strings.Contains(prof[3].Why, "boundary") {
				t.Errorf("conv_8 left float without naming its boundary ops: %s", prof[3].Why)
			}
			order := ByGain(prof)
			if len(order) != len(c.int8) {
				t.Errorf("ByGain lists %v, want the %d int8 layers", order, len(c.int8))
			}
		})
	}
}

// TestMixedWideCNN runs int8-mixed on wideCNN: the layers the profile
// left in float are not quantized, the chosen ones are, and the report
// carries the profile.
func TestMixedWideCNN(t *testing.T) {
	m := wideCNN()
	open(t, "ort", m).Close() // skips (fails in CI) without ORT
	calib := seeded(t, m, 2, 1, 11)
	q, rep, err := Mixed(m, calib, MixedOptions{Profile: ProfileOptions{Rounds: 6, Budget: 20 * time.Millisecond, Cache: &ProfileCache{}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Profile) != 5 {
		t.Fatalf("profile has %d layers, want 5", len(rep.Profile))
	}
	t.Log("\n" + rep.String())
	done := map[string]bool{}
	for _, d := range rep.done {
		done[d[0]] = true
	}
	for _, l := range rep.Profile {
		if l.Int8Chosen != done[l.Node] {
			t.Errorf("%s: chosen %v but quantized %v", l.Node, l.Int8Chosen, done[l.Node])
		}
	}
	if err := q.Verify(); err != nil {
		t.Fatal(err)
	}
}

// TestKeepFaster: timed on interp (where a QDQ model runs float ops plus
// the Q/DQ, so it is usually slower), KeepFaster puts the smallest-gain
// int8 layers back 1, 2, 4, ... at a time, in ByGain order, always keeps
// something quantized, and returns a model only as fast as float or says
// it could not. Which outcome happens is timing; the structure is not.
func TestKeepFaster(t *testing.T) {
	m := wideCNN()
	open(t, "ort", m).Close() // the profile runs on ORT: skips (fails in CI) without it
	calib := seeded(t, m, 2, 1, 11)
	quantize := func(ex []string) (*graph.Model, *Report, error) {
		return Mixed(m, calib, MixedOptions{PlanOnly: true, Static: StaticOptions{ExcludeNodes: ex}, Profile: ProfileOptions{Rounds: 6, Budget: 20 * time.Millisecond}})
	}
	q, rep, err := quantize(nil)
	if err != nil {
		t.Fatal(err)
	}
	// a plan with every conv in int8, so there is something to put back
	for i := range rep.Profile {
		rep.Profile[i].Int8Chosen = rep.Profile[i].Op == "Conv"
		rep.Profile[i].Speedup = float64(i + 2)
	}
	order := ByGain(rep.Profile)
	slow := Speed{Speedup: 0.5}
	_, rep2, sp, tries, ok, err := KeepFaster(m, q, rep, slow, quantize, "interp", calib[0], 5, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	want := 1
	for i, tr := range tries {
		if len(tr.BackInFloat) != want || strings.Join(tr.BackInFloat, ",") != strings.Join(order[:want], ",") {
			t.Errorf("try %d put back %v, want the first %d of %v", i, tr.BackInFloat, want, order)
		}
		want = min(2*want, len(order))
	}
	if ok {
		if sp.Speedup < 1 || len(rep2.Notes) == 0 {
			t.Errorf("kept a model at %.2fx, notes %v", sp.Speedup, rep2.Notes)
		}
	} else if len(tries) == 0 || len(tries[len(tries)-1].BackInFloat) >= len(order) {
		t.Errorf("gave up after %d tries: %+v (something must stay quantized)", len(tries), tries)
	}
}

// TestPlanUntimedLayer: a layer the profile could not time stays float,
// with the reason.
func TestPlanUntimedLayer(t *testing.T) {
	prof := []LayerProfile{
		{Node: "conv_0", Float: 100 * time.Microsecond, Int8: 40 * time.Microsecond, Quant: time.Microsecond, Dequant: time.Microsecond},
		{Node: "conv_2", Err: "the layer alone is not quantized"},
	}
	Plan(wideCNN().Graph, prof, MixedMargin, nil)
	if !prof[0].Int8Chosen || prof[1].Int8Chosen || prof[1].Why != "not timed: the layer alone is not quantized" {
		t.Fatalf("%+v", prof)
	}
}
