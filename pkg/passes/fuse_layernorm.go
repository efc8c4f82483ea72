package passes

// Written-out LayerNormalization.
//   Before: M = ReduceMean(X, axes=[-1]); D = Sub(X, M); P = Pow(D, 2) (or
//           Mul(D, D)); V = ReduceMean(P, axes=[-1]); E = Add(V, eps);
//           S = Sqrt(E); N = Div(D, S); G = Mul(N, gamma); Y = Add(G, beta)
//   After:  Y = LayerNormalization(X, gamma, beta){axis=-1, epsilon=eps}
// Preconditions: opset >= 17 (otherwise left); axes = [-1] (attribute or
// constant input) on both ReduceMeans with keepdims=1; eps a one-element
// constant; gamma and beta float32 constants of one dim; every intermediate
// read only inside the pattern (D by exactly the Pow/Mul and the Div) and
// not a graph output.
// Matching: pattern.MatchLayerNorm (shared with interp's open-time fusion).

import (
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/pattern"
)

var layerNorm = &Pass{
	Name:  "fuse-layernorm",
	Doc:   "Replace written-out layer normalization by LayerNormalization (opset >= 17).",
	Level: O2,
	Run: func(c *Context) (bool, error) {
		if c.Model.Opset("") < 17 {
			if c.Explaining() {
				c.Note("opset %d < 17: skipped", c.Model.Opset(""))
			}
			return false, nil
		}
		return runRule(c, rule[*pattern.LayerNorm]{
			Anchors: []string{"Div"},
			Match: func(c *Context, v *pattern.View, div *graph.Node) (*pattern.LayerNorm, *pattern.Mismatch) {
				return writtenLayerNorm(v, div)
			},
			Apply: func(c *Context, v *pattern.View, m *pattern.LayerNorm) []*graph.Node {
				g := c.Graph()
				out := m.Shift
				y := out.Outputs[0]
				*out = graph.Node{Name: g.UniqueName("LayerNorm_" + y), OpType: "LayerNormalization",
					Inputs: []string{m.X, m.Gamma, m.Beta}, Outputs: []string{y},
					Attrs: []*graph.Attr{graph.IntAttr("axis", -1), graph.FloatAttr("epsilon", float32(m.Eps))}}
				nodes := m.Nodes()
				return nodes[:len(nodes)-1]
			},
		}), nil
	},
}

// writtenLayerNorm matches the pattern of the file comment at its Div:
// pattern.MatchLayerNorm over the last axis, with gamma and beta vectors.
func writtenLayerNorm(v *pattern.View, div *graph.Node) (*pattern.LayerNorm, *pattern.Mismatch) {
	m, why := pattern.MatchLayerNorm(v, div)
	if why != nil {
		return nil, why
	}
	if m.Axis != -1 {
		return nil, missf(div, "normalizes over axis %d (want -1)", m.Axis)
	}
	if m.Scale == nil || m.Shift == nil {
		return nil, missf(div, "no constant scale (gamma) and shift (beta) follow")
	}
	_, gt := v.Float32s(m.Gamma)
	_, bt := v.Float32s(m.Beta)
	if len(gt.Dims) != 1 || len(bt.Dims) != 1 || gt.Dims[0] != bt.Dims[0] || gt.Dims[0] < 2 {
		return nil, missf(div, "gamma %v and beta %v are not vectors of one length >= 2", gt.Dims, bt.Dims)
	}
	return m, nil
}

// lnMatch is a written-out layer normalization over the last axis:
// Y = (X - mean) / sqrt(var + eps) * gamma + beta.
type lnMatch struct {
	x, gamma, beta string
	eps            float64
	inner          []*graph.Node // the nodes before out, all read only inside the pattern
	out            *graph.Node   // the final Add, whose output is Y
}

// matchWrittenLayerNorm is writtenLayerNorm for the ORT fusions.
func matchWrittenLayerNorm(v *pattern.View, div *graph.Node) (lnMatch, bool) {
	m, why := writtenLayerNorm(v, div)
	if why != nil {
		return lnMatch{}, false
	}
	nodes := m.Nodes()
	return lnMatch{x: m.X, gamma: m.Gamma, beta: m.Beta, eps: m.Eps, inner: nodes[:len(nodes)-1], out: m.Shift}, true
}

func otherInput(n *graph.Node, v string) string {
	if len(n.Inputs) != 2 {
		return ""
	}
	if n.Inputs[0] == v {
		return n.Inputs[1]
	}
	if n.Inputs[1] == v {
		return n.Inputs[0]
	}
	return ""
}
