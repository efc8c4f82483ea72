package fpga

import (
	"context"
	"math/big"
	"math/rand"
	"testing"
)

// exactAdd is rne((a - za)·sa/sy + (b - zb)·sb/sy) + zy saturated, in
// exact rational arithmetic.
func exactAdd(a, b int32, sa, sb, sy float32, za, zb, zy, lo, hi int32) int32 {
	x := new(big.Rat).SetInt64(int64(a - za))
	x.Mul(x, new(big.Rat).SetFloat64(float64(sa)))
	y := new(big.Rat).SetInt64(int64(b - zb))
	y.Mul(y, new(big.Rat).SetFloat64(float64(sb)))
	x.Add(x, y)
	x.Quo(x, new(big.Rat).SetFloat64(float64(sy)))
	q := rneRat(x) + int64(zy)
	return int32(min(max(q, int64(lo)), int64(hi)))
}

func TestAddRequantEqualsExactQDQ(t *testing.T) {
	for _, c := range []struct {
		sa, sb, sy    float32
		za, zb, zy    int32
		aSig, bSig    bool
		lo, hi        int32
		wantShiftUpTo uint
	}{
		{0.05, 0.03, 0.07, 128, 120, 110, false, false, 0, 255, 40},
		{0.0123, 0.0456, 0.0391, 3, 0, 0, false, false, 0, 255, 40}, // ReLU-style output bounds
		{0.1, 0.1, 0.1, 0, 0, 0, true, true, -128, 127, 8},          // a + b: the shortest shift is exact
		{0.02, 0.011, 0.025, -3, 5, 0, true, true, 0, 127, 40},      // ReLU folded into the bounds
	} {
		r, err := NewAddRequant(c.sa, c.sb, c.sy, c.za, c.zb, c.zy, c.lo, c.hi, c.aSig, c.bSig)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if r.Out.Shift > c.wantShiftUpTo {
			t.Errorf("%+v: shift %d, want at most %d", c, r.Out.Shift, c.wantShiftUpTo)
		}
		alo, _ := byteRange(c.aSig)
		blo, _ := byteRange(c.bSig)
		rng := rand.New(rand.NewSource(1))
		for i := 0; i < 3000; i++ {
			a, b := alo+int32(rng.Intn(256)), blo+int32(rng.Intn(256))
			if got, want := r.Apply(a, b), exactAdd(a, b, c.sa, c.sb, c.sy, c.za, c.zb, c.zy, c.lo, c.hi); got != want {
				t.Fatalf("%+v: a %d b %d: %d, want %d", c, a, b, got, want)
			}
		}
		t.Logf("sa %g sb %g sy %g: A %d, B %d, shift %d", c.sa, c.sb, c.sy, r.A, r.B, r.Out.Shift)
	}
}

// TestResidualRTLEqualsModel: a residual block (window generator + conv
// MVAU as the body, a frame-deep bypass, the add) through Verilator
// equals the Go model bit for bit, frame after frame.
func TestResidualRTLEqualsModel(t *testing.T) {
	needVerilator(t)
	s := &SWG{Name: "res_conv_swg", C: 4, H: 5, W: 5, K: 3, S: 1, P: 1, SIMD: 2, Pad: 0}
	m := randomMVAU(t, "res_conv", 4, 36, 2, 2, 41, false, false)
	m.Vectors = 25
	add, err := NewAddRequant(0.05, 0.03, 0.06, 0, 128, 100, 0, 255, false, false)
	if err != nil {
		t.Fatal(err)
	}
	res := &Residual{Name: "block", C: 4, Body: &Pipeline{Stages: []Stage{s, m}}, Add: add}
	pipe := &Pipeline{Stages: []Stage{res}}
	frames := randomFrames(4, 100, 6)
	out, err := pipe.Simulate(context.Background(), t.TempDir(), frames)
	if err != nil {
		t.Fatal(err)
	}
	checkOutputs(t, pipe, frames, out)
	t.Logf("residual block: II %d cycles simulated, %d estimated; latency %d", out.II, res.EstCycles(), out.Latency)
	if out.II < res.EstCycles() || float64(out.II) > 1.05*float64(res.EstCycles()) {
		t.Errorf("simulated II %d cycles, estimate %d: more than 5%% apart", out.II, res.EstCycles())
	}
}
