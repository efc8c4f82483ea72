package interp

import (
	"fmt"
	"math"

	"github.com/optictl/optictl/pkg/graph"
)

// com.microsoft Attention (ONNX Runtime's contrib op, the form optictl's
// fuse-ort-attention pass writes): self-attention with the Q, K and V
// projections packed into one weight.
//
//	input   X [B, S, Din]
//	weights W [Din, Dq+Dk+Dv]   (Q columns, then K, then V)
//	bias    b [Dq+Dk+Dv]        (optional)
//	attention_bias (input 5)    additive, broadcast [B|1, H|1, S, S] (optional)
//	output  Y [B, S, Dv]
//
// Attributes: num_heads (required), scale (default 1/sqrt(head size)),
// unidirectional (causal mask), qkv_hidden_sizes, mask_filter_value. The
// mask_index, past and past_sequence_length inputs are not supported and
// are refused with an error naming them.
func init() { Register("com.microsoft", "Attention", nnBuildMSAttention) }

type nnMSAttention struct {
	heads   int
	scale   float64 // 0: 1/sqrt(head size)
	causal  bool
	sizes   []int64
	in      [3]nnF32In
	biasIn  nnF32In
	out     nnF32Out
	qkv     []float32
	scores  []float64
	outBufs []int64
}

func nnBuildMSAttention(n *graph.Node, bc *BuildContext) (Kernel, error) {
	h := n.AttrInt("num_heads", 0)
	if h <= 0 {
		return nil, fmt.Errorf("interp: %s: num_heads must be positive, got %d", n.OpType, h)
	}
	for i, what := range map[int]string{3: "mask_index", 4: "past", 6: "past_sequence_length"} {
		if bc.HasInput(i) {
			return nil, unsupportedf("interp: com.microsoft.Attention: input %d (%s) is not supported", i, what)
		}
	}
	if v := n.AttrInt("do_rotary", 0); v != 0 {
		return nil, unsupportedf("interp: com.microsoft.Attention: do_rotary is not supported")
	}
	a := &nnMSAttention{heads: int(h), causal: n.AttrInt("unidirectional", 0) != 0, sizes: n.AttrInts("qkv_hidden_sizes")}
	if at := n.Attr("scale"); at != nil {
		a.scale = float64(at.F)
	}
	if len(a.sizes) != 0 && len(a.sizes) != 3 {
		return nil, fmt.Errorf("interp: com.microsoft.Attention: qkv_hidden_sizes must have 3 values, got %d", len(a.sizes))
	}
	return a.run, nil
}

