package passes

// MatMul + Add -> Gemm.
//   Before: Z = MatMul(X, W); Y = Add(Z, B)   After: Y = Gemm(X, W, B)
// Preconditions: X is 2-D (static shape known), W a 2-D float32 constant,
// B a float32 constant of shape [N], [1,N] or [M,N]; Z read only by the
// Add and not a graph output.
// Matching: pattern.MatchMatMulAdd (shared with interp's open-time fusion).

import (
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/pattern"
)

var matmulAdd = &Pass{
	Name:  "fuse-matmul-add",
	Doc:   "Turn a 2-D MatMul with constant weights followed by a constant Add into Gemm.",
	Level: O2,
	Run: func(c *Context) (bool, error) {
		shapes := staticShapes(c.Model)
		return runRule(c, rule[*pattern.MatMulAdd]{
			Anchors: []string{"Add"},
			Match: func(c *Context, v *pattern.View, a *graph.Node) (*pattern.MatMulAdd, *pattern.Mismatch) {
				m, why := pattern.MatchMatMulAdd(v, a)
				if why != nil {
					return nil, why
				}
				x, w, b := shapes[m.X], m.WT, m.BT
				if !x.ok || len(x.dims) != 2 || x.dt != graph.Float {
					return nil, missf(a, "%s's input %s is not a float32 matrix of known shape", pattern.NodeName(m.MatMul), m.X)
				}
				mDim, nDim := x.dims[0], w.Dims[1]
				if x.dims[1] != w.Dims[0] {
					return nil, missf(a, "%s's shapes %v x %v do not chain", pattern.NodeName(m.MatMul), x.dims, w.Dims)
				}
				okB := len(b.Dims) == 1 && b.Dims[0] == nDim ||
					len(b.Dims) == 2 && (b.Dims[0] == 1 || b.Dims[0] == mDim) && b.Dims[1] == nDim
				if !okB {
					return nil, missf(a, "bias shape %v is not [N], [1,N] or [M,N] for N=%d", b.Dims, nDim)
				}
				return m, nil
			},
			Apply: func(c *Context, v *pattern.View, m *pattern.MatMulAdd) []*graph.Node {
				mm, a := m.MatMul, m.Add
				mm.OpType = "Gemm"
				mm.Inputs = []string{m.X, m.W, m.Bias}
				mm.Outputs = []string{a.Outputs[0]}
				moveAfter(c.Graph(), mm, a)
				return []*graph.Node{a}
			},
		}), nil
	},
}
