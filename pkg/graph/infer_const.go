package graph

import (
	"math"
)

// Constant values seen by shape inference. Integer (and bool) tensors hold
// symInts so that a symbolic dim read by Shape survives Gather, Concat and
// friends into Reshape; float tensors hold float64 with NaN for "unknown".

// symInt is one integer element: a known value (ok), a named symbolic dim
// (sym), or unknown (neither).
type symInt struct {
	v   int64
	sym string
	ok  bool
}

func known(v int64) symInt { return symInt{v: v, ok: true} }

// dim turns a shape element into a Dim (negative values are not dims).
func (e symInt) dim() Dim {
	switch {
	case e.ok && e.v >= 0:
		return FixedDim(e.v)
	case !e.ok && e.sym != "":
		return SymDim(e.sym)
	}
	return UnknownDim()
}

func symOfDim(d Dim) symInt {
	if d.Known() {
		return known(d.Size)
	}
	return symInt{sym: d.Param}
}

// cval is a small constant tensor.
type cval struct {
	dt   DType
	dims []int64
	ints []symInt  // integer and bool dtypes
	flts []float64 // float dtypes (NaN: unknown)
}

func (c *cval) isInt() bool { return c.ints != nil || (!c.dt.IsFloat()) }

func (c *cval) n() int {
	if c.ints != nil {
		return len(c.ints)
	}
	return len(c.flts)
}

// intsAll returns every element as a known int64 (false if any is not).
func (c *cval) intsAll() ([]int64, bool) {
	if c == nil {
		return nil, false
	}
	out := make([]int64, c.n())
	for i := range out {
		e := c.at(i)
		if !e.ok {
			return nil, false
		}
		out[i] = e.v
	}
	return out, true
}

// floatsAll returns every element as a known float64.
func (c *cval) floatsAll() ([]float64, bool) {
	if c == nil {
		return nil, false
	}
	out := make([]float64, c.n())
	for i := range out {
		f := c.fat(i)
		if math.IsNaN(f) {
			return nil, false
		}
		out[i] = f
	}
	return out, true
}

// at reads element i as an integer (floats truncated toward zero).
func (c *cval) at(i int) symInt {
	if c.ints != nil {
		return c.ints[i]
	}
	f := c.flts[i]
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 9e18 {
		return symInt{}
	}
	return known(int64(f))
}

// fat reads element i as a float (NaN when unknown).
func (c *cval) fat(i int) float64 {
	if c.flts != nil {
		return c.flts[i]
	}
	e := c.ints[i]
	if !e.ok {
		return math.NaN()
	}
	return float64(e.v)
}

func newCval(dt DType, dims []int64) (*cval, bool) {
	n, err := NumElements(dims)
	if err != nil || n > maxConstElems {
		return nil, false
	}
	c := &cval{dt: dt, dims: append([]int64{}, dims...)}
	if dt.IsFloat() {
		c.flts = make([]float64, n)
	} else {
		c.ints = make([]symInt, n)
	}
	return c, true
}

// constOf returns the constant value of v when known and small.
func constOf(v *info) *cval {
	if v == nil {
		return nil
	}
	if v.c != nil {
		return v.c
	}
	t := v.t
	if t == nil || t.Len() > maxConstElems || t.DType == String || t.External != nil && t.Raw == nil {
		return nil
	}
	if t.Validate() != nil {
		return nil
	}
	f, err := t.AsFloat64s()
	if err != nil {
		return nil
	}
	c, ok := newCval(t.DType, t.Dims)
	if !ok {
		return nil
	}
	if c.ints != nil {
		if t.DType == Int64 || t.DType == Uint64 {
			iv, err := t.AsInt64s()
			if err != nil || len(iv) != len(c.ints) {
				return nil
			}
			for i, x := range iv {
				c.ints[i] = known(x)
			}
		} else {
			for i, x := range f {
				c.ints[i] = known(int64(x))
			}
		}
	} else {
		copy(c.flts, f)
	}
	v.c = c
	return c
}

