package fpga

import (
	"context"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/passes"
	"github.com/optictl/optictl/pkg/quant"
	"github.com/optictl/optictl/pkg/runtime"
)

// dwsepQDQ is testmodels/dwsep.onnx (a depthwise 3x3 Conv + BN + Relu,
// then a pointwise Conv + BN + Relu, 16x32x32 in) with its batch fixed to
// 1, BatchNormalizations folded into the convolutions, quantized static
// int8 for the fpga target; and held-out samples.
func dwsepQDQ(t testing.TB) (*graph.Model, [][]*runtime.Tensor) {
	t.Helper()
	m, err := graph.Load("../../testmodels/dwsep.onnx")
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[string][]int64{"input": {1, 16, 32, 32}}
	m, _, err = passes.Optimize(m, passes.Options{Passes: []string{"fuse-conv-batchnorm"}, Shapes: shapes})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range m.Graph.Nodes {
		if n.Is("BatchNormalization") {
			t.Fatalf("%s left after fuse-conv-batchnorm", n)
		}
	}
	rng := rand.New(rand.NewSource(5))
	var samples [][]*runtime.Tensor
	for i := 0; i < 12; i++ {
		v := make([]float32, 16*32*32)
		for k := range v {
			v[k] = float32(rng.NormFloat64())
		}
		samples = append(samples, []*runtime.Tensor{runtime.FromFloat32([]int64{1, 16, 32, 32}, v)})
	}
	q, _, err := quant.Static(m, samples[:8], quant.StaticOptions{Asymmetric: true, PerChannel: true, Target: "fpga"})
	if err != nil {
		t.Fatal(err)
	}
	return q, samples[8:]
}

// TestDepthwiseSeparableLoweredMatchesInterp: the depthwise Conv lowers
// to a window generator + VVAU (its requantizer folding the bias and
// ReLU), the pointwise one to SWG + MVAU, and the design's outputs match
// interp running the QDQ model to within one output quantization step.
func TestDepthwiseSeparableLoweredMatchesInterp(t *testing.T) {
	q, samples := dwsepQDQ(t)
	d, err := Lower(q, LowerOptions{Folding: map[string]Fold{}, TargetCycles: 4096})
	if err != nil {
		t.Fatal(err)
	}
	var vv *VVAU
	for _, s := range d.Pipeline.Stages {
		if v, ok := s.(*VVAU); ok {
			vv = v
		}
	}
	if vv == nil || len(d.Layers) != 2 || d.Layers[0].Engine != "SWG+VVAU" {
		t.Fatalf("layers %+v: want the depthwise Conv on a VVAU", d.Layers)
	}
	if vv.EstCycles() > 4096 || vv.MH != 16 || vv.MW != 9 {
		t.Errorf("VVAU %dx%d PE %d SIMD %d: %d cycles, over the 4096 target", vv.MH, vv.MW, vv.PE, vv.SIMD, vv.EstCycles())
	}
	t.Logf("layers: %s PE %d SIMD %d (%d cycles), %s PE %d SIMD %d (%d cycles)",
		d.Layers[0].Engine, d.Layers[0].PE, d.Layers[0].SIMD, d.Layers[0].EstCyc,
		d.Layers[1].Engine, d.Layers[1].PE, d.Layers[1].SIMD, d.Layers[1].EstCyc)
	// a folding that breaks the VVAU's rule is refused naming the layer
	dwNode := d.Layers[0].Node
	_, err = Lower(q, LowerOptions{Folding: map[string]Fold{dwNode: {PE: 4, SIMD: 3}}})
	if err == nil || !strings.Contains(err.Error(), dwNode) || !strings.Contains(err.Error(), "SIMD 3 needs PE = 16") {
		t.Errorf("PE 4, SIMD 3 on the depthwise layer: %v", err)
	}
	if d2, err := Lower(q, LowerOptions{Folding: map[string]Fold{dwNode: {PE: 16, SIMD: 9}}}); err != nil {
		t.Errorf("PE 16, SIMD 9 (whole window per beat): %v", err)
	} else if s := d2.Pipeline.Stages[0].(*SWG); s.SIMD != 16*9 {
		t.Errorf("window generator emits %d lanes, want 144", s.SIMD)
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
	// the output is DequantizeLinear(QuantizeLinear(...)): compare levels
	var step float64
	for _, n := range q.Graph.Nodes {
		if n.Is("DequantizeLinear") {
			if t, ok := q.Graph.InitializerMap()[n.Inputs[1]]; ok {
				if f, err := t.AsFloat64s(); err == nil && len(f) == 1 {
					step = f[0] // the last activation DequantizeLinear
				}
			}
		}
	}
	if step <= 0 {
		t.Fatal("no output DequantizeLinear scale")
	}
	var n, same int
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
		if len(g) != len(w) {
			t.Fatalf("%d outputs, interp %d", len(g), len(w))
		}
		for k := range g {
			n++
			lg, lw := math.Round(float64(g[k])/step), math.Round(float64(w[k])/step)
			if lg == lw {
				same++
			}
			worst = math.Max(worst, math.Abs(lg-lw))
		}
	}
	t.Logf("%d of %d output levels identical to interp's, max %g steps apart", same, n, worst)
	if float64(same) < 0.999*float64(n) || worst > 1 {
		t.Errorf("%d of %d output levels equal interp's, max %g steps apart; want >= 99.9%% and at most 1", same, n, worst)
	}
}