func (a *nnMSAttention) run(c *Call) error {
	if len(c.In) < 2 || c.In[0] == nil || c.In[1] == nil {
		return fmt.Errorf("interp: %s: needs input and weights", c.Node)
	}
	x, w := c.In[0], c.In[1]
	if len(x.Shape) != 3 || len(w.Shape) != 2 {
		return fmt.Errorf("interp: %s: input must be [B,S,D] and weights 2-D, got %v and %v", c.Node, x.Shape, w.Shape)
	}
	if x.DType != graph.Float || w.DType != graph.Float {
		return fmt.Errorf("interp: %s: float32 only, got %s and %s", c.Node, x.DType, w.DType)
	}
	B, S, Din := int(x.Shape[0]), int(x.Shape[1]), int(x.Shape[2])
	if int(w.Shape[0]) != Din {
		return fmt.Errorf("interp: %s: weights %v do not match input hidden size %d", c.Node, w.Shape, Din)
	}
	tot := int(w.Shape[1])
	dq, dk, dv := tot/3, tot/3, tot/3
	if a.sizes != nil {
		dq, dk, dv = int(a.sizes[0]), int(a.sizes[1]), int(a.sizes[2])
	}
	H := a.heads
	if dq+dk+dv != tot || dq != dk || dq%H != 0 || dv%H != 0 || dq <= 0 || dv <= 0 {
		return fmt.Errorf("interp: %s: hidden sizes %d/%d/%d do not fit weights %v and %d heads", c.Node, dq, dk, dv, w.Shape, H)
	}
	hd, hv := dq/H, dv/H
	xd, err := a.in[0].get(x)
	if err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	wd, err := a.in[1].get(w)
	if err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	var bd []float32
	if len(c.In) > 2 && c.In[2] != nil {
		if bd, err = a.in[2].get(c.In[2]); err != nil {
			return fmt.Errorf("interp: %s: %w", c.Node, err)
		}
		if len(bd) != tot {
			return fmt.Errorf("interp: %s: bias has %d values, want %d", c.Node, len(bd), tot)
		}
	}
	var ab []float32
	var abShape []int64
	if len(c.In) > 5 && c.In[5] != nil {
		t := c.In[5]
		if len(t.Shape) != 4 || (t.Shape[0] != 1 && int(t.Shape[0]) != B) || (t.Shape[1] != 1 && int(t.Shape[1]) != H) ||
			int(t.Shape[2]) != S || int(t.Shape[3]) != S {
			return fmt.Errorf("interp: %s: attention_bias %v must be [B|1, H|1, %d, %d]", c.Node, t.Shape, S, S)
		}
		if ab, err = a.biasIn.get(t); err != nil {
			return fmt.Errorf("interp: %s: %w", c.Node, err)
		}
		abShape = t.Shape
	}
	rows := B * S
	if rows > 0 && tot > math.MaxInt32/rows {
		return fmt.Errorf("interp: %s: projection of %d rows x %d is too large", c.Node, rows, tot)
	}
	if cap(a.qkv) < rows*tot {
		a.qkv = make([]float32, rows*tot)
	}
	qkv := a.qkv[:rows*tot]
	for r := 0; r < rows; r++ {
		dst := qkv[r*tot : (r+1)*tot]
		if bd != nil {
			copy(dst, bd)
		} else {
			clear(dst)
		}
		src := xd[r*Din : (r+1)*Din]
		for k, xv := range src {
			if xv == 0 {
				continue
			}
			wr := wd[k*tot : (k+1)*tot]
			for j := range dst {
				dst[j] += xv * wr[j]
			}
		}
	}
	a.outBufs = append(a.outBufs[:0], int64(B), int64(S), int64(dv))
	y, err := c.Out(0, graph.Float, a.outBufs)
	if err != nil {
		return err
	}
	yd := a.out.get(y)
	scale := a.scale
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(hd))
	}
	if cap(a.scores) < S {
		a.scores = make([]float64, S)
	}
	sc := a.scores[:S]
	for b := 0; b < B; b++ {
		for h := 0; h < H; h++ {
			for i := 0; i < S; i++ {
				q := qkv[(b*S+i)*tot+h*hd:][:hd]
				mx := math.Inf(-1)
				for j := 0; j < S; j++ {
					if a.causal && j > i {
						sc[j] = math.Inf(-1)
						continue
					}
					k := qkv[(b*S+j)*tot+dq+h*hd:][:hd]
					var dot float64
					for d := range q {
						dot += float64(q[d]) * float64(k[d])
					}
					v := dot * scale
					if ab != nil {
						bb, hh := b, h
						if abShape[0] == 1 {
							bb = 0
						}
						if abShape[1] == 1 {
							hh = 0
						}
						v += float64(ab[((bb*int(abShape[1])+hh)*S+i)*S+j])
					}
					sc[j] = v
					mx = math.Max(mx, v)
				}
				var sum float64
				for j := range sc {
					if math.IsInf(sc[j], -1) {
						sc[j] = 0
						continue
					}
					sc[j] = math.Exp(sc[j] - mx)
					sum += sc[j]
				}
				o := yd[(b*S+i)*dv+h*hv:][:hv]
				clear(o)
				for j := 0; j < S; j++ {
					p := float32(sc[j] / sum)
					if p == 0 {
						continue
					}
					v := qkv[(b*S+j)*tot+dq+dk+h*hv:][:hv]
					for d := range o {
						o[d] += p * v[d]
					}
				}
			}
		}
	}
	a.out.done(y, yd)
	return nil
}
