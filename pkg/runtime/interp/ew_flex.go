package interp

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// FlexAttention (ai.onnx.preview): scaled dot-product attention on 4-D
// Q/K/V with optional whole-tensor subgraphs: score_mod on the scores,
// mask_mod (a bool result masks with -inf, a float one replaces the
// scores) and prob_mod on the softmax probabilities. KV heads repeat for
// grouped queries.

func init() { Register("ai.onnx.preview", "FlexAttention", ewBuildFlexAttention) }

func ewBuildFlexAttention(n *graph.Node, bc *BuildContext) (Kernel, error) {
	scaleA := n.Attr("scale")
	var mods [3]*Program
	for i, name := range []string{"score_mod", "mask_mod", "prob_mod"} {
		if g := n.AttrGraph(name); g != nil {
			p, err := bc.CompileSubgraph(g)
			if err != nil {
				return nil, ewErr(n, "%s: %v", name, err)
			}
			if p.NumInputs() != 1 || p.NumOutputs() != 1 {
				return nil, ewErr(n, "%s must take one tensor and return one", name)
			}
			mods[i] = p
		}
	}
	return func(c *Call) error {
		q, k, v := c.In[0], c.In[1], c.In[2]
		if q == nil || k == nil || v == nil || len(q.Shape) != 4 || len(k.Shape) != 4 || len(v.Shape) != 4 || !q.DType.IsFloat() {
			return ewErr(n, "Q, K and V must be 4-D float tensors")
		}
		B, Hq, Sq, D := int(q.Shape[0]), int(q.Shape[1]), int(q.Shape[2]), int(q.Shape[3])
		Hk, Sk, Dv := int(k.Shape[1]), int(k.Shape[2]), int(v.Shape[3])
		if int(k.Shape[0]) != B || int(k.Shape[3]) != D || int(v.Shape[0]) != B || int(v.Shape[1]) != Hk ||
			int(v.Shape[2]) != Sk || Hk == 0 || Hq%Hk != 0 {
			return ewErr(n, "Q %v, K %v and V %v do not agree", q.Shape, k.Shape, v.Shape)
		}
		qv, err := ewF64s(q)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		kv, err := ewF64s(k)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		vv, err := ewF64s(v)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		scale := 1 / math.Sqrt(float64(D))
		if scaleA != nil {
			scale = float64(scaleA.F)
		}
		rep := Hq / Hk
		sshape := []int64{int64(B), int64(Hq), int64(Sq), int64(Sk)}
		scores := make([]float64, B*Hq*Sq*Sk)
		for b := 0; b < B; b++ {
			for h := 0; h < Hq; h++ {
				for i := 0; i < Sq; i++ {
					qr := qv[((b*Hq+h)*Sq+i)*D:][:D]
					for j := 0; j < Sk; j++ {
						kr := kv[((b*Hk+h/rep)*Sk+j)*D:][:D]
						s := 0.0
						for d := range qr {
							s += qr[d] * kr[d]
						}
						scores[((b*Hq+h)*Sq+i)*Sk+j] = s * scale
					}
				}
			}
		}
		apply := func(p *Program, vals []float64) ([]float64, *runtime.Tensor, error) {
			t := runtime.NewTensor(q.DType, sshape)
			if err := ewSetF64(t, vals); err != nil {
				return nil, nil, err
			}
			outs, err := c.RunSubgraph(p, []*runtime.Tensor{t})
			if err != nil {
				return nil, nil, err
			}
			o := outs[0]
			if o == nil || o.Len() != len(vals) {
				return nil, nil, ewErr(n, "a modifier subgraph changed the scores' shape")
			}
			if o.DType == graph.Bool {
				return nil, o, nil
			}
			r, err := ewF64s(o)
			return r, o, err
		}
		if mods[0] != nil {
			if scores, _, err = apply(mods[0], scores); err != nil {
				return ewErr(n, "score_mod: %v", err)
			}
		}
		if mods[1] != nil {
			r, t, err := apply(mods[1], scores)
			if err != nil {
				return ewErr(n, "mask_mod: %v", err)
			}
			if t.DType == graph.Bool {
				for i, keep := range t.Raw {
					if keep == 0 {
						scores[i] = math.Inf(-1)
					}
				}
			} else {
				scores = r
			}
		}
		for r := 0; r < B*Hq*Sq; r++ {
			row := scores[r*Sk:][:Sk]
			mx := math.Inf(-1)
			for _, x := range row {
				mx = max(mx, x)
			}
			s := 0.0
			for j, x := range row {
				row[j] = math.Exp(x - mx)
				s += row[j]
			}
			for j := range row {
				row[j] /= s
			}
		}
		if mods[2] != nil {
			if scores, _, err = apply(mods[2], scores); err != nil {
				return ewErr(n, "prob_mod: %v", err)
			}
		}
		y := make([]float64, B*Hq*Sq*Dv)
		for b := 0; b < B; b++ {
			for h := 0; h < Hq; h++ {
				for i := 0; i < Sq; i++ {
					pr := scores[((b*Hq+h)*Sq+i)*Sk:][:Sk]
					yr := y[((b*Hq+h)*Sq+i)*Dv:][:Dv]
					for j, p := range pr {
						vr := vv[((b*Hk+h/rep)*Sk+j)*Dv:][:Dv]
						for d := range yr {
							yr[d] += p * vr[d]
						}
					}
				}
			}
		}
		o, err := c.Out(0, v.DType, []int64{int64(B), int64(Hq), int64(Sq), int64(Dv)})
		if err != nil {
			return err
		}
		return ewSetF64(o, y)
	}, nil
}
