package graph

import (
	"fmt"
	"sort"
)

// Dimension arithmetic for shape inference. Every product is checked
// against MaxElements: a result that would overflow becomes unknown.

// dimMul multiplies two dims (1 x sym = sym).
func dimMul(a, b Dim) Dim {
	if a.Known() && b.Known() {
		if a.Size == 0 || b.Size == 0 {
			return FixedDim(0)
		}
		if a.Size > MaxElements/b.Size {
			return UnknownDim()
		}
		return FixedDim(a.Size * b.Size)
	}
	if a.Known() && a.Size == 1 {
		return SymDim(b.Param)
	}
	if b.Known() && b.Size == 1 {
		return SymDim(a.Param)
	}
	if a.Known() && a.Size == 0 || b.Known() && b.Size == 0 {
		return FixedDim(0)
	}
	return UnknownDim()
}

// dimAdd adds two dims (0 + sym = sym).
func dimAdd(a, b Dim) Dim {
	if a.Known() && b.Known() {
		if a.Size > MaxElements-b.Size {
			return UnknownDim()
		}
		return FixedDim(a.Size + b.Size)
	}
	if a.Known() && a.Size == 0 {
		return SymDim(b.Param)
	}
	if b.Known() && b.Size == 0 {
		return SymDim(a.Param)
	}
	return UnknownDim()
}

// dimProd multiplies a run of dims.
func dimProd(ds Shape) Dim {
	p := FixedDim(1)
	for _, d := range ds {
		p = dimMul(p, d)
	}
	return p
}

// mergeDim unifies two dims that must be equal (Concat's other axes, the
// K of a MatMul); the more specific one wins.
func mergeDim(a, b Dim) (Dim, error) {
	switch {
	case a.Known() && b.Known():
		if a.Size != b.Size {
			return a, fmt.Errorf("dims %d and %d differ", a.Size, b.Size)
		}
		return a, nil
	case a.Known():
		return a, nil
	case b.Known():
		return b, nil
	case a.Param != "":
		return a, nil
	}
	return b, nil
}

// broadcastDim is one dimension of numpy broadcasting.
func broadcastDim(a, b Dim) (Dim, error) {
	switch {
	case a.Known() && b.Known():
		switch {
		case a.Size == b.Size:
			return a, nil
		case a.Size == 1:
			return b, nil
		case b.Size == 1:
			return a, nil
		}
		return a, fmt.Errorf("cannot broadcast %d with %d", a.Size, b.Size)
	case a.Known() && a.Size == 1:
		return b, nil
	case b.Known() && b.Size == 1:
		return a, nil
	case a.Known():
		return a, nil // b is then a (symbolic) 1 or the same size
	case b.Known():
		return b, nil
	case a.Param != "" && a.Param == b.Param:
		return a, nil
	}
	return UnknownDim(), nil
}

// broadcastShapes applies numpy broadcasting to several shapes.
func broadcastShapes(shapes ...Shape) (Shape, error) {
	r := 0
	for _, s := range shapes {
		r = max(r, len(s))
	}
	out := make(Shape, r)
	for i := range out {
		out[i] = FixedDim(1)
	}
	for _, s := range shapes {
		off := r - len(s)
		for i, d := range s {
			b, err := broadcastDim(out[i+off], d)
			if err != nil {
				return nil, fmt.Errorf("broadcast %s with %s: %w", out, s, err)
			}
			out[i+off] = b
		}
	}
	return out, nil
}

// normAxis turns a possibly negative axis into [0, r).
func normAxis(a int64, r int) (int, error) {
	if a < 0 {
		a += int64(r)
	}
	if a < 0 || a >= int64(r) {
		return 0, fmt.Errorf("axis %d out of range for rank %d", a, r)
	}
	return int(a), nil
}

// normAxes normalizes a list of axes for rank r, sorted and unique.
func normAxes(axes []int64, r int) ([]int, error) {
	seen := map[int]bool{}
	var out []int
	for _, a := range axes {
		k, err := normAxis(a, r)
		if err != nil {
			return nil, err
		}
		if seen[k] {
			return nil, fmt.Errorf("axis %d repeated", a)
		}
		seen[k] = true
		out = append(out, k)
	}
	sort.Ints(out)
	return out, nil
}

