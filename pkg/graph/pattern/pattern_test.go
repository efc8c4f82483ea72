package pattern

import (
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
)

// scalar and vec build constant tensors for the test graphs.
func scalar(name string, v float32) *graph.Tensor { return graph.NewFloat32(name, nil, []float32{v}) }
func vec(name string, v ...float32) *graph.Tensor {
	return graph.NewFloat32(name, []int64{int64(len(v))}, v)
}

// view indexes a graph whose initializers are its constants (opset 13).
func view(nodes []*graph.Node, outputs []string, inits ...*graph.Tensor) *View {
	g := &graph.Graph{Name: "t", Nodes: nodes, Initializers: inits,
		Inputs: []*graph.ValueInfo{{Name: "x"}}}
	for _, o := range outputs {
		g.Outputs = append(g.Outputs, &graph.ValueInfo{Name: o})
	}
	byName := map[string]*graph.Tensor{}
	for _, t := range inits {
		byName[t.Name] = t
	}
	return NewView(g, func(n string) *graph.Tensor { return byName[n] }, func(string) int64 { return 13 })
}

func node(op string, in []string, out ...string) *graph.Node {
	return &graph.Node{Name: op + "_" + out[0], OpType: op, Inputs: in, Outputs: out}
}

func geluNodes(extra ...*graph.Node) []*graph.Node {
	return append([]*graph.Node{
		node("Div", []string{"x", "sqrt2"}, "t"),
		node("Erf", []string{"t"}, "e"),
		node("Add", []string{"e", "one"}, "a"),
		node("Mul", []string{"x", "a"}, "m"),
		node("Mul", []string{"m", "half"}, "y"),
	}, extra...)
}

func TestMatchers(t *testing.T) {
	geluConsts := []*graph.Tensor{scalar("sqrt2", 1.41421356), scalar("one", 1), scalar("half", 0.5)}
	hsConsts := []*graph.Tensor{scalar("three", 3), scalar("zero", 0), scalar("six", 6)}
	hs := func(scaleOp string) []*graph.Node {
		return []*graph.Node{
			node("Add", []string{"x", "three"}, "a"),
			node("Clip", []string{"a", "zero", "six"}, "c"),
			node("Mul", []string{"x", "c"}, "m"),
			node(scaleOp, []string{"m", "six"}, "y"),
		}
	}
	ln := func(sq *graph.Node) []*graph.Node {
		return []*graph.Node{
			{Name: "mean", OpType: "ReduceMean", Inputs: []string{"x"}, Outputs: []string{"mu"}, Attrs: []*graph.Attr{graph.IntsAttr("axes", -1)}},
			node("Sub", []string{"x", "mu"}, "d"),
			sq,
			{Name: "var", OpType: "ReduceMean", Inputs: []string{"p"}, Outputs: []string{"v"}, Attrs: []*graph.Attr{graph.IntsAttr("axes", -1)}},
			node("Add", []string{"v", "eps"}, "ve"),
			node("Sqrt", []string{"ve"}, "s"),
			node("Div", []string{"d", "s"}, "n"),
			node("Mul", []string{"n", "gamma"}, "gn"),
			node("Add", []string{"gn", "beta"}, "y"),
		}
	}
	lnConsts := []*graph.Tensor{scalar("two", 2), scalar("eps", 1e-5), vec("gamma", 1, 2), vec("beta", 0, 1)}
	tests := []struct {
		name    string
		v       *View
		anchor  string // op type of the candidate
		match   func(v *View, n *graph.Node) *Mismatch
		wantWhy string // "" means it must match
	}{
		{"gelu", view(geluNodes(), []string{"y"}, geluConsts...), "Erf", geluM, ""},
		{"gelu erf output read twice", view(geluNodes(node("Neg", []string{"e"}, "z")), []string{"y", "z"}, geluConsts...), "Erf", geluM, "not read by one Add alone"},
		{"gelu wrong constant", view(geluNodes(), []string{"y"}, scalar("sqrt2", 1.5), scalar("one", 1), scalar("half", 0.5)), "Erf", geluM, "does not divide by √2"},
		{"gelu x constant", view(geluNodes(), []string{"y"}, append(geluConsts, scalar("x", 1))...), "Erf", geluM, "X (x) is a constant"},
		{"hardswish div", view(hs("Div"), []string{"y"}, hsConsts...), "Clip", hsM, ""},
		{"hardswish clip output is a graph output", view(hs("Div"), []string{"y", "c"}, hsConsts...), "Clip", hsM, "c is a graph output"},
		{"hardswish no constant add", view(hs("Div"), []string{"y"}, scalar("zero", 0), scalar("six", 6)), "Clip", hsM, "adds no constant scalar"},
		{"layernorm pow", view(ln(node("Pow", []string{"d", "two"}, "p")), []string{"y"}, lnConsts...), "Div", lnM, ""},
		{"layernorm mul square", view(ln(node("Mul", []string{"d", "d"}, "p")), []string{"y"}, lnConsts...), "Div", lnM, ""},
		{"layernorm cube", view(ln(node("Pow", []string{"d", "eps"}, "p")), []string{"y"}, lnConsts...), "Div", lnM, "is not a square"},
		{"layernorm d is an output", view(ln(node("Pow", []string{"d", "two"}, "p")), []string{"y", "d"}, lnConsts...), "Div", lnM, "read outside the pattern"},
		{"matmul add", view([]*graph.Node{node("MatMul", []string{"x", "w"}, "z"), node("Add", []string{"z", "b"}, "y")}, []string{"y"},
			graph.NewFloat32("w", []int64{2, 2}, []float32{1, 2, 3, 4}), vec("b", 1, 2)), "Add", mmM, ""},
		{"matmul weight not constant", view([]*graph.Node{node("MatMul", []string{"x", "w"}, "z"), node("Add", []string{"z", "b"}, "y")}, []string{"y"},
			vec("b", 1, 2)), "Add", mmM, "weight w is not a 2-D float32 constant"},
		{"matmul output read twice", view([]*graph.Node{node("MatMul", []string{"x", "w"}, "z"), node("Add", []string{"z", "b"}, "y")}, []string{"y", "z"},
			graph.NewFloat32("w", []int64{2, 2}, []float32{1, 2, 3, 4}), vec("b", 1, 2)), "Add", mmM, "z is a graph output"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cand *graph.Node
			for _, n := range tc.v.G.Nodes {
				if n.OpType == tc.anchor && cand == nil {
					cand = n
				}
			}
			if tc.anchor == "Add" || tc.anchor == "Div" {
				// The last Add (MatMul+bias) / the only Div.
				for _, n := range tc.v.G.Nodes {
					if n.OpType == tc.anchor {
						cand = n
					}
				}
				if tc.anchor == "Div" {
					cand = tc.v.Producer("n")
				}
			}
			why := tc.match(tc.v, cand)
			switch {
			case tc.wantWhy == "" && why != nil:
				t.Fatalf("no match: %v", why)
			case tc.wantWhy != "" && why == nil:
				t.Fatalf("matched, want %q", tc.wantWhy)
			case why != nil && (!strings.Contains(why.Error(), tc.wantWhy) || why.Node != cand):
				t.Fatalf("reason %q (node %s), want %q at %s", why, NodeName(why.Node), tc.wantWhy, NodeName(cand))
			}
		})
	}
}

