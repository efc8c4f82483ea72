package passes

// Written-out GELU.
//   Before: A = Div(X, sqrt(2)) (or Mul(X, 1/sqrt(2))); E = Erf(A);
//           C = Add(E, 1); then Y = Mul(Mul(X, C), 0.5) or
//           Y = Mul(Mul(X, 0.5), C)
//   After:  Y = Gelu(X) (opset >= 20), or com.microsoft Gelu(X) for
//           --target ort-cpu at lower opsets; otherwise left
// Preconditions: the constants match to 1e-4 relative; every intermediate
// read only inside the pattern and not a graph output.

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
)

var gelu = &Pass{
	Name:  "fuse-gelu",
	Doc:   "Replace written-out GELU (x*0.5*(1+erf(x/sqrt2))) by Gelu (opset >= 20) or com.microsoft Gelu for ort-cpu.",
	Level: O2,
	Run: func(c *Context) (bool, error) {
		domain := ""
		switch {
		case c.Model.Opset("") >= 20:
		case c.Target() == TargetORTCPU && targetSupports(c, "com.microsoft", "Gelu"):
			domain = "com.microsoft"
		default:
			return false, nil
		}
		g := c.Graph()
		prod := g.Producers()
		cons := g.Consumers()
		ci := newConstIndex(g)
		dead := map[*graph.Node]bool{}
		one := func(v string) *graph.Node {
			cs := cons[v]
			if len(cs) != 1 || g.IsGraphOutput(v) {
				return nil
			}
			return cs[0]
		}
		for _, erf := range g.Nodes {
			if !erf.Is("Erf") || dead[erf] {
				continue
			}
			c.At(erf)
			a := producerOf(prod, erf.Inputs[0])
			if a == nil || len(a.Inputs) != 2 || !singleUse(g, cons, a.Outputs[0]) {
				continue
			}
			x := a.Inputs[0]
			k, ok := scalarFloat(ci.get(a.Inputs[1]))
			if !ok || !(a.Is("Div") && near(k, math.Sqrt2) || a.Is("Mul") && near(k, 1/math.Sqrt2)) {
				continue
			}
			add := one(erf.Outputs[0])
			if add == nil || !add.Is("Add") {
				continue
			}
			if v, ok := scalarFloat(ci.get(otherInput(add, erf.Outputs[0]))); !ok || v != 1 {
				continue
			}
			m1 := one(add.Outputs[0])
			if m1 == nil || !m1.Is("Mul") {
				continue
			}
			other := otherInput(m1, add.Outputs[0])
			var last *graph.Node
			var inner *graph.Node
			if other == x {
				// Y = Mul(Mul(X, C), 0.5)
				m2 := one(m1.Outputs[0])
				if m2 == nil || !m2.Is("Mul") {
					continue
				}
				if h, ok := scalarFloat(ci.get(otherInput(m2, m1.Outputs[0]))); !ok || h != 0.5 {
					continue
				}
				last = m2
			} else {
				// Y = Mul(Mul(X, 0.5), C)
				inner = producerOf(prod, other)
				if inner == nil || !inner.Is("Mul") || !singleUse(g, cons, other) || otherInput(inner, x) == "" {
					continue
				}
				if h, ok := scalarFloat(ci.get(otherInput(inner, x))); !ok || h != 0.5 {
					continue
				}
				last = m1
			}
			out := last.Outputs[0]
			nd := &graph.Node{Name: g.UniqueName("Gelu_" + out), OpType: "Gelu", Domain: domain, Inputs: []string{x}, Outputs: []string{out}}
			for _, n := range []*graph.Node{a, erf, add, m1, inner} {
				if n != nil && n != last {
					dead[n] = true
				}
			}
			*last = *nd
		}
		g.RemoveNodes(dead)
		if len(dead) > 0 && domain != "" && c.Model.Opset(domain) == 0 {
			c.Model.SetOpset(domain, 1)
		}
		return len(dead) > 0, nil
	},
}
