package interp

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Attention (opset 23/24): 3-D or 4-D Q/K/V, KV cache (past/present),
// grouped-query heads, bool or additive masks (padded to the key length),
// is_causal (offset by the past length or nonpad_kv_seqlen), softcap and the
// qk_matmul_output modes. Computed in float64, following onnx's reference.

func init() { Register("", "Attention", ewBuildAttention) }

func ewBuildAttention(n *graph.Node, bc *BuildContext) (Kernel, error) {
	causal := n.AttrInt("is_causal", 0) != 0
	qHeadsA := n.AttrInt("q_num_heads", 0)
	kvHeadsA := n.AttrInt("kv_num_heads", 0)
	mode := n.AttrInt("qk_matmul_output_mode", 0)
	scaleA := n.Attr("scale")
	softcap := float64(n.AttrFloat("softcap", 0))
	return func(c *Call) error {
		in := func(i int) *runtime.Tensor {
			if i < len(c.In) {
				return c.In[i]
			}
			return nil
		}
		q, k, v := in(0), in(1), in(2)
		if q == nil || k == nil || v == nil || !q.DType.IsFloat() {
			return ewErr(n, "needs float Q, K and V")
		}
		r := len(q.Shape)
		if (r != 3 && r != 4) || len(k.Shape) != r || len(v.Shape) != r {
			return ewErr(n, "Q, K and V must all be 3-D or 4-D")
		}
		// to 4-D (B, H, S, D) float64
		to4 := func(t *runtime.Tensor, heads int64) ([]float64, [4]int, error) {
			f, err := ewF64s(t)
			if err != nil {
				return nil, [4]int{}, err
			}
			if r == 4 {
				return f, [4]int{int(t.Shape[0]), int(t.Shape[1]), int(t.Shape[2]), int(t.Shape[3])}, nil
			}
			if heads <= 0 || t.Shape[2]%heads != 0 {
				return nil, [4]int{}, errDType(graph.Undefined)
			}
			B, S, D := int(t.Shape[0]), int(t.Shape[1]), int(t.Shape[2]/heads)
			H := int(heads)
			o := make([]float64, len(f))
			for b := 0; b < B; b++ {
				for s := 0; s < S; s++ {
					for h := 0; h < H; h++ {
						copy(o[((b*H+h)*S+s)*D:((b*H+h)*S+s+1)*D], f[((b*S+s)*H+h)*D:((b*S+s)*H+h+1)*D])
					}
				}
			}
			return o, [4]int{B, H, S, D}, nil
		}
		qv, qs, err := to4(q, qHeadsA)
		if err != nil {
			return ewErr(n, "3-D inputs need q_num_heads and kv_num_heads dividing the hidden size")
		}
		kv, ks, err := to4(k, kvHeadsA)
		if err != nil {
			return ewErr(n, "3-D inputs need q_num_heads and kv_num_heads dividing the hidden size")
		}
		vv, vs, err := to4(v, kvHeadsA)
		if err != nil {
			return ewErr(n, "3-D inputs need q_num_heads and kv_num_heads dividing the hidden size")
		}
		B, Hq, Sq, D := qs[0], qs[1], qs[2], qs[3]
		Hk, Dv := ks[1], vs[3]
		if ks[0] != B || vs[0] != B || ks[3] != D || vs[1] != Hk || vs[2] != ks[2] || Hk == 0 || Hq%Hk != 0 {
			return ewErr(n, "Q %v, K %v and V %v do not agree", q.Shape, k.Shape, v.Shape)
		}
		past := 0
		if pk, pv := in(4), in(5); pk != nil || pv != nil {
			if pk == nil || pv == nil || len(pk.Shape) != 4 || len(pv.Shape) != 4 ||
				int(pk.Shape[0]) != B || int(pk.Shape[1]) != Hk || int(pk.Shape[3]) != D ||
				int(pv.Shape[0]) != B || int(pv.Shape[1]) != Hk || int(pv.Shape[3]) != Dv || pv.Shape[2] != pk.Shape[2] {
				return ewErr(n, "past_key/past_value do not match K/V")
			}
			past = int(pk.Shape[2])
			pkv, err := ewF64s(pk)
			if err != nil {
				return ewErr(n, "%v", err)
			}
			pvv, err := ewF64s(pv)
			if err != nil {
				return ewErr(n, "%v", err)
			}
			kv = ewCatSeq(pkv, kv, B*Hk, past, ks[2], D)
			vv = ewCatSeq(pvv, vv, B*Hk, past, vs[2], Dv)
		}
		Skv := past + ks[2]
		// present_key / present_value
		for i, data := range [][]float64{kv, vv} {
			if !c.HasOutput(i + 1) {
				continue
			}
			dd := D
			if i == 1 {
				dd = Dv
			}
			o, err := c.Out(i+1, q.DType, []int64{int64(B), int64(Hk), int64(Skv), int64(dd)})
			if err != nil {
				return err
			}
			if err := ewSetF64(o, data); err != nil {
				return ewErr(n, "%v", err)
			}
		}
		// mask, padded to Skv, right-aligned broadcast to (B, Hq, Sq, Skv)
		var mask []float64
		var mst [4]int
		var mIsBool bool
		if m := in(3); m != nil {
			mr := len(m.Shape)
			if mr < 2 || mr > 4 {
				return ewErr(n, "attn_mask must have rank 2 to 4")
			}
			mIsBool = m.DType == graph.Bool
			mv, err := ewF64s(m)
			if err != nil {
				return ewErr(n, "%v", err)
			}
			last := int(m.Shape[mr-1])
			if last > Skv {
				return ewErr(n, "attn_mask last dim %d exceeds the key length %d", last, Skv)
			}
			rows := len(mv) / max(last, 1)
			mask = make([]float64, rows*Skv)
			for rI := 0; rI < rows; rI++ {
				for j := 0; j < Skv; j++ {
					var x float64
					if j < last {
						x = mv[rI*last+j]
					} else if !mIsBool {
						x = math.Inf(-1)
					}
					mask[rI*Skv+j] = x
				}
			}
			full := [4]int{1, 1, 1, Skv}
			for i := 0; i < mr-1; i++ {
				full[4-mr+i] = int(m.Shape[i])
			}
			want := [4]int{B, Hq, Sq, Skv}
			st := 1
			for d := 3; d >= 0; d-- {
				if full[d] != 1 && full[d] != want[d] {
					return ewErr(n, "attn_mask shape %v does not broadcast", m.Shape)
				}
				if full[d] != 1 || d == 3 {
					mst[d] = st
				}
				st *= full[d]
			}
		}
		var nonpad []int64
		if t := in(6); t != nil {
			if nonpad, err = ewInts(t); err != nil || len(nonpad) != B {
				return ewErr(n, "nonpad_kv_seqlen must hold one length per batch")
			}
		}
		negInf := math.Inf(-1)
		bias := func(b, h, i, j int) float64 {
			x := 0.0
			if mask != nil {
				mv := mask[b*mst[0]+h*mst[1]+i*mst[2]+j]
				if mIsBool {
					if causal {
						x = (1 - mv) * negInf // NaN where allowed, as the reference computes
					} else if mv == 0 {
						x = negInf
					}
				} else {
					x = mv
				}
			}
			if causal {
				off := past
				if past == 0 && nonpad != nil {
					off = int(nonpad[b]) - Sq
				}
				if j > i+off {
					x += negInf
				}
			}
			if nonpad != nil && int64(j) >= nonpad[b] {
				x += negInf
			}
			return x
		}
		scale := 1 / math.Sqrt(float64(D))
		if scaleA != nil {
			scale = float64(scaleA.F)
		}
		sq := math.Sqrt(scale)
		rep := Hq / Hk
		y := make([]float64, B*Hq*Sq*Dv)
		var qkOut []float64
		if c.HasOutput(3) {
			qkOut = make([]float64, B*Hq*Sq*Skv)
		}
		row := make([]float64, Skv)
		for b := 0; b < B; b++ {
			for h := 0; h < Hq; h++ {
				kh := h / rep
				for i := 0; i < Sq; i++ {
					qr := qv[((b*Hq+h)*Sq+i)*D:][:D]
					for j := 0; j < Skv; j++ {
						kr := kv[((b*Hk+kh)*Skv+j)*D:][:D]
						s := 0.0
						for d := range qr {
							s += (qr[d] * sq) * (kr[d] * sq)
						}
						// softcap applies before the mask so -inf stays -inf
						if softcap > 0 {
							s = softcap * math.Tanh(s/softcap)
						}
						raw := s
						s += bias(b, h, i, j)
						withMask := s
						row[j] = s
						if qkOut != nil {
							p := ((b*Hq+h)*Sq+i)*Skv + j
							switch mode {
							case 2:
								qkOut[p] = withMask
							default:
								qkOut[p] = raw
							}
						}
					}
					mx := negInf
					for _, x := range row {
						mx = max(mx, x)
					}
					sum := 0.0
					for j, x := range row {
						row[j] = math.Exp(x - mx)
						sum += row[j]
					}
					for j := range row {
						row[j] /= sum
						if qkOut != nil && mode == 3 {
							qkOut[((b*Hq+h)*Sq+i)*Skv+j] = row[j]
						}
					}
					yr := y[((b*Hq+h)*Sq+i)*Dv:][:Dv]
					for j, p := range row {
						vr := vv[((b*Hk+kh)*Skv+j)*Dv:][:Dv]
						for d := range yr {
							yr[d] += p * vr[d]
						}
					}
				}
			}
		}
		yshape := []int64{int64(B), int64(Hq), int64(Sq), int64(Dv)}
		if r == 3 {
			t := make([]float64, len(y))
			for b := 0; b < B; b++ {
				for h := 0; h < Hq; h++ {
					for i := 0; i < Sq; i++ {
						copy(t[((b*Sq+i)*Hq+h)*Dv:][:Dv], y[((b*Hq+h)*Sq+i)*Dv:][:Dv])
					}
				}
			}
			y = t
			yshape = []int64{int64(B), int64(Sq), int64(Hq * Dv)}
		}
		o, err := c.Out(0, q.DType, yshape)
		if err != nil {
			return err
		}
		if err := ewSetF64(o, y); err != nil {
			return ewErr(n, "%v", err)
		}
		if qkOut != nil {
			o, err := c.Out(3, q.DType, []int64{int64(B), int64(Hq), int64(Sq), int64(Skv)})
			if err != nil {
				return err
			}
			return ewSetF64(o, qkOut)
		}
		return nil
	}, nil
}

// ewCatSeq concatenates a (G, Sa, D) and b (G, Sb, D) along S.
func ewCatSeq(a, b []float64, G, Sa, Sb, D int) []float64 {
	o := make([]float64, G*(Sa+Sb)*D)
	for g := 0; g < G; g++ {
		copy(o[g*(Sa+Sb)*D:], a[g*Sa*D:(g+1)*Sa*D])
		copy(o[(g*(Sa+Sb)+Sa)*D:], b[g*Sb*D:(g+1)*Sb*D])
	}
	return o
}
