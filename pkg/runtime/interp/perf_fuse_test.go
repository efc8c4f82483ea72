package interp

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// perfWithout runs fn with *flag set to false.
func perfWithout(flag *bool, fn func()) {
	old := *flag
	*flag = false
	defer func() { *flag = old }()
	fn()
}

// perfRun opens m, runs it twice (the second run reuses buffers) and
// returns the outputs of the second run and the number of run-time steps.
func perfRun(t *testing.T, m *graph.Model, threads int, ins []*runtime.Tensor) ([]*runtime.Tensor, int) {
	t.Helper()
	s, err := Open(m, runtime.Options{Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	var out []*runtime.Tensor
	for run := 0; run < 2; run++ {
		if out, err = s.Run(context.Background(), ins); err != nil {
			t.Fatal(err)
		}
	}
	cp := make([]*runtime.Tensor, len(out))
	for i, o := range out {
		cp[i] = o.Clone()
	}
	return cp, len(s.prog.steps)
}

// TestPerfDirectConv compares the direct stride-1 path with the naive
// reference and with the im2col path, over edge shapes, with the assembly
// kernel and with the portable fallback.
func TestPerfDirectConv(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	cases := []struct {
		name                  string
		N, C, H, W, M, KH, KW int
		G, dh, dw             int
		pt, pl, pb, pr        int
		bias                  bool
		threads               int
	}{
		{"mnist1_5x5_pad2", 1, 1, 28, 28, 8, 5, 5, 1, 1, 1, 2, 2, 2, 2, true, 1},
		{"mnist2_5x5_pad2", 1, 8, 14, 14, 16, 5, 5, 1, 1, 1, 2, 2, 2, 2, true, 1},
		{"3x3_odd_M", 2, 3, 9, 11, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, true, 1},
		{"3x3_no_pad", 1, 4, 7, 13, 6, 3, 3, 1, 1, 1, 0, 0, 0, 0, false, 2},
		{"asym_pads", 1, 3, 10, 9, 7, 3, 2, 1, 1, 1, 0, 2, 1, 0, true, 1},
		{"dilated", 1, 4, 12, 12, 4, 3, 3, 1, 2, 3, 2, 3, 2, 3, true, 2},
		{"grouped", 2, 8, 10, 10, 12, 3, 3, 4, 1, 1, 1, 1, 1, 1, true, 2},
		{"one_row_1xN", 1, 2, 1, 37, 3, 1, 3, 1, 1, 1, 0, 1, 0, 1, true, 1},
		{"column_Nx1", 1, 2, 19, 1, 5, 3, 1, 1, 1, 1, 1, 0, 1, 0, false, 1},
		{"K_over_block", 1, 40, 8, 8, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, true, 2},
		{"pad_only_1x1", 1, 5, 6, 6, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, 1},
		{"big_pads", 1, 2, 3, 4, 3, 3, 3, 1, 1, 1, 3, 4, 2, 3, true, 1},
		{"left_lt_right", 1, 3, 6, 9, 4, 3, 4, 1, 1, 1, 1, 0, 0, 3, true, 1},
		{"right_only_dilated", 2, 2, 5, 11, 3, 2, 3, 1, 1, 2, 0, 0, 1, 4, false, 1},
		{"left_only", 1, 2, 4, 10, 5, 2, 3, 1, 1, 1, 1, 2, 0, 0, true, 1},
		{"wide_tiles_threads", 1, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, true, 2},
	}
	for _, tc := range cases {
		x := nnRandF32(r, tc.N*tc.C*tc.H*tc.W)
		w := nnRandF32(r, tc.M*(tc.C/tc.G)*tc.KH*tc.KW)
		var b []float32
		if tc.bias {
			b = nnRandF32(r, tc.M)
		}
		OH := (tc.H + tc.pt + tc.pb - ((tc.KH-1)*tc.dh + 1)) + 1
		OW := (tc.W + tc.pl + tc.pr - ((tc.KW-1)*tc.dw + 1)) + 1
		want := nnNaiveConv2D(x, tc.N, tc.C, tc.H, tc.W, w, tc.M, tc.KH, tc.KW, b, tc.G, 1, 1, tc.dh, tc.dw, tc.pt, tc.pl, OH, OW)
		xs := []int64{int64(tc.N), int64(tc.C), int64(tc.H), int64(tc.W)}
		ws := []int64{int64(tc.M), int64(tc.C / tc.G), int64(tc.KH), int64(tc.KW)}
		m := nnConvModel(xs, ws, tc.bias, true, w, b,
			graph.IntAttr("group", int64(tc.G)),
			graph.IntsAttr("dilations", int64(tc.dh), int64(tc.dw)),
			graph.IntsAttr("pads", int64(tc.pt), int64(tc.pl), int64(tc.pb), int64(tc.pr)))
		ins := []*runtime.Tensor{runtime.FromFloat32(xs, x)}
		perfCheckConvPath(t, tc.name, m, tc.threads, ins, want, &perfDirectOn, "direct and im2col")
	}
}

// TestPerfDirectFits checks that the direct path declines shapes it does
// not handle or whose padded image would be absurd.
func TestPerfDirectFits(t *testing.T) {
	base := func() nnGeom {
		g := nnGeom{nd: 2}
		g.in[0], g.in[1], g.out[0], g.out[1] = 8, 8, 8, 8
		g.k[0], g.k[1], g.s[0], g.s[1], g.d[0], g.d[1] = 3, 3, 1, 1, 1, 1
		g.pb[0], g.pb[1], g.pe[0], g.pe[1] = 1, 1, 1, 1
		return g
	}
	cases := []struct {
		name string
		edit func(g *nnGeom)
		want bool
	}{
		{"3x3_s1", func(g *nnGeom) {}, true},
		{"stride2", func(g *nnGeom) { g.s[1] = 2 }, false},
		{"stride_h2", func(g *nnGeom) { g.s[0] = 2 }, false},
		{"pointwise", func(g *nnGeom) { g.k[0], g.k[1], g.pb, g.pe = 1, 1, [nnMaxND]int{}, [nnMaxND]int{} }, false},
		{"3d", func(g *nnGeom) { g.nd = 3 }, false},
		{"absurd_pads", func(g *nnGeom) { g.pb[0], g.pe[0], g.pb[1], g.pe[1] = 1<<30, 1<<30, 1<<30, 1<<30 }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := base()
			tc.edit(&g)
			if got := perfDirectFits(&g, 4, 4); got != tc.want {
				t.Fatalf("perfDirectFits = %v, want %v", got, tc.want)
			}
		})
	}
}

// perfGraph builds a one-input model: X float32[xs] feeding nodes; inits
// are float32 initializers, consts become Constant nodes placed after the
// first node (so the fusion must look them up ahead of the schedule).
type perfGraph struct {
	g  *graph.Graph
	op int64
}

func newPerfGraph(xs []int64, opset int64) *perfGraph {
	g := &graph.Graph{Name: "perf"}
	g.Inputs = append(g.Inputs, &graph.ValueInfo{Name: "X", DType: graph.Float, HasShape: true, Shape: graph.ShapeOf(xs)})
	return &perfGraph{g: g, op: opset}
}

func (p *perfGraph) init(name string, shape []int64, v []float32) *perfGraph {
	p.g.Initializers = append(p.g.Initializers, graph.NewFloat32(name, shape, v))
	return p
}

func (p *perfGraph) constant(name string, shape []int64, v []float32) *perfGraph {
	t := graph.NewFloat32(name, shape, v)
	p.g.Nodes = append(p.g.Nodes, &graph.Node{OpType: "Constant", Outputs: []string{name},
		Attrs: []*graph.Attr{{Name: "value", Type: graph.AttrTensor, T: t}}})
	return p
}

func (p *perfGraph) node(op string, ins []string, out string, attrs ...*graph.Attr) *perfGraph {
	p.g.Nodes = append(p.g.Nodes, &graph.Node{Name: out + "_node", OpType: op, Inputs: ins, Outputs: []string{out}, Attrs: attrs})
	return p
}

func (p *perfGraph) model(outs ...string) *graph.Model {
	for _, o := range outs {
		p.g.Outputs = append(p.g.Outputs, &graph.ValueInfo{Name: o, DType: graph.Float})
	}
	m := &graph.Model{IRVersion: 8, Graph: p.g}
	m.SetOpset("", p.op)
	return m
}

// TestPerfFuse compares fused Conv chains with the unfused schedule and
// checks which chains fuse (by the number of run-time steps).
func TestPerfFuse(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	const C, M = 3, 6
	xs := []int64{2, C, 7, 9}
	ws := []int64{M, C, 3, 3}
	pads := graph.IntsAttr("pads", 1, 1, 1, 1)
	pos := func(n int) []float32 {
		v := nnRandF32(r, n)
		for i := range v {
			v[i] = float32(math.Abs(float64(v[i]))) + 0.5
		}
		return v
	}
	bn := func(p *perfGraph, in, out string) *perfGraph {
		return p.init(out+"_s", []int64{M}, nnRandF32(r, M)).init(out+"_b", []int64{M}, nnRandF32(r, M)).
			init(out+"_m", []int64{M}, nnRandF32(r, M)).init(out+"_v", []int64{M}, pos(M)).
			node("BatchNormalization", []string{in, out + "_s", out + "_b", out + "_m", out + "_v"}, out, graph.FloatAttr("epsilon", 1e-3))
	}
	conv := func(opset int64, bias bool, attrs ...*graph.Attr) *perfGraph {
		p := newPerfGraph(xs, opset).init("W", ws, nnRandF32(r, nnNumel(ws)))
		in := []string{"X", "W"}
		if bias {
			p.init("B", []int64{M}, nnRandF32(r, M))
			in = append(in, "B")
		}
		return p.node("Conv", in, "c", append([]*graph.Attr{pads}, attrs...)...)
	}
	hswish := func(p *perfGraph, in, out, last string) *perfGraph {
		p.constant("three", nil, []float32{3}).constant("six", []int64{1}, []float32{6})
		p.node("Add", []string{in, "three"}, out+"_a").node("Clip", []string{out + "_a"}, out+"_c",
			graph.FloatAttr("min", 0), graph.FloatAttr("max", 6))
		p.node("Mul", []string{out + "_c", in}, out+"_m")
		return p.node(last, []string{out + "_m", "six"}, out)
	}
	cases := []struct {
		name  string
		m     *graph.Model
		steps int // run-time steps with fusion (without: one per non-constant node)
	}{
		{"conv_bn_relu", bn(conv(13, false), "c", "bn").node("Relu", []string{"bn"}, "y").model("y"), 1},
		{"conv_bias_bn_relu_strided", bn(conv(13, true, graph.IntsAttr("strides", 2, 1)), "c", "bn").node("Relu", []string{"bn"}, "y").model("y"), 1},
		{"conv_add_channel_clip11", conv(13, true).init("ab", []int64{1, M, 1, 1}, nnRandF32(r, M)).
			init("lo", nil, []float32{-0.2}).init("hi", nil, []float32{0.3}).
			node("Add", []string{"ab", "c"}, "a").node("Clip", []string{"a", "lo", "hi"}, "y").model("y"), 1},
		{"conv_add_scalar_leaky", conv(13, false).init("s", []int64{1}, []float32{0.25}).
			node("Add", []string{"c", "s"}, "a").node("LeakyRelu", []string{"a"}, "y", graph.FloatAttr("alpha", 0.1)).model("y"), 1},
		{"conv_hardsigmoid", conv(13, true).node("HardSigmoid", []string{"c"}, "y").model("y"), 1},
		// GEMM paths (strided im2col, pointwise) with non-clamp activations.
		{"strided_sigmoid", conv(13, true, graph.IntsAttr("strides", 2, 2)).node("Sigmoid", []string{"c"}, "y").model("y"), 1},
		{"strided_clip6", conv(10, true, graph.IntsAttr("strides", 1, 2)).node("Clip", []string{"c"}, "y",
			graph.FloatAttr("min", 0), graph.FloatAttr("max", 0.5)).model("y"), 1},
		{"pointwise_bn_sigmoid", func() *graph.Model {
			p := newPerfGraph(xs, 13).init("W", []int64{M, C, 1, 1}, nnRandF32(r, M*C))
			p.node("Conv", []string{"X", "W"}, "c")
			return bn(p, "c", "bn").node("Sigmoid", []string{"bn"}, "y").model("y")
		}(), 1},
		{"pointwise_bias_relu", func() *graph.Model {
			p := newPerfGraph(xs, 13).init("W", []int64{M, C, 1, 1}, nnRandF32(r, M*C)).init("B", []int64{M}, nnRandF32(r, M))
			return p.node("Conv", []string{"X", "W", "B"}, "c").node("Relu", []string{"c"}, "y").model("y")
		}(), 1},
		{"conv_hardswish_op", conv(14, true).node("HardSwish", []string{"c"}, "y").model("y"), 1},
		{"conv_sigmoid_tanh", conv(13, true).node("Sigmoid", []string{"c"}, "s").node("Tanh", []string{"s"}, "y").model("y"), 2},
		{"conv_bn_hardswish_div_opset10", hswish(bn(conv(10, false), "c", "bn"), "bn", "y", "Div").model("y"), 1},
		{"conv_hardswish_mul", hswish(conv(10, true), "c", "y", "Mul").model("y"), 1},
		{"conv_bn_dwise", func() *graph.Model {
			p := newPerfGraph(xs, 13).init("W", []int64{C, 1, 3, 3}, nnRandF32(r, C*9))
			p.node("Conv", []string{"X", "W"}, "c", pads, graph.IntAttr("group", C))
			bn2 := func(p *perfGraph) *perfGraph {
				return p.init("s", []int64{C}, nnRandF32(r, C)).init("b", []int64{C}, nnRandF32(r, C)).
					init("m", []int64{C}, nnRandF32(r, C)).init("v", []int64{C}, pos(C)).
					node("BatchNormalization", []string{"c", "s", "b", "m", "v"}, "bn")
			}
			return bn2(p).node("Relu", []string{"bn"}, "y").model("y")
		}(), 1},
		// Not fused: the Conv output is also a graph output.
		{"conv_out_is_graph_output", conv(13, true).node("Relu", []string{"c"}, "y").model("y", "c"), 2},
		// Not fused: two consumers (Relu and Add).
		{"two_consumers", conv(13, true).node("Relu", []string{"c"}, "r").node("Add", []string{"r", "c"}, "y").model("y"), 3},
		// BN after the activation cannot fold: Conv+Relu fuse, BN stays.
		{"relu_then_bn", bn(conv(13, true).node("Relu", []string{"c"}, "r"), "r", "y").model("y"), 2},
		// Add of a full-shape constant is not a bias.
		{"add_full_tensor", conv(13, true).init("f", []int64{1, M, 7, 9}, nnRandF32(r, M*63)).
			node("Add", []string{"c", "f"}, "a").node("Relu", []string{"a"}, "y").model("y"), 3},
		// Add of a constant that broadcasts to a higher rank changes the shape.
		{"add_rank_up", conv(13, true).init("f", []int64{1, 1, 1, 1, 1}, []float32{1}).
			node("Add", []string{"c", "f"}, "y").model("y"), 2},
		// BN in training mode is not folded.
		{"bn_training", func() *graph.Model {
			p := conv(14, true)
			p = bn(p, "c", "y")
			p.g.Nodes[len(p.g.Nodes)-1].Attrs = append(p.g.Nodes[len(p.g.Nodes)-1].Attrs, graph.IntAttr("training_mode", 1))
			return p.model("y")
		}(), 2},
	}
	x := runtime.FromFloat32(xs, nnRandF32(r, nnNumel(xs)))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fused, steps := perfRun(t, tc.m, 1, []*runtime.Tensor{x})
			var plain []*runtime.Tensor
			perfWithout(&perfFuseOn, func() { plain, _ = perfRun(t, tc.m, 1, []*runtime.Tensor{x}) })
			if steps != tc.steps {
				t.Errorf("%d run-time steps with fusion, want %d", steps, tc.steps)
			}
			for i := range plain {
				if err := nnCompare(fused[i], plain[i], 1e-4, 1e-5); err != nil {
					t.Fatalf("output %d: fused and unfused differ: %v", i, err)
				}
			}
		})
	}
}