// windowOut is the output size of a convolution or pooling window along one
// axis. ceil selects ceil_mode; pads are the begin and end pads (ignored for
// SAME_* and VALID auto_pad).
func windowOut(in Dim, k, stride, dil, padB, padE int64, autoPad string, ceil bool) Dim {
	if !in.Known() || k < 1 || stride < 1 || dil < 1 || padB < 0 || padE < 0 {
		return UnknownDim()
	}
	if k > MaxElements || dil > MaxElements/k || padB > MaxElements || padE > MaxElements || in.Size > MaxElements {
		return UnknownDim()
	}
	ek := dil*(k-1) + 1
	switch autoPad {
	case "SAME_UPPER", "SAME_LOWER":
		return FixedDim((in.Size + stride - 1) / stride)
	case "VALID":
		if in.Size < ek {
			return UnknownDim()
		}
		return FixedDim((in.Size-ek)/stride + 1)
	}
	span := in.Size + padB + padE - ek
	if span < 0 {
		return UnknownDim()
	}
	out := span/stride + 1
	if ceil && span%stride != 0 {
		out++
		// The last window must start inside the input or its begin pad.
		if (out-1)*stride >= in.Size+padB {
			out--
		}
	}
	return FixedDim(out)
}

// symDims renders a constant shape tensor as dims.
func symDims(c *cval) Shape {
	out := make(Shape, c.n())
	for i := range out {
		out[i] = c.at(i).dim()
	}
	return out
}

// dimsToConst makes an int64 constant from dims (symbolic ones kept).
func dimsToConst(ds Shape) *cval {
	c, ok := newCval(Int64, []int64{int64(len(ds))})
	if !ok {
		return nil
	}
	for i, d := range ds {
		c.ints[i] = symOfDim(d)
	}
	return c
}

// resolveReshape works out Reshape's output from the input shape and the
// requested shape (0 copies an input dim unless allowzero, -1 is inferred).
func resolveReshape(in Shape, hasIn bool, req *cval, allowZero bool) (Shape, error) {
	out := make(Shape, req.n())
	neg := -1
	for i := range out {
		e := req.at(i)
		switch {
		case e.ok && e.v == 0 && !allowZero:
			if !hasIn || i >= len(in) {
				if !hasIn {
					out[i] = UnknownDim()
					continue
				}
				return nil, fmt.Errorf("shape entry %d is 0 but the input has rank %d", i, len(in))
			}
			out[i] = in[i]
		case e.ok && e.v == -1:
			if neg >= 0 {
				return nil, fmt.Errorf("shape has more than one -1")
			}
			neg = i
			out[i] = UnknownDim()
		case e.ok && e.v < -1:
			return nil, fmt.Errorf("shape entry %d is %d", i, e.v)
		default:
			out[i] = e.dim()
		}
	}
	if neg < 0 || !hasIn {
		return out, nil
	}
	// total(in) / total(others), cancelling symbols.
	num, nsyms, nok := factor(in)
	others := append(append(Shape{}, out[:neg]...), out[neg+1:]...)
	den, dsyms, dok := factor(others)
	if !nok || !dok {
		return out, nil
	}
	for s, c := range dsyms {
		if nsyms[s] < c {
			return out, nil
		}
		nsyms[s] -= c
	}
	var rest []string
	for s, c := range nsyms {
		for ; c > 0; c-- {
			rest = append(rest, s)
		}
	}
	switch {
	case den == 0:
		return out, nil
	case num%den != 0:
		if len(rest) == 0 {
			return nil, fmt.Errorf("cannot reshape %s into %s", in, out)
		}
		return out, nil
	case len(rest) == 0:
		out[neg] = FixedDim(num / den)
	case len(rest) == 1 && num/den == 1:
		out[neg] = SymDim(rest[0])
	}
	return out, nil
}

// factor splits a shape's element count into a known product and a
// multiset of symbols; ok is false when a dim is unknown.
func factor(s Shape) (int64, map[string]int, bool) {
	p := int64(1)
	syms := map[string]int{}
	for _, d := range s {
		switch {
		case d.Known():
			if d.Size != 0 && p > MaxElements/d.Size {
				return 0, nil, false
			}
			p *= d.Size
		case d.Param != "":
			syms[d.Param]++
		default:
			return 0, nil, false
		}
	}
	return p, syms, true
}
