package fpga

import (
	"context"
	"math"
	"math/big"
	"math/rand"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/build"
	"github.com/optictl/optictl/pkg/quant"
	"github.com/optictl/optictl/pkg/runtime"
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

// resNet is a small QDQ ResNet: a stem Conv + Relu, one residual block
// (Conv + Relu, Conv, Add of the block input, Relu), GlobalAveragePool,
// Flatten, Gemm; quantized for the fpga target, with held-out samples.
func resNet(t testing.TB) (*graph.Model, [][]*runtime.Tensor) {
	t.Helper()
	rng := rand.New(rand.NewSource(9))
	rnd := func(n int, s float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * s)
		}
		return v
	}
	b := build.New("resnet", 13)
	x := b.Input("x", graph.Float, build.Dims(1, 3, 8, 8))
	conv := func(h, name string, cin, cout int) string {
		return b.Node("Conv", []string{h, b.Float32(name+"w", []int64{int64(cout), int64(cin), 3, 3}, rnd(cout*cin*9, 0.3)), b.Float32(name+"b", []int64{int64(cout)}, rnd(cout, 0.1))},
			graph.IntsAttr("kernel_shape", 3, 3), graph.IntsAttr("pads", 1, 1, 1, 1))
	}
	h := b.Node("Relu", []string{conv(x, "c0", 3, 4)})
	r := b.Node("Relu", []string{conv(h, "c1", 4, 4)})
	r = conv(r, "c2", 4, 4)
	h = b.Node("Relu", []string{b.Node("Add", []string{h, r})})
	h = b.Node("GlobalAveragePool", []string{h})
	h = b.Node("Flatten", []string{h})
	h = b.Node("Gemm", []string{h, b.Float32("w3", []int64{5, 4}, rnd(20, 0.5)), b.Float32("b3", []int64{5}, rnd(5, 0.1))}, graph.IntAttr("transB", 1))
	b.Output(h, graph.Float, build.Dims(1, 5))
	m, err := b.Model()
	if err != nil {
		t.Fatal(err)
	}
	var samples [][]*runtime.Tensor
	for i := 0; i < 40; i++ {
		samples = append(samples, []*runtime.Tensor{runtime.FromFloat32([]int64{1, 3, 8, 8}, rnd(3*64, 1))})
	}
	q, _, err := quant.Static(m, samples[:16], quant.StaticOptions{Asymmetric: true, PerChannel: true, Target: "fpga"})
	if err != nil {
		t.Fatal(err)
	}
	return q, samples[16:]
}

// TestResNetLoweredMatchesInterpAndRTL: the residual Add lowers to a
// Residual stage (its two convolutions the body), the design agrees with
// interp on the QDQ model, and its RTL equals its Go model.
func TestResNetLoweredMatchesInterpAndRTL(t *testing.T) {
	q, samples := resNet(t)
	d, err := Lower(q, LowerOptions{TargetCycles: 600})
	if err != nil {
		t.Fatal(err)
	}
	var engines []string
	for _, li := range d.Layers {
		engines = append(engines, li.Engine)
	}
	want := []string{"SWG+MVAU", "SWG+MVAU", "SWG+MVAU", "Residual(Add)", "AvgPool", "MVAU"}
	if strings.Join(engines, " ") != strings.Join(want, " ") || len(d.Pipeline.Stages) != 5 {
		t.Fatalf("engines %v (%d stages), want %v in 5 stages (stem SWG+MVAU, the block, the pool, the dense layer)", engines, len(d.Pipeline.Stages), want)
	}
	ex, err := NewExecutor(d)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	ref, err := runtime.Open("interp", q, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	var n, same int
	var worst float64
	var frames [][]int32
	for _, s := range samples {
		got, err := ex.Run(context.Background(), s[0].Float32s())
		if err != nil {
			t.Fatal(err)
		}
		w, err := ref.Run(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		g, wv := got[0].Float32s(), w[0].Float32s()
		for k := range g {
			n++
			d := math.Abs(float64(g[k] - wv[k]))
			worst = math.Max(worst, d)
			if d <= 1e-5*math.Max(1, math.Abs(float64(wv[k]))) {
				same++
			}
		}
		if len(frames) < 3 {
			f, err := d.QuantizeInput(s[0].Float32s())
			if err != nil {
				t.Fatal(err)
			}
			frames = append(frames, f)
		}
	}
	t.Logf("%d of %d outputs equal interp's to float rounding; max |diff| %.3g", same, n, worst)
	if float64(same) < 0.99*float64(n) {
		t.Errorf("only %d of %d outputs equal interp's", same, n)
	}
	needVerilator(t)
	res, err := d.Pipeline.Simulate(context.Background(), t.TempDir(), frames)
	if err != nil {
		t.Fatal(err)
	}
	var wantOut []int32
	for _, f := range frames {
		y, err := d.Pipeline.Forward(f)
		if err != nil {
			t.Fatal(err)
		}
		wantOut = append(wantOut, y...)
	}
	if len(res.Outputs) != len(wantOut) {
		t.Fatalf("RTL gave %d outputs, Go model %d", len(res.Outputs), len(wantOut))
	}
	for i := range wantOut {
		if res.Outputs[i] != wantOut[i] {
			t.Fatalf("output %d: RTL %d, Go model %d", i, res.Outputs[i], wantOut[i])
		}
	}
	est := 0
	for _, li := range d.Layers {
		t.Logf("layer %s %s PE %d SIMD %d: %d cycles estimated", li.Node, li.Engine, li.PE, li.SIMD, li.EstCyc)
		est = max(est, li.EstCyc)
	}
	t.Logf("lowered ResNet block: II %d cycles simulated, %d estimated; latency %d", res.II, est, res.Latency)
	if res.II < est || float64(res.II) > 1.05*float64(est) {
		t.Errorf("simulated II %d cycles, estimate %d: more than 5%% apart", res.II, est)
	}
}
