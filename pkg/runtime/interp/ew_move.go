package interp

import (
	"fmt"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Data movement: Transpose, Concat, Split, Slice, Gather*, Scatter*, Tile,
// DepthToSpace, SpaceToDepth, Compress, ReverseSequence, Trilu, OneHot,
// NonZero. They work on any dtype (strings included) by moving elements.

func init() {
	Register("", "Transpose", ewBuildTranspose)
	Register("", "Concat", ewBuildConcat)
	Register("", "Split", ewBuildSplit)
	Register("", "Slice", ewBuildSlice)
	Register("", "Gather", ewBuildGather)
	Register("", "GatherElements", ewBuildGatherElements)
	Register("", "GatherND", ewBuildGatherND)
	Register("", "ScatterElements", ewBuildScatterElements)
	Register("", "Scatter", ewBuildScatterElements)
	Register("", "ScatterND", ewBuildScatterND)
	Register("", "Tile", ewBuildTile)
	Register("", "DepthToSpace", ewBuildDepthToSpace)
	Register("", "SpaceToDepth", ewBuildSpaceToDepth)
	Register("", "Compress", ewBuildCompress)
	Register("", "ReverseSequence", ewBuildReverseSequence)
	Register("", "Trilu", ewBuildTrilu)
	Register("", "OneHot", ewBuildOneHot)
	Register("", "NonZero", ewBuildNonZero)
}

// ewPermIdx: out element i reads in[idx[i]] for out = transpose(in, perm).
func ewPermIdx(in []int64, perm []int) ([]int64, []int) {
	r := len(in)
	out := make([]int64, r)
	ist := ewStrides(in)
	ps := make([]int, r)
	for i, p := range perm {
		out[i] = in[p]
		ps[i] = ist[p]
	}
	idx := make([]int, ewNumel(out))
	ewForEach(out, func(i int, ix []int64) {
		p := 0
		for d, v := range ix {
			p += int(v) * ps[d]
		}
		idx[i] = p
	})
	return out, idx
}

func ewBuildTranspose(n *graph.Node, bc *BuildContext) (Kernel, error) {
	permA := n.AttrInts("perm")
	var cache ewIdxCache
	var oshape []int64
	return func(c *Call) error {
		x := c.In[0]
		if x == nil {
			return ewErr(n, "missing input")
		}
		r := len(x.Shape)
		idx, ok := cache.get(x.Shape)
		if !ok {
			perm := make([]int, r)
			if len(permA) == 0 {
				for i := range perm {
					perm[i] = r - 1 - i
				}
			} else {
				if len(permA) != r {
					return ewErr(n, "perm %v does not match rank %d", permA, r)
				}
				seen := make([]bool, r)
				for i, p := range permA {
					if p < 0 {
						p += int64(r)
					}
					if p < 0 || p >= int64(r) || seen[p] {
						return ewErr(n, "bad perm %v", permA)
					}
					seen[p] = true
					perm[i] = int(p)
				}
			}
			oshape, idx = ewPermIdx(x.Shape, perm)
			cache.put(x.Shape, idx)
		}
		o, err := c.Out(0, x.DType, oshape)
		if err != nil {
			return err
		}
		ewTake(o, x, idx)
		return nil
	}, nil
}

func ewBuildConcat(n *graph.Node, bc *BuildContext) (Kernel, error) {
	axis := n.AttrInt("axis", 0)
	if n.Attr("axis") == nil && bc.Opset >= 4 {
		return nil, ewErr(n, "axis attribute is required")
	}
	var shape []int64
	return func(c *Call) error {
		var first *runtime.Tensor
		for _, t := range c.In {
			if t != nil {
				first = t
				break
			}
		}
		if first == nil {
			return ewErr(n, "no inputs")
		}
		r := len(first.Shape)
		ax, err := ewNormAxis(axis, r)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		shape = append(shape[:0], first.Shape...)
		shape[ax] = 0
		for i, t := range c.In {
			if t == nil {
				continue
			}
			if t.DType != first.DType || len(t.Shape) != r {
				return ewErr(n, "input %d: %s%v does not match %s%v", i, t.DType, t.Shape, first.DType, first.Shape)
			}
			for d := range t.Shape {
				if d != ax && t.Shape[d] != first.Shape[d] {
					return ewErr(n, "input %d: shape %v does not match %v off axis %d", i, t.Shape, first.Shape, ax)
				}
			}
			shape[ax] += t.Shape[ax]
		}
		o, err := c.Out(0, first.DType, shape)
		if err != nil {
			return err
		}
		outer := ewNumel(shape[:ax])
		inner := ewNumel(shape[ax+1:])
		orow := int(shape[ax]) * inner
		off := 0
		for _, t := range c.In {
			if t == nil {
				continue
			}
			blk := int(t.Shape[ax]) * inner
			for j := 0; j < outer; j++ {
				ewCopyElems(o, j*orow+off, t, j*blk, blk)
			}
			off += blk
		}
		return nil
	}, nil
}

func ewBuildSplit(n *graph.Node, bc *BuildContext) (Kernel, error) {
	axis := n.AttrInt("axis", 0)
	splitA := n.AttrInts("split")
	numOut := n.AttrInt("num_outputs", 0)
	var shape []int64
	return func(c *Call) error {
		x := c.In[0]
		if x == nil {
			return ewErr(n, "missing input")
		}
		ax, err := ewNormAxis(axis, len(x.Shape))
		if err != nil {
			return ewErr(n, "%v", err)
		}
		k := c.NumOutputs()
		split := splitA
		if bc.Opset >= 13 && len(c.In) > 1 && c.In[1] != nil {
			if split, err = ewInts(c.In[1]); err != nil {
				return ewErr(n, "split: %v", err)
			}
		}
		dim := x.Shape[ax]
		if len(split) == 0 {
			split = make([]int64, k)
			if numOut > 0 && dim%int64(k) != 0 {
				// opset 18: the last chunk is smaller
				sz := (dim + int64(k) - 1) / int64(k)
				for i := range split {
					split[i] = min(sz, max(dim-int64(i)*sz, 0))
				}
			} else {
				if dim%int64(k) != 0 {
					return ewErr(n, "dim %d cannot be split in %d equal parts", dim, k)
				}
				for i := range split {
					split[i] = dim / int64(k)
				}
			}
		}
		if len(split) != k {
			return ewErr(n, "%d split sizes for %d outputs", len(split), k)
		}
		var sum int64
		for _, s := range split {
			if s < 0 {
				return ewErr(n, "negative split %v", split)
			}
			sum += s
		}
		if sum != dim {
			return ewErr(n, "split %v does not add up to dim %d", split, dim)
		}
		outer := ewNumel(x.Shape[:ax])
		inner := ewNumel(x.Shape[ax+1:])
		irow := int(dim) * inner
		off := 0
		for i, s := range split {
			shape = append(shape[:0], x.Shape...)
			shape[ax] = s
			o, err := c.Out(i, x.DType, shape)
			if err != nil {
				return err
			}
			blk := int(s) * inner
			for j := 0; j < outer; j++ {
				ewCopyElems(o, j*blk, x, j*irow+off, blk)
			}
			off += blk
		}
		return nil
	}, nil
}

// ewSliceParams resolves starts/ends/axes/steps into per-dim start, step
// and count.
func ewSliceParams(shape, starts, ends, axes, steps []int64) (st, sp, cnt []int64, err error) {
	r := len(shape)
	st = make([]int64, r)
	sp = make([]int64, r)
	cnt = append([]int64(nil), shape...)
	for i := range sp {
		sp[i] = 1
	}
	if len(starts) != len(ends) {
		return nil, nil, nil, fmt.Errorf("%d starts and %d ends", len(starts), len(ends))
	}
	seen := make([]bool, r)
	for i := range starts {
		a := int64(i)
		if axes != nil {
			if i >= len(axes) {
				return nil, nil, nil, fmt.Errorf("fewer axes than starts")
			}
			a = axes[i]
		}
		ax, err := ewNormAxis(a, r)
		if err != nil {
			return nil, nil, nil, err
		}
		if seen[ax] {
			return nil, nil, nil, fmt.Errorf("axis %d repeated", ax)
		}
		seen[ax] = true
		step := int64(1)
		if steps != nil {
			if i >= len(steps) {
				return nil, nil, nil, fmt.Errorf("fewer steps than starts")
			}
			step = steps[i]
		}
		if step == 0 {
			return nil, nil, nil, fmt.Errorf("step is zero")
		}
		d := shape[ax]
		s, e := starts[i], ends[i]
		if s < 0 {
			s += d
		}
		if e < 0 {
			e += d
		}
		if step > 0 {
			s = min(max(s, 0), d)
			e = min(max(e, 0), d)
		} else {
			s = min(max(s, -1), d-1)
			e = min(max(e, -1), d-1)
		}
		var c int64
		if step > 0 && e > s {
			c = (e - s + step - 1) / step
		} else if step < 0 && s > e {
			c = (s - e + (-step) - 1) / (-step)
		}
		st[ax], sp[ax], cnt[ax] = s, step, c
	}
	return st, sp, cnt, nil
}

func ewBuildSlice(n *graph.Node, bc *BuildContext) (Kernel, error) {
	var cache ewIdxCache
	var oshape []int64
	var key []int64
	var bufs [4][]int64
	return func(c *Call) error {
		x := c.In[0]
		if x == nil {
			return ewErr(n, "missing input")
		}
		var starts, ends, axes, steps []int64
		var err error
		if bc.Opset < 10 {
			starts, ends = n.AttrInts("starts"), n.AttrInts("ends")
			if a := n.Attr("axes"); a != nil {
				axes = a.Ints
			}
		} else {
			get := func(i int) []int64 {
				if err != nil || i >= len(c.In) || c.In[i] == nil {
					return nil
				}
				bufs[i-1], err = ewIntsInto(bufs[i-1], c.In[i])
				return bufs[i-1]
			}
			starts, ends, axes, steps = get(1), get(2), get(3), get(4)
			if err != nil {
				return ewErr(n, "%v", err)
			}
		}
		key = append(key[:0], x.Shape...)
		for _, part := range [][]int64{starts, ends, axes, steps} {
			key = append(key, -9, int64(len(part)))
			if part == nil {
				key = append(key, -1)
			}
			key = append(key, part...)
		}
		idx, ok := cache.get(key)
		if !ok {
			if axes != nil && len(axes) == 0 && len(starts) > 0 {
				axes = nil
			}
			st, sp, cnt, err := ewSliceParams(x.Shape, starts, ends, axes, steps)
			if err != nil {
				return ewErr(n, "%v", err)
			}
			ist := ewStrides(x.Shape)
			base := 0
			for d := range st {
				if cnt[d] > 0 {
					base += int(st[d]) * ist[d]
				}
			}
			idx = make([]int, ewNumel(cnt))
			ewForEach(cnt, func(i int, ix []int64) {
				p := base
				for d, v := range ix {
					p += int(v*sp[d]) * ist[d]
				}
				idx[i] = p
			})
			oshape = cnt
			cache.put(key, idx)
		}
		o, err := c.Out(0, x.DType, oshape)
		if err != nil {
			return err
		}
		ewTake(o, x, idx)
		return nil
	}, nil
}

func ewBuildGather(n *graph.Node, bc *BuildContext) (Kernel, error) {
	axis := n.AttrInt("axis", 0)
	var shape []int64
	return func(c *Call) error {
		x, ind := c.In[0], c.In[1]
		if x == nil || ind == nil {
			return ewErr(n, "missing input")
		}
		ax, err := ewNormAxis(axis, len(x.Shape))
		if err != nil {
			return ewErr(n, "%v", err)
		}
		var iv []int64
		if ind.DType == graph.Int64 {
			iv = ewView[int64](ind)
		} else if iv, err = ewInts(ind); err != nil {
			return ewErr(n, "indices: %v", err)
		}
		shape = append(append(append(shape[:0], x.Shape[:ax]...), ind.Shape...), x.Shape[ax+1:]...)
		o, err := c.Out(0, x.DType, shape)
		if err != nil {
			return err
		}
		outer := ewNumel(x.Shape[:ax])
		inner := ewNumel(x.Shape[ax+1:])
		dim := x.Shape[ax]
		k := len(iv)
		for j := 0; j < outer; j++ {
			for q, id := range iv {
				if id < 0 {
					id += dim
				}
				if id < 0 || id >= dim {
					return ewErr(n, "index %d out of range for dim %d", iv[q], dim)
				}
				ewCopyElems(o, (j*k+q)*inner, x, (j*int(dim)+int(id))*inner, inner)
			}
		}
		return nil
	}, nil
}

func ewBuildGatherElements(n *graph.Node, bc *BuildContext) (Kernel, error) {
	axis := n.AttrInt("axis", 0)
	return func(c *Call) error {
		x, ind := c.In[0], c.In[1]
		if x == nil || ind == nil || len(ind.Shape) != len(x.Shape) {
			return ewErr(n, "data and indices must have one rank")
		}
		ax, err := ewNormAxis(axis, len(x.Shape))
		if err != nil {
			return ewErr(n, "%v", err)
		}
		iv, err := ewInts(ind)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		o, err := c.Out(0, x.DType, ind.Shape)
		if err != nil {
			return err
		}
		xs := ewStrides(x.Shape)
		idx := make([]int, len(iv))
		var bad error
		ewForEach(ind.Shape, func(i int, ix []int64) {
			p := 0
			for d, v := range ix {
				if d == ax {
					v = iv[i]
					if v < 0 {
						v += x.Shape[ax]
					}
					if v < 0 || v >= x.Shape[ax] {
						bad = fmt.Errorf("index %d out of range", iv[i])
						v = 0
					}
				} else if v >= x.Shape[d] {
					bad = fmt.Errorf("indices shape %v exceeds data %v", ind.Shape, x.Shape)
					v = 0
				}
				p += int(v) * xs[d]
			}
			idx[i] = p
		})
		if bad != nil {
			return ewErr(n, "%v", bad)
		}
		ewTake(o, x, idx)
		return nil
	}, nil
}

func ewBuildGatherND(n *graph.Node, bc *BuildContext) (Kernel, error) {
	batch := int(n.AttrInt("batch_dims", 0))
	return func(c *Call) error {
		x, ind := c.In[0], c.In[1]
		if x == nil || ind == nil || len(ind.Shape) < 1 {
			return ewErr(n, "missing input")
		}
		iv, err := ewInts(ind)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		q := len(ind.Shape)
		k := int(ind.Shape[q-1])
		if batch+k > len(x.Shape) || batch >= q {
			return ewErr(n, "indices last dim %d too large for data rank %d", k, len(x.Shape))
		}
		shape := append(append([]int64(nil), ind.Shape[:q-1]...), x.Shape[batch+k:]...)
		o, err := c.Out(0, x.DType, shape)
		if err != nil {
			return err
		}
		inner := ewNumel(x.Shape[batch+k:])
		bsz := ewNumel(x.Shape[:batch])
		xs := ewStrides(x.Shape)
		perBatch := ewNumel(ind.Shape[batch : q-1])
		xb := 0
		if batch > 0 {
			xb = xs[batch-1]
		}
		for b := 0; b < bsz; b++ {
			for j := 0; j < perBatch; j++ {
				t := b*perBatch + j
				p := b * xb
				for d := 0; d < k; d++ {
					v := iv[t*k+d]
					dim := x.Shape[batch+d]
					if v < 0 {
						v += dim
					}
					if v < 0 || v >= dim {
						return ewErr(n, "index %d out of range", iv[t*k+d])
					}
					p += int(v) * xs[batch+d]
				}
				ewCopyElems(o, t*inner, x, p, inner)
			}
		}
		return nil
	}, nil
}

// ewReduceFn combines an existing and an update value (Scatter reduction).
func ewScatterCombine(red string, a, b float64) float64 {
	switch red {
	case "add":
		return a + b
	case "mul":
		return a * b
	case "max":
		return max(a, b)
	case "min":
		return min(a, b)
	}
	return b
}

func ewBuildScatterElements(n *graph.Node, bc *BuildContext) (Kernel, error) {
	axis := n.AttrInt("axis", 0)
	red := n.AttrString("reduction", "none")
	return func(c *Call) error {
		x, ind, upd := c.In[0], c.In[1], c.In[2]
		if x == nil || ind == nil || upd == nil || len(ind.Shape) != len(x.Shape) || !ewSameShape(ind.Shape, upd.Shape) {
			return ewErr(n, "data, indices and updates must agree")
		}
		ax, err := ewNormAxis(axis, len(x.Shape))
		if err != nil {
			return ewErr(n, "%v", err)
		}
		iv, err := ewInts(ind)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		o, err := c.Out(0, x.DType, x.Shape)
		if err != nil {
			return err
		}
		ewCopyElems(o, 0, x, 0, x.Len())
		xs := ewStrides(x.Shape)
		dst := make([]int, len(iv))
		var bad error
		ewForEach(ind.Shape, func(i int, ix []int64) {
			p := 0
			for d, v := range ix {
				if d == ax {
					v = iv[i]
					if v < 0 {
						v += x.Shape[ax]
					}
					if v < 0 || v >= x.Shape[ax] {
						bad = fmt.Errorf("index %d out of range", iv[i])
						v = 0
					}
				}
				p += int(v) * xs[d]
			}
			dst[i] = p
		})
		if bad != nil {
			return ewErr(n, "%v", bad)
		}
		return ewScatter(o, upd, dst, 1, red)
	}, nil
}

// ewScatter writes upd's blocks of size inner at element offsets dst[i]*1
// of o, combining by red.
func ewScatter(o, upd *runtime.Tensor, dst []int, inner int, red string) error {
	if red == "none" || red == "" {
		for i, p := range dst {
			ewCopyElems(o, p, upd, i*inner, inner)
		}
		return nil
	}
	ov, err := ewF64s(o)
	if err != nil {
		return err
	}
	uv, err := ewF64s(upd)
	if err != nil {
		return err
	}
	for i, p := range dst {
		for k := 0; k < inner; k++ {
			ov[p+k] = ewScatterCombine(red, ov[p+k], uv[i*inner+k])
		}
	}
	return ewSetF64(o, ov)
}

func ewBuildScatterND(n *graph.Node, bc *BuildContext) (Kernel, error) {
	red := n.AttrString("reduction", "none")
	return func(c *Call) error {
		x, ind, upd := c.In[0], c.In[1], c.In[2]
		if x == nil || ind == nil || upd == nil || len(ind.Shape) < 1 {
			return ewErr(n, "missing input")
		}
		iv, err := ewInts(ind)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		q := len(ind.Shape)
		k := int(ind.Shape[q-1])
		if k > len(x.Shape) {
			return ewErr(n, "indices last dim %d exceeds data rank", k)
		}
		o, err := c.Out(0, x.DType, x.Shape)
		if err != nil {
			return err
		}
		ewCopyElems(o, 0, x, 0, x.Len())
		inner := ewNumel(x.Shape[k:])
		xs := ewStrides(x.Shape)
		m := ewNumel(ind.Shape[:q-1])
		if upd.Len() != m*inner {
			return ewErr(n, "updates shape %v does not match", upd.Shape)
		}
		dst := make([]int, m)
		for t := 0; t < m; t++ {
			p := 0
			for d := 0; d < k; d++ {
				v := iv[t*k+d]
				if v < 0 {
					v += x.Shape[d]
				}
				if v < 0 || v >= x.Shape[d] {
					return ewErr(n, "index %d out of range", iv[t*k+d])
				}
				p += int(v) * xs[d]
			}
			dst[t] = p
		}
		return ewScatter(o, upd, dst, inner, red)
	}, nil
}

func ewBuildTile(n *graph.Node, bc *BuildContext) (Kernel, error) {
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || len(c.In) < 2 || c.In[1] == nil {
			return ewErr(n, "missing input")
		}
		rep, err := ewInts(c.In[1])
		if err != nil || len(rep) != len(x.Shape) {
			return ewErr(n, "repeats must hold one value per dim")
		}
		shape := make([]int64, len(rep))
		for i, r := range rep {
			if r < 0 {
				return ewErr(n, "negative repeat")
			}
			shape[i] = x.Shape[i] * r
		}
		if err := ewCheckSize(shape); err != nil {
			return ewErr(n, "%v", err)
		}
		o, err := c.Out(0, x.DType, shape)
		if err != nil {
			return err
		}
		xs := ewStrides(x.Shape)
		idx := make([]int, ewNumel(shape))
		ewForEach(shape, func(i int, ix []int64) {
			p := 0
			for d, v := range ix {
				p += int(v%x.Shape[d]) * xs[d]
			}
			idx[i] = p
		})
		ewTake(o, x, idx)
		return nil
	}, nil
}

