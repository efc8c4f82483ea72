package pattern

import (
	"fmt"
	"math"

	"github.com/optictl/optictl/pkg/graph"
)

// View is what matchers read of a graph: who produces and reads each value,
// and which values are constants. Its indexes are built once (NewView);
// a caller that rewrites the graph calls Refresh before matching again.
type View struct {
	G *graph.Graph
	// ConstOf returns the value of a constant (an initializer that cannot
	// be overridden, a Constant node, or what the caller has folded), or
	// nil when name is not a constant.
	ConstOf func(name string) *graph.Tensor
	// OpsetOf returns the model's opset for a domain ("" the default one).
	OpsetOf func(domain string) int64

	prod map[string]*graph.Node
	cons map[string][]*graph.Node
}

// NewView indexes g.
func NewView(g *graph.Graph, constOf func(string) *graph.Tensor, opsetOf func(string) int64) *View {
	v := &View{G: g, ConstOf: constOf, OpsetOf: opsetOf}
	v.Refresh()
	return v
}

// Refresh rebuilds the producer and consumer indexes after a rewrite.
func (v *View) Refresh() {
	v.prod = v.G.Producers()
	v.cons = v.G.Consumers()
}

// Producer returns the node that produces name, or nil.
func (v *View) Producer(name string) *graph.Node {
	if name == "" {
		return nil
	}
	return v.prod[name]
}

// Consumers lists the nodes reading name: once per input slot, and once
// for a node whose subgraphs read it (graph.Graph.Consumers).
func (v *View) Consumers(name string) []*graph.Node { return v.cons[name] }

// Sole returns the only reader of name when it is read by one node in one
// input slot, not from a subgraph, and is not a graph output; else nil.
func (v *View) Sole(name string) *graph.Node {
	if name == "" || v.G.IsGraphOutput(name) {
		return nil
	}
	c := v.cons[name]
	if len(c) != 1 {
		return nil
	}
	k := 0
	for _, in := range c[0].Inputs {
		if in == name {
			k++
		}
	}
	if k != 1 {
		return nil
	}
	return c[0]
}

// Const returns name's constant value, or nil.
func (v *View) Const(name string) *graph.Tensor {
	if name == "" || v.ConstOf == nil {
		return nil
	}
	return v.ConstOf(name)
}

// Opset returns the model's opset for domain.
func (v *View) Opset(domain string) int64 {
	if v.OpsetOf == nil {
		return 0
	}
	return v.OpsetOf(domain)
}

// Scalar returns the value of a one-element float constant of rank at
// most 1.
func (v *View) Scalar(name string) (float64, bool) {
	t := v.Const(name)
	if t == nil || t.Len() != 1 || len(t.Dims) > 1 || !t.DType.IsFloat() || t.Raw == nil {
		return 0, false
	}
	f, err := t.AsFloat64s()
	if err != nil || len(f) != 1 {
		return 0, false
	}
	return f[0], true
}

// Float32s returns the data of a float32 constant, or nil.
func (v *View) Float32s(name string) ([]float32, *graph.Tensor) {
	t := v.Const(name)
	if t == nil || t.DType != graph.Float {
		return nil, nil
	}
	f, err := t.Float32s()
	if err != nil || int64(len(f)) != t.Len() {
		return nil, nil
	}
	return f, t
}

// Other returns the input of binary node n that is not name ("" when n is
// not binary or reads name in both or neither slot).
func Other(n *graph.Node, name string) string {
	if len(n.Inputs) != 2 {
		return ""
	}
	switch {
	case n.Inputs[0] == name && n.Inputs[1] != name:
		return n.Inputs[1]
	case n.Inputs[1] == name && n.Inputs[0] != name:
		return n.Inputs[0]
	}
	return ""
}

// Near reports whether a is within rel (relative) of b.
func Near(a, b, rel float64) bool { return math.Abs(a-b) <= rel*math.Abs(b) }

// Mismatch says why a candidate node did not match a pattern.
type Mismatch struct {
	Node   *graph.Node // the candidate (the node the matcher started from)
	Reason string
}

func (m *Mismatch) Error() string { return NodeName(m.Node) + ": " + m.Reason }

// NodeName is a node's name, or op type and first output when unnamed.
func NodeName(n *graph.Node) string {
	if n == nil {
		return "?"
	}
	if n.Name != "" {
		return n.Name
	}
	if len(n.Outputs) > 0 {
		return n.OpType + "(" + n.Outputs[0] + ")"
	}
	return n.OpType
}

func miss(n *graph.Node, format string, args ...any) *Mismatch {
	return &Mismatch{Node: n, Reason: fmt.Sprintf(format, args...)}
}

// readers says, for a reason, how name is read when it is not read once.
func (v *View) readers(name string) string {
	if v.G.IsGraphOutput(name) {
		return fmt.Sprintf("%s is a graph output", name)
	}
	return fmt.Sprintf("%s has %d readers", name, len(v.cons[name]))
}
