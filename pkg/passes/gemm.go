package passes

// MatMul + Add -> Gemm.
//   Before: Z = MatMul(X, W); Y = Add(Z, B)   After: Y = Gemm(X, W, B)
// Preconditions: X is 2-D (static shape known), W a 2-D float32 constant,
// B a float32 constant of shape [N], [1,N] or [M,N]; Z read only by the
// Add and not a graph output.
//
// Gemm + BatchNormalization.
//   Before: Y = Gemm(X, W, C){transA=0}; Z = BatchNormalization(Y, s, b, m, v)
//   After:  Z = Gemm(X, W', C'){beta=1} with W' = W*f per output column,
//           C' = beta*C*f + b - m*f, f = s/sqrt(v+eps)
// Preconditions: W and C constant float32 (C of shape [N], [1,N] or one
// value, or absent); s, b, m, v of length N; Y read only by the BN; BN has
// one used output and training_mode 0.

import (
	"math"

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

var gemmBN = &Pass{
	Name:     "fuse-gemm-batchnorm",
	Doc:      "Fold BatchNormalization that follows a Gemm into the Gemm's weights and bias.",
	Level:    O2,
	Requires: []string{"fuse-matmul-add"},
	Run: func(c *Context) (bool, error) {
		g := c.Graph()
		prod := g.Producers()
		cons := g.Consumers()
		ci := newConstIndex(g)
		dead := map[*graph.Node]bool{}
		for _, bn := range g.Nodes {
			if !bn.Is("BatchNormalization") || len(bn.Inputs) != 5 || bn.AttrInt("training_mode", 0) != 0 {
				continue
			}
			gm := producerOf(prod, bn.Inputs[0])
			if gm == nil || !gm.Is("Gemm") || dead[gm] || !singleUse(g, cons, gm.Outputs[0]) || gm.AttrInt("transA", 0) != 0 {
				continue
			}
			c.At(bn)
			usedExtra := false
			for _, o := range bn.Outputs[1:] {
				usedExtra = usedExtra || o != "" && (len(cons[o]) > 0 || g.IsGraphOutput(o))
			}
			if usedExtra {
				continue
			}
			w := ci.get(gm.Inputs[1])
			wv := floatConst(w)
			if wv == nil || len(w.Dims) != 2 {
				continue
			}
			transB := gm.AttrInt("transB", 0) != 0
			k, n := w.Dims[0], w.Dims[1]
			if transB {
				k, n = n, k
			}
			s, b, mean, vr := floatConst(ci.get(bn.Inputs[1])), floatConst(ci.get(bn.Inputs[2])), floatConst(ci.get(bn.Inputs[3])), floatConst(ci.get(bn.Inputs[4]))
			if int64(len(s)) != n || int64(len(b)) != n || int64(len(mean)) != n || int64(len(vr)) != n {
				continue
			}
			cv := make([]float32, n)
			if len(gm.Inputs) > 2 && gm.Inputs[2] != "" {
				ct := ci.get(gm.Inputs[2])
				cf := floatConst(ct)
				switch {
				case cf == nil:
					continue
				case len(cf) == 1:
					for i := range cv {
						cv[i] = cf[0]
					}
				case int64(len(cf)) == n && (len(ct.Dims) == 1 || len(ct.Dims) == 2 && ct.Dims[0] == 1):
					copy(cv, cf)
				default:
					continue
				}
			}
			beta := gm.AttrFloat("beta", 1)
			eps := float64(bn.AttrFloat("epsilon", 1e-5))
			f := make([]float32, n)
			nc := make([]float32, n)
			for i := range f {
				f[i] = float32(float64(s[i]) / math.Sqrt(float64(vr[i])+eps))
				nc[i] = beta*cv[i]*f[i] + b[i] - mean[i]*f[i]
			}
			if !allFinite(f) || !allFinite(nc) {
				continue
			}
			nw := make([]float32, len(wv))
			for r := int64(0); r < w.Dims[0]; r++ {
				for col := int64(0); col < w.Dims[1]; col++ {
					j := col
					if transB {
						j = r
					}
					nw[r*w.Dims[1]+col] = wv[r*w.Dims[1]+col] * f[j]
				}
			}
			_ = k
			wName := addInitializer(g, gm.Inputs[1]+"_fused", graph.WrapFloat32("", w.Dims, nw))
			cName := addInitializer(g, wName+"_bias", graph.WrapFloat32("", []int64{n}, nc))
			gm.Inputs = []string{gm.Inputs[0], wName, cName}
			gm.SetAttr(graph.FloatAttr("beta", 1))
			gm.Outputs = []string{bn.Outputs[0]}
			moveAfter(g, gm, bn)
			dead[bn] = true
		}
		g.RemoveNodes(dead)
		return len(dead) > 0, nil
	},
}
