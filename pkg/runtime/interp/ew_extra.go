package interp

import (
	"math"
	"sort"

	"github.com/optictl/optictl/pkg/graph"
)

// TensorScatter (KV-cache update), Det and RotaryEmbedding.

func init() {
	Register("", "TensorScatter", ewBuildTensorScatter)
	Register("", "Det", ewBuildDet)
	Register("", "RotaryEmbedding", ewBuildRotary)
}

func ewBuildTensorScatter(n *graph.Node, bc *BuildContext) (Kernel, error) {
	axis := n.AttrInt("axis", -2)
	circular := n.AttrString("mode", "linear") == "circular"
	return func(c *Call) error {
		past, upd := c.In[0], c.In[1]
		if past == nil || upd == nil || past.DType != upd.DType || len(past.Shape) != len(upd.Shape) || len(past.Shape) < 2 {
			return ewErr(n, "past_cache and update must share dtype and rank >= 2")
		}
		r := len(past.Shape)
		ax, err := ewNormAxis(axis, r)
		if err != nil || ax == 0 {
			return ewErr(n, "axis %d must name a sequence axis after the batch axis", axis)
		}
		for d := 0; d < r; d++ {
			if d != ax && past.Shape[d] != upd.Shape[d] {
				return ewErr(n, "update shape %v does not match past_cache %v", upd.Shape, past.Shape)
			}
		}
		B := int(past.Shape[0])
		var idx []int64
		if len(c.In) > 2 && c.In[2] != nil {
			if idx, err = ewInts(c.In[2]); err != nil || len(idx) != B {
				return ewErr(n, "write_indices must hold one index per batch")
			}
		} else {
			idx = make([]int64, B)
		}
		o, err := c.Out(0, past.DType, past.Shape)
		if err != nil {
			return err
		}
		ewCopyElems(o, 0, past, 0, past.Len())
		maxS, seq := int(past.Shape[ax]), int(upd.Shape[ax])
		mid := ewNumel(past.Shape[1:ax])
		inner := ewNumel(past.Shape[ax+1:])
		for b := 0; b < B; b++ {
			for m := 0; m < mid; m++ {
				for i := 0; i < seq; i++ {
					p := int(idx[b]) + i
					if circular {
						p = ((p % maxS) + maxS) % maxS
					}
					if p < 0 || p >= maxS {
						return ewErr(n, "write index %d+%d outside the cache of %d", idx[b], i, maxS)
					}
					dst := ((b*mid+m)*maxS + p) * inner
					src := ((b*mid+m)*seq + i) * inner
					ewCopyElems(o, dst, upd, src, inner)
				}
			}
		}
		return nil
	}, nil
}

func ewBuildDet(n *graph.Node, bc *BuildContext) (Kernel, error) {
	return func(c *Call) error {
		x := c.In[0]
		r := 0
		if x != nil {
			r = len(x.Shape)
		}
		if x == nil || r < 2 || x.Shape[r-1] != x.Shape[r-2] || !x.DType.IsFloat() {
			return ewErr(n, "needs float square matrices [..., M, M]")
		}
		M := int(x.Shape[r-1])
		v, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		batch := ewNumel(x.Shape[:r-2])
		res := make([]float64, batch)
		a := make([]float64, M*M)
		for b := 0; b < batch; b++ {
			copy(a, v[b*M*M:(b+1)*M*M])
			det := 1.0
			for k := 0; k < M; k++ {
				p := k
				for i := k + 1; i < M; i++ {
					if math.Abs(a[i*M+k]) > math.Abs(a[p*M+k]) {
						p = i
					}
				}
				if a[p*M+k] == 0 {
					det = 0
					break
				}
				if p != k {
					for j := 0; j < M; j++ {
						a[k*M+j], a[p*M+j] = a[p*M+j], a[k*M+j]
					}
					det = -det
				}
				det *= a[k*M+k]
				for i := k + 1; i < M; i++ {
					f := a[i*M+k] / a[k*M+k]
					for j := k; j < M; j++ {
						a[i*M+j] -= f * a[k*M+j]
					}
				}
			}
			res[b] = det
		}
		o, err := c.Out(0, x.DType, x.Shape[:r-2])
		if err != nil {
			return err
		}
		return ewSetF64(o, res)
	}, nil
}

