package fpga

import (
	"context"
	"fmt"
	"math/rand"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/build"
	"github.com/optictl/optictl/pkg/quant"
	"github.com/optictl/optictl/pkg/runtime"
)

// kwsMLP is a keyword-spotting-sized MLP (40 features, two hidden layers
// of 32 with ReLU, 12 classes) with seeded weights, quantized static
// int8 (Gemm with biases, as exporters write MLPs), and samples.
func kwsMLP(t testing.TB) (*graph.Model, [][]*runtime.Tensor) {
	t.Helper()
	rng := rand.New(rand.NewSource(3))
	b := build.New("kws", 13)
	x := b.Input("x", graph.Float, build.Dims(1, 40))
	h := x
	sizes := []int{40, 32, 12}
	for i := 1; i < len(sizes); i++ {
		in, out := sizes[i-1], sizes[i]
		w := make([]float32, out*in)
		for k := range w {
			w[k] = float32(rng.NormFloat64() / float64(in) * 2)
		}
		bias := make([]float32, out)
		for k := range bias {
			bias[k] = float32(rng.NormFloat64() * 0.1)
		}
		h = b.Node("Gemm", []string{h, b.Float32(fmt.Sprintf("w%d", i), []int64{int64(out), int64(in)}, w), b.Float32(fmt.Sprintf("b%d", i), []int64{int64(out)}, bias)}, graph.IntAttr("transB", 1))
		if i < len(sizes)-1 {
			h = b.Node("Relu", []string{h})
		}
	}
	b.Output(h, graph.Float, build.Dims(1, 12))
	m, err := b.Model()
	if err != nil {
		t.Fatal(err)
	}
	var samples [][]*runtime.Tensor
	for i := 0; i < 64; i++ {
		v := make([]float32, 40)
		for k := range v {
			v[k] = float32(rng.NormFloat64())
		}
		samples = append(samples, []*runtime.Tensor{runtime.FromFloat32([]int64{1, 40}, v)})
	}
	q, _, err := quant.Static(m, samples[:32], quant.StaticOptions{Asymmetric: true, PerChannel: true})
	if err != nil {
		t.Fatal(err)
	}
	return q, samples[32:]
}

// TestKWSMLPLoweredMatchesInterp: Gemm layers with biases and ReLU (the
// requantizer's offset path) agree with interp running the QDQ model.
func TestKWSMLPLoweredMatchesInterp(t *testing.T) {
	q, samples := kwsMLP(t)
	d, err := Lower(q, LowerOptions{})
	if err != nil {
		t.Fatal(err)
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
	agree := 0
	var worst float64
	for _, s := range samples {
		got, err := ex.Run(context.Background(), s[0].Float32s())
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.Run(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		g, w := got[0].Float32s(), want[0].Float32s()
		if argmax(g) == argmax(w) {
			agree++
		}
		for k := range g {
			if d := float64(g[k] - w[k]); d > worst || -d > worst {
				worst = max(d, -d)
			}
		}
	}
	t.Logf("%d/%d top-1 agree, max |diff| %.4g", agree, len(samples), worst)
	if agree < len(samples)-1 {
		t.Errorf("only %d of %d samples agree on the top class", agree, len(samples))
	}
}

// TestKWSMLPOnICE40: the MLP placed and routed for an iCE40 UP5K by
// nextpnr: it fits and reports an Fmax.
func TestKWSMLPOnICE40(t *testing.T) {
	needVerilator(t)
	for _, tool := range []string{"yosys", "nextpnr-ice40"} {
		if _, err := lookPath(tool); err != nil {
			t.Fatalf("%s missing (make setup installs it): %v", tool, err)
		}
	}
	q, _ := kwsMLP(t)
	rep, _, err := Build(context.Background(), q, t.TempDir(), BuildOptions{Part: "ice40up5k", ClockMHz: 12, SimFrames: 2, Synth: true})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Resources
	t.Logf("iCE40 UP5K: %d LC, %d FF, %d EBR, %d DSP, Fmax %.1f MHz; II %d cycles", r.LUT, r.FF, r.BRAM18, r.DSP, r.FmaxMHz, rep.IICycles)
	if !r.Fits || r.FmaxMHz <= 0 {
		t.Fatalf("does not fit or no Fmax: %+v", r)
	}
}