// castConst converts a constant to another dtype.
func castConst(c *cval, to DType) *cval {
	out, ok := newCval(to, c.dims)
	if !ok {
		return nil
	}
	for i := 0; i < c.n(); i++ {
		if out.ints != nil {
			if to == Bool {
				f := c.fat(i)
				if math.IsNaN(f) {
					out.ints[i] = symInt{}
				} else if f != 0 {
					out.ints[i] = known(1)
				} else {
					out.ints[i] = known(0)
				}
				continue
			}
			out.ints[i] = c.at(i)
		} else {
			out.flts[i] = c.fat(i)
		}
	}
	return out
}

// bcastIndex maps each flat index of out (shape od) to a flat index of an
// input of shape id broadcast to od (numpy rules, id right-aligned).
func bcastIndex(od, id []int64) []int {
	n := 1
	for _, d := range od {
		n *= int(d)
	}
	res := make([]int, n)
	r := len(od)
	off := r - len(id)
	// strides of the input
	st := make([]int, len(id))
	s := 1
	for i := len(id) - 1; i >= 0; i-- {
		st[i] = s
		s *= int(id[i])
	}
	idx := make([]int64, r)
	for k := 0; k < n; k++ {
		p := 0
		for i := range id {
			if id[i] != 1 {
				p += int(idx[i+off]) * st[i]
			}
		}
		res[k] = p
		for i := r - 1; i >= 0; i-- {
			idx[i]++
			if idx[i] < od[i] {
				break
			}
			idx[i] = 0
		}
	}
	return res
}

// staticBroadcast is numpy broadcasting of static shapes.
func staticBroadcast(shapes ...[]int64) ([]int64, bool) {
	r := 0
	for _, s := range shapes {
		if len(s) > r {
			r = len(s)
		}
	}
	out := make([]int64, r)
	for i := range out {
		out[i] = 1
	}
	for _, s := range shapes {
		off := r - len(s)
		for i, d := range s {
			switch {
			case d == out[i+off]:
			case out[i+off] == 1:
				out[i+off] = d
			case d == 1:
			default:
				return nil, false
			}
		}
	}
	return out, true
}

// elementwiseConst applies f element by element with broadcasting. fi works
// on integer constants, ff on floats; either may be nil (then that kind is
// not computed).
func elementwiseConst(outDT DType, cs []*cval, fi func([]symInt) symInt, ff func([]float64) float64) *cval {
	if len(cs) == 0 {
		return nil
	}
	dims := make([][]int64, len(cs))
	floats := false
	for i, c := range cs {
		if c == nil {
			return nil
		}
		dims[i] = c.dims
		if c.ints == nil {
			floats = true
		}
	}
	od, ok := staticBroadcast(dims...)
	if !ok {
		return nil
	}
	if floats && ff == nil || !floats && fi == nil {
		return nil
	}
	out, ok := newCval(outDT, od)
	if !ok {
		return nil
	}
	maps := make([][]int, len(cs))
	for i, c := range cs {
		maps[i] = bcastIndex(od, c.dims)
	}
	ia := make([]symInt, len(cs))
	fa := make([]float64, len(cs))
	for k := 0; k < out.n(); k++ {
		if floats {
			for i, c := range cs {
				fa[i] = c.fat(maps[i][k])
			}
			r := ff(fa)
			if out.flts != nil {
				out.flts[k] = r
			} else if math.IsNaN(r) || math.Abs(r) > 9e18 {
				out.ints[k] = symInt{}
			} else {
				out.ints[k] = known(int64(r))
			}
		} else {
			for i, c := range cs {
				ia[i] = c.at(maps[i][k])
			}
			r := fi(ia)
			if out.ints != nil {
				out.ints[k] = r
			} else if r.ok {
				out.flts[k] = float64(r.v)
			} else {
				out.flts[k] = math.NaN()
			}
		}
	}
	return out
}

