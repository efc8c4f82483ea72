package distill

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	_ "github.com/optictl/optictl/pkg/runtime/interp"
)

func wave(n int, seed, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.Sin(float64(i)*0.91+seed) * scale)
	}
	return v
}

func prod(s []int64) int {
	n := 1
	for _, d := range s {
		n *= int(d)
	}
	return n
}

func f32(name string, dims []int64, seed, scale float64) *graph.Tensor {
	return graph.NewFloat32(name, dims, wave(prod(dims), seed, scale))
}

func constNode(out string, t *graph.Tensor) *graph.Node {
	t.Name = ""
	return &graph.Node{Name: out, OpType: "Constant", Outputs: []string{out}, Attrs: []*graph.Attr{graph.TensorAttr("value", t)}}
}

// opModel is x [in] → Mul(x, wx) ("a", so every op has a parameter before
// it) → nodes → y. wx has x's shape with batch 1.
func opModel(opset int64, in []int64, inits []*graph.Tensor, nodes ...*graph.Node) *graph.Model {
	pre := &graph.Node{Name: "pre", OpType: "Mul", Inputs: []string{"x", "wx"}, Outputs: []string{"a"}}
	wv := wave(prod(in), 0.3, 0.5)
	for i := range wv {
		wv[i]++
	}
	wx := graph.NewFloat32("wx", in, wv)
	g := &graph.Graph{
		Name:         "op",
		Inputs:       []*graph.ValueInfo{{Name: "x", DType: graph.Float, Shape: graph.ShapeOf(in), HasShape: true, HasType: true}},
		Outputs:      []*graph.ValueInfo{{Name: "y", DType: graph.Float, HasType: true}},
		Initializers: append([]*graph.Tensor{wx}, inits...),
		Nodes:        append([]*graph.Node{pre}, nodes...),
	}
	return &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Domain: "", Version: opset}}, Graph: g}
}

func nd(op string, ins, outs []string, attrs ...*graph.Attr) *graph.Node {
	return &graph.Node{Name: op + "_" + outs[0], OpType: op, Inputs: ins, Outputs: outs, Attrs: attrs}
}

type opCase struct {
	name string
	m    *graph.Model
	// frozen names float constants that must not be parameters.
	frozen []string
}