// TestPerfActKernels compares the vectorised activation loops with the
// portable ones (NaN included) over lengths around the vector width.
func TestPerfActKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	nan := float32(math.NaN())
	same := func(a, b float32) bool { return a == b || a != a && b != b }
	for _, n := range []int{0, 1, 7, 8, 9, 16, 31, 40} {
		src := nnRandF32(r, n)
		for i := range src {
			src[i] *= 8
		}
		if n > 3 {
			src[3] = nan
		}
		cases := []struct {
			name       string
			fast, port func(y []float32)
		}{
			{"clamp", func(y []float32) { perfClamp(y, -1, 2) }, func(y []float32) { perfClampGo(y, -1, 2) }},
			{"relu", func(y []float32) { perfClamp(y, 0, float32(math.Inf(1))) }, func(y []float32) { perfClampGo(y, 0, float32(math.Inf(1))) }},
			{"bias_clamp_inplace", func(y []float32) { perfBiasClamp(y, y, 0.5, 0, 3) },
				func(y []float32) { perfBiasClampGo(y, y, 0.5, 0, 3) }},
			{"bias_clamp", func(y []float32) { perfBiasClamp(y, append([]float32(nil), y...), 0.5, 0, 3) },
				func(y []float32) { perfBiasClampGo(y, append([]float32(nil), y...), 0.5, 0, 3) }},
			{"hardswish_div", func(y []float32) { perfHardSwish(y, 3, 0, 6, 6, true) }, func(y []float32) { perfHardSwishGo(y, 3, 0, 6, 6, true) }},
			{"hardswish_mul", func(y []float32) { perfHardSwish(y, 3, 0, 6, 1.0/6, false) }, func(y []float32) { perfHardSwishGo(y, 3, 0, 6, 1.0/6, false) }},
		}
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/%d", tc.name, n), func(t *testing.T) {
				a, b := append([]float32(nil), src...), append([]float32(nil), src...)
				tc.fast(a)
				tc.port(b)
				for i := range a {
					if !same(a[i], b[i]) {
						t.Fatalf("y[%d] = %g, portable %g (x = %g)", i, a[i], b[i], src[i])
					}
				}
			})
		}
	}
}