func addChecked(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}

func mulChecked64(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	p := a * b
	if p/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
		return 0, false
	}
	return p, true
}

// Integer element functions for elementwiseConst.
var intOps = map[string]func([]symInt) symInt{
	"Add": func(a []symInt) symInt {
		x, y := a[0], a[1]
		switch {
		case x.ok && y.ok:
			if s, ok := addChecked(x.v, y.v); ok {
				return known(s)
			}
		case x.ok && x.v == 0:
			return y
		case y.ok && y.v == 0:
			return x
		}
		return symInt{}
	},
	"Sub": func(a []symInt) symInt {
		x, y := a[0], a[1]
		switch {
		case x.ok && y.ok:
			if y.v != math.MinInt64 {
				if s, ok := addChecked(x.v, -y.v); ok {
					return known(s)
				}
			}
		case y.ok && y.v == 0:
			return x
		}
		return symInt{}
	},
	"Mul": func(a []symInt) symInt {
		x, y := a[0], a[1]
		switch {
		case x.ok && y.ok:
			if p, ok := mulChecked64(x.v, y.v); ok {
				return known(p)
			}
		case x.ok && x.v == 1:
			return y
		case y.ok && y.v == 1:
			return x
		}
		return symInt{}
	},
	"Div": func(a []symInt) symInt {
		x, y := a[0], a[1]
		switch {
		case x.ok && y.ok && y.v != 0 && !(x.v == math.MinInt64 && y.v == -1):
			return known(x.v / y.v)
		case y.ok && y.v == 1:
			return x
		}
		return symInt{}
	},
	"Mod": func(a []symInt) symInt {
		x, y := a[0], a[1]
		if x.ok && y.ok && y.v != 0 && y.v != -1 {
			r := x.v % y.v
			if r != 0 && (r < 0) != (y.v < 0) {
				r += y.v
			}
			return known(r)
		}
		return symInt{}
	},
	"Max": func(a []symInt) symInt {
		r := a[0]
		for _, y := range a[1:] {
			if !r.ok || !y.ok {
				return symInt{}
			}
			if y.v > r.v {
				r = y
			}
		}
		return r
	},
	"Min": func(a []symInt) symInt {
		r := a[0]
		for _, y := range a[1:] {
			if !r.ok || !y.ok {
				return symInt{}
			}
			if y.v < r.v {
				r = y
			}
		}
		return r
	},
	"Equal": func(a []symInt) symInt {
		x, y := a[0], a[1]
		switch {
		case x.ok && y.ok:
			return boolInt(x.v == y.v)
		case !x.ok && !y.ok && x.sym != "" && x.sym == y.sym:
			return known(1)
		}
		return symInt{}
	},
	"Less": func(a []symInt) symInt {
		if a[0].ok && a[1].ok {
			return boolInt(a[0].v < a[1].v)
		}
		return symInt{}
	},
	"Greater": func(a []symInt) symInt {
		if a[0].ok && a[1].ok {
			return boolInt(a[0].v > a[1].v)
		}
		return symInt{}
	},
	"Where": func(a []symInt) symInt {
		if !a[0].ok {
			return symInt{}
		}
		if a[0].v != 0 {
			return a[1]
		}
		return a[2]
	},
	"Neg": func(a []symInt) symInt {
		if a[0].ok && a[0].v != math.MinInt64 {
			return known(-a[0].v)
		}
		return symInt{}
	},
	"Abs": func(a []symInt) symInt {
		if a[0].ok && a[0].v != math.MinInt64 {
			if a[0].v < 0 {
				return known(-a[0].v)
			}
			return a[0]
		}
		return symInt{}
	},
	"Not": func(a []symInt) symInt {
		if a[0].ok {
			return boolInt(a[0].v == 0)
		}
		return symInt{}
	},
	"Identity": func(a []symInt) symInt { return a[0] },
}

func boolInt(b bool) symInt {
	if b {
		return known(1)
	}
	return known(0)
}

