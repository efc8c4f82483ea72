package passes

// MatMul + Add -> Gemm.
//   Before: Z = MatMul(X, W); Y = Add(Z, B)   After: Y = Gemm(X, W, B)
// Preconditions: X is 2-D (static shape known), W a 2-D float32 constant,
// B a float32 constant of shape [N], [1,N] or [M,N]; Z read only by the
// Add and not a graph output.

import (
	"github.com/optictl/optictl/pkg/graph"
)

var matmulAdd = &Pass{
	Name:  "fuse-matmul-add",
	Doc:   "Turn a 2-D MatMul with constant weights followed by a constant Add into Gemm.",
	Level: O2,
	Run: func(c *Context) (bool, error) {
		g := c.Graph()
		shapes := staticShapes(c.Model)
		prod := g.Producers()
		cons := g.Consumers()
		ci := newConstIndex(g)
		dead := map[*graph.Node]bool{}
		for _, a := range g.Nodes {
			if !a.Is("Add") || len(a.Inputs) != 2 {
				continue
			}
			var mm *graph.Node
			var bias string
			for i, in := range a.Inputs {
				if p := producerOf(prod, in); p != nil && p.Is("MatMul") && !dead[p] {
					mm, bias = p, a.Inputs[1-i]
				}
			}
			if mm == nil || !singleUse(g, cons, mm.Outputs[0]) {
				continue
			}
			c.At(a)
			x := shapes[mm.Inputs[0]]
			w := ci.get(mm.Inputs[1])
			b := ci.get(bias)
			if !x.ok || len(x.dims) != 2 || w == nil || w.DType != graph.Float || len(w.Dims) != 2 || b == nil || b.DType != graph.Float || x.dt != graph.Float {
				continue
			}
			mDim, nDim := x.dims[0], w.Dims[1]
			if x.dims[1] != w.Dims[0] {
				continue
			}
			okB := len(b.Dims) == 1 && b.Dims[0] == nDim ||
				len(b.Dims) == 2 && (b.Dims[0] == 1 || b.Dims[0] == mDim) && b.Dims[1] == nDim
			if !okB {
				continue
			}
			mm.OpType = "Gemm"
			mm.Inputs = []string{mm.Inputs[0], mm.Inputs[1], bias}
			mm.Outputs = []string{a.Outputs[0]}
			moveAfter(g, mm, a)
			dead[a] = true
		}
		g.RemoveNodes(dead)
		return len(dead) > 0, nil
	},
}
