package interp

import (
	"fmt"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Shape and view ops: Reshape, Flatten, Squeeze, Unsqueeze, Identity,
// Dropout, Shape, Size, Constant, ConstantOfShape, Expand, Range, EyeLike.

func init() {
	Register("", "Identity", ewBuildIdentity)
	Register("", "Dropout", ewBuildDropout)
	Register("", "Reshape", ewBuildReshape)
	Register("", "Flatten", ewBuildFlatten)
	Register("", "Squeeze", ewBuildSqueeze)
	Register("", "Unsqueeze", ewBuildUnsqueeze)
	Register("", "Shape", ewBuildShape)
	Register("", "Size", ewBuildSize)
	Register("", "Constant", ewBuildConstant)
	Register("", "ConstantOfShape", ewBuildConstantOfShape)
	Register("", "Expand", ewBuildExpand)
	Register("", "Range", ewBuildRange)
	Register("", "EyeLike", ewBuildEyeLike)
}

func ewBuildIdentity(n *graph.Node, bc *BuildContext) (Kernel, error) {
	return func(c *Call) error {
		if c.In[0] == nil {
			return ewErr(n, "missing input")
		}
		return c.Alias(0, c.In[0], c.In[0].Shape)
	}, nil
}

// Dropout in inference: identity, and an all-true mask when asked. With
// training_mode true and ratio > 0 the output is random: refused.
func ewBuildDropout(n *graph.Node, bc *BuildContext) (Kernel, error) {
	return func(c *Call) error {
		x := c.In[0]
		if x == nil {
			return ewErr(n, "missing input")
		}
		if len(c.In) > 2 && c.In[2] != nil && len(c.In[2].Raw) > 0 && c.In[2].Raw[0] != 0 {
			ratio := 0.5
			if len(c.In) > 1 && c.In[1] != nil {
				v, err := ewF64s(c.In[1])
				if err == nil && len(v) > 0 {
					ratio = v[0]
				}
			}
			if ratio != 0 {
				return ewUnsupported(n, "training_mode with ratio %g is random: not supported", ratio)
			}
		}
		if err := c.Alias(0, x, x.Shape); err != nil {
			return err
		}
		if c.HasOutput(1) {
			m, err := c.Out(1, graph.Bool, x.Shape)
			if err != nil {
				return err
			}
			for i := range m.Raw {
				m.Raw[i] = 1
			}
		}
		return nil
	}, nil
}

// ewReshapeShape resolves a Reshape target (0 copies, -1 infers).
func ewReshapeShape(dst []int64, in []int64, target []int64, allowZero bool) ([]int64, error) {
	dst = dst[:0]
	neg := -1
	prod := int64(1)
	for i, d := range target {
		switch {
		case d == -1:
			if neg >= 0 {
				return nil, fmt.Errorf("more than one -1 in shape %v", target)
			}
			neg = i
			dst = append(dst, 1)
			continue
		case d == 0 && !allowZero:
			if i >= len(in) {
				return nil, fmt.Errorf("0 at dim %d of %v beyond input rank %d", i, target, len(in))
			}
			d = in[i]
		case d < 0:
			return nil, fmt.Errorf("bad dim %d in shape %v", d, target)
		}
		dst = append(dst, d)
		prod *= d
	}
	total := int64(ewNumel(in))
	if neg >= 0 {
		if prod == 0 || total%prod != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", in, target)
		}
		dst[neg] = total / prod
	} else if prod != total {
		return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v", in, total, target)
	}
	return dst, nil
}

func ewBuildReshape(n *graph.Node, bc *BuildContext) (Kernel, error) {
	allowZero := n.AttrInt("allowzero", 0) != 0
	var attrShape []int64
	if bc.Opset < 5 {
		attrShape = n.AttrInts("shape")
	}
	var buf []int64
	return func(c *Call) error {
		x := c.In[0]
		if x == nil {
			return ewErr(n, "missing input")
		}
		target := attrShape
		if bc.Opset >= 5 {
			if len(c.In) < 2 || c.In[1] == nil {
				return ewErr(n, "missing shape input")
			}
			var err error
			if c.In[1].DType == graph.Int64 {
				target = ewView[int64](c.In[1])
			} else if target, err = ewInts(c.In[1]); err != nil {
				return ewErr(n, "shape: %v", err)
			}
		}
		var err error
		buf, err = ewReshapeShape(buf, x.Shape, target, allowZero)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		return c.Alias(0, x, buf)
	}, nil
}

