package passes

// No-op elimination.
//   Before: Y = Identity(X)                          After: readers of Y read X
//   Before: Y = Dropout(X) (inference; mask unread)   After: readers of Y read X
//   Before: Y = Cast(X, to=dtype(X))                  After: readers of Y read X
//   Before: Y = Reshape(X, S), shape(Y) == shape(X)   After: readers of Y read X
//   Before: Y = Transpose(X, perm=[0,1,..,n-1])       After: readers of Y read X
//   Before: Y = Pad(X, pads=all zero)                 After: readers of Y read X
//   Before: Y = Expand(X, S), shape(Y) == shape(X)    After: readers of Y read X
//   Before: Y = Slice(X, ...) covering all of X       After: readers of Y read X
// Preconditions: default domain; constant parameters; static shapes where
// the rule compares shapes; Dropout's mask output unread and training_mode
// absent or constant false; when Y is a graph output, X must be produced by
// a node of the same graph (the producer is renamed to Y).

import (
	"github.com/optictl/optictl/pkg/graph"
)

var noops = &Pass{
	Name:  "eliminate-noops",
	Doc:   "Remove Identity, inference Dropout and Cast/Reshape/Transpose/Pad/Expand/Slice that do nothing.",
	Level: O1,
	Run: func(c *Context) (bool, error) {
		g := c.Graph()
		shapes := staticShapes(c.Model)
		ci := newConstIndex(g)
		cons := g.Consumers()
		dead := map[*graph.Node]bool{}
		for _, n := range g.Nodes {
			c.At(n)
			if isNoop(n, shapes, ci, cons, g) && bypass(g, n.Inputs[0], n.Outputs[0]) {
				dead[n] = true
			}
		}
		g.RemoveNodes(dead)
		return len(dead) > 0, nil
	},
}

func isNoop(n *graph.Node, shapes map[string]tinfo, ci *constIndex, cons map[string][]*graph.Node, g *graph.Graph) bool {
	if !n.IsDefaultDomain() || len(n.Inputs) == 0 || n.Inputs[0] == "" || len(n.Outputs) == 0 {
		return false
	}
	x, y := n.Inputs[0], n.Outputs[0]
	for _, o := range n.Outputs[1:] {
		if o != "" && (len(cons[o]) > 0 || g.IsGraphOutput(o)) {
			return false
		}
	}
	if g.IsGraphOutput(y) && g.IsGraphOutput(x) {
		return false
	}
	sameShape := func() bool {
		a, b := shapes[x], shapes[y]
		return a.ok && b.ok && equalInts(a.dims, b.dims)
	}
	switch n.OpType {
	case "Identity":
		return true
	case "Dropout":
		if len(n.Inputs) >= 3 && n.Inputs[2] != "" {
			t := ci.get(n.Inputs[2])
			if t == nil || t.Len() != 1 || t.Raw[0] != 0 {
				return false
			}
		}
		return true
	case "Cast":
		t, ok := shapes[x]
		return ok && t.dt != graph.Undefined && graph.DType(n.AttrInt("to", 0)) == t.dt
	case "Reshape":
		return sameShape()
	case "Expand":
		s, ok := intsConst(ci.get(inputAt(n, 1)))
		a := shapes[x]
		if !ok || !a.ok {
			return false
		}
		d, ok := broadcast(a.dims, s)
		return ok && equalInts(d, a.dims)
	case "Transpose":
		perm := n.AttrInts("perm")
		if perm == nil {
			// Default perm reverses dims: a no-op only for rank <= 1.
			a := shapes[x]
			return a.ok && len(a.dims) <= 1
		}
		for i, p := range perm {
			if p != int64(i) {
				return false
			}
		}
		return true
	case "Pad":
		var pads []int64
		if len(n.Inputs) >= 2 && n.Inputs[1] != "" {
			p, ok := intsConst(ci.get(n.Inputs[1]))
			if !ok {
				return false
			}
			pads = p
		} else {
			pads = n.AttrInts("pads")
		}
		if len(pads) == 0 {
			return false
		}
		for _, p := range pads {
			if p != 0 {
				return false
			}
		}
		return true
	case "Slice":
		a := shapes[x]
		if !a.ok || len(n.Inputs) < 3 {
			return false
		}
		return sameShape() && sliceIsFull(n, ci, a.dims)
	}
	return false
}

// sliceIsFull reports whether a Slice with constant starts/ends/axes/steps
// keeps every element in order.
func sliceIsFull(n *graph.Node, ci *constIndex, dims []int64) bool {
	starts, ok1 := intsConst(ci.get(inputAt(n, 1)))
	ends, ok2 := intsConst(ci.get(inputAt(n, 2)))
	if !ok1 || !ok2 || len(starts) != len(ends) {
		return false
	}
	axes := make([]int64, len(starts))
	for i := range axes {
		axes[i] = int64(i)
	}
	if inputAt(n, 3) != "" {
		a, ok := intsConst(ci.get(n.Inputs[3]))
		if !ok || len(a) != len(starts) {
			return false
		}
		axes = a
	}
	if inputAt(n, 4) != "" {
		s, ok := intsConst(ci.get(n.Inputs[4]))
		if !ok {
			return false
		}
		for _, v := range s {
			if v != 1 {
				return false
			}
		}
	}
	for i, ax := range axes {
		if ax < 0 {
			ax += int64(len(dims))
		}
		if ax < 0 || ax >= int64(len(dims)) {
			return false
		}
		st, en := starts[i], ends[i]
		if st < 0 {
			st += dims[ax]
		}
		if st > 0 {
			return false
		}
		if en < 0 {
			en += dims[ax]
		}
		if en < dims[ax] {
			return false
		}
	}
	return true
}