func geluM(v *View, n *graph.Node) *Mismatch {
	m, why := MatchGelu(v, n)
	if why == nil && (m.X != "x" || m.Last().Outputs[0] != "y" || len(m.Nodes()) != 5) {
		return miss(n, "bad match %+v", m)
	}
	return why
}

func hsM(v *View, n *graph.Node) *Mismatch {
	m, why := MatchHardSwish(v, n)
	if why == nil && (m.X != "x" || m.A != 3 || !m.Div || m.D != 6 || m.Out() != "y" || !m.Bounds.HasHi || m.Bounds.Hi != 6) {
		return miss(n, "bad match %+v", m)
	}
	return why
}

func lnM(v *View, n *graph.Node) *Mismatch {
	m, why := MatchLayerNorm(v, n)
	if why == nil && (m.X != "x" || m.Axis != -1 || m.Gamma != "gamma" || m.Beta != "beta" || m.Out() != "y" || m.Eps != float64(float32(1e-5))) {
		return miss(n, "bad match %+v", m)
	}
	return why
}

func mmM(v *View, n *graph.Node) *Mismatch {
	m, why := MatchMatMulAdd(v, n)
	if why == nil && (m.X != "x" || m.W != "w" || m.Bias != "b") {
		return miss(n, "bad match %+v", m)
	}
	return why
}

