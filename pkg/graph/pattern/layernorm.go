package pattern

import (
	"github.com/optictl/optictl/pkg/graph"
)

// LayerNorm is a written-out layer normalization around its Div:
//
//	M = ReduceMean(X, [k]); D = Sub(X, M); P = Pow(D, 2) (or Mul(D, D));
//	V = ReduceMean(P, [k]); E = Add(V, eps); S = Sqrt(E); N = Div(D, S);
//	[G = Mul(N, gamma)]; [Y = Add(G, beta)]
//
// with keepdims=1 on both ReduceMeans and the same single axis k. Gamma and
// beta are optional float32 constants of rank <= 1 (the matcher takes the
// Mul and the Add when their operand is one).
type LayerNorm struct {
	X, Gamma, Beta                        string
	Axis                                  int64
	Eps                                   float64
	Mean, Sub, Sq, Var, AddEps, Sqrt, Div *graph.Node
	Scale, Shift                          *graph.Node // nil when absent
}

// Nodes lists the pattern's nodes in dataflow order; the last produces Y.
func (m *LayerNorm) Nodes() []*graph.Node {
	out := []*graph.Node{m.Mean, m.Sub, m.Sq, m.Var, m.AddEps, m.Sqrt, m.Div}
	if m.Scale != nil {
		out = append(out, m.Scale)
	}
	if m.Shift != nil {
		out = append(out, m.Shift)
	}
	return out
}

// Out is the pattern's output Y.
func (m *LayerNorm) Out() string {
	n := m.Nodes()
	return n[len(n)-1].Outputs[0]
}

// ReduceAxis returns the single axis of a ReduceMean with keepdims=1, from
// its constant axes input (opset >= 18) or its axes attribute.
func ReduceAxis(v *View, n *graph.Node) (int64, bool) {
	if !n.Is("ReduceMean") || len(n.Inputs) == 0 || len(n.Outputs) != 1 || n.AttrInt("keepdims", 1) != 1 {
		return 0, false
	}
	axes := n.AttrInts("axes")
	if len(n.Inputs) > 1 && n.Inputs[1] != "" {
		t := v.Const(n.Inputs[1])
		if t == nil || t.DType != graph.Int64 {
			return 0, false
		}
		a, err := t.AsInt64s()
		if err != nil {
			return 0, false
		}
		axes = a
	}
	if len(axes) != 1 {
		return 0, false
	}
	return axes[0], true
}

// MatchLayerNorm matches the pattern around div.
func MatchLayerNorm(v *View, div *graph.Node) (*LayerNorm, *Mismatch) {
	if !div.Is("Div") || len(div.Inputs) != 2 || len(div.Outputs) != 1 {
		return nil, miss(div, "not a Div")
	}
	sub, sq := v.Producer(div.Inputs[0]), v.Producer(div.Inputs[1])
	if sub == nil || !sub.Is("Sub") || len(sub.Inputs) != 2 || sq == nil || !sq.Is("Sqrt") || len(sq.Inputs) != 1 {
		return nil, miss(div, "it does not divide a Sub by a Sqrt")
	}
	add := v.Producer(sq.Inputs[0])
	if add == nil || !add.Is("Add") || len(add.Inputs) != 2 {
		return nil, miss(div, "the Sqrt does not read an Add")
	}
	m := &LayerNorm{Sub: sub, Sqrt: sq, AddEps: add, Div: div}
	for i := 0; i < 2 && m.Var == nil; i++ {
		if p := v.Producer(add.Inputs[i]); p != nil && p.Is("ReduceMean") {
			if e, ok := v.Scalar(add.Inputs[1-i]); ok {
				m.Var, m.Eps = p, e
			}
		}
	}
	if m.Var == nil {
		return nil, miss(div, "%s does not add a constant epsilon to a ReduceMean", NodeName(add))
	}
	d := div.Inputs[0]
	pw := v.Producer(m.Var.Inputs[0])
	switch {
	case pw != nil && pw.Is("Pow") && len(pw.Inputs) == 2 && pw.Inputs[0] == d:
		if e, ok := v.Scalar(pw.Inputs[1]); !ok || e != 2 {
			return nil, miss(div, "%s is not a square", NodeName(pw))
		}
	case pw != nil && pw.Is("Mul") && len(pw.Inputs) == 2 && pw.Inputs[0] == d && pw.Inputs[1] == d:
	default:
		return nil, miss(div, "the variance is not the mean of (X-mean)² (Pow(D, 2) or Mul(D, D))")
	}
	m.Sq = pw
	mean := v.Producer(sub.Inputs[1])
	x := sub.Inputs[0]
	if mean == nil || !mean.Is("ReduceMean") || len(mean.Inputs) == 0 || mean.Inputs[0] != x {
		return nil, miss(div, "%s does not subtract the ReduceMean of its first input", NodeName(sub))
	}
	m.Mean, m.X = mean, x
	a1, ok1 := ReduceAxis(v, mean)
	a2, ok2 := ReduceAxis(v, m.Var)
	if !ok1 || !ok2 || a1 != a2 {
		return nil, miss(div, "the two ReduceMeans do not both keep dims over one same constant axis")
	}
	m.Axis = a1
	if v.Const(x) != nil {
		return nil, miss(div, "X (%s) is a constant", x)
	}
	// D is read by the square (once, or twice as Mul(D, D)) and the Div only.
	want := 2 + btoi(pw.Is("Mul"))
	if v.G.IsGraphOutput(d) || len(v.Consumers(d)) != want {
		return nil, miss(div, "X-mean (%s) is read outside the pattern", d)
	}
	for _, s := range []string{mean.Outputs[0], pw.Outputs[0], m.Var.Outputs[0], add.Outputs[0], sq.Outputs[0]} {
		if v.Sole(s) == nil {
			return nil, miss(div, "intermediate %s", v.readers(s))
		}
	}
	// Optional scale then shift by float32 constants of rank <= 1.
	y := div.Outputs[0]
	for _, op := range []string{"Mul", "Add"} {
		n := v.Sole(y)
		if n == nil || !n.Is(op) || len(n.Outputs) != 1 {
			continue
		}
		o := Other(n, y)
		if f, t := v.Float32s(o); f == nil || len(t.Dims) > 1 || len(f) == 0 {
			continue
		}
		if op == "Mul" {
			m.Scale, m.Gamma = n, o
		} else {
			m.Shift, m.Beta = n, o
		}
		y = n.Outputs[0]
	}
	return m, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