func boolF(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Float element functions for elementwiseConst.
var floatOps = map[string]func([]float64) float64{
	"Add":   func(a []float64) float64 { return a[0] + a[1] },
	"Sub":   func(a []float64) float64 { return a[0] - a[1] },
	"Mul":   func(a []float64) float64 { return a[0] * a[1] },
	"Div":   func(a []float64) float64 { return a[0] / a[1] },
	"Pow":   func(a []float64) float64 { return math.Pow(a[0], a[1]) },
	"Neg":   func(a []float64) float64 { return -a[0] },
	"Abs":   func(a []float64) float64 { return math.Abs(a[0]) },
	"Floor": func(a []float64) float64 { return math.Floor(a[0]) },
	"Ceil":  func(a []float64) float64 { return math.Ceil(a[0]) },
	"Round": func(a []float64) float64 { return math.RoundToEven(a[0]) },
	"Sqrt":  func(a []float64) float64 { return math.Sqrt(a[0]) },
	"Max":   func(a []float64) float64 { return math.Max(a[0], a[1]) },
	"Min":   func(a []float64) float64 { return math.Min(a[0], a[1]) },
	"Equal": func(a []float64) float64 { return boolF(a[0] == a[1]) },
	"Less":  func(a []float64) float64 { return boolF(a[0] < a[1]) },
	"Greater": func(a []float64) float64 {
		return boolF(a[0] > a[1])
	},
	"Where": func(a []float64) float64 {
		if math.IsNaN(a[0]) {
			return math.NaN()
		}
		if a[0] != 0 {
			return a[1]
		}
		return a[2]
	},
	"Identity": func(a []float64) float64 { return a[0] },
}

// gatherConst is Gather on constants.
func gatherConst(data, idx *cval, axis int) *cval {
	r := len(data.dims)
	if axis < 0 || axis >= r {
		return nil
	}
	ii, ok := idx.intsAll()
	if !ok {
		return nil
	}
	ax := data.dims[axis]
	for k, v := range ii {
		if v < 0 {
			v += ax
		}
		if v < 0 || v >= ax {
			return nil
		}
		ii[k] = v
	}
	od := append(append(append([]int64{}, data.dims[:axis]...), idx.dims...), data.dims[axis+1:]...)
	out, ok := newCval(data.dt, od)
	if !ok {
		return nil
	}
	outer := 1
	for _, d := range data.dims[:axis] {
		outer *= int(d)
	}
	inner := 1
	for _, d := range data.dims[axis+1:] {
		inner *= int(d)
	}
	k := 0
	for o := 0; o < outer; o++ {
		for _, v := range ii {
			for i := 0; i < inner; i++ {
				src := (o*int(ax)+int(v))*inner + i
				if out.ints != nil {
					out.ints[k] = data.at(src)
				} else {
					out.flts[k] = data.fat(src)
				}
				k++
			}
		}
	}
	return out
}

// reshapeConst returns c with new dims (same element count).
func reshapeConst(c *cval, dims []int64) *cval {
	n, err := NumElements(dims)
	if err != nil || n != int64(c.n()) {
		return nil
	}
	out := *c
	out.dims = append([]int64{}, dims...)
	return &out
}

// concatConst concatenates constants along axis.
func concatConst(cs []*cval, axis int) *cval {
	if len(cs) == 0 || cs[0] == nil {
		return nil
	}
	r := len(cs[0].dims)
	if axis < 0 || axis >= r {
		return nil
	}
	od := append([]int64{}, cs[0].dims...)
	od[axis] = 0
	for _, c := range cs {
		if c == nil || len(c.dims) != r {
			return nil
		}
		for i := range od {
			if i != axis && c.dims[i] != od[i] {
				return nil
			}
		}
		od[axis] += c.dims[axis]
	}
	out, ok := newCval(cs[0].dt, od)
	if !ok {
		return nil
	}
	outer := 1
	for _, d := range od[:axis] {
		outer *= int(d)
	}
	k := 0
	for o := 0; o < outer; o++ {
		for _, c := range cs {
			chunk := c.n() / max(outer, 1)
			for i := 0; i < chunk; i++ {
				src := o*chunk + i
				if out.ints != nil {
					out.ints[k] = c.at(src)
				} else {
					out.flts[k] = c.fat(src)
				}
				k++
			}
		}
	}
	return out
}

// slice1D applies a 1-D slice to a constant.
func slice1D(c *cval, start, end, step int64) *cval {
	if len(c.dims) != 1 || step == 0 {
		return nil
	}
	n, st, _ := sliceLen(c.dims[0], start, end, step)
	out, ok := newCval(c.dt, []int64{n})
	if !ok {
		return nil
	}
	for k := int64(0); k < n; k++ {
		src := int(st + k*step)
		if out.ints != nil {
			out.ints[k] = c.at(src)
		} else {
			out.flts[k] = c.fat(src)
		}
	}
	return out
}

// sliceLen is the ONNX Slice rule for one axis of size dim: the result
// length and the clamped start.
func sliceLen(dim, start, end, step int64) (n, st, en int64) {
	if start < 0 {
		start += dim
	}
	if end < 0 {
		end += dim
	}
	if step > 0 {
		start = clamp64(start, 0, dim)
		end = clamp64(end, 0, dim)
		if end > start {
			n = (end-start-1)/step + 1
		}
	} else {
		start = clamp64(start, 0, dim-1)
		end = clamp64(end, -1, dim-1)
		if start > end {
			s := int64(math.MaxInt64)
			if step != math.MinInt64 {
				s = -step
			}
			n = (start-end-1)/s + 1
		}
	}
	return n, start, end
}

func clamp64(v, lo, hi int64) int64 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// sliceConst applies a Slice to a constant; per axis k of c it takes n[k]
// elements starting at st[k] with stride step[k].
func sliceConst(c *cval, st, n, step []int64) *cval {
	r := len(c.dims)
	if len(st) != r || len(n) != r || len(step) != r {
		return nil
	}
	out, ok := newCval(c.dt, n)
	if !ok {
		return nil
	}
	strides := make([]int64, r)
	s := int64(1)
	for i := r - 1; i >= 0; i-- {
		strides[i] = s
		s *= c.dims[i]
	}
	idx := make([]int64, r)
	for k := 0; k < out.n(); k++ {
		src := int64(0)
		for i := range idx {
			src += (st[i] + idx[i]*step[i]) * strides[i]
		}
		if out.ints != nil {
			out.ints[k] = c.at(int(src))
		} else {
			out.flts[k] = c.fat(int(src))
		}
		for i := r - 1; i >= 0; i-- {
			idx[i]++
			if idx[i] < n[i] {
				break
			}
			idx[i] = 0
		}
	}
	return out
}

// transposeConst permutes a constant's axes (perm already validated).
func transposeConst(c *cval, perm []int) *cval {
	r := len(c.dims)
	if len(perm) != r {
		return nil
	}
	od := make([]int64, r)
	for i, p := range perm {
		od[i] = c.dims[p]
	}
	out, ok := newCval(c.dt, od)
	if !ok {
		return nil
	}
	strides := make([]int64, r)
	s := int64(1)
	for i := r - 1; i >= 0; i-- {
		strides[i] = s
		s *= c.dims[i]
	}
	idx := make([]int64, r)
	for k := 0; k < out.n(); k++ {
		src := int64(0)
		for i, p := range perm {
			src += idx[i] * strides[p]
		}
		if out.ints != nil {
			out.ints[k] = c.at(int(src))
		} else {
			out.flts[k] = c.fat(int(src))
		}
		for i := r - 1; i >= 0; i-- {
			idx[i]++
			if idx[i] < od[i] {
				break
			}
			idx[i] = 0
		}
	}
	return out
}
