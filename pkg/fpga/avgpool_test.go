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

// newTestAvgPool is a requantized pool for input (sx, zx) and output
// (sy, zy): PoolRequant's multiplier sx/(N·sy), bias -N·zx.
func newTestAvgPool(t testing.TB, name string, C, H, W, KH, KW int, sx, sy float32, zx, zy int32, signed bool) *AvgPool {
	t.Helper()
	p := &AvgPool{Name: name, C: C, H: H, W: W, KH: KH, KW: KW, InSigned: signed, OutSigned: signed}
	p.Bias = make([]int64, C)
	p.Requant = make([]Requant, C)
	lo, hi := int32(0), int32(255)
	if signed {
		lo, hi = -128, 127
	}
	for c := range p.Bias {
		p.Bias[c] = -int64(p.N()) * int64(zx)
		alo, ahi := p.AccRange(c)
		r, err := PoolRequant(sx, sy, p.N(), zy, lo, hi, alo, ahi)
		if err != nil {
			t.Fatal(err)
		}
		p.Requant[c] = r
	}
	return p
}

// exactAvgPool is ONNX's DequantizeLinear → AveragePool → QuantizeLinear
// in exact rational arithmetic: rne(Σ(x - zx)·sx / (N·sy)) + zy,
// saturated (ideal: no float rounding anywhere).
func exactAvgPool(sum int64, n int, sx, sy float32, zy, lo, hi int32) int32 {
	x := new(big.Rat).SetInt64(sum)
	x.Mul(x, new(big.Rat).SetFloat64(float64(sx)))
	x.Quo(x, new(big.Rat).SetFloat64(float64(sy)))
	x.Quo(x, new(big.Rat).SetInt64(int64(n)))
	q := rneRat(x) + int64(zy)
	return int32(min(max(q, int64(lo)), int64(hi)))
}

func TestAvgPoolEqualsExactQDQ(t *testing.T) {
	for _, g := range []struct {
		C, H, W, KH, KW int
		sx, sy          float32
		zx, zy          int32
		signed          bool
	}{
		{3, 6, 7, 2, 2, 0.05, 0.04, 128, 120, false}, // last column dropped
		{4, 7, 7, 7, 7, 0.0231, 0.0117, 3, 0, false}, // global, N = 49
		{2, 9, 9, 3, 3, 0.1, 0.1, -5, 7, true},       // N = 9, equal scales
		{2, 4, 6, 2, 3, 0.1, 0.1, 0, 0, true},        // N = 6, equal scales: exact ties (float32 multiplier)
	} {
		n := g.KH * g.KW
		ties := float64(g.sx) == float64(g.sy) && n%2 == 0 && n&(n-1) != 0
		p := newTestAvgPool(t, "pool", g.C, g.H, g.W, g.KH, g.KW, g.sx, g.sy, g.zx, g.zy, g.signed)
		if _, err := NewRequantRat(new(big.Rat).SetFrac64(1, int64(n)), 0, -128, 127, -128*int64(n), 127*int64(n)); (err == nil) == ties && float64(g.sx) == float64(g.sy) {
			t.Errorf("%+v: exact multiplier 1/%d found: %v, want it to exist iff there are no exact ties", g, n, err)
		}
		lo, hi := int32(0), int32(255)
		if g.signed {
			lo, hi = -128, 127
		}
		rng := rand.New(rand.NewSource(int64(g.H)))
		for f := 0; f < 20; f++ {
			in := make([]int32, p.InFrame())
			for i := range in {
				in[i] = int32(rng.Intn(256)) + lo
			}
			got, err := p.Forward(in)
			if err != nil {
				t.Fatal(err)
			}
			for oy := 0; oy < p.OH(); oy++ {
				for ox := 0; ox < p.OW(); ox++ {
					for c := 0; c < g.C; c++ {
						var sum int64
						for ky := 0; ky < g.KH; ky++ {
							for kx := 0; kx < g.KW; kx++ {
								sum += int64(in[((oy*g.KH+ky)*g.W+ox*g.KW+kx)*g.C+c] - g.zx)
							}
						}
						want := exactAvgPool(sum, p.N(), g.sx, g.sy, g.zy, lo, hi)
						q := got[(oy*p.OW()+ox)*g.C+c]
						if ties {
							// no fixed point reproduces sum/6 at the
							// halves: the float32 multiplier's rounding
							m := float64(float32(1.0 / 6))
							if w32 := RefRequant(sum, m, g.zy, lo, hi); q != w32 || q-want > 1 || want-q > 1 {
								t.Fatalf("%+v: sum %d: %d, want %d (float32 multiplier), ideal %d", g, sum, q, w32, want)
							}
						} else if q != want {
							t.Fatalf("%+v: (%d,%d,%d) sum %d: %d, want %d", g, oy, ox, c, sum, q, want)
						}
					}
				}
			}
		}
	}
}

