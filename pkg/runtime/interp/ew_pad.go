package interp

import (
	"sort"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Pad (constant, reflect, edge, wrap; negative pads crop), CenterCropPad,
// Unique, CumProd, BitCast, Swish.

func init() {
	Register("", "Pad", ewBuildPad)
	Register("", "CenterCropPad", ewBuildCenterCropPad)
	Register("", "Unique", ewBuildUnique)
	Register("", "CumProd", ewBuildCumulative(true))
	Register("", "BitCast", ewBuildBitCast)
	Register("", "Swish", func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		alpha := float64(n.AttrFloat("alpha", 1))
		return ewBuildUnary(n, ewUnarySpec{f: ewC(func(x float64) float64 { return x * ewSigmoid(alpha*x) })})
	})
}

// ewPadIdx maps each output element to an input element (-1: fill).
func ewPadIdx(in []int64, pb, pe []int64, mode string) ([]int64, []int) {
	r := len(in)
	out := make([]int64, r)
	for d := range in {
		out[d] = in[d] + pb[d] + pe[d]
	}
	st := ewStrides(in)
	idx := make([]int, ewNumel(out))
	ewForEach(out, func(i int, ix []int64) {
		p := 0
		for d, o := range ix {
			s := o - pb[d]
			n := in[d]
			if s < 0 || s >= n {
				if n == 0 {
					p = -1
					break
				}
				switch mode {
				case "edge":
					s = min(max(s, 0), n-1)
				case "reflect":
					if n == 1 {
						s = 0
						break
					}
					period := 2 * (n - 1)
					s = ((s % period) + period) % period
					if s >= n {
						s = period - s
					}
				case "wrap":
					s = ((s % n) + n) % n
				default:
					p = -1
				}
				if p < 0 {
					break
				}
			}
			p += int(s) * st[d]
		}
		idx[i] = p
	})
	return out, idx
}

func ewBuildPad(n *graph.Node, bc *BuildContext) (Kernel, error) {
	mode := n.AttrString("mode", "constant")
	switch mode {
	case "constant", "reflect", "edge", "wrap":
	default:
		return nil, ewErr(n, "unknown mode %q", mode)
	}
	var cache ewIdxCache
	var oshape []int64
	return func(c *Call) error {
		x := c.In[0]
		if x == nil {
			return ewErr(n, "missing input")
		}
		r := len(x.Shape)
		var pads []int64
		val := 0.0
		var valT *runtime.Tensor
		var err error
		if bc.Opset < 11 {
			pads = n.AttrInts("pads")
			if n.Attr("paddings") != nil {
				pads = n.AttrInts("paddings")
			}
			val = float64(n.AttrFloat("value", 0))
		} else {
			if len(c.In) < 2 || c.In[1] == nil {
				return ewErr(n, "missing pads")
			}
			if pads, err = ewInts(c.In[1]); err != nil {
				return ewErr(n, "pads: %v", err)
			}
			if len(c.In) > 2 && c.In[2] != nil && c.In[2].Len() == 1 {
				valT = c.In[2]
			}
			if len(c.In) > 3 && c.In[3] != nil {
				axes, err := ewInts(c.In[3])
				if err != nil {
					return ewErr(n, "axes: %v", err)
				}
				if len(pads) != 2*len(axes) {
					return ewErr(n, "%d pads for %d axes", len(pads), len(axes))
				}
				full := make([]int64, 2*r)
				for i, a := range axes {
					ax, err := ewNormAxis(a, r)
					if err != nil {
						return ewErr(n, "%v", err)
					}
					full[ax], full[ax+r] = pads[i], pads[i+len(axes)]
				}
				pads = full
			}
		}
		if len(pads) != 2*r {
			return ewErr(n, "%d pads for rank %d", len(pads), r)
		}
		key := append(append([]int64(nil), x.Shape...), pads...)
		idx, ok := cache.get(key)
		if !ok {
			for d := 0; d < r; d++ {
				if x.Shape[d]+pads[d]+pads[d+r] < 0 {
					return ewErr(n, "pads %v crop past dim %d", pads, d)
				}
			}
			oshape, idx = ewPadIdx(x.Shape, pads[:r], pads[r:], mode)
			cache.put(key, idx)
		}
		if err := ewCheckSize(oshape); err != nil {
			return ewErr(n, "%v", err)
		}
		o, err := c.Out(0, x.DType, oshape)
		if err != nil {
			return err
		}
		if mode == "constant" {
			fill := valT
			if fill == nil || fill.DType != x.DType {
				fill = runtime.NewTensor(x.DType, nil)
				if x.DType != graph.String {
					if err := ewSetF64(fill, []float64{val}); err != nil {
						return ewErr(n, "%v", err)
					}
				}
			}
			zi := make([]int, len(idx))
			for i, j := range idx {
				if j >= 0 {
					zi[i] = -1
				}
			}
			ewTake(o, fill, zi)
		}
		ewTake(o, x, idx)
		return nil
	}, nil
}

