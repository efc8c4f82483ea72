package interp

import (
	"context"
	"math"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// nnOneNode builds a model of one node whose inputs are graph inputs.
func nnOneNode(domain, op string, ins []*runtime.Tensor, nOut int, attrs ...*graph.Attr) *graph.Model {
	g := &graph.Graph{Name: op}
	var names []string
	for i, t := range ins {
		name := string(rune('a' + i))
		names = append(names, name)
		g.Inputs = append(g.Inputs, &graph.ValueInfo{Name: name, DType: t.DType, HasShape: true, Shape: graph.ShapeOf(t.Shape)})
	}
	var outs []string
	for i := 0; i < nOut; i++ {
		o := string(rune('y' - i))
		outs = append(outs, o)
		g.Outputs = append(g.Outputs, &graph.ValueInfo{Name: o})
	}
	g.Nodes = []*graph.Node{{OpType: op, Domain: domain, Inputs: names, Outputs: outs, Attrs: attrs}}
	m := &graph.Model{IRVersion: 8, Graph: g}
	m.SetOpset("", 17)
	if domain != "" {
		m.SetOpset(domain, 1)
	}
	return m
}

func TestNNFusedOps(t *testing.T) {
	x := runtime.FromFloat32([]int64{2, 3}, []float32{-2, -0.5, 0, 0.5, 1, 3})
	bias := runtime.FromFloat32([]int64{3}, []float32{0.1, -0.2, 0.3})
	gelu := func(v float64) float64 { return 0.5 * v * (1 + math.Erf(v/math.Sqrt2)) }
	cases := []struct {
		name   string
		domain string
		op     string
		ins    []*runtime.Tensor
		attrs  []*graph.Attr
		want   func(i int, v float64) float64
	}{
		{"Gelu", "com.microsoft", "Gelu", []*runtime.Tensor{x}, nil, func(i int, v float64) float64 { return gelu(v) }},
		{"BiasGelu", "com.microsoft", "BiasGelu", []*runtime.Tensor{x, bias}, nil, func(i int, v float64) float64 {
			return gelu(v + float64(bias.Float32s()[i%3]))
		}},
		{"FastGelu", "com.microsoft", "FastGelu", []*runtime.Tensor{x}, nil, func(i int, v float64) float64 { return gelu(v) }},
		{"QuickGelu", "com.microsoft", "QuickGelu", []*runtime.Tensor{x}, []*graph.Attr{graph.FloatAttr("alpha", 1.5)}, func(i int, v float64) float64 {
			return v / (1 + math.Exp(-1.5*v))
		}},
		{"FusedGemm_Relu", "com.microsoft", "FusedGemm", []*runtime.Tensor{x, runtime.FromFloat32([]int64{3, 3}, []float32{1, 0, 0, 0, 1, 0, 0, 0, 1})},
			[]*graph.Attr{graph.StringAttr("activation", "Relu")}, func(i int, v float64) float64 { return max(v, 0) }},
		{"FusedMatMul_alpha", "com.microsoft", "FusedMatMul", []*runtime.Tensor{x, runtime.FromFloat32([]int64{3, 3}, []float32{1, 0, 0, 0, 1, 0, 0, 0, 1})},
			[]*graph.Attr{graph.FloatAttr("alpha", 2)}, func(i int, v float64) float64 { return 2 * v }},
		{"LpNormalization_p1", "", "LpNormalization", []*runtime.Tensor{x}, []*graph.Attr{graph.IntAttr("p", 1)}, func(i int, v float64) float64 {
			d := 2.5
			if i >= 3 {
				d = 4.5
			}
			return v / d
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(nnOneNode(tc.domain, tc.op, tc.ins, 1, tc.attrs...), runtime.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			out, err := s.Run(context.Background(), tc.ins)
			if err != nil {
				t.Fatal(err)
			}
			tol := 1e-5
			if tc.op == "FastGelu" {
				tol = 2e-3 // tanh approximation of erf
			}
			for i, v := range out[0].Float32s() {
				w := tc.want(i, float64(x.Float32s()[i]))
				if math.Abs(float64(v)-w) > tol {
					t.Fatalf("y[%d] = %v, want %v", i, v, w)
				}
			}
		})
	}
}

func TestNNSkipLayerNorm(t *testing.T) {
	x := runtime.FromFloat32([]int64{1, 2, 4}, []float32{1, 2, 3, 4, -1, 0, 1, 2})
	skip := runtime.FromFloat32([]int64{1, 2, 4}, []float32{0, 1, 0, 1, 1, 1, 1, 1})
	gamma := runtime.FromFloat32([]int64{4}, []float32{1, 2, 1, 2})
	beta := runtime.FromFloat32([]int64{4}, []float32{0, 0, 1, 1})
	ins := []*runtime.Tensor{x, skip, gamma, beta}
	s, err := Open(nnOneNode("com.microsoft", "SkipLayerNormalization", ins, 1, graph.FloatAttr("epsilon", 1e-5)), runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Run(context.Background(), ins)
	if err != nil {
		t.Fatal(err)
	}
	got := out[0].Float32s()
	for r := 0; r < 2; r++ {
		var sum [4]float64
		var mean, ss float64
		for i := 0; i < 4; i++ {
			sum[i] = float64(x.Float32s()[r*4+i] + skip.Float32s()[r*4+i])
			mean += sum[i] / 4
		}
		for i := 0; i < 4; i++ {
			ss += (sum[i] - mean) * (sum[i] - mean) / 4
		}
		for i := 0; i < 4; i++ {
			w := (sum[i]-mean)/math.Sqrt(ss+1e-5)*float64(gamma.Float32s()[i]) + float64(beta.Float32s()[i])
			if math.Abs(float64(got[r*4+i])-w) > 1e-5 {
				t.Fatalf("y[%d,%d] = %v, want %v", r, i, got[r*4+i], w)
			}
		}
	}
}

func TestNNFusedConv(t *testing.T) {
	xs, ws := []int64{1, 2, 5, 5}, []int64{3, 2, 3, 3}
	x := make([]float32, 50)
	w := make([]float32, 54)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	for i := range w {
		w[i] = float32(i%5) - 2
	}
	want := nnNaiveConv2D(x, 1, 2, 5, 5, w, 3, 3, 3, nil, 1, 1, 1, 1, 1, 1, 1, 5, 5)
	m := nnConvModel(xs, ws, false, true, w, nil, graph.IntsAttr("pads", 1, 1, 1, 1), graph.StringAttr("activation", "Clip"), graph.FloatsAttr("activation_params", -4, 6))
	m.Graph.Nodes[0].OpType, m.Graph.Nodes[0].Domain = "FusedConv", "com.microsoft"
	m.SetOpset("com.microsoft", 1)
	s, err := Open(m, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Run(context.Background(), []*runtime.Tensor{runtime.FromFloat32(xs, x)})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range out[0].Float32s() {
		if w := min(max(want[i], -4), 6); v != w {
			t.Fatalf("y[%d] = %v, want %v", i, v, w)
		}
	}
}
