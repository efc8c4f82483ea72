package passes

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
