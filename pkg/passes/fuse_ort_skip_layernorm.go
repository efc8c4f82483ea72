package passes

// ONNX Runtime CPU: residual Add + LayerNormalization -> com.microsoft
// SkipLayerNormalization.
//   Before: T = Add(A, B) (optionally A = Add(M, bias)); Y = LN(T) where LN
//           is LayerNormalization(axis=-1) or its written-out form
//   After:  Y = com.microsoft.SkipLayerNormalization(A or M, B, gamma, beta
//           [, bias]){epsilon}; when T has other readers, it is the op's
//           fourth output (input_skip_bias_sum)
// Preconditions: --target ort-cpu; A and B of the same known rank-3 shape
// (symbolic dims compared by name); gamma, beta (and bias) float32
// constants of the hidden size.

import (
	"github.com/optictl/optictl/pkg/graph"
)

var ortSkipLayerNorm = &Pass{
	Name:    "fuse-ort-skip-layernorm",
	Doc:     "Fuse a residual Add (and a bias Add) with the layer normalization after it into com.microsoft SkipLayerNormalization (ONNX Runtime CPU).",
	Level:   O3,
	Targets: []string{TargetORTCPU},
	Run: func(c *Context) (bool, error) {
		return runORTFusion(c, "SkipLayerNormalization", func(e *fusionEnv, n *graph.Node) bool {
			g, prod, cons, ci, infos, dead := e.g, e.prod, e.cons, e.ci, e.infos, e.dead
			// The layer normalization: the op, or the written-out form
			// matched at its Div.
			var x, gamma, beta string
			var eps float64
			var last *graph.Node
			var inner []*graph.Node
			switch {
			case n.Is("LayerNormalization") && len(n.Inputs) >= 2 && n.AttrInt("axis", -1) == -1 && n.AttrInt("stash_type", 1) == 1:
				if len(n.Outputs) > 1 && (n.Outputs[1] != "" || len(n.Outputs) > 2 && n.Outputs[2] != "") {
					return e.miss(n, "its mean or inverse-std-dev output is used")
				}
				x, gamma, beta, eps, last = n.Inputs[0], n.Inputs[1], inputAt(n, 2), float64(n.AttrFloat("epsilon", 1e-5)), n
			case n.Is("Div"):
				m, ok := matchWrittenLayerNorm(e.v, n)
				if !ok || dead[m.out] {
					return false
				}
				x, gamma, beta, eps, last, inner = m.x, m.gamma, m.beta, m.eps, m.out, m.inner
			default:
				return false
			}
			gt := ci.get(gamma)
			if floatConst(gt) == nil || len(gt.Dims) != 1 {
				return e.miss(n, "gamma %s is not a float32 constant vector", gamma)
			}
			H := gt.Dims[0]
			if beta != "" {
				if bt := ci.get(beta); floatConst(bt) == nil || !equalInts(bt.Dims, gt.Dims) {
					return e.miss(n, "beta %s is not a float32 constant of gamma's shape", beta)
				}
			}
			sum := producerOf(prod, x)
			if sum == nil || !sum.Is("Add") || len(sum.Inputs) != 2 || dead[sum] {
				return e.miss(n, "its input %s is not produced by a residual Add", x)
			}
			a, b := sum.Inputs[0], sum.Inputs[1]
			if ci.get(a) != nil || ci.get(b) != nil || !sameRank3(infos, a, b, H) {
				return e.miss(n, "the residual Add's operands are not two float32 values of one known rank-3 shape ending in %d", H)
			}
			// Readers of the sum other than the normalization (the written-out
			// form reads it twice: ReduceMean and Sub).
			others := false
			for _, r := range cons[x] {
				if r != last && !contains(inner, r) {
					others = true
				}
			}
			// A bias Add before the residual: A = Add(M, bias).
			var bias string
			for i, in := range []string{a, b} {
				other := b
				if i == 1 {
					other = a
				}
				p := producerOf(prod, in)
				if p == nil || !p.Is("Add") || len(p.Inputs) != 2 || !singleUse(g, cons, in) || dead[p] {
					continue
				}
				for j := 0; j < 2; j++ {
					bt := ci.get(p.Inputs[1-j])
					if floatConst(bt) == nil || len(bt.Dims) != 1 || bt.Dims[0] != H || ci.get(p.Inputs[j]) != nil ||
						!sameRank3(infos, p.Inputs[j], other, H) {
						continue
					}
					bias = p.Inputs[1-j]
					if i == 0 {
						a = p.Inputs[j]
					} else {
						b = p.Inputs[j]
					}
					dead[p] = true
					break
				}
				if bias != "" {
					break
				}
			}
			ins := []string{a, b, gamma, beta, bias}
			for len(ins) > 3 && ins[len(ins)-1] == "" {
				ins = ins[:len(ins)-1]
			}
			outs := []string{last.Outputs[0]}
			if others || g.IsGraphOutput(x) {
				outs = append(outs, "", "", x)
			}
			skip := &graph.Node{Name: g.UniqueName("SkipLayerNorm_" + last.Outputs[0]), OpType: "SkipLayerNormalization", Domain: "com.microsoft",
				Inputs: ins, Outputs: outs, Attrs: []*graph.Attr{graph.FloatAttr("epsilon", float32(eps))}}
			for _, d := range inner {
				dead[d] = true
			}
			dead[sum] = true
			*last = *skip
			return true
		})
	},
}

// sameRank3 reports whether a and b are float32 values of the same known
// rank-3 shape (symbolic dims equal by name) whose last dim is h.
func sameRank3(infos map[string]*graph.ValueInfo, a, b string, h int64) bool {
	va, vb := infos[a], infos[b]
	if va == nil || vb == nil || !va.HasShape || !vb.HasShape || len(va.Shape) != 3 || len(vb.Shape) != 3 ||
		va.DType != graph.Float || vb.DType != graph.Float {
		return false
	}
	for i := range va.Shape {
		da, db := va.Shape[i], vb.Shape[i]
		switch {
		case da.Known() && db.Known():
			if da.Size != db.Size {
				return false
			}
		case !da.Known() && !db.Known():
			if da.Param == "" || da.Param != db.Param {
				return false
			}
		default:
			return false
		}
	}
	return va.Shape[2].Size == h
}

func contains(ns []*graph.Node, n *graph.Node) bool {
	for _, m := range ns {
		if m == n {
			return true
		}
	}
	return false
}