func ewBuildDepthToSpace(n *graph.Node, bc *BuildContext) (Kernel, error) {
	bs := n.AttrInt("blocksize", 0)
	mode := n.AttrString("mode", "DCR")
	if bs <= 0 {
		return nil, ewErr(n, "blocksize must be positive")
	}
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || len(x.Shape) != 4 || x.Shape[1]%(bs*bs) != 0 {
			return ewErr(n, "input must be NCHW with C divisible by blocksize²")
		}
		N, C, H, W := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
		oc := C / (bs * bs)
		var tmp []int64
		var perm []int
		if mode == "CRD" {
			tmp = []int64{N, oc, bs, bs, H, W}
			perm = []int{0, 1, 4, 2, 5, 3}
		} else {
			tmp = []int64{N, bs, bs, oc, H, W}
			perm = []int{0, 3, 4, 1, 5, 2}
		}
		_, idx := ewPermIdx(tmp, perm)
		o, err := c.Out(0, x.DType, []int64{N, oc, H * bs, W * bs})
		if err != nil {
			return err
		}
		ewTake(o, x, idx)
		return nil
	}, nil
}

func ewBuildSpaceToDepth(n *graph.Node, bc *BuildContext) (Kernel, error) {
	bs := n.AttrInt("blocksize", 0)
	if bs <= 0 {
		return nil, ewErr(n, "blocksize must be positive")
	}
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || len(x.Shape) != 4 || x.Shape[2]%bs != 0 || x.Shape[3]%bs != 0 {
			return ewErr(n, "input must be NCHW with H and W divisible by blocksize")
		}
		N, C, H, W := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
		tmp := []int64{N, C, H / bs, bs, W / bs, bs}
		_, idx := ewPermIdx(tmp, []int{0, 3, 5, 1, 2, 4})
		o, err := c.Out(0, x.DType, []int64{N, C * bs * bs, H / bs, W / bs})
		if err != nil {
			return err
		}
		ewTake(o, x, idx)
		return nil
	}, nil
}