// TestPerfMaxPoolNaN checks that the branch-free MaxPool keeps "NaN never
// wins" semantics.
func TestPerfMaxPoolNaN(t *testing.T) {
	nan := float32(math.NaN())
	xs := []int64{1, 1, 2, 4}
	x := []float32{1, nan, 5, 2, nan, nan, -3, 7}
	m := newPerfGraph(xs, 13).node("MaxPool", []string{"X"}, "y",
		graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2)).model("y")
	out, _ := perfRun(t, m, 1, []*runtime.Tensor{runtime.FromFloat32(xs, x)})
	got := out[0].Float32s()
	want := []float32{1, 7}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("y = %v, want %v", got, want)
		}
	}
}

// TestPerfConvNoAllocs asserts that a fused Conv+BN+Relu → MaxPool model
// (direct and im2col paths) allocates nothing per Run.
func TestPerfConvNoAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	xs := []int64{1, 4, 16, 16}
	p := newPerfGraph(xs, 13).init("W", []int64{8, 4, 3, 3}, nnRandF32(r, 8*36)).init("B", []int64{8}, nnRandF32(r, 8)).
		node("Conv", []string{"X", "W", "B"}, "c", graph.IntsAttr("pads", 1, 1, 1, 1)).
		node("Relu", []string{"c"}, "r").
		init("W2", []int64{8, 8, 3, 3}, nnRandF32(r, 8*72)).
		node("Conv", []string{"r", "W2"}, "c2", graph.IntsAttr("strides", 2, 2)).
		node("MaxPool", []string{"c2"}, "y", graph.IntsAttr("kernel_shape", 2, 2))
	m := p.model("y")
	s, err := Open(m, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	ins := []*runtime.Tensor{runtime.FromFloat32(xs, nnRandF32(r, nnNumel(xs)))}
	if _, err := s.Run(context.Background(), ins); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := s.Run(context.Background(), ins); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Run, want 0", allocs)
	}
}

