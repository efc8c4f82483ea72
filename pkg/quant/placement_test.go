package quant

import (
	"math"
	"math/rand"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/build"
)

// hardSwishModel is Conv -> hard-swish written out as
// x*Clip(x+3, 0, 6)/6 -> MaxPool -> Conv -> Relu, as paddle2onnx writes
// MobileNetV3 blocks.
func hardSwishModel(t *testing.T) *graph.Model {
	t.Helper()
	b := build.New("hswish", 13)
	r := rand.New(rand.NewSource(3))
	w := func(name string, dims ...int64) string {
		n := int64(1)
		for _, d := range dims {
			n *= d
		}
		f := make([]float32, n)
		for i := range f {
			f[i] = float32(r.NormFloat64() * 0.3)
		}
		return b.Float32(name, dims, f)
	}
	x := b.Input("x", graph.Float, build.Dims(1, 4, 8, 8))
	c1 := b.Node("Conv", []string{x, w("w1", 8, 4, 3, 3), w("b1", 8)}, graph.IntsAttr("kernel_shape", 3, 3), graph.IntsAttr("pads", 1, 1, 1, 1))
	a := b.Node("Add", []string{c1, b.Scalar("three", 3)})
	cl := b.Node("Clip", []string{a, b.Scalar("zero", 0), b.Scalar("six", 6)})
	mu := b.Node("Mul", []string{c1, cl})
	hs := b.Node("Div", []string{mu, b.Scalar("six_div", 6)})
	mp := b.Node("MaxPool", []string{hs}, graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2))
	c2 := b.Node("Conv", []string{mp, w("w2", 8, 8, 1, 1), w("b2", 8)}, graph.IntsAttr("kernel_shape", 1, 1))
	y := b.Node("Relu", []string{c2})
	y = b.Node("Conv", []string{y, w("w3", 4, 8, 1, 1)}, graph.IntsAttr("kernel_shape", 1, 1))
	b.Op("Identity", "y", []string{y}, []string{"y"})
	b.Output("y", graph.Float, build.Dims(1, 4, 4, 4))
	m, err := b.Model()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPlacement checks the QDQ placement rules on hard-swish: Add and Mul
// join the int8 region, Clip is folded into the Add's output range (zero
// point 0, range within [0, 6]), Div is folded into a DQ scale, MaxPool
// shares its input's parameters, Relu after a Conv is folded; and the
// result still computes the same thing.
func TestPlacement(t *testing.T) {
	m := hardSwishModel(t)
	calib := seeded(t, m, 4, 1, 1000)
	q, rep, err := Static(m, calib, StaticOptions{PerChannel: true, Asymmetric: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Quantized) != 5 || rep.Int8Ops != 3 {
		t.Fatalf("quantized %d nodes (%d int8 ops), want 5 (3)\n%s", len(rep.Quantized), rep.Int8Ops, rep)
	}
	g := q.Graph
	inits := g.InitializerMap()
	prod := g.Producers()
	count := map[string]int{}
	for _, n := range g.Nodes {
		count[n.OpType]++
	}
	if count["Div"] != 0 {
		t.Errorf("Div by 6 not folded into a scale: %v", count)
	}
	// Q nodes: x, Clip output, Mul output, MaxPool output, Relu output
	// (the Conv before the Relu and the Conv before the Add/Mul have none
	// of their own: Relu folded; Add/Mul read the Conv output's Q)
	if count["QuantizeLinear"] != 6 {
		t.Errorf("%d QuantizeLinear, want 6 (x, conv1, clip, mul, maxpool, relu): %v", count["QuantizeLinear"], count)
	}
	scalar := func(name string) float64 {
		tt := inits[name]
		if tt == nil {
			t.Fatalf("no initializer %q", name)
		}
		if tt.DType == graph.Float {
			f, _ := tt.Float32s()
			return float64(f[0])
		}
		return float64(tt.Raw[0])
	}
	var mulQ, clipQ, mpQ *graph.Node
	for _, n := range g.Nodes {
		if !n.Is("QuantizeLinear") {
			continue
		}
		switch p := prod[n.Inputs[0]]; {
		case p == nil:
		case p.Is("Mul"):
			mulQ = n
		case p.Is("Clip"):
			clipQ = n
		case p.Is("MaxPool"):
			mpQ = n
		}
	}
	if mulQ == nil || clipQ == nil || mpQ == nil {
		t.Fatalf("missing Q after Mul/Clip/MaxPool")
	}
	if zp := scalar(clipQ.Inputs[2]); zp != 0 {
		t.Errorf("Clip output zero point %v, want 0", zp)
	}
	if s := scalar(clipQ.Inputs[1]); s*255 > 6*1.0001 {
		t.Errorf("Clip output range %v exceeds [0, 6]", s*255)
	}
	// the DQ that replaces Div reads the Mul's int8 data with scale/6
	ms := scalar(mulQ.Inputs[1])
	found := false
	for _, n := range g.Nodes {
		if n.Is("DequantizeLinear") && n.Inputs[0] == mulQ.Outputs[0] && math.Abs(scalar(n.Inputs[1])-ms/6) < 1e-6*ms {
			found = true
		}
	}
	if !found {
		t.Errorf("no DequantizeLinear of the Mul output with scale %g/6", ms)
	}
	// MaxPool's Q reads the DQ parameters of its input (shared)
	mp := prod[mpQ.Inputs[0]]
	in := prod[mp.Inputs[0]]
	if in == nil || !in.Is("DequantizeLinear") {
		t.Fatalf("MaxPool does not read a DequantizeLinear")
	}
	if scalar(in.Inputs[1]) != scalar(mpQ.Inputs[1]) || scalar(in.Inputs[2]) != scalar(mpQ.Inputs[2]) {
		t.Errorf("MaxPool output parameters (%v, %v) differ from its input's (%v, %v)",
			scalar(mpQ.Inputs[1]), scalar(mpQ.Inputs[2]), scalar(in.Inputs[1]), scalar(in.Inputs[2]))
	}
	samples := seeded(t, m, 4, 1, 7)
	ref := runSamples(t, open(t, "interp", m), samples)
	got := runSamples(t, open(t, "interp", q), samples)
	acc := accuracy(t, ref, got)
	if acc.Cosine == nil || *acc.Cosine < 0.99 {
		t.Fatalf("cosine %v", deref(acc.Cosine))
	}
	gotO := runSamples(t, open(t, "ort", q), samples)
	if d, lim := maxDiff(got, gotO), DefaultBackendATol*maxAbs(ref); d > lim {
		t.Errorf("interp and ort differ by %g > %g", d, lim)
	}
	t.Logf("cosine %.5f, SQNR %.1f dB", *acc.Cosine, deref(acc.SQNRdB))
}