func ewBuildRotary(n *graph.Node, bc *BuildContext) (Kernel, error) {
	interleaved := n.AttrInt("interleaved", 0) != 0
	rotDim := int(n.AttrInt("rotary_embedding_dim", 0))
	heads := int(n.AttrInt("num_heads", 0))
	return func(c *Call) error {
		x, cc, sc := c.In[0], c.In[1], c.In[2]
		if x == nil || cc == nil || sc == nil || !x.DType.IsFloat() {
			return ewErr(n, "needs float input, cos_cache and sin_cache")
		}
		var B, S, H, D int
		four := len(x.Shape) == 4
		switch {
		case four:
			B, H, S, D = int(x.Shape[0]), int(x.Shape[1]), int(x.Shape[2]), int(x.Shape[3])
		case len(x.Shape) == 3 && heads > 0 && int(x.Shape[2])%heads == 0:
			B, S, H = int(x.Shape[0]), int(x.Shape[1]), heads
			D = int(x.Shape[2]) / heads
		default:
			return ewErr(n, "input must be [B, H, S, D], or [B, S, hidden] with num_heads dividing hidden")
		}
		rd := rotDim
		if rd == 0 {
			rd = D
		}
		if rd > D || rd%2 != 0 {
			return ewErr(n, "rotary_embedding_dim %d does not fit head size %d", rd, D)
		}
		half := rd / 2
		xv, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		cv, err := ewF64s(cc)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		sv, err := ewF64s(sc)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		cw := int(cc.Shape[len(cc.Shape)-1])
		if cw < half || len(sv) != len(cv) {
			return ewErr(n, "cos/sin caches of shape %v are too narrow for %d", cc.Shape, half)
		}
		var pos []int64
		if len(c.In) > 3 && c.In[3] != nil {
			if pos, err = ewInts(c.In[3]); err != nil || len(pos) != B*S {
				return ewErr(n, "position_ids must be [batch, seq]")
			}
		} else if len(cv) != B*S*cw {
			return ewErr(n, "without position_ids the caches must be [batch, seq, dim/2]")
		}
		out := append([]float64(nil), xv...)
		for b := 0; b < B; b++ {
			for s := 0; s < S; s++ {
				row := b*S + s
				if pos != nil {
					row = int(pos[b*S+s])
					if row < 0 || (row+1)*cw > len(cv) {
						return ewErr(n, "position id %d out of range", row)
					}
				}
				cr, sr := cv[row*cw:], sv[row*cw:]
				for h := 0; h < H; h++ {
					base := ((b*S+s)*H + h) * D
					if four {
						base = ((b*H+h)*S + s) * D
					}
					for k := 0; k < half; k++ {
						i1, i2 := k, k+half
						if interleaved {
							i1, i2 = 2*k, 2*k+1
						}
						x1, x2 := xv[base+i1], xv[base+i2]
						out[base+i1] = cr[k]*x1 - sr[k]*x2
						out[base+i2] = sr[k]*x1 + cr[k]*x2
					}
				}
			}
		}
		o, err := c.Out(0, x.DType, x.Shape)
		if err != nil {
			return err
		}
		return ewSetF64(o, out)
	}, nil
}

func init() { Register("", "DFT", ewBuildDFT) }

// DFT along one signal axis; the last dim holds 1 (real) or 2 (real,
// imaginary) components. Direct O(n²) evaluation in float64.
func ewBuildDFT(n *graph.Node, bc *BuildContext) (Kernel, error) {
	inverse := n.AttrInt("inverse", 0) != 0
	onesided := n.AttrInt("onesided", 0) != 0
	axisA := n.AttrInt("axis", 1)
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || !x.DType.IsFloat() || len(x.Shape) < 2 {
			return ewErr(n, "needs a float signal of rank >= 2")
		}
		r := len(x.Shape)
		comp := int(x.Shape[r-1])
		if comp != 1 && comp != 2 {
			return ewErr(n, "last dim must be 1 (real) or 2 (complex), got %d", comp)
		}
		axis := axisA
		if bc.Opset >= 20 {
			axis = -2
			if len(c.In) > 2 && c.In[2] != nil {
				v, err := ewInts(c.In[2])
				if err != nil || len(v) != 1 {
					return ewErr(n, "axis must be a scalar")
				}
				axis = v[0]
			}
		}
		if axis < 0 {
			axis += int64(r)
		}
		if axis < 0 || axis >= int64(r-1) {
			return ewErr(n, "axis %d must be a signal axis (not the last)", axis)
		}
		ax := int(axis)
		dim := int(x.Shape[ax])
		L := dim
		if inverse && onesided {
			L = 2 * (dim - 1) // numpy's irfft default length
		}
		if len(c.In) > 1 && c.In[1] != nil && c.In[1].Len() > 0 {
			v, err := ewInts(c.In[1])
			if err != nil || len(v) != 1 || v[0] < 1 || v[0] > 1<<20 {
				return ewErr(n, "dft_length must be a positive scalar")
			}
			L = int(v[0])
		}
		K := L
		irfft := inverse && onesided // half spectrum in, real signal of length L out
		if onesided && !irfft {
			K = L/2 + 1
		}
		oc := 2
		if irfft {
			oc = 1
		}
		oshape := append([]int64(nil), x.Shape...)
		oshape[ax] = int64(K)
		oshape[r-1] = int64(oc)
		if err := ewCheckSize(oshape); err != nil {
			return ewErr(n, "%v", err)
		}
		xv, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		outer := ewNumel(x.Shape[:ax])
		inner := ewNumel(x.Shape[ax+1 : r-1])
		res := make([]float64, ewNumel(oshape))
		sign := -1.0
		if inverse {
			sign = 1
		}
		for j := 0; j < outer; j++ {
			for q := 0; q < inner; q++ {
				for k := 0; k < K; k++ {
					var re, im float64
					for t := 0; t < L; t++ {
						src, conj := t, false
						if t >= dim {
							if !irfft || L-t >= dim {
								continue // zero padding
							}
							src, conj = L-t, true // Hermitian symmetry
						}
						p := ((j*dim+src)*inner + q) * comp
						a := xv[p]
						b := 0.0
						if comp == 2 {
							b = xv[p+1]
						}
						if conj {
							b = -b
						}
						ang := sign * 2 * math.Pi * float64(k) * float64(t) / float64(L)
						cs, sn := math.Cos(ang), math.Sin(ang)
						re += a*cs - b*sn
						im += a*sn + b*cs
					}
					if inverse {
						re /= float64(L)
						im /= float64(L)
					}
					p := ((j*K+k)*inner + q) * oc
					res[p] = re
					if oc == 2 {
						res[p+1] = im
					}
				}
			}
		}
		o, err := c.Out(0, x.DType, oshape)
		if err != nil {
			return err
		}
		return ewSetF64(o, res)
	}, nil
}