func ewBuildCompress(n *graph.Node, bc *BuildContext) (Kernel, error) {
	axisA := n.Attr("axis")
	return func(c *Call) error {
		x, cond := c.In[0], c.In[1]
		if x == nil || cond == nil || cond.DType != graph.Bool {
			return ewErr(n, "needs input and bool condition")
		}
		src := x
		shape := x.Shape
		ax := 0
		if axisA == nil {
			shape = []int64{int64(x.Len())}
		} else {
			var err error
			if ax, err = ewNormAxis(axisA.I, len(x.Shape)); err != nil {
				return ewErr(n, "%v", err)
			}
		}
		var keep []int
		for i, b := range cond.Raw {
			if b != 0 && int64(i) < shape[ax] {
				keep = append(keep, i)
			}
		}
		oshape := append([]int64(nil), shape...)
		oshape[ax] = int64(len(keep))
		o, err := c.Out(0, x.DType, oshape)
		if err != nil {
			return err
		}
		outer := ewNumel(shape[:ax])
		inner := ewNumel(shape[ax+1:])
		p := 0
		for j := 0; j < outer; j++ {
			for _, k := range keep {
				ewCopyElems(o, p, src, (j*int(shape[ax])+k)*inner, inner)
				p += inner
			}
		}
		return nil
	}, nil
}