// TestAvgPoolRTLEqualsModel: a 2x2 average pool (with a table after its
// requantizer) and a global average pool through Verilator equal the Go
// model; the pipeline takes a pixel per cycle.
func TestAvgPoolRTLEqualsModel(t *testing.T) {
	needVerilator(t)
	p0 := newTestAvgPool(t, "avg0", 4, 6, 7, 2, 2, 0.05, 0.03, 128, 100, false)
	p0.LUT = make([][256]int32, 4)
	for c := range p0.LUT {
		for b := range p0.LUT[c] {
			p0.LUT[c][b] = int32(min(255, b*(c+2)/2))
		}
	}
	p1 := newTestAvgPool(t, "gap", 4, 3, 3, 3, 3, 0.03, 0.02, 0, 10, false)
	pipe := &Pipeline{Stages: []Stage{p0, p1}}
	frames := randomFrames(6, 6*7*4, 4)
	res, err := pipe.Simulate(context.Background(), t.TempDir(), frames)
	if err != nil {
		t.Fatal(err)
	}
	checkOutputs(t, pipe, frames, res)
	t.Logf("avgpool 2x2 on 6x7x4 + global: II %d cycles simulated, %d estimated; latency %d", res.II, pipe.EstimatedII(), res.Latency)
	if res.II != p0.EstCycles() {
		t.Errorf("simulated II %d cycles, want a pixel per cycle (%d)", res.II, p0.EstCycles())
	}
}

// poolNet is a small QDQ CNN using both pools and a depthwise Conv:
// Conv 3x3 + Relu, AveragePool 2x2, depthwise Conv 3x3 + Relu,
// GlobalAveragePool, Flatten, Gemm.
func poolNet(t testing.TB) (*graph.Model, [][]*runtime.Tensor) {
	t.Helper()
	rng := rand.New(rand.NewSource(9))
	rnd := func(n int, s float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * s)
		}
		return v
	}
	b := build.New("poolnet", 13)
	x := b.Input("x", graph.Float, build.Dims(1, 3, 12, 12))
	h := b.Node("Conv", []string{x, b.Float32("w0", []int64{8, 3, 3, 3}, rnd(8*27, 0.3)), b.Float32("b0", []int64{8}, rnd(8, 0.1))},
		graph.IntsAttr("kernel_shape", 3, 3), graph.IntsAttr("pads", 1, 1, 1, 1))
	h = b.Node("Relu", []string{h})
	h = b.Node("AveragePool", []string{h}, graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2))
	h = b.Node("Conv", []string{h, b.Float32("w1", []int64{8, 1, 3, 3}, rnd(8*9, 0.4)), b.Float32("b1", []int64{8}, rnd(8, 0.1))},
		graph.IntsAttr("kernel_shape", 3, 3), graph.IntsAttr("pads", 1, 1, 1, 1), graph.IntAttr("group", 8))
	h = b.Node("Relu", []string{h})
	h = b.Node("GlobalAveragePool", []string{h})
	h = b.Node("Flatten", []string{h})
	h = b.Node("Gemm", []string{h, b.Float32("w2", []int64{5, 8}, rnd(40, 0.5)), b.Float32("b2", []int64{5}, rnd(5, 0.1))}, graph.IntAttr("transB", 1))
	b.Output(h, graph.Float, build.Dims(1, 5))
	m, err := b.Model()
	if err != nil {
		t.Fatal(err)
	}
	var samples [][]*runtime.Tensor
	for i := 0; i < 40; i++ {
		samples = append(samples, []*runtime.Tensor{runtime.FromFloat32([]int64{1, 3, 12, 12}, rnd(3*144, 1))})
	}
	q, _, err := quant.Static(m, samples[:16], quant.StaticOptions{Asymmetric: true, PerChannel: true, Target: "fpga"})
	if err != nil {
		t.Fatal(err)
	}
	return q, samples[16:]
}