func init() { Register("", "NonMaxSuppression", ewBuildNMS) }

func ewBuildNMS(n *graph.Node, bc *BuildContext) (Kernel, error) {
	center := n.AttrInt("center_point_box", 0) != 0
	return func(c *Call) error {
		bx, sc := c.In[0], c.In[1]
		if bx == nil || sc == nil || len(bx.Shape) != 3 || bx.Shape[2] != 4 || len(sc.Shape) != 3 ||
			sc.Shape[0] != bx.Shape[0] || sc.Shape[2] != bx.Shape[1] {
			return ewErr(n, "boxes [B, N, 4] and scores [B, C, N] must agree")
		}
		opt := func(i int) []float64 {
			if i < len(c.In) && c.In[i] != nil && c.In[i].Len() > 0 {
				v, err := ewF64s(c.In[i])
				if err == nil {
					return v
				}
			}
			return nil
		}
		maxOut := 0
		if v := opt(2); v != nil {
			maxOut = int(v[0])
		}
		iouTh := 0.0
		if v := opt(3); v != nil {
			iouTh = v[0]
		}
		scoreTh, hasScore := 0.0, false
		if v := opt(4); v != nil {
			scoreTh, hasScore = v[0], true
		}
		bv, err := ewF64s(bx)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		sv, err := ewF64s(sc)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		B, C, N := int(sc.Shape[0]), int(sc.Shape[1]), int(sc.Shape[2])
		corners := func(b, i int) (y1, x1, y2, x2 float64) {
			p := bv[(b*N+i)*4:]
			if center {
				xc, yc, w, h := p[0], p[1], p[2], p[3]
				return yc - h/2, xc - w/2, yc + h/2, xc + w/2
			}
			return min(p[0], p[2]), min(p[1], p[3]), max(p[0], p[2]), max(p[1], p[3])
		}
		iou := func(b, i, j int) float64 {
			ay1, ax1, ay2, ax2 := corners(b, i)
			by1, bx1, by2, bx2 := corners(b, j)
			aa := (ay2 - ay1) * (ax2 - ax1)
			ab := (by2 - by1) * (bx2 - bx1)
			if aa <= 0 || ab <= 0 {
				return 0
			}
			ih := min(ay2, by2) - max(ay1, by1)
			iw := min(ax2, bx2) - max(ax1, bx1)
			if ih <= 0 || iw <= 0 {
				return 0
			}
			inter := ih * iw
			return inter / (aa + ab - inter)
		}
		var sel []int64
		order := make([]int, N)
		for b := 0; b < B; b++ {
			for cl := 0; cl < C; cl++ {
				s := sv[(b*C+cl)*N:][:N]
				order = order[:0]
				for i := 0; i < N; i++ {
					if !hasScore || s[i] > scoreTh {
						order = append(order, i)
					}
				}
				sort.SliceStable(order, func(a, b int) bool { return s[order[a]] > s[order[b]] })
				var kept []int
				for _, i := range order {
					if len(kept) >= maxOut {
						break
					}
					ok := true
					for _, k := range kept {
						if iou(b, i, k) > iouTh {
							ok = false
							break
						}
					}
					if ok {
						kept = append(kept, i)
						sel = append(sel, int64(b), int64(cl), int64(i))
					}
				}
			}
		}
		o, err := c.Out(0, graph.Int64, []int64{int64(len(sel) / 3), 3})
		if err != nil {
			return err
		}
		copy(ewView[int64](o), sel)
		return nil
	}, nil
}
