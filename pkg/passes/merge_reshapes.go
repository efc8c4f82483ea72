package passes

// Consecutive Reshapes.
//   Before: R1 = Reshape(X, S1); Y = Reshape(R1, S2)   After: Y = Reshape(X, S2)
// Preconditions: S2 constant with no 0 entries (0 copies a dim of R1, which
// is not X's) unless allowzero=1.

import (
	"slices"
)

var mergeReshapes = &Pass{
	Name:  "merge-reshapes",
	Doc:   "Collapse Reshape(Reshape(x)) into one Reshape.",
	Level: O2,
	Run: func(c *Context) (bool, error) {
		g := c.Graph()
		prod := g.Producers()
		ci := newConstIndex(g)
		changed := false
		for _, n := range g.Nodes {
			if !n.Is("Reshape") || len(n.Inputs) != 2 {
				continue
			}
			p := producerOf(prod, n.Inputs[0])
			if p == nil || !p.Is("Reshape") {
				continue
			}
			c.At(n)
			s, ok := intsConst(ci.get(n.Inputs[1]))
			if !ok || (slices.Contains(s, 0) && n.AttrInt("allowzero", 0) == 0) {
				continue
			}
			n.Inputs[0] = p.Inputs[0]
			changed = true
		}
		if changed {
			removeDead(g)
		}
		return changed, nil
	},
}