// TestPerfChanBinary compares the per-channel broadcast fast path with the
// ew kernels (bit-identical) over operand orders, ranks and batch sizes,
// including shapes it must leave to the ew kernel.
func TestPerfChanBinary(t *testing.T) {
	r := rand.New(rand.NewPCG(61, 62))
	cases := []struct {
		name   string
		as, bs []int64
	}{
		{"se_scale", []int64{1, 6, 5, 7}, []int64{1, 6, 1, 1}},
		{"scale_first", []int64{1, 6, 1, 1}, []int64{1, 6, 5, 7}},
		{"batch_channel", []int64{3, 4, 2, 5}, []int64{3, 4, 1, 1}},
		{"batch_only", []int64{3, 4, 2, 5}, []int64{3, 1, 1, 1}},
		{"lower_rank", []int64{2, 4, 3, 3}, []int64{4, 1, 1}},
		{"scalar", []int64{2, 4, 6}, []int64{1}},
		{"rank3", []int64{2, 5, 9}, []int64{1, 5, 1}},
		{"rank5", []int64{1, 3, 2, 2, 2}, []int64{1, 3, 1, 1, 1}},
		{"not_per_channel", []int64{1, 4, 3, 3}, []int64{1, 1, 3, 3}},
		{"both_broadcast", []int64{1, 4, 1, 1}, []int64{1, 1, 3, 3}},
		{"same_shape", []int64{1, 4, 3, 3}, []int64{1, 4, 3, 3}},
		{"tiny_inner", []int64{1, 4, 1, 2}, []int64{1, 4, 1, 1}},
	}
	for _, tc := range cases {
		for _, op := range []string{"Add", "Sub", "Mul", "Div"} {
			t.Run(tc.name+"/"+op, func(t *testing.T) {
				g := &graph.Graph{Name: "bin"}
				g.Inputs = []*graph.ValueInfo{{Name: "A", DType: graph.Float}, {Name: "B", DType: graph.Float}}
				g.Nodes = []*graph.Node{{OpType: op, Inputs: []string{"A", "B"}, Outputs: []string{"Y"}}}
				g.Outputs = []*graph.ValueInfo{{Name: "Y", DType: graph.Float}}
				m := &graph.Model{IRVersion: 8, Graph: g}
				m.SetOpset("", 13)
				ins := []*runtime.Tensor{runtime.FromFloat32(tc.as, nnRandF32(r, nnNumel(tc.as))),
					runtime.FromFloat32(tc.bs, nnRandF32(r, nnNumel(tc.bs)))}
				fast, _ := perfRun(t, m, 1, ins)
				var plain []*runtime.Tensor
				perfWithout(&perfChanOn, func() { plain, _ = perfRun(t, m, 1, ins) })
				if !fast[0].Equal(plain[0]) {
					t.Fatalf("fast path %v differs from the ew kernel %v", fast[0].Shape, plain[0].Shape)
				}
			})
		}
	}
}