func opCases() []opCase {
	x4 := []int64{1, 2, 3, 3}
	s := func(v ...string) []string { return v }
	return []opCase{
		{name: "sigmoid", m: opModel(13, x4, nil, nd("Sigmoid", s("a"), s("y")))},
		{name: "tanh", m: opModel(13, x4, nil, nd("Tanh", s("a"), s("y")))},
		{name: "neg", m: opModel(13, x4, nil, nd("Neg", s("a"), s("y")))},
		{name: "sqrt", m: opModel(13, x4, []*graph.Tensor{graph.NewFloat32("one", nil, []float32{1})},
			nd("Mul", s("a", "a"), s("sq")), nd("Add", s("sq", "one"), s("p")), nd("Sqrt", s("p"), s("y")))},
		{name: "leakyrelu", m: opModel(13, x4, nil, nd("LeakyRelu", s("a"), s("y"), graph.FloatAttr("alpha", 0.2)))},
		{name: "clip attrs opset 9", m: opModel(9, x4, nil, nd("Clip", s("a"), s("y"), graph.FloatAttr("min", -0.5), graph.FloatAttr("max", 0.7)))},
		{name: "relu6 constant inputs", m: opModel(13, x4, []*graph.Tensor{graph.NewFloat32("four", nil, []float32{4}), graph.NewFloat32("hi", nil, []float32{6})},
			nd("Mul", s("a", "four"), s("b")), constNode("lo", graph.NewFloat32("", nil, []float32{0})), nd("Clip", s("b", "lo", "hi"), s("y"))), frozen: s("lo", "hi")},
		{name: "clip min only", m: opModel(13, x4, []*graph.Tensor{graph.NewFloat32("lo", nil, []float32{-0.2})},
			nd("Clip", s("a", "lo", ""), s("y"))), frozen: s("lo")},
		{name: "hardsigmoid", m: opModel(9, x4, nil, nd("HardSigmoid", s("a"), s("y"), graph.FloatAttr("alpha", 0.9), graph.FloatAttr("beta", 0.4)))},
		{name: "hardswish", m: opModel(14, x4, []*graph.Tensor{graph.NewFloat32("four", nil, []float32{4})},
			nd("Mul", s("a", "four"), s("b")), nd("HardSwish", s("b"), s("y")))},
		{name: "sub mul div broadcast", m: opModel(13, x4, []*graph.Tensor{f32("c", []int64{2, 1, 1}, 1, 1), f32("r", []int64{3}, 2, 0.5), graph.NewFloat32("two", []int64{1}, []float32{2})},
			nd("Sub", s("c", "a"), s("d")), nd("Mul", s("d", "r"), s("e")), nd("Add", s("r", "two"), s("q")), nd("Div", s("e", "q"), s("f")), nd("Mul", s("a", "a"), s("aa")), nd("Add", s("aa", "two"), s("den")), nd("Div", s("f", "den"), s("y")))},
		{name: "max min broadcast and variadic", m: opModel(13, x4, []*graph.Tensor{f32("c", []int64{2, 1, 1}, 1, 1), f32("r", []int64{3}, 2, 0.5)},
			nd("Max", s("a", "c"), s("b")), nd("Min", s("b", "r", "a"), s("d")), nd("Max", s("d"), s("y")))},
		{name: "dropout", m: opModel(12, x4, nil, nd("Dropout", s("a"), s("y")))},
		{name: "softmax opset 13", m: opModel(13, []int64{1, 6}, nil, nd("Softmax", s("a"), s("y")))},
		{name: "softmax opset 11 axis 1", m: opModel(11, []int64{1, 5}, nil, nd("Softmax", s("a"), s("y"), graph.IntAttr("axis", 1)))},
		{name: "softmax rank 4 last axis", m: opModel(13, x4, nil, nd("Softmax", s("a"), s("y"), graph.IntAttr("axis", 3)))},
		{name: "globalaveragepool", m: opModel(13, []int64{1, 3, 4, 5}, nil, nd("GlobalAveragePool", s("a"), s("y")))},
		{name: "averagepool 2x2 floor", m: opModel(13, []int64{1, 2, 5, 6}, nil, nd("AveragePool", s("a"), s("y"), graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2)))},
		{name: "averagepool 1x3", m: opModel(11, []int64{1, 2, 4, 6}, nil, nd("AveragePool", s("a"), s("y"), graph.IntsAttr("kernel_shape", 1, 3), graph.IntsAttr("strides", 1, 3), graph.IntsAttr("pads", 0, 0, 0, 0)))},
		{name: "concat", m: opModel(13, x4, []*graph.Tensor{f32("p", []int64{1, 3, 1}, 1, 1), f32("q", []int64{1, 3, 2}, 2, 1)},
			nd("Sigmoid", s("a"), s("b")),
			nd("Concat", s("a", "b"), s("c"), graph.IntAttr("axis", 1)),
			nd("Concat", s("p", "q"), s("pq"), graph.IntAttr("axis", -1)),
			nd("Add", s("c", "pq"), s("y")))},
		{name: "broadcast over three axes", m: opModel(13, []int64{1, 2, 3, 4}, []*graph.Tensor{f32("r", []int64{4}, 1, 1)},
			nd("Mul", s("a", "r"), s("y")))},
		{name: "reshaped parameter first operand", m: opModel(13, []int64{1, 2, 3}, []*graph.Tensor{f32("p", []int64{6}, 1, 1), f32("q", []int64{1, 2, 3}, 2, 1), graph.NewInt64("shp", []int64{3}, []int64{1, 2, 3})},
			nd("Reshape", s("p", "shp"), s("r")), nd("Mul", s("r", "q"), s("rq")), nd("Add", s("a", "rq"), s("y")))},
		{name: "lifted parameter first operand", m: opModel(13, []int64{1, 2, 3}, []*graph.Tensor{f32("p", []int64{2, 3}, 1, 1), f32("q", []int64{1, 2, 3}, 2, 1), f32("t", []int64{1, 3, 2}, 3, 1)},
			nd("Sub", s("p", "q"), s("pq")), nd("Transpose", s("t"), s("tt"), graph.IntsAttr("perm", 0, 2, 1)), nd("Div", s("tt", "q"), s("tq")),
			nd("Add", s("a", "pq"), s("b")), nd("Add", s("b", "tq"), s("y")))},
		{name: "transpose", m: opModel(13, []int64{1, 2, 3, 4}, []*graph.Tensor{f32("r", []int64{2}, 1, 1)},
			nd("Transpose", s("a"), s("t"), graph.IntsAttr("perm", 0, 3, 1, 2)), nd("Transpose", s("t"), s("u"), graph.IntsAttr("perm", 0, 1, 3, 2)),
			nd("Mul", s("u", "r"), s("y")))},
		{name: "squeeze unsqueeze opset 11", m: opModel(11, []int64{1, 3, 1, 4}, nil,
			nd("Squeeze", s("a"), s("b"), graph.IntsAttr("axes", 2)), nd("Unsqueeze", s("b"), s("y"), graph.IntsAttr("axes", 1, -1)))},
		{name: "squeeze unsqueeze opset 13", m: opModel(13, []int64{1, 3, 1, 4}, []*graph.Tensor{graph.NewInt64("ax", []int64{1}, []int64{-2}), graph.NewInt64("ux", []int64{2}, []int64{3, 1})},
			nd("Squeeze", s("a", "ax"), s("b")), nd("Unsqueeze", s("b", "ux"), s("y")))},
		{name: "grouped conv", m: opModel(13, []int64{1, 4, 5, 5}, []*graph.Tensor{f32("w", []int64{6, 2, 3, 3}, 1, 0.4), f32("b", []int64{6}, 2, 0.2)},
			nd("Conv", s("a", "w", "b"), s("y"), graph.IntAttr("group", 2), graph.IntsAttr("kernel_shape", 3, 3), graph.IntsAttr("pads", 1, 1, 1, 1)))},
		{name: "depthwise conv stride 2", m: opModel(13, []int64{1, 3, 6, 6}, []*graph.Tensor{f32("w", []int64{3, 1, 3, 3}, 1, 0.5)},
			nd("Conv", s("a", "w"), s("y"), graph.IntAttr("group", 3), graph.IntsAttr("strides", 2, 2), graph.IntsAttr("pads", 1, 1, 1, 1)))},
		{name: "batchnorm", m: opModel(9, []int64{1, 3, 4, 4}, []*graph.Tensor{f32("w", []int64{3, 3, 1, 1}, 1, 0.6), f32("sc", []int64{3}, 2, 0.5), f32("bi", []int64{3}, 3, 0.3), graph.NewFloat32("var", []int64{3}, []float32{0.5, 1.5, 2})},
			nd("Conv", s("a", "w"), s("c")), constNode("mean", graph.NewFloat32("", []int64{3}, []float32{0.1, -0.2, 0.3})),
			nd("BatchNormalization", s("c", "sc", "bi", "mean", "var"), s("y"), graph.FloatAttr("epsilon", 1e-3))), frozen: s("mean", "var")},
	}
}

