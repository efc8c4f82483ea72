package passes

// Written-out GELU.
//   Before: A = Div(X, sqrt(2)) (or Mul(X, 1/sqrt(2))); E = Erf(A);
//           C = Add(E, 1); then Y = Mul(Mul(X, C), 0.5) or
//           Y = Mul(Mul(X, 0.5), C)
//   After:  Y = Gelu(X) (opset >= 20), or com.microsoft Gelu(X) for
//           --target ort-cpu at lower opsets; otherwise left
// Preconditions: the constants match to 1e-4 relative; X not a constant;
// every intermediate read only inside the pattern and not a graph output.
// Matching: pattern.MatchGelu (shared with interp's open-time fusion).

import (
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/pattern"
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
			if c.Explaining() {
				c.Note("opset %d < 20 and the target runs no com.microsoft Gelu: skipped", c.Model.Opset(""))
			}
			return false, nil
		}
		changed := runRule(c, rule[*pattern.Gelu]{
			Anchors: []string{"Erf"},
			Match: func(c *Context, v *pattern.View, n *graph.Node) (*pattern.Gelu, *pattern.Mismatch) {
				return pattern.MatchGelu(v, n)
			},
			Apply: func(c *Context, v *pattern.View, m *pattern.Gelu) []*graph.Node {
				g := c.Graph()
				last := m.Last()
				out := last.Outputs[0]
				*last = graph.Node{Name: g.UniqueName("Gelu_" + out), OpType: "Gelu", Domain: domain, Inputs: []string{m.X}, Outputs: []string{out}}
				var dead []*graph.Node
				for _, n := range m.Nodes() {
					if n != last {
						dead = append(dead, n)
					}
				}
				return dead
			},
		})
		if changed && domain != "" && c.Model.Opset(domain) == 0 {
			c.Model.SetOpset(domain, 1)
		}
		return changed, nil
	},
}