// TestPerfDepthwise compares the padded-plane depthwise path with the naive
// reference and the row-wise path, with and without the assembly kernel.
func TestPerfDepthwise(t *testing.T) {
	r := rand.New(rand.NewPCG(71, 72))
	cases := []struct {
		name               string
		N, C, H, W, KH, KW int
		sh, dh, dw         int
		pt, pl, pb, pr     int
		bias               bool
		threads            int
	}{
		{"3x3_s1_w8", 1, 4, 6, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, true, 1},
		{"3x3_s21_w96", 1, 8, 24, 96, 3, 3, 2, 1, 1, 1, 1, 1, 1, true, 2},
		{"5x5_s21_w12", 2, 5, 7, 12, 5, 5, 2, 1, 1, 2, 2, 2, 2, true, 1},
		{"5x5_s1_w24", 1, 3, 6, 24, 5, 5, 1, 1, 1, 2, 2, 2, 2, false, 1},
		{"odd_w_tail", 1, 3, 5, 37, 3, 3, 1, 1, 1, 1, 1, 1, 1, true, 1},
		{"dilated_asym", 1, 2, 9, 21, 3, 3, 1, 2, 2, 0, 3, 2, 1, true, 1},
		{"no_pad_1xk", 1, 2, 4, 30, 1, 7, 1, 1, 1, 0, 0, 0, 0, true, 1},
		{"kx1_tall", 1, 2, 11, 9, 4, 1, 3, 1, 1, 1, 0, 2, 0, false, 2},
	}
	for _, tc := range cases {
		x := nnRandF32(r, tc.N*tc.C*tc.H*tc.W)
		w := nnRandF32(r, tc.C*tc.KH*tc.KW)
		var b []float32
		if tc.bias {
			b = nnRandF32(r, tc.C)
		}
		OH := (tc.H+tc.pt+tc.pb-((tc.KH-1)*tc.dh+1))/tc.sh + 1
		OW := tc.W + tc.pl + tc.pr - ((tc.KW-1)*tc.dw + 1) + 1
		want := nnNaiveConv2D(x, tc.N, tc.C, tc.H, tc.W, w, tc.C, tc.KH, tc.KW, b, tc.C, tc.sh, 1, tc.dh, tc.dw, tc.pt, tc.pl, OH, OW)
		xs := []int64{int64(tc.N), int64(tc.C), int64(tc.H), int64(tc.W)}
		ws := []int64{int64(tc.C), 1, int64(tc.KH), int64(tc.KW)}
		m := nnConvModel(xs, ws, tc.bias, true, w, b, graph.IntAttr("group", int64(tc.C)),
			graph.IntsAttr("strides", int64(tc.sh), 1), graph.IntsAttr("dilations", int64(tc.dh), int64(tc.dw)),
			graph.IntsAttr("pads", int64(tc.pt), int64(tc.pl), int64(tc.pb), int64(tc.pr)))
		ins := []*runtime.Tensor{runtime.FromFloat32(xs, x)}
		perfCheckConvPath(t, tc.name, m, tc.threads, ins, want, &perfDWOn, "padded-plane and row-wise paths")
	}
}

