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

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
)

var hardSwish = &Pass{
	Name:  "fuse-hardswish",
	Doc:   "Replace written-out hard swish (x*Clip(x+3,0,6)/6) by HardSwish (opset >= 14) or x*HardSigmoid(x).",
	Level: O2,
	Run: func(c *Context) (bool, error) {
		g := c.Graph()
		prod := g.Producers()
		cons := g.Consumers()
		ci := newConstIndex(g)
		opset := c.Model.Opset("")
		dead := map[*graph.Node]bool{}
		changed := false
		isConst := func(v string, want float64) bool {
			k, ok := scalarFloat(ci.get(v))
			return ok && (k == want || want != 0 && nearRel(k, want, 1e-6))
		}
		one := func(v string) *graph.Node {
			cs := cons[v]
			if len(cs) != 1 || g.IsGraphOutput(v) {
				return nil
			}
			return cs[0]
		}
		// scaleBy6 reports whether n divides its other input (v's partner) by 6.
		scaleBy6 := func(n *graph.Node, v string) bool {
			switch {
			case n.Is("Div") && len(n.Inputs) == 2 && n.Inputs[0] == v:
				return isConst(n.Inputs[1], 6)
			case n.Is("Mul") && len(n.Inputs) == 2:
				return isConst(otherInput(n, v), 1.0/6)
			}
			return false
		}
		for _, clip := range g.Nodes {
			if !clip.Is("Clip") || dead[clip] || len(clip.Outputs) != 1 {
				continue
			}
			c.At(clip)
			lo, hi, ok := clipBounds(clip, ci)
			if !ok || lo != 0 || hi != 6 {
				continue
			}
			add := producerOf(prod, clip.Inputs[0])
			if add == nil || !add.Is("Add") || len(add.Inputs) != 2 || !singleUse(g, cons, clip.Inputs[0]) {
				continue
			}
			var x string
			switch {
			case isConst(add.Inputs[1], 3):
				x = add.Inputs[0]
			case isConst(add.Inputs[0], 3):
				x = add.Inputs[1]
			default:
				continue
			}
			if ci.get(x) != nil {
				continue
			}
			cv := clip.Outputs[0]
			next := one(cv)
			if next == nil {
				continue
			}
			var inner []*graph.Node // replaced, besides the last node
			var last *graph.Node
			switch {
			case next.Is("Mul") && otherInput(next, cv) == x && next.Inputs[0] != next.Inputs[1]:
				// Mul(X, C) then /6
				s := one(next.Outputs[0])
				if s == nil || !scaleBy6(s, next.Outputs[0]) {
					continue
				}
				inner, last = []*graph.Node{add, clip, next}, s
			case scaleBy6(next, cv):
				// C/6 then Mul(X, .)
				m := one(next.Outputs[0])
				if m == nil || !m.Is("Mul") || otherInput(m, next.Outputs[0]) != x {
					continue
				}
				inner, last = []*graph.Node{add, clip, next}, m
			default:
				continue
			}
			out := last.Outputs[0]
			if opset >= 14 {
				*last = graph.Node{Name: g.UniqueName("HardSwish_" + out), OpType: "HardSwish", Inputs: []string{x}, Outputs: []string{out}}
			} else {
				hs := g.UniqueName(out + "_hardsigmoid")
				// The HardSigmoid takes the Add's place (before the Mul in
				// node order, after X is computed).
				*add = graph.Node{Name: g.UniqueName("HardSigmoid_" + out), OpType: "HardSigmoid", Inputs: []string{x}, Outputs: []string{hs},
					Attrs: []*graph.Attr{graph.FloatAttr("alpha", float32(1.0/6)), graph.FloatAttr("beta", 0.5)}}
				*last = graph.Node{Name: g.UniqueName("HardSwish_" + out), OpType: "Mul", Inputs: []string{x, hs}, Outputs: []string{out}}
				inner = inner[1:]
			}
			for _, n := range inner {
				dead[n] = true
			}
			changed = true
		}
		g.RemoveNodes(dead)
		return changed, nil
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
