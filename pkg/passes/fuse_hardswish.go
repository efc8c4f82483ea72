package passes

// Written-out hard swish (MobileNetV3 and the models exported from Paddle
// and Keras write it so).
//   Before: A = Add(X, 3); C = Clip(A, 0, 6); then Y = Div(Mul(X, C), 6), or
//           Mul(Mul(X, C), 1/6), or Mul(X, Div(C, 6)), or Mul(X, Mul(C, 1/6))
//   After:  Y = HardSwish(X) (opset >= 14), or
//           Y = Mul(X, HardSigmoid(X){alpha=1/6, beta=0.5}) below opset 14
// HardSigmoid(x) = max(0, min(1, x/6 + 1/2)) = Clip(x+3, 0, 6)/6, so the
// rewrite is exact up to float rounding; 4 nodes become 1 (or 2).
// Preconditions: the constants 3, 0, 6 (or 1/6) match to 1e-6 relative;
// Clip bounds from attributes (opset < 11) or constant inputs; every
// intermediate read only inside the pattern and not a graph output.
// Matching: pattern.MatchHardSwish (shared with interp's open-time fusion).

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/pattern"
)

var hardSwish = &Pass{
	Name:  "fuse-hardswish",
	Doc:   "Replace written-out hard swish (x*Clip(x+3,0,6)/6) by HardSwish (opset >= 14) or x*HardSigmoid(x).",
	Level: O2,
	Run: func(c *Context) (bool, error) {
		opset := c.Model.Opset("")
		is := func(k, want float64) bool { return k == want || want != 0 && nearRel(k, want, 1e-6) }
		return runRule(c, rule[*pattern.HardSwish]{
			Anchors: []string{"Clip"},
			Match: func(c *Context, v *pattern.View, clip *graph.Node) (*pattern.HardSwish, *pattern.Mismatch) {
				m, why := pattern.MatchHardSwish(v, clip)
				if why != nil {
					return nil, why
				}
				b := m.Bounds
				if !b.HasLo || !b.HasHi || b.Lo != 0 || b.Hi != 6 {
					return nil, missf(clip, "bounds are not [0, 6]")
				}
				if !is(m.A, 3) {
					return nil, missf(clip, "%s adds %g, not 3", pattern.NodeName(m.Add), m.A)
				}
				if m.Div && !is(m.D, 6) || !m.Div && !is(m.D, 1.0/6) {
					return nil, missf(clip, "%s does not divide by 6 (or multiply by 1/6)", pattern.NodeName(m.Scale))
				}
				return m, nil
			},
			Apply: func(c *Context, v *pattern.View, m *pattern.HardSwish) []*graph.Node {
				g := c.Graph()
				nodes := m.Nodes()
				last, inner := nodes[3], nodes[:3]
				out := last.Outputs[0]
				x := m.X
				if opset >= 14 {
					*last = graph.Node{Name: g.UniqueName("HardSwish_" + out), OpType: "HardSwish", Inputs: []string{x}, Outputs: []string{out}}
					return inner
				}
				hs := g.UniqueName(out + "_hardsigmoid")
				// The HardSigmoid takes the Add's place (before the Mul in
				// node order, after X is computed).
				*m.Add = graph.Node{Name: g.UniqueName("HardSigmoid_" + out), OpType: "HardSigmoid", Inputs: []string{x}, Outputs: []string{hs},
					Attrs: []*graph.Attr{graph.FloatAttr("alpha", float32(1.0/6)), graph.FloatAttr("beta", 0.5)}}
				*last = graph.Node{Name: g.UniqueName("HardSwish_" + out), OpType: "Mul", Inputs: []string{x, hs}, Outputs: []string{out}}
				return inner[1:]
			},
		}), nil
	},
}

// clipBounds returns a Clip's constant bounds (attributes before opset 11,
// inputs after; a missing bound is -/+ the largest float32, as ORT's
// fused activations read it). ok is false when a bound is not constant.
func clipBounds(n *graph.Node, ci *constIndex) (lo, hi float64, ok bool) {
	lo, hi = -math.MaxFloat32, math.MaxFloat32
	if a := n.Attr("min"); a != nil {
		lo = float64(a.F)
	}
	if a := n.Attr("max"); a != nil {
		hi = float64(a.F)
	}
	for i, in := range n.Inputs[1:] {
		if in == "" {
			continue
		}
		v, okc := scalarFloat(ci.get(in))
		if !okc {
			return 0, 0, false
		}
		if i == 0 {
			lo = v
		} else {
			hi = v
		}
	}
	return lo, hi, true
}

func nearRel(a, b, tol float64) bool {
	d := a - b
	if d < 0 {
		d = -d
	}
	if b < 0 {
		b = -b
	}
	return d <= tol*b
}
