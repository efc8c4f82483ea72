package passes

import (
	"github.com/optictl/optictl/pkg/graph"
)

// tinfo is what static shape propagation knows about a value.
type tinfo struct {
	dt   graph.DType
	dims []int64 // valid when ok
	ok   bool
}

// staticShapes returns what is known about the main graph's values: the
// result of graph.InferShapes on a copy of the model (declared value infos,
// graph inputs with --shape applied) and the initializers. Values
// whose type is unknown are absent; ok is set only for fully static shapes.
func staticShapes(m *graph.Model) map[string]tinfo {
	g := m.Graph
	out := map[string]tinfo{}
	known := g.ValueInfoMap()
	c := m.Clone()
	if _, err := graph.InferShapes(c, graph.InferOptions{}); err == nil {
		known = c.Graph.ValueInfoMap()
	}
	for name, v := range known {
		if v.HasType && v.IsTensor() {
			ti := tinfo{dt: v.DType}
			if v.HasShape {
				ti.dims, ti.ok = v.Shape.Static()
			}
			out[name] = ti
		}
	}
	for _, t := range g.Initializers {
		if !g.IsGraphInput(t.Name) {
			out[t.Name] = tinfo{dt: t.DType, dims: t.Dims, ok: true}
		}
	}
	return out
}

func inputAt(n *graph.Node, i int) string {
	if i < len(n.Inputs) {
		return n.Inputs[i]
	}
	return ""
}

func broadcast(a, b []int64) ([]int64, bool) {
	if a == nil {
		return append([]int64{}, b...), true
	}
	n := max(len(a), len(b))
	out := make([]int64, n)
	for i := 0; i < n; i++ {
		x, y := int64(1), int64(1)
		if j := i - (n - len(a)); j >= 0 {
			x = a[j]
		}
		if j := i - (n - len(b)); j >= 0 {
			y = b[j]
		}
		switch {
		case x == y, y == 1:
			out[i] = x
		case x == 1:
			out[i] = y
		default:
			return nil, false
		}
	}
	return out, true
}

func validPerm(p []int64, rank int) bool {
	if len(p) != rank {
		return false
	}
	seen := make([]bool, rank)
	for _, v := range p {
		if v < 0 || v >= int64(rank) || seen[v] {
			return false
		}
		seen[v] = true
	}
	return true
}