func opSamples(m *graph.Model, n int) [][]*runtime.Tensor {
	in := make([]int64, len(m.Graph.Inputs[0].Shape))
	for i, d := range m.Graph.Inputs[0].Shape {
		in[i] = d.Size
	}
	var out [][]*runtime.Tensor
	for i := 0; i < n; i++ {
		out = append(out, []*runtime.Tensor{runtime.FromFloat32(in, wave(prod(in), float64(i)*1.7, 1.5))})
	}
	return out
}

func interpRun(t *testing.T, m *graph.Model, samples [][]*runtime.Tensor) [][]*runtime.Tensor {
	t.Helper()
	s, err := runtime.Open("interp", m, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out [][]*runtime.Tensor
	for _, in := range samples {
		res, err := s.Run(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		// copies: a session may reuse its output buffers
		out = append(out, []*runtime.Tensor{runtime.FromFloat32(append([]int64(nil), res[0].Shape...), append([]float32(nil), res[0].Float32s()...))})
	}
	return out
}

func forwardBatch(t *testing.T, m *graph.Model, samples [][]*runtime.Tensor) (*Net, [][]float32) {
	t.Helper()
	net, err := Build(m, len(samples))
	if err != nil {
		t.Fatal(err)
	}
	var in []float32
	for _, s := range samples {
		in = append(in, s[0].Float32s()...)
	}
	res, err := net.Forward([][]float32{in})
	if err != nil {
		t.Fatal(err)
	}
	per := len(res[0]) / len(samples)
	out := make([][]float32, len(samples))
	for i := range out {
		out[i] = res[0][i*per : (i+1)*per]
	}
	return net, out
}

func closeTo(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel+rel*math.Abs(want)
}

// TestOpsForwardAndGradients checks every op Build supports beyond the
// basic CNN set: the gorgonia forward pass equals interp (batch 3), the
// constants that must stay constant are not parameters, and the gradient
// of an MSE loss through the op equals central finite differences.
func TestOpsForwardAndGradients(t *testing.T) {
	for _, tc := range opCases() {
		t.Run(tc.name, func(t *testing.T) {
			samples := opSamples(tc.m, 3)
			want := interpRun(t, tc.m, samples)
			net, got := forwardBatch(t, tc.m, samples)
			for i := range got {
				w := want[i][0].Float32s()
				if len(got[i]) != len(w) {
					t.Fatalf("sample %d: %d values, interp %d", i, len(got[i]), len(w))
				}
				for j := range w {
					if !closeTo(float64(got[i][j]), float64(w[j]), 1e-4) {
						t.Fatalf("sample %d value %d: gorgonia %g, interp %g", i, j, got[i][j], w[j])
					}
				}
			}
			for _, p := range net.Params {
				if slices.Contains(tc.frozen, p.Name) {
					t.Errorf("%s is a parameter, want a constant", p.Name)
				}
			}
			if !slices.ContainsFunc(net.Params, func(p *Param) bool { return p.Name == "wx" }) {
				t.Fatalf("wx is not a parameter: %d params", len(net.Params))
			}
			// The teacher: interp outputs shifted, so the loss is not zero.
			teacher := make([][]*runtime.Tensor, len(want))
			for i, w := range want {
				v := append([]float32(nil), w[0].Float32s()...)
				for k := range v {
					v[k] += float32(math.Cos(float64(k+i))) * 0.3
				}
				teacher[i] = []*runtime.Tensor{runtime.FromFloat32(w[0].Shape, v)}
			}
			checkGradients(t, tc.m, samples, teacher, LossMSE)
		})
	}
}

func checkGradients(t *testing.T, m *graph.Model, samples, teacher [][]*runtime.Tensor, loss string) {
	t.Helper()
	idx := make([]int, len(samples))
	for i := range idx {
		idx[i] = i
	}
	o := Options{Epochs: 1, Batch: len(samples), LR: 1e-3, Temperature: 2, Workers: 1}
	tr, err := newTrainer(m, o, lossesOf(loss, o), true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	p := tr.parts[0]
	eval := func() (float64, [][]float32) { return lossAndGrads(t, tr, idx, samples, teacher, nil) }
	l0, grads := eval()
	if !(l0 > 0) {
		t.Fatalf("loss %g, want > 0", l0)
	}
	nonzero := 0
	for i, prm := range p.net.Params {
		w := prm.Node.Value().Data().([]float32)
		for _, k := range []int{0, len(w) / 2, len(w) - 1} {
			const h = 1e-3
			old := w[k]
			w[k] = old + h
			up, _ := eval()
			w[k] = old - h
			down, _ := eval()
			w[k] = old
			num := (up - down) / (2 * h)
			an := float64(grads[i][k])
			if math.Abs(num-an) > 2e-3+3e-2*math.Abs(an) {
				t.Errorf("d loss / d %s[%d]: analytic %g, finite differences %g", prm.Name, k, an, num)
			}
			if math.Abs(an) > 1e-4 {
				nonzero++
			}
		}
	}
	if nonzero == 0 {
		t.Error("every checked gradient is zero: the check proves nothing")
	}
}

func TestOpRefusals(t *testing.T) {
	x4 := []int64{1, 2, 4, 4}
	s := func(v ...string) []string { return v }
	for _, tc := range []struct {
		name string
		m    *graph.Model
		want string
	}{
		{"softmax inner axis", opModel(13, x4, nil, nd("Softmax", s("a"), s("y"), graph.IntAttr("axis", 1))), "only the last axis"},
		{"softmax opset 11 default axis on rank 4", opModel(11, x4, nil, nd("Softmax", s("a"), s("y"))), "only the last axis"},
		{"overlapping average pool", opModel(13, x4, nil, nd("AveragePool", s("a"), s("y"), graph.IntsAttr("kernel_shape", 3, 3), graph.IntsAttr("strides", 1, 1))), "stride = kernel"},
		{"padded average pool", opModel(13, x4, nil, nd("AveragePool", s("a"), s("y"), graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2), graph.IntsAttr("pads", 1, 1, 1, 1))), "no padding only"},
		{"transpose batch", opModel(13, x4, nil, nd("Transpose", s("a"), s("y"), graph.IntsAttr("perm", 1, 0, 2, 3))), "batch"},
		{"dropout mask", opModel(12, x4, nil, nd("Dropout", s("a"), s("d", "mask")), nd("Add", s("d", "mask"), s("y"))), `"mask" is not computed`},
		{"shape arithmetic", opModel(13, x4, nil, nd("Shape", s("a"), s("sh")), nd("Reshape", s("a", "sh"), s("y"))), "fold the shape arithmetic"},
		{"batchnorm with a computed mean", opModel(9, x4, []*graph.Tensor{f32("sc", []int64{2}, 1, 1), f32("bi", []int64{2}, 2, 1), f32("v", []int64{2}, 3, 1)},
			nd("GlobalAveragePool", s("a"), s("g")), nd("BatchNormalization", s("a", "sc", "bi", "g", "v"), s("y"))), "must be a float32 constant"},
		{"clip computed bound", opModel(13, x4, nil, nd("Clip", s("a", "a"), s("y"))), "must be a float32 constant"},
		{"group mismatch", opModel(13, x4, []*graph.Tensor{f32("w", []int64{4, 1, 3, 3}, 1, 1)}, nd("Conv", s("a", "w"), s("y"), graph.IntAttr("group", 3))), "group 3"},
		{"unknown op", opModel(13, x4, nil, nd("Erf", s("a"), s("y"))), "op Erf is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(tc.m, 2)
			if err == nil || !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrUnsupported containing %q", err, tc.want)
			}
		})
	}
}

