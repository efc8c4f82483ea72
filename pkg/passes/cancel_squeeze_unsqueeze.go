package passes

// Squeeze/Unsqueeze pairs.
//   Before: S = Squeeze(X, axes); Y = Unsqueeze(S, axes)   After: readers of Y read X
//   Before: U = Unsqueeze(X, axes); Y = Squeeze(U, axes)   After: readers of Y read X
// Preconditions: the same constant non-negative axes on both (attribute or
// input); for Squeeze-then-Unsqueeze the squeezed dims are 1 by definition,
// so the round trip is exact.

import (
	"slices"

	"github.com/optictl/optictl/pkg/graph"
)

var squeezePairs = &Pass{
	Name:  "cancel-squeeze-unsqueeze",
	Doc:   "Cancel Unsqueeze(Squeeze(x)) and Squeeze(Unsqueeze(x)) over the same axes.",
	Level: O2,
	Run: func(c *Context) (bool, error) {
		g := c.Graph()
		prod := g.Producers()
		ci := newConstIndex(g)
		dead := map[*graph.Node]bool{}
		axesOf := func(n *graph.Node) []int64 {
			if len(n.Inputs) >= 2 && n.Inputs[1] != "" {
				a, ok := intsConst(ci.get(n.Inputs[1]))
				if !ok {
					return nil
				}
				return a
			}
			return n.AttrInts("axes")
		}
		for _, n := range g.Nodes {
			if !(n.Is("Squeeze") || n.Is("Unsqueeze")) || dead[n] {
				continue
			}
			p := producerOf(prod, n.Inputs[0])
			if p == nil || dead[p] || !(p.Is("Squeeze") && n.Is("Unsqueeze") || p.Is("Unsqueeze") && n.Is("Squeeze")) {
				continue
			}
			c.At(n)
			a, b := axesOf(p), axesOf(n)
			if len(a) == 0 || !equalSorted(a, b) {
				continue
			}
			neg := false
			for _, v := range a {
				neg = neg || v < 0
			}
			if neg {
				continue
			}
			if bypass(g, p.Inputs[0], n.Outputs[0]) {
				dead[n] = true
				prod = g.Producers()
			}
		}
		g.RemoveNodes(dead)
		if len(dead) > 0 {
			removeDead(g)
		}
		return len(dead) > 0, nil
	},
}

func equalSorted(a, b []int64) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