// TestPerfMaxPool compares the two-pass MaxPool with the per-window loop
// over pads, strides, ceil mode, odd sizes and NaNs.
func TestPerfMaxPool(t *testing.T) {
	r := rand.New(rand.NewPCG(81, 82))
	cases := []struct {
		name   string
		xs     []int64
		attrs  []*graph.Attr
		nanPos []int
	}{
		{"2x2_s2", []int64{1, 3, 28, 28}, []*graph.Attr{graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2)}, nil},
		{"3x3_s3", []int64{1, 2, 14, 14}, []*graph.Attr{graph.IntsAttr("kernel_shape", 3, 3), graph.IntsAttr("strides", 3, 3)}, nil},
		{"3x3_s2_pad_ceil", []int64{2, 2, 9, 11}, []*graph.Attr{graph.IntsAttr("kernel_shape", 3, 3), graph.IntsAttr("strides", 2, 2),
			graph.IntsAttr("pads", 1, 1, 1, 1), graph.IntAttr("ceil_mode", 1)}, nil},
		{"asym_2x3_s1", []int64{1, 1, 7, 13}, []*graph.Attr{graph.IntsAttr("kernel_shape", 2, 3), graph.IntsAttr("pads", 0, 2, 1, 0)}, nil},
		{"nans_2x2_vector", []int64{1, 2, 4, 22}, []*graph.Attr{graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2)},
			[]int{0, 1, 22, 23, 4, 27, 30, 31, 52, 53, 74, 75, 100}},
		{"2x2_odd_width", []int64{1, 2, 7, 35}, []*graph.Attr{graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2)}, nil},
		{"nans", []int64{1, 1, 6, 10}, []*graph.Attr{graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2)}, []int{0, 1, 10, 11, 5, 27, 33}},
		// Short rows take the window-by-window path, four windows at a time.
		{"3x3_s3_nans_short", []int64{1, 2, 15, 15}, []*graph.Attr{graph.IntsAttr("kernel_shape", 3, 3), graph.IntsAttr("strides", 3, 3)},
			[]int{0, 1, 2, 15, 16, 17, 30, 31, 32, 50, 100, 224, 225 + 4, 300}},
		{"2x2_s1_short", []int64{1, 3, 5, 12}, []*graph.Attr{graph.IntsAttr("kernel_shape", 2, 2)}, []int{7}},
		{"3x2_s2_pad_short", []int64{1, 1, 9, 14}, []*graph.Attr{graph.IntsAttr("kernel_shape", 3, 2), graph.IntsAttr("strides", 2, 2),
			graph.IntsAttr("pads", 1, 1, 1, 1)}, []int{20}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			x := nnRandF32(r, nnNumel(tc.xs))
			for _, p := range tc.nanPos {
				x[p] = float32(math.NaN())
			}
			m := newPerfGraph(tc.xs, 13).node("MaxPool", []string{"X"}, "y", tc.attrs...).model("y")
			ins := []*runtime.Tensor{runtime.FromFloat32(tc.xs, x)}
			fast, _ := perfRun(t, m, 1, ins)
			var plain []*runtime.Tensor
			perfWithout(&perfPoolOn, func() { plain, _ = perfRun(t, m, 1, ins) })
			if !fast[0].Equal(plain[0]) {
				t.Fatalf("two-pass MaxPool %v differs from the window loop %v", fast[0].Float32s(), plain[0].Float32s())
			}
		})
	}
}

