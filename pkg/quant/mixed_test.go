package quant

import (
	"strings"
	"testing"
	"time"
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