func ewBuildFlatten(n *graph.Node, bc *BuildContext) (Kernel, error) {
	axis := n.AttrInt("axis", 1)
	var buf [2]int64
	return func(c *Call) error {
		x := c.In[0]
		if x == nil {
			return ewErr(n, "missing input")
		}
		a := axis
		if a < 0 {
			a += int64(len(x.Shape))
		}
		if a < 0 || a > int64(len(x.Shape)) {
			return ewErr(n, "axis %d out of range for rank %d", axis, len(x.Shape))
		}
		buf[0], buf[1] = int64(ewNumel(x.Shape[:a])), int64(ewNumel(x.Shape[a:]))
		return c.Alias(0, x, buf[:])
	}, nil
}

// ewAxesInput returns axes from the attribute (old opsets) or input 1.
func ewAxes(n *graph.Node, c *Call, attrOpset int64, opset int64) ([]int64, bool, error) {
	if opset < attrOpset {
		a := n.Attr("axes")
		if a == nil {
			return nil, false, nil
		}
		return a.Ints, true, nil
	}
	if len(c.In) < 2 || c.In[1] == nil {
		return nil, false, nil
	}
	v, err := ewInts(c.In[1])
	return v, true, err
}

func ewBuildSqueeze(n *graph.Node, bc *BuildContext) (Kernel, error) {
	var buf []int64
	return func(c *Call) error {
		x := c.In[0]
		if x == nil {
			return ewErr(n, "missing input")
		}
		axes, given, err := ewAxes(n, c, 13, bc.Opset)
		if err != nil {
			return ewErr(n, "axes: %v", err)
		}
		r := len(x.Shape)
		drop := make([]bool, r)
		if !given {
			for i, d := range x.Shape {
				drop[i] = d == 1
			}
		}
		for _, a := range axes {
			ax, err := ewNormAxis(a, r)
			if err != nil {
				return ewErr(n, "%v", err)
			}
			if x.Shape[ax] != 1 {
				return ewErr(n, "cannot squeeze dim %d of size %d", ax, x.Shape[ax])
			}
			drop[ax] = true
		}
		buf = buf[:0]
		for i, d := range x.Shape {
			if !drop[i] {
				buf = append(buf, d)
			}
		}
		return c.Alias(0, x, buf)
	}, nil
}

func ewBuildUnsqueeze(n *graph.Node, bc *BuildContext) (Kernel, error) {
	var buf []int64
	return func(c *Call) error {
		x := c.In[0]
		if x == nil {
			return ewErr(n, "missing input")
		}
		axes, _, err := ewAxes(n, c, 13, bc.Opset)
		if err != nil {
			return ewErr(n, "axes: %v", err)
		}
		r := len(x.Shape) + len(axes)
		ins := make([]bool, r)
		for _, a := range axes {
			ax, err := ewNormAxis(a, r)
			if err != nil {
				return ewErr(n, "%v", err)
			}
			if ins[ax] {
				return ewErr(n, "axis %d repeated", a)
			}
			ins[ax] = true
		}
		buf = buf[:0]
		k := 0
		for i := 0; i < r; i++ {
			if ins[i] {
				buf = append(buf, 1)
			} else {
				buf = append(buf, x.Shape[k])
				k++
			}
		}
		return c.Alias(0, x, buf)
	}, nil
}