// TestPerfSum checks the vectorised sum (GlobalAveragePool) against a
// float64 sum over lengths around its block size.
func TestPerfSum(t *testing.T) {
	r := rand.New(rand.NewPCG(91, 92))
	for _, n := range []int{0, 1, 31, 32, 33, 64, 100, 1000} {
		x := nnRandF32(r, n)
		var want float64
		for _, v := range x {
			want += float64(v)
		}
		if got := perfSum(x); math.Abs(float64(got)-want) > 1e-5*(1+math.Abs(want))*float64(max(n, 1)) {
			t.Errorf("n=%d: perfSum = %g, want %g", n, got, want)
		}
	}
}

// perfCheckConvPath runs m with the fast path switched on by *toggle and
// off, with the assembly kernels and with their portable fallbacks: the
// fast result must match want (a naive reference) and the slow path.
func perfCheckConvPath(t *testing.T, name string, m *graph.Model, threads int, ins []*runtime.Tensor, want []float32, toggle *bool, what string) {
	t.Helper()
	for _, fallback := range []bool{false, true} {
		t.Run(fmt.Sprintf("%s/fallback=%v", name, fallback), func(t *testing.T) {
			if restore := perfFallbackToggle(fallback); restore != nil {
				defer restore()
			} else if fallback {
				t.Skip("no assembly kernels in this build")
			}
			fast, _ := perfRun(t, m, threads, ins)
			var slow []*runtime.Tensor
			perfWithout(toggle, func() { slow, _ = perfRun(t, m, threads, ins) })
			got := fast[0].Float32s()
			if len(got) != len(want) {
				t.Fatalf("%d outputs, want %d", len(got), len(want))
			}
			for i, v := range got {
				if math.Abs(float64(v-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("y[%d] = %g, want %g", i, v, want[i])
				}
			}
			if err := nnCompare(fast[0], slow[0], 1e-5, 1e-5); err != nil {
				t.Fatalf("%s differ: %v", what, err)
			}
		})
	}
}
