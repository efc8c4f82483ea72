package passes

// Gemm + BatchNormalization.
//   Before: Y = Gemm(X, W, C){transA=0}; Z = BatchNormalization(Y, s, b, m, v)
//   After:  Z = Gemm(X, W', C'){beta=1} with W' = W*f per output column,
//           C' = beta*C*f + b - m*f, f = s/sqrt(v+eps)
// Preconditions: W and C constant float32 (C of shape [N], [1,N] or one
// value, or absent); s, b, m, v of length N; Y read only by the BN; BN has
// one used output and training_mode 0.
// Matching: pattern.InferenceBN for the BN (shared with interp).

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/pattern"
)

var gemmBN = &Pass{
	Name:     "fuse-gemm-batchnorm",
	Doc:      "Fold BatchNormalization that follows a Gemm into the Gemm's weights and bias.",
	Level:    O2,
	Requires: []string{"fuse-matmul-add"},
	Run: func(c *Context) (bool, error) {
		return runRule(c, rule[gemmFold]{
			Anchors: []string{"BatchNormalization"},
			Match:   matchGemmBN,
			Apply: func(c *Context, v *pattern.View, m gemmFold) []*graph.Node {
				g := c.Graph()
				gm, bn := m.gemm, m.bn
				wName := addInitializer(g, gm.Inputs[1]+"_fused", graph.WrapFloat32("", m.w.Dims, m.nw))
				cName := addInitializer(g, wName+"_bias", graph.WrapFloat32("", []int64{int64(len(m.nc))}, m.nc))
				gm.Inputs = []string{gm.Inputs[0], wName, cName}
				gm.SetAttr(graph.FloatAttr("beta", 1))
				gm.Outputs = []string{bn.Outputs[0]}
				moveAfter(g, gm, bn)
				return []*graph.Node{bn}
			},
		}), nil
	},
}

// gemmFold is a Gemm with the BatchNormalization after it folded in: new
// weights nw (of w's shape) and bias nc.
type gemmFold struct {
	gemm, bn *graph.Node
	w        *graph.Tensor
	nw, nc   []float32
}

func matchGemmBN(c *Context, v *pattern.View, bn *graph.Node) (gemmFold, *pattern.Mismatch) {
	var no gemmFold
	if len(bn.Inputs) != 5 {
		return no, missf(bn, "has %d inputs, not 5", len(bn.Inputs))
	}
	gm := v.Producer(bn.Inputs[0])
	if gm == nil || !gm.Is("Gemm") {
		return no, missf(bn, "its input is not produced by a Gemm")
	}
	if len(gm.Outputs) != 1 || v.Sole(gm.Outputs[0]) != bn {
		return no, missf(bn, "%s's output is read elsewhere or is a graph output", pattern.NodeName(gm))
	}
	if gm.AttrInt("transA", 0) != 0 {
		return no, missf(bn, "%s has transA set", pattern.NodeName(gm))
	}
	wv, w := v.Float32s(inputAt(gm, 1))
	if wv == nil || len(w.Dims) != 2 {
		return no, missf(bn, "%s's weight is not a 2-D float32 constant", pattern.NodeName(gm))
	}
	transB := gm.AttrInt("transB", 0) != 0
	n := w.Dims[1]
	if transB {
		n = w.Dims[0]
	}
	p, why := pattern.InferenceBN(v, bn, n)
	if why != nil {
		return no, why
	}
	cv := make([]float32, n)
	if len(gm.Inputs) > 2 && gm.Inputs[2] != "" {
		cf, ct := v.Float32s(gm.Inputs[2])
		switch {
		case cf == nil:
			return no, missf(bn, "%s's bias is not a float32 constant", pattern.NodeName(gm))
		case len(cf) == 1:
			for i := range cv {
				cv[i] = cf[0]
			}
		case int64(len(cf)) == n && (len(ct.Dims) == 1 || len(ct.Dims) == 2 && ct.Dims[0] == 1):
			copy(cv, cf)
		default:
			return no, missf(bn, "%s's bias of shape %v is not per output column", pattern.NodeName(gm), ct.Dims)
		}
	}
	beta := gm.AttrFloat("beta", 1)
	f := make([]float32, n)
	nc := make([]float32, n)
	for i := range f {
		f[i] = float32(float64(p.Scale[i]) / math.Sqrt(float64(p.Var[i])+p.Eps))
		nc[i] = beta*cv[i]*f[i] + p.Bias[i] - p.Mean[i]*f[i]
	}
	if !allFinite(f) || !allFinite(nc) {
		return no, missf(bn, "the folded scale or bias is not finite")
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
	return gemmFold{gemm: gm, bn: bn, w: w, nw: nw, nc: nc}, nil
}