// TestPoolNetLoweredMatchesInterp: AveragePool and GlobalAveragePool
// lower to AvgPool engines (a depthwise Conv between them to a VVAU) and
// the design agrees with interp on the QDQ model.
func TestPoolNetLoweredMatchesInterp(t *testing.T) {
	q, samples := poolNet(t)
	d, err := Lower(q, LowerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var engines []string
	for _, li := range d.Layers {
		engines = append(engines, li.Engine)
	}
	want := []string{"SWG+MVAU", "AvgPool", "SWG+VVAU", "AvgPool", "MVAU"}
	if len(engines) != len(want) {
		t.Fatalf("engines %v, want %v", engines, want)
	}
	for i := range want {
		if engines[i] != want[i] {
			t.Fatalf("engines %v, want %v", engines, want)
		}
	}
	if _, err := Lower(q, LowerOptions{Folding: map[string]Fold{d.Layers[1].Node: {PE: 1, SIMD: 1}}}); err == nil || !strings.Contains(err.Error(), "average pool") {
		t.Errorf("a folding naming a pool: %v, want it refused", err)
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
	var n, close1 int
	var worst, span float64
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
			span = math.Max(span, math.Abs(float64(wv[k])))
			if d <= 1e-5*math.Max(1, math.Abs(float64(wv[k]))) {
				close1++
			}
		}
	}
	t.Logf("%d of %d outputs equal interp's to float rounding; max |diff| %.3g (outputs up to %.3g)", close1, n, worst, span)
	if float64(close1) < 0.99*float64(n) {
		t.Errorf("only %d of %d outputs equal interp's", close1, n)
	}
}

// TestAvgPoolMatchesInterpQDQ compares the pool's integer output with
// interp running DequantizeLinear → AveragePool → QuantizeLinear in
// float32. With calibrated-looking scales they agree on every element.
// With decimal scales whose ratio is short (0.05/0.04 = 5/4 over 4
// elements) many real averages sit within float32 rounding of a half:
// the engine is exact there and interp's float32 steps land on either
// side, so they may differ by one step, never more.
func TestAvgPoolMatchesInterpQDQ(t *testing.T) {
	const C, H, W = 3, 6, 7
	for _, tc := range []struct {
		sx, sy   float32
		minShare float64
	}{
		{0.0231, 0.0117, 1},
		{0.05, 0.04, 0.9},
	} {
		sx, sy := tc.sx, tc.sy
		zx, zy := int32(128), int32(120)
		b := build.New("qdqpool", 13)
		x := b.Input("x", graph.Uint8, build.Dims(1, C, H, W))
		zxName := b.Initializer(&graph.Tensor{Name: "zx", DType: graph.Uint8, Raw: []byte{byte(zx)}})
		zyName := b.Initializer(&graph.Tensor{Name: "zy", DType: graph.Uint8, Raw: []byte{byte(zy)}})
		h := b.Node("DequantizeLinear", []string{x, b.Scalar("sx", sx), zxName})
		h = b.Node("AveragePool", []string{h}, graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2))
		h = b.Node("QuantizeLinear", []string{h, b.Scalar("sy", sy), zyName})
		b.Output(h, graph.Uint8, build.Dims(1, C, H/2, W/2))
		m, err := b.Model()
		if err != nil {
			t.Fatal(err)
		}
		ref, err := runtime.Open("interp", m, runtime.Options{})
		if err != nil {
			t.Fatal(err)
		}
		p := newTestAvgPool(t, "pool", C, H, W, 2, 2, sx, sy, zx, zy, false)
		rng := rand.New(rand.NewSource(2))
		n, same := 0, 0
		for f := 0; f < 20; f++ {
			nchw := make([]byte, C*H*W)
			in := make([]int32, C*H*W) // (h, w, c) stream order
			for c := 0; c < C; c++ {
				for y := 0; y < H; y++ {
					for x := 0; x < W; x++ {
						v := byte(rng.Intn(256))
						nchw[(c*H+y)*W+x] = v
						in[(y*W+x)*C+c] = int32(v)
					}
				}
			}
			got, err := p.Forward(in)
			if err != nil {
				t.Fatal(err)
			}
			outs, err := ref.Run(context.Background(), []*runtime.Tensor{{DType: graph.Uint8, Shape: []int64{1, C, H, W}, Raw: nchw}})
			if err != nil {
				t.Fatal(err)
			}
			want := outs[0].Raw
			for c := 0; c < C; c++ {
				for oy := 0; oy < p.OH(); oy++ {
					for ox := 0; ox < p.OW(); ox++ {
						n++
						g, w := got[(oy*p.OW()+ox)*C+c], int32(want[(c*p.OH()+oy)*p.OW()+ox])
						if g == w {
							same++
						} else if g-w > 1 || w-g > 1 {
							t.Fatalf("sx %g sy %g: %d, interp %d", sx, sy, g, w)
						}
					}
				}
			}
		}
		ref.Close()
		t.Logf("sx %g, sy %g: %d of %d pooled outputs equal interp's float32 QDQ (the rest one step apart)", sx, sy, same, n)
		if float64(same) < tc.minShare*float64(n) {
			t.Errorf("sx %g, sy %g: only %d of %d pooled outputs equal interp's", sx, sy, same, n)
		}
	}
}