func ewBuildReverseSequence(n *graph.Node, bc *BuildContext) (Kernel, error) {
	bax := int(n.AttrInt("batch_axis", 1))
	tax := int(n.AttrInt("time_axis", 0))
	return func(c *Call) error {
		x, sl := c.In[0], c.In[1]
		if x == nil || sl == nil || len(x.Shape) < 2 || bax > 1 || tax > 1 || bax == tax {
			return ewErr(n, "bad inputs or axes")
		}
		lens, err := ewInts(sl)
		if err != nil || int64(len(lens)) != x.Shape[bax] {
			return ewErr(n, "sequence_lens must hold one value per batch")
		}
		o, err := c.Out(0, x.DType, x.Shape)
		if err != nil {
			return err
		}
		xs := ewStrides(x.Shape)
		idx := make([]int, x.Len())
		ewForEach(x.Shape, func(i int, ix []int64) {
			b, t := ix[bax], ix[tax]
			if t < lens[b] {
				t = lens[b] - 1 - t
			}
			p := 0
			for d, v := range ix {
				if d == tax {
					v = t
				}
				p += int(v) * xs[d]
			}
			idx[i] = p
		})
		ewTake(o, x, idx)
		return nil
	}, nil
}

func ewBuildTrilu(n *graph.Node, bc *BuildContext) (Kernel, error) {
	upper := n.AttrInt("upper", 1) != 0
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || len(x.Shape) < 2 {
			return ewErr(n, "input must have rank >= 2")
		}
		var k int64
		if len(c.In) > 1 && c.In[1] != nil {
			v, err := ewInts(c.In[1])
			if err != nil || len(v) != 1 {
				return ewErr(n, "k must be a scalar")
			}
			k = v[0]
		}
		o, err := c.Out(0, x.DType, x.Shape)
		if err != nil {
			return err
		}
		r := len(x.Shape)
		rows, cols := x.Shape[r-2], x.Shape[r-1]
		zero := runtime.NewTensor(x.DType, []int64{1})
		keep := make([]int, x.Len())
		zi := make([]int, x.Len())
		for i := range keep {
			m := int64(i) % (rows * cols)
			ri, ci := m/cols, m%cols
			ok := ci-ri >= k
			if !upper {
				ok = ci-ri <= k
			}
			if ok {
				keep[i], zi[i] = i, -1
			} else {
				keep[i], zi[i] = -1, 0
			}
		}
		ewTake(o, x, keep)
		ewTake(o, zero, zi)
		return nil
	}, nil
}

