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

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
)

var layerNorm = &Pass{
	Name:  "fuse-layernorm",
	Doc:   "Replace written-out layer normalization by LayerNormalization (opset >= 17).",
	Level: O2,
	Run: func(c *Context) (bool, error) {
		if c.Model.Opset("") < 17 {
			return false, nil
		}
		g := c.Graph()
		prod := g.Producers()
		cons := g.Consumers()
		ci := newConstIndex(g)
		dead := map[*graph.Node]bool{}
		for _, div := range g.Nodes {
			if dead[div] {
				continue
			}
			c.At(div)
			m, ok := matchWrittenLayerNorm(g, prod, cons, ci, div)
			if !ok {
				continue
			}
			ln := &graph.Node{Name: g.UniqueName("LayerNorm_" + m.out.Outputs[0]), OpType: "LayerNormalization",
				Inputs: []string{m.x, m.gamma, m.beta}, Outputs: []string{m.out.Outputs[0]},
				Attrs: []*graph.Attr{graph.IntAttr("axis", -1), graph.FloatAttr("epsilon", float32(m.eps))}}
			*m.out = *ln
			for _, n := range m.inner {
				dead[n] = true
			}
		}
		g.RemoveNodes(dead)
		return len(dead) > 0, nil
	},
}

// lnMatch is a written-out layer normalization over the last axis:
// Y = (X - mean) / sqrt(var + eps) * gamma + beta.
type lnMatch struct {
	x, gamma, beta string
	eps            float64
	inner          []*graph.Node // the nodes before out, all read only inside the pattern
	out            *graph.Node   // the final Add, whose output is Y
}

// matchWrittenLayerNorm matches the pattern in the file comment at its Div.
func matchWrittenLayerNorm(g *graph.Graph, prod map[string]*graph.Node, cons map[string][]*graph.Node, ci *constIndex, div *graph.Node) (lnMatch, bool) {
	var no lnMatch
	only := func(v string, n int) bool {
		return !g.IsGraphOutput(v) && len(cons[v]) == n
	}
	lastAxis := func(n *graph.Node) bool {
		if n.AttrInt("keepdims", 1) != 1 {
			return false
		}
		axes := n.AttrInts("axes")
		if len(n.Inputs) > 1 && n.Inputs[1] != "" {
			a, ok := intsConst(ci.get(n.Inputs[1]))
			if !ok {
				return false
			}
			axes = a
		}
		return len(axes) == 1 && axes[0] == -1
	}
	if !div.Is("Div") || len(div.Inputs) != 2 {
		return no, false
	}
	sub, sq := producerOf(prod, div.Inputs[0]), producerOf(prod, div.Inputs[1])
	if sub == nil || sq == nil || !sub.Is("Sub") || !sq.Is("Sqrt") || len(sub.Inputs) != 2 {
		return no, false
	}
	add := producerOf(prod, sq.Inputs[0])
	if add == nil || !add.Is("Add") || len(add.Inputs) != 2 {
		return no, false
	}
	var v2 *graph.Node
	var eps float64
	found := false
	for i := 0; i < 2; i++ {
		if p := producerOf(prod, add.Inputs[i]); p != nil && p.Is("ReduceMean") {
			if e, ok := scalarFloat(ci.get(add.Inputs[1-i])); ok {
				v2, eps, found = p, e, true
			}
		}
	}
	if !found {
		return no, false
	}
	pw := producerOf(prod, v2.Inputs[0])
	d := div.Inputs[0]
	if pw == nil {
		return no, false
	}
	switch {
	case pw.Is("Pow") && len(pw.Inputs) == 2 && pw.Inputs[0] == d:
		e, ok := scalarFloat(ci.get(pw.Inputs[1]))
		if !ok || e != 2 {
			return no, false
		}
	case pw.Is("Mul") && len(pw.Inputs) == 2 && pw.Inputs[0] == d && pw.Inputs[1] == d:
	default:
		return no, false
	}
	m1 := producerOf(prod, sub.Inputs[1])
	x := sub.Inputs[0]
	if m1 == nil || !m1.Is("ReduceMean") || m1.Inputs[0] != x || !lastAxis(m1) || !lastAxis(v2) {
		return no, false
	}
	// Affine tail.
	mulc := cons[div.Outputs[0]]
	if len(mulc) != 1 || !mulc[0].Is("Mul") || g.IsGraphOutput(div.Outputs[0]) {
		return no, false
	}
	mul := mulc[0]
	gamma := otherInput(mul, div.Outputs[0])
	addc := cons[mul.Outputs[0]]
	if len(addc) != 1 || !addc[0].Is("Add") || g.IsGraphOutput(mul.Outputs[0]) {
		return no, false
	}
	badd := addc[0]
	beta := otherInput(badd, mul.Outputs[0])
	gt, bt := ci.get(gamma), ci.get(beta)
	if floatConst(gt) == nil || floatConst(bt) == nil || len(gt.Dims) != 1 || len(bt.Dims) != 1 || gt.Dims[0] != bt.Dims[0] || gt.Dims[0] < 2 {
		return no, false
	}
	if !only(m1.Outputs[0], 1) || !only(d, 2) || !only(pw.Outputs[0], 1) || !only(v2.Outputs[0], 1) ||
		!only(add.Outputs[0], 1) || !only(sq.Outputs[0], 1) {
		return no, false
	}
	return lnMatch{x: x, gamma: gamma, beta: beta, eps: eps, inner: []*graph.Node{m1, sub, pw, v2, add, sq, div, mul}, out: badd}, true
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

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-4*math.Abs(b) }
