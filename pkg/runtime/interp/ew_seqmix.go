package interp

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics/half"
)

// CausalConvWithState (depthwise causal conv1d with a carried state) and
// LinearAttention (linear / gated / delta / gated-delta recurrences with
// GQA), following onnx's reference: state kept in float32.

func init() {
	Register("", "CausalConvWithState", ewBuildCausalConv)
	Register("", "LinearAttention", ewBuildLinearAttention)
}

func ewBuildCausalConv(n *graph.Node, bc *BuildContext) (Kernel, error) {
	act := n.AttrString("activation", "none")
	switch act {
	case "none", "silu", "swish":
	default:
		return nil, ewUnsupported(n, "unsupported activation %q", act)
	}
	return func(c *Call) error {
		x, w := c.In[0], c.In[1]
		if x == nil || w == nil || len(x.Shape) != 3 || len(w.Shape) != 3 || w.Shape[0] != x.Shape[1] || w.Shape[1] != 1 || w.Shape[2] < 1 {
			return ewErr(n, "input [B, C, L] and weight [C, 1, k] must agree")
		}
		B, C, L, K := int(x.Shape[0]), int(x.Shape[1]), int(x.Shape[2]), int(w.Shape[2])
		xv, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		wv, err := ewF64s(w)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		var bias []float64
		if len(c.In) > 2 && c.In[2] != nil {
			if bias, err = ewF64s(c.In[2]); err != nil || len(bias) != C {
				return ewErr(n, "bias must hold C values")
			}
		}
		P := L + K - 1
		padded := make([]float64, B*C*P)
		if len(c.In) > 3 && c.In[3] != nil {
			ps := c.In[3]
			pv, err := ewF64s(ps)
			if err != nil || len(ps.Shape) != 3 || int(ps.Shape[0]) != B || int(ps.Shape[1]) != C || int(ps.Shape[2]) != K-1 {
				return ewErr(n, "past_state must be [B, C, k-1]")
			}
			for bc := 0; bc < B*C; bc++ {
				copy(padded[bc*P:], pv[bc*(K-1):(bc+1)*(K-1)])
			}
		}
		for bc := 0; bc < B*C; bc++ {
			copy(padded[bc*P+K-1:], xv[bc*L:(bc+1)*L])
		}
		out := make([]float64, B*C*L)
		for b := 0; b < B; b++ {
			for ch := 0; ch < C; ch++ {
				row := padded[(b*C+ch)*P:]
				for t := 0; t < L; t++ {
					s := 0.0
					if bias != nil {
						s = bias[ch]
					}
					for k := 0; k < K; k++ {
						s += wv[ch*K+k] * row[t+k]
					}
					s = float64(ewRoundTo(x.DType, s))
					if act != "none" {
						f := float32(s)
						s = float64(f * float32(1/(1+math.Exp(-float64(f)))))
					}
					out[(b*C+ch)*L+t] = s
				}
			}
		}
		o, err := c.Out(0, x.DType, x.Shape)
		if err != nil {
			return err
		}
		if err := ewSetF64(o, out); err != nil {
			return ewErr(n, "%v", err)
		}
		if c.NumOutputs() > 1 && c.HasOutput(1) {
			st := make([]float64, B*C*(K-1))
			for bc := 0; bc < B*C; bc++ {
				copy(st[bc*(K-1):], padded[bc*P+P-(K-1):(bc+1)*P])
			}
			so, err := c.Out(1, x.DType, []int64{int64(B), int64(C), int64(K - 1)})
			if err != nil {
				return err
			}
			return ewSetF64(so, st)
		}
		return nil
	}, nil
}

// ewRoundTo rounds v to the precision of a float dtype (float16 stays
// float16-representable), as the reference's astype does.
func ewRoundTo(dt graph.DType, v float64) float64 {
	switch dt {
	case graph.Float16:
		return float64(half.Float16ToFloat32(half.Float32ToFloat16(float32(v))))
	case graph.Float:
		return float64(float32(v))
	}
	return v
}