func ewBuildShape(n *graph.Node, bc *BuildContext) (Kernel, error) {
	start := n.AttrInt("start", 0)
	endA := n.Attr("end")
	return func(c *Call) error {
		x := c.In[0]
		if x == nil {
			return ewErr(n, "missing input")
		}
		r := int64(len(x.Shape))
		s, e := start, r
		if endA != nil {
			e = endA.I
		}
		if s < 0 {
			s += r
		}
		if e < 0 {
			e += r
		}
		s = min(max(s, 0), r)
		e = min(max(e, 0), r)
		if e < s {
			e = s
		}
		o, err := c.Out(0, graph.Int64, []int64{e - s})
		if err != nil {
			return err
		}
		copy(ewView[int64](o), x.Shape[s:e])
		return nil
	}, nil
}

func ewBuildSize(n *graph.Node, bc *BuildContext) (Kernel, error) {
	return func(c *Call) error {
		if c.In[0] == nil {
			return ewErr(n, "missing input")
		}
		o, err := c.Out(0, graph.Int64, nil)
		if err != nil {
			return err
		}
		ewView[int64](o)[0] = int64(ewNumel(c.In[0].Shape))
		return nil
	}, nil
}

func ewConstValue(n *graph.Node) (*runtime.Tensor, error) {
	for _, a := range n.Attrs {
		switch a.Name {
		case "value":
			if a.T == nil {
				return nil, fmt.Errorf("value is not a tensor")
			}
			return runtime.FromGraphTensor(a.T), nil
		case "value_float":
			return runtime.FromFloat32(nil, []float32{a.F}), nil
		case "value_floats":
			return runtime.FromFloat32([]int64{int64(len(a.Floats))}, append([]float32(nil), a.Floats...)), nil
		case "value_int":
			return runtime.FromInt64(nil, []int64{a.I}), nil
		case "value_ints":
			return runtime.FromInt64([]int64{int64(len(a.Ints))}, append([]int64(nil), a.Ints...)), nil
		case "value_string":
			t := runtime.NewTensor(graph.String, nil)
			t.Strings[0] = string(a.S)
			return t, nil
		case "value_strings":
			t := runtime.NewTensor(graph.String, []int64{int64(len(a.Strings))})
			for i, s := range a.Strings {
				t.Strings[i] = string(s)
			}
			return t, nil
		case "sparse_value":
			return nil, unsupportedf("sparse_value is not supported")
		}
	}
	return nil, fmt.Errorf("no value attribute")
}

func ewBuildConstant(n *graph.Node, bc *BuildContext) (Kernel, error) {
	t, err := ewConstValue(n)
	if err != nil {
		return nil, ewErr(n, "%v", err)
	}
	if err := t.Check(); err != nil {
		return nil, ewErr(n, "%v", err)
	}
	return func(c *Call) error {
		c.SetOut(0, t)
		return nil
	}, nil
}

func ewBuildConstantOfShape(n *graph.Node, bc *BuildContext) (Kernel, error) {
	val := runtime.FromFloat32([]int64{1}, []float32{0})
	if a := n.Attr("value"); a != nil && a.T != nil {
		val = runtime.FromGraphTensor(a.T)
		if val.Len() != 1 {
			return nil, ewErr(n, "value must hold one element")
		}
	}
	return func(c *Call) error {
		if c.In[0] == nil {
			return ewErr(n, "missing input")
		}
		shape, err := ewInts(c.In[0])
		if err != nil {
			return ewErr(n, "%v", err)
		}
		if err := ewCheckSize(shape); err != nil {
			return ewErr(n, "%v", err)
		}
		o, err := c.Out(0, val.DType, shape)
		if err != nil {
			return err
		}
		if val.DType == graph.String {
			for i := range o.Strings {
				o.Strings[i] = val.Strings[0]
			}
			return nil
		}
		es := len(val.Raw)
		for i := 0; i < len(o.Raw); i += es {
			copy(o.Raw[i:i+es], val.Raw)
		}
		return nil
	}, nil
}