func ewBuildCenterCropPad(n *graph.Node, bc *BuildContext) (Kernel, error) {
	axesA := n.AttrInts("axes")
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || len(c.In) < 2 || c.In[1] == nil {
			return ewErr(n, "missing input")
		}
		shp, err := ewInts(c.In[1])
		if err != nil {
			return ewErr(n, "%v", err)
		}
		r := len(x.Shape)
		axes := axesA
		if len(axes) == 0 {
			axes = make([]int64, r)
			for i := range axes {
				axes[i] = int64(i)
			}
		}
		if len(shp) != len(axes) {
			return ewErr(n, "shape has %d values for %d axes", len(shp), len(axes))
		}
		pb := make([]int64, r)
		pe := make([]int64, r)
		for i, a := range axes {
			ax, err := ewNormAxis(a, r)
			if err != nil {
				return ewErr(n, "%v", err)
			}
			diff := shp[i] - x.Shape[ax]
			if diff >= 0 { // pad: extra goes to the end
				pb[ax] = diff / 2
				pe[ax] = diff - diff/2
			} else { // crop: extra removed from the start side first
				d := -diff
				pb[ax] = -(d / 2)
				pe[ax] = -(d - d/2)
			}
		}
		oshape, idx := ewPadIdx(x.Shape, pb, pe, "constant")
		o, err := c.OutZero(0, x.DType, oshape)
		if err != nil {
			return err
		}
		ewTake(o, x, idx)
		return nil
	}, nil
}

func ewBuildUnique(n *graph.Node, bc *BuildContext) (Kernel, error) {
	sorted := n.AttrInt("sorted", 1) != 0
	axisA := n.Attr("axis")
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || !ewIsNumeric(x.DType) {
			return ewErr(n, "needs a numeric input")
		}
		v, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		shape := []int64{int64(len(v))}
		ax := 0
		if axisA != nil {
			if ax, err = ewNormAxis(axisA.I, len(x.Shape)); err != nil {
				return ewErr(n, "%v", err)
			}
			shape = x.Shape
		}
		outer := ewNumel(shape[:ax])
		dim := int(shape[ax])
		inner := ewNumel(shape[ax+1:])
		slice := func(k int) []float64 {
			s := make([]float64, 0, outer*inner)
			for j := 0; j < outer; j++ {
				s = append(s, v[(j*dim+k)*inner:(j*dim+k+1)*inner]...)
			}
			return s
		}
		less := func(a, b []float64) int {
			for i := range a {
				if a[i] < b[i] {
					return -1
				}
				if a[i] > b[i] {
					return 1
				}
			}
			return 0
		}
		var firsts []int
		var keys [][]float64
		inverse := make([]int64, dim)
		counts := []int64{}
		for k := 0; k < dim; k++ {
			s := slice(k)
			found := -1
			for u, kk := range keys {
				if less(kk, s) == 0 {
					found = u
					break
				}
			}
			if found < 0 {
				found = len(keys)
				keys = append(keys, s)
				firsts = append(firsts, k)
				counts = append(counts, 0)
			}
			inverse[k] = int64(found)
			counts[found]++
		}
		order := make([]int, len(keys))
		for i := range order {
			order[i] = i
		}
		if sorted {
			sort.SliceStable(order, func(a, b int) bool { return less(keys[order[a]], keys[order[b]]) < 0 })
		}
		rank := make([]int64, len(keys))
		for r, u := range order {
			rank[u] = int64(r)
		}
		oshape := append([]int64(nil), shape...)
		oshape[ax] = int64(len(keys))
		yo, err := c.Out(0, x.DType, oshape)
		if err != nil {
			return err
		}
		idx := make([]int, ewNumel(oshape))
		u := len(keys)
		for j := 0; j < outer; j++ {
			for r, kk := range order {
				for q := 0; q < inner; q++ {
					idx[(j*u+r)*inner+q] = (j*dim+firsts[kk])*inner + q
				}
			}
		}
		ewTake(yo, x, idx)
		outs := [][]int64{nil, make([]int64, u), make([]int64, dim), make([]int64, u)}
		for r, kk := range order {
			outs[1][r] = int64(firsts[kk])
			outs[3][r] = counts[kk]
		}
		for k := range inverse {
			outs[2][k] = rank[inverse[k]]
		}
		for i := 1; i < 4; i++ {
			if !c.HasOutput(i) {
				continue
			}
			t, err := c.Out(i, graph.Int64, []int64{int64(len(outs[i]))})
			if err != nil {
				return err
			}
			copy(ewView[int64](t), outs[i])
		}
		return nil
	}, nil
}

// BitCast reinterprets the bytes of each element as another dtype of the
// same size.
func ewBuildBitCast(n *graph.Node, bc *BuildContext) (Kernel, error) {
	a := n.Attr("to")
	if a == nil {
		return nil, ewErr(n, "missing attribute to")
	}
	to := graph.DType(a.I)
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || x.DType == graph.String || to == graph.String || x.DType.BitSize() != to.BitSize() {
			return ewErr(n, "cannot bitcast %v to %s", x, to)
		}
		o, err := c.Out(0, to, x.Shape)
		if err != nil {
			return err
		}
		copy(o.Raw, x.Raw)
		if to == graph.Bool {
			for i, b := range o.Raw {
				if b != 0 {
					o.Raw[i] = 1
				}
			}
		}
		return nil
	}, nil
}