func ewBuildLinearAttention(n *graph.Node, bc *BuildContext) (Kernel, error) {
	rule := n.AttrString("update_rule", "gated_delta")
	hq := int(n.AttrInt("q_num_heads", 0))
	hk := int(n.AttrInt("kv_num_heads", 0))
	scaleA := float64(n.AttrFloat("scale", 0))
	if hq <= 0 || hk <= 0 || hq%hk != 0 {
		return nil, ewErr(n, "q_num_heads must be a positive multiple of kv_num_heads")
	}
	gating := rule == "gated" || rule == "gated_delta"
	delta := rule == "delta" || rule == "gated_delta"
	if !gating && !delta && rule != "linear" {
		return nil, ewErr(n, "unknown update_rule %q", rule)
	}
	return func(c *Call) error {
		in := func(i int) []float64 {
			if i < len(c.In) && c.In[i] != nil {
				v, err := ewF64s(c.In[i])
				if err == nil {
					return v
				}
			}
			return nil
		}
		q, k, v := c.In[0], c.In[1], c.In[2]
		if q == nil || k == nil || v == nil || len(q.Shape) != 3 || len(k.Shape) != 3 || len(v.Shape) != 3 {
			return ewErr(n, "query, key and value must be [B, T, H*D]")
		}
		B, T := int(q.Shape[0]), int(q.Shape[1])
		dk := int(q.Shape[2]) / hq
		dv := int(v.Shape[2]) / hk
		if dk*hq != int(q.Shape[2]) || int(k.Shape[2]) != hk*dk || dv*hk != int(v.Shape[2]) {
			return ewErr(n, "head sizes do not divide the hidden sizes")
		}
		qv, kv, vv := in(0), in(1), in(2)
		decay, beta, erase := in(4), in(5), in(6)
		if gating && decay == nil || delta && beta == nil {
			return ewErr(n, "update_rule %q needs decay/beta inputs", rule)
		}
		decW, betW := 0, 0
		if decay != nil {
			decW = len(decay) / (B * T)
		}
		if beta != nil {
			betW = len(beta) / (B * T)
		}
		f32 := func(x float64) float64 { return float64(float32(x)) }
		state := make([]float64, B*hk*dk*dv)
		if p := in(3); p != nil {
			if len(p) != len(state) {
				return ewErr(n, "past_state must be [B, kv_heads, d_k, d_v]")
			}
			copy(state, p)
		}
		scale := 1 / math.Sqrt(float64(dk))
		if scaleA != 0 {
			scale = scaleA
		}
		grp := hq / hk
		out := make([]float64, B*T*hq*dv)
		vt := make([]float64, dv)
		for b := 0; b < B; b++ {
			for t := 0; t < T; t++ {
				for h := 0; h < hk; h++ {
					S := state[(b*hk+h)*dk*dv:][:dk*dv]
					kt := kv[(b*T+t)*hk*dk+h*dk:][:dk]
					copy(vt, vv[(b*T+t)*hk*dv+h*dv:][:dv])
					if gating {
						for d := 0; d < dk; d++ {
							g := decay[(b*T+t)*decW]
							if decW == hk {
								g = decay[(b*T+t)*decW+h]
							} else if decW == hk*dk {
								g = decay[(b*T+t)*decW+h*dk+d]
							}
							e := f32(math.Exp(g))
							for m := 0; m < dv; m++ {
								S[d*dv+m] = f32(S[d*dv+m] * e)
							}
						}
					}
					if delta {
						bt := beta[(b*T+t)*betW]
						if betW == hk {
							bt = beta[(b*T+t)*betW+h]
						}
						for m := 0; m < dv; m++ {
							r := 0.0
							for d := 0; d < dk; d++ {
								ke := kt[d]
								if erase != nil {
									ke *= erase[(b*T+t)*hk*dk+h*dk+d]
								}
								r += S[d*dv+m] * ke
							}
							vt[m] = f32(bt * f32(vt[m]-f32(r)))
						}
					}
					for d := 0; d < dk; d++ {
						for m := 0; m < dv; m++ {
							S[d*dv+m] = f32(S[d*dv+m] + kt[d]*vt[m])
						}
					}
				}
				for h := 0; h < hq; h++ {
					S := state[(b*hk+h/grp)*dk*dv:][:dk*dv]
					qt := qv[(b*T+t)*hq*dk+h*dk:][:dk]
					for m := 0; m < dv; m++ {
						s := 0.0
						for d := 0; d < dk; d++ {
							s += qt[d] * S[d*dv+m]
						}
						out[(b*T+t)*hq*dv+h*dv+m] = scale * s
					}
				}
			}
		}
		o, err := c.Out(0, q.DType, []int64{int64(B), int64(T), int64(hq * dv)})
		if err != nil {
			return err
		}
		if err := ewSetF64(o, out); err != nil {
			return ewErr(n, "%v", err)
		}
		if c.NumOutputs() > 1 && c.HasOutput(1) {
			dt := q.DType
			if len(c.In) > 3 && c.In[3] != nil {
				dt = c.In[3].DType
			}
			so, err := c.Out(1, dt, []int64{int64(B), int64(hk), int64(dk), int64(dv)})
			if err != nil {
				return err
			}
			return ewSetF64(so, state)
		}
		return nil
	}, nil
}