func TestPerChannel(t *testing.T) {
	tests := []struct {
		name string
		t    *graph.Tensor
		want int // number of values, 0 for nil
	}{
		{"scalar", scalar("s", 2), 3},
		{"[1,M,1,1]", graph.NewFloat32("c", []int64{1, 3, 1, 1}, []float32{1, 2, 3}), 3},
		{"[M,1,1]", graph.NewFloat32("c", []int64{3, 1, 1}, []float32{1, 2, 3}), 3},
		{"[M] broadcasts on W", graph.NewFloat32("c", []int64{3}, []float32{1, 2, 3}), 0},
		{"rank too high", graph.NewFloat32("c", []int64{1, 1, 3, 1, 1}, []float32{1, 2, 3}), 0},
		{"int64", graph.NewInt64("c", []int64{1}, []int64{1}), 0},
	}
	for _, tc := range tests {
		if got := PerChannel(tc.t, 3, 2); len(got) != tc.want {
			t.Errorf("%s: %d values, want %d", tc.name, len(got), tc.want)
		}
	}
}

func TestConvFollowerAndBN(t *testing.T) {
	w := graph.NewFloat32("w", []int64{2, 1, 1, 1}, []float32{1, 2})
	bn := func(extra ...string) *graph.Node {
		return &graph.Node{Name: "bn", OpType: "BatchNormalization", Inputs: []string{"c", "s", "b", "m", "v"}, Outputs: append([]string{"y"}, extra...)}
	}
	params := []*graph.Tensor{vec("s", 1, 1), vec("b", 0, 0), vec("m", 0, 0), vec("v", 1, 1)}
	tests := []struct {
		name    string
		nodes   []*graph.Node
		outputs []string
		inits   []*graph.Tensor
		wantWhy string
	}{
		{"folds", []*graph.Node{node("Conv", []string{"x", "w"}, "c"), bn()}, []string{"y"}, append(params, w), ""},
		{"conv output read twice", []*graph.Node{node("Conv", []string{"x", "w"}, "c"), bn(), node("Relu", []string{"c"}, "r")}, []string{"y", "r"}, append(params, w), "c has 2 readers"},
		{"weight not constant", []*graph.Node{node("Conv", []string{"x", "w"}, "c"), bn()}, []string{"y"}, params, "weight w is not a float32 constant"},
		{"training output used", []*graph.Node{node("Conv", []string{"x", "w"}, "c"), bn("rm"), node("Relu", []string{"rm"}, "r")}, []string{"y", "r"}, append(params, w), "training output rm is used"},
		{"wrong length", []*graph.Node{node("Conv", []string{"x", "w"}, "c"), bn()}, []string{"y"}, append([]*graph.Tensor{vec("s", 1, 1, 1), vec("b", 0, 0), vec("m", 0, 0), vec("v", 1, 1)}, w), "parameter s is not a float32 constant of 2 values"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := view(tc.nodes, tc.outputs, tc.inits...)
			f := tc.nodes[1]
			cf, why := MatchConvFollower(v, f)
			if why == nil {
				_, why = InferenceBN(v, f, cf.M)
			}
			switch {
			case tc.wantWhy == "" && why != nil:
				t.Fatalf("no match: %v", why)
			case tc.wantWhy != "" && (why == nil || !strings.Contains(why.Reason, tc.wantWhy)):
				t.Fatalf("reason %v, want %q", why, tc.wantWhy)
			}
		})
	}
}

func TestActivation(t *testing.T) {
	tests := []struct {
		name  string
		n     *graph.Node
		inits []*graph.Tensor
		kind  string // "" for a mismatch
		lo    float64
		hasHi bool
	}{
		{"relu", node("Relu", []string{"x"}, "y"), nil, "Relu", 0, false},
		{"clip both", node("Clip", []string{"x", "lo", "hi"}, "y"), []*graph.Tensor{scalar("lo", -1), scalar("hi", 1)}, "Clip", -1, true},
		{"clip lo only", node("Clip", []string{"x", "lo"}, "y"), []*graph.Tensor{scalar("lo", -2)}, "Clip", -2, false},
		{"clip bound not constant", node("Clip", []string{"x", "x"}, "y"), nil, "", 0, false},
		{"clip bound rank 2", node("Clip", []string{"x", "lo"}, "y"), []*graph.Tensor{graph.NewFloat32("lo", []int64{1, 1}, []float32{0})}, "", 0, false},
		{"softmax", node("Softmax", []string{"x"}, "y"), nil, "", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := view([]*graph.Node{tc.n}, []string{"y"}, tc.inits...)
			a, why := Activation(v, tc.n)
			if tc.kind == "" {
				if why == nil {
					t.Fatalf("matched %+v", a)
				}
				return
			}
			if why != nil || a.Kind != tc.kind || a.Clip.Lo != tc.lo || a.Clip.HasHi != tc.hasHi {
				t.Fatalf("got %+v, %v", a, why)
			}
		})
	}
}