// TestBatchNormTrainsScaleAndBiasOnly trains the BatchNormalization case a
// few steps: scale and bias change, mean (a Constant node) and var (an
// initializer) are written back unchanged, and the written model runs on
// interp like the gorgonia forward pass of the trained weights.
func TestBatchNormTrainsScaleAndBiasOnly(t *testing.T) {
	var m *graph.Model
	for _, tc := range opCases() {
		if tc.name == "batchnorm" {
			m = tc.m
		}
	}
	samples := opSamples(m, 4)
	teacher := interpRun(t, m, samples)
	for _, tt := range teacher {
		v := tt[0].Float32s()
		for k := range v {
			v[k] = v[k]*1.2 + 0.1
		}
	}
	tr, err := newTrainer(m, Options{Epochs: 1, Batch: 4, LR: 1e-2, Workers: 1}, lossesOf(LossMSE, Options{}), true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	for s := 0; s < 3; s++ {
		if _, err := tr.step([]int{0, 1, 2, 3}, samples, teacher, nil); err != nil {
			t.Fatal(err)
		}
	}
	out := m.Clone()
	if err := tr.master().WriteBack(out); err != nil {
		t.Fatal(err)
	}
	floats := func(g *graph.Model, name string) []float32 {
		for _, in := range g.Graph.Initializers {
			if in.Name == name {
				f, _ := in.Float32s()
				return f
			}
		}
		for _, n := range g.Graph.Nodes {
			if n.Is("Constant") && n.Outputs[0] == name {
				f, _ := n.AttrTensor("value").Float32s()
				return f
			}
		}
		t.Fatalf("no tensor %q", name)
		return nil
	}
	for _, tc := range []struct {
		name    string
		trained bool
	}{{"sc", true}, {"bi", true}, {"w", true}, {"mean", false}, {"var", false}} {
		if got := !slices.Equal(floats(out, tc.name), floats(m, tc.name)); got != tc.trained {
			t.Errorf("%s changed: %v, want %v", tc.name, got, tc.trained)
		}
	}
	want := interpRun(t, out, samples)
	_, got := forwardBatch(t, out, samples)
	for i := range got {
		for j, w := range want[i][0].Float32s() {
			if !closeTo(float64(got[i][j]), float64(w), 1e-4) {
				t.Fatalf("written model: sample %d value %d: gorgonia %g, interp %g", i, j, got[i][j], w)
			}
		}
	}
}