func ewBuildOneHot(n *graph.Node, bc *BuildContext) (Kernel, error) {
	axis := n.AttrInt("axis", -1)
	return func(c *Call) error {
		ind, depth, vals := c.In[0], c.In[1], c.In[2]
		if ind == nil || depth == nil || vals == nil || vals.Len() != 2 {
			return ewErr(n, "needs indices, depth and two values")
		}
		iv, err := ewF64s(ind)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		dv, err := ewF64s(depth)
		if err != nil || len(dv) != 1 || dv[0] < 1 {
			return ewErr(n, "depth must be a positive scalar")
		}
		d := int64(dv[0])
		r := len(ind.Shape) + 1
		ax, err := ewNormAxis(axis, r)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		shape := append(append(append([]int64(nil), ind.Shape[:ax]...), d), ind.Shape[ax:]...)
		if err := ewCheckSize(shape); err != nil {
			return ewErr(n, "%v", err)
		}
		o, err := c.Out(0, vals.DType, shape)
		if err != nil {
			return err
		}
		outer := ewNumel(ind.Shape[:ax])
		inner := ewNumel(ind.Shape[ax:])
		idx := make([]int, ewNumel(shape))
		for j := 0; j < outer; j++ {
			for k := int64(0); k < d; k++ {
				for q := 0; q < inner; q++ {
					v := int64(iv[j*inner+q])
					if v < 0 {
						v += d
					}
					on := 0
					if v == k {
						on = 1
					}
					idx[(j*int(d)+int(k))*inner+q] = on
				}
			}
		}
		ewTake(o, vals, idx)
		return nil
	}, nil
}

func ewBuildNonZero(n *graph.Node, bc *BuildContext) (Kernel, error) {
	return func(c *Call) error {
		x := c.In[0]
		if x == nil {
			return ewErr(n, "missing input")
		}
		v, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		var hits [][]int64
		ewForEach(x.Shape, func(i int, ix []int64) {
			if v[i] != 0 {
				hits = append(hits, append([]int64(nil), ix...))
			}
		})
		r := len(x.Shape)
		o, err := c.Out(0, graph.Int64, []int64{int64(r), int64(len(hits))})
		if err != nil {
			return err
		}
		ov := ewView[int64](o)
		for j, h := range hits {
			for d := 0; d < r; d++ {
				ov[d*len(hits)+j] = h[d]
			}
		}
		return nil
	}, nil
}