// ewBroadcastIdx returns, for each element of out shape, the offset in a
// tensor of shape s broadcast to it.
func ewBroadcastIdx(s, out []int64) []int {
	st := ewBStrides(nil, s, out)
	idx := make([]int, ewNumel(out))
	ewForEach(out, func(i int, ix []int64) {
		p := 0
		for d, v := range ix {
			p += int(v) * st[d]
		}
		idx[i] = p
	})
	return idx
}

func ewBuildExpand(n *graph.Node, bc *BuildContext) (Kernel, error) {
	var cache ewIdxCache
	var shape, key, target []int64
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || len(c.In) < 2 || c.In[1] == nil {
			return ewErr(n, "missing input")
		}
		var err error
		target, err = ewIntsInto(target, c.In[1])
		if err != nil {
			return ewErr(n, "shape: %v", err)
		}
		shape, err = ewBroadcast(shape, x.Shape, target)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		if err := ewCheckSize(shape); err != nil {
			return ewErr(n, "%v", err)
		}
		o, err := c.Out(0, x.DType, shape)
		if err != nil {
			return err
		}
		key = append(append(append(key[:0], x.Shape...), -1), shape...)
		idx, ok := cache.get(key)
		if !ok {
			idx = ewBroadcastIdx(x.Shape, shape)
			cache.put(key, idx)
		}
		ewTake(o, x, idx)
		return nil
	}, nil
}

func ewBuildRange(n *graph.Node, bc *BuildContext) (Kernel, error) {
	return func(c *Call) error {
		if len(c.In) < 3 || c.In[0] == nil || c.In[1] == nil || c.In[2] == nil {
			return ewErr(n, "needs start, limit and delta")
		}
		dt := c.In[0].DType
		var v [3]float64
		for i := 0; i < 3; i++ {
			f, err := ewF64s(c.In[i])
			if err != nil || len(f) != 1 {
				return ewErr(n, "input %d must be a scalar", i)
			}
			v[i] = f[0]
		}
		if v[2] == 0 {
			return ewErr(n, "delta is zero")
		}
		cnt := int64(0)
		if dt.IsInt() {
			s, l, d := int64(v[0]), int64(v[1]), int64(v[2])
			if q := l - s; (q > 0) == (d > 0) && q != 0 {
				cnt = (q + d - d/abs64(d)) / d
			}
		} else {
			f := (v[1] - v[0]) / v[2]
			if f > 0 {
				cnt = int64(ewCeil(f))
			}
		}
		if cnt < 0 {
			cnt = 0
		}
		if cnt > 1<<31 {
			return ewErr(n, "%d elements is too many", cnt)
		}
		o, err := c.Out(0, dt, []int64{cnt})
		if err != nil {
			return err
		}
		out := make([]float64, cnt)
		if dt.IsInt() {
			s, d := int64(v[0]), int64(v[2])
			for i := range out {
				out[i] = float64(s + int64(i)*d)
			}
		} else if dt == graph.Float {
			// accumulate in float32 as the reference does
			s, d := float32(v[0]), float32(v[2])
			for i := range out {
				out[i] = float64(s + float32(i)*d)
			}
		} else {
			for i := range out {
				out[i] = v[0] + float64(i)*v[2]
			}
		}
		return ewSetF64(o, out)
	}, nil
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func ewCeil(f float64) float64 {
	i := float64(int64(f))
	if i < f {
		return i + 1
	}
	return i
}

func ewBuildEyeLike(n *graph.Node, bc *BuildContext) (Kernel, error) {
	k := n.AttrInt("k", 0)
	dta := n.Attr("dtype")
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || len(x.Shape) != 2 {
			return ewErr(n, "input must be 2-D")
		}
		dt := x.DType
		if dta != nil {
			dt = graph.DType(dta.I)
		}
		o, err := c.Out(0, dt, x.Shape)
		if err != nil {
			return err
		}
		v := make([]float64, ewNumel(x.Shape))
		rows, cols := x.Shape[0], x.Shape[1]
		for i := int64(0); i < rows; i++ {
			j := i + k
			if j >= 0 && j < cols {
				v[i*cols+j] = 1
			}
		}
		return ewSetF64(o, v)
	}, nil
}
