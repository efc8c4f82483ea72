package interp

import (
	"cmp"
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Binary and variadic elementwise ops with numpy broadcasting.

// ewBinState holds per-node reusable shape/stride buffers.
type ewBinState struct {
	shape  []int64
	sa, sb []int
}

// ewBinLoop applies f over the broadcast of a and b into out.
func ewBinLoop[T, R any](out []R, a, b []T, ash, bsh, osh []int64, st *ewBinState, f func(T, T) R) {
	n := len(out)
	switch {
	case len(a) == n && len(b) == n:
		b = b[:n]
		a = a[:n]
		for i := range out {
			out[i] = f(a[i], b[i])
		}
		return
	case len(b) == 1 && len(a) == n:
		y := b[0]
		a = a[:n]
		for i := range out {
			out[i] = f(a[i], y)
		}
		return
	case len(a) == 1 && len(b) == n:
		x := a[0]
		b = b[:n]
		for i := range out {
			out[i] = f(x, b[i])
		}
		return
	}
	st.sa = ewBStrides(st.sa, ash, osh)
	st.sb = ewBStrides(st.sb, bsh, osh)
	r := len(osh)
	if n == 0 {
		return
	}
	if r == 0 {
		out[0] = f(a[0], b[0])
		return
	}
	inner := int(osh[r-1])
	ia, ib := st.sa[r-1], st.sb[r-1]
	var ixb [8]int64
	ix := ixb[:0]
	for i := 0; i < r; i++ {
		ix = append(ix, 0)
	}
	for o := 0; o < n; o += inner {
		pa, pb := 0, 0
		for d := 0; d < r-1; d++ {
			pa += int(ix[d]) * st.sa[d]
			pb += int(ix[d]) * st.sb[d]
		}
		row := out[o : o+inner]
		switch {
		case ia == 1 && ib == 1:
			ra, rb := a[pa:pa+inner], b[pb:pb+inner]
			for k := range row {
				row[k] = f(ra[k], rb[k])
			}
		case ia == 1 && ib == 0:
			ra, y := a[pa:pa+inner], b[pb]
			for k := range row {
				row[k] = f(ra[k], y)
			}
		case ia == 0 && ib == 1:
			x, rb := a[pa], b[pb:pb+inner]
			for k := range row {
				row[k] = f(x, rb[k])
			}
		default:
			x, y := a[pa], b[pb]
			for k := range row {
				row[k] = f(x, y)
			}
		}
		for d := r - 2; d >= 0; d-- {
			ix[d]++
			if ix[d] < osh[d] {
				break
			}
			ix[d] = 0
		}
	}
}

type ewArithOp int

const (
	ewAdd ewArithOp = iota
	ewSub
	ewMul
	ewDiv
	ewMax
	ewMin
	ewModInt
	ewFmod
	ewAnd
	ewOr
	ewXor
	ewShl
	ewShr
)

func ewArithFn[T ewNum](op ewArithOp) func(a, b T) T {
	switch op {
	case ewAdd:
		return func(a, b T) T { return a + b }
	case ewSub:
		return func(a, b T) T { return a - b }
	case ewMul:
		return func(a, b T) T { return a * b }
	case ewDiv:
		var z T
		if T(1)/T(2) == z { // integer type
			return func(a, b T) T {
				if b == 0 {
					return 0
				}
				return a / b
			}
		}
		return func(a, b T) T { return a / b }
	case ewMax:
		return func(a, b T) T {
			if a != a || b != b {
				return a + b // NaN propagates
			}
			return max(a, b)
		}
	case ewMin:
		return func(a, b T) T {
			if a != a || b != b {
				return a + b
			}
			return min(a, b)
		}
	case ewFmod:
		return func(a, b T) T { return T(math.Mod(float64(a), float64(b))) }
	case ewModInt:
		return func(a, b T) T {
			fa, fb := float64(a), float64(b)
			if fb == 0 {
				half := 0.5
				if fa != fa || float64(T(half)) == 0.5 {
					return T(math.NaN())
				}
				return 0
			}
			m := math.Mod(fa, fb)
			if m != 0 && (m < 0) != (fb < 0) {
				m += fb
			}
			return T(m)
		}
	}
	return nil
}

func ewBitFn[T ewInt](op ewArithOp) func(a, b T) T {
	switch op {
	case ewAnd:
		return func(a, b T) T { return a & b }
	case ewOr:
		return func(a, b T) T { return a | b }
	case ewXor:
		return func(a, b T) T { return a ^ b }
	case ewShl:
		return func(a, b T) T { return a << uint64(b) }
	case ewShr:
		return func(a, b T) T { return a >> uint64(b) }
	}
	return nil
}

func ewRunArith[T ewNum](c *Call, out, a, b *runtime.Tensor, st *ewBinState, op ewArithOp) {
	ewBinLoop(ewView[T](out), ewView[T](a), ewView[T](b), a.Shape, b.Shape, out.Shape, st, ewArithFn[T](op))
}

func ewRunBits[T ewInt](out, a, b *runtime.Tensor, st *ewBinState, op ewArithOp) {
	ewBinLoop(ewView[T](out), ewView[T](a), ewView[T](b), a.Shape, b.Shape, out.Shape, st, ewBitFn[T](op))
}

// ewArith computes out = a op b for any numeric dtype (out already sized).
func ewArith(c *Call, out, a, b *runtime.Tensor, st *ewBinState, op ewArithOp) error {
	switch a.DType {
	case graph.Float:
		if op <= ewDiv {
			ewF32Fast(c, out, a, b, st, op)
			return nil
		}
		ewRunArith[float32](c, out, a, b, st, op)
	case graph.Double:
		ewRunArith[float64](c, out, a, b, st, op)
	case graph.Int64:
		ewRunArith[int64](c, out, a, b, st, op)
	case graph.Int32:
		ewRunArith[int32](c, out, a, b, st, op)
	case graph.Int16:
		ewRunArith[int16](c, out, a, b, st, op)
	case graph.Int8:
		ewRunArith[int8](c, out, a, b, st, op)
	case graph.Uint8:
		ewRunArith[uint8](c, out, a, b, st, op)
	case graph.Uint16:
		ewRunArith[uint16](c, out, a, b, st, op)
	case graph.Uint32:
		ewRunArith[uint32](c, out, a, b, st, op)
	case graph.Uint64:
		ewRunArith[uint64](c, out, a, b, st, op)
	case graph.Float16, graph.BFloat16:
		fa, fb := ewToF32(a), ewToF32(b)
		tmp := runtime.NewTensor(graph.Float, out.Shape)
		ewRunArith[float32](c, tmp, fa, fb, st, op)
		ewFromF32(out, tmp)
	default:
		return errDType(a.DType)
	}
	return nil
}

type errDType graph.DType

func (e errDType) Error() string { return "dtype " + graph.DType(e).String() + " is not supported" }

// ewF32Fast: float32 Add/Sub/Mul/Div with dedicated loops for the common
// shapes (same shape, scalar, row broadcast).
func ewF32Fast(c *Call, out, a, b *runtime.Tensor, st *ewBinState, op ewArithOp) {
	o, x, y := ewView[float32](out), ewView[float32](a), ewView[float32](b)
	n := len(o)
	if len(x) == n && len(y) == n {
		x, y = x[:n], y[:n]
		switch op {
		case ewAdd:
			for i := range o {
				o[i] = x[i] + y[i]
			}
		case ewSub:
			for i := range o {
				o[i] = x[i] - y[i]
			}
		case ewMul:
			for i := range o {
				o[i] = x[i] * y[i]
			}
		case ewDiv:
			for i := range o {
				o[i] = x[i] / y[i]
			}
		}
		return
	}
	if len(y) == 1 && len(x) == n {
		s := y[0]
		x = x[:n]
		switch op {
		case ewAdd:
			for i := range o {
				o[i] = x[i] + s
			}
		case ewSub:
			for i := range o {
				o[i] = x[i] - s
			}
		case ewMul:
			for i := range o {
				o[i] = x[i] * s
			}
		case ewDiv:
			for i := range o {
				o[i] = x[i] / s
			}
		}
		return
	}
	// Row broadcast: b is the trailing block of a's shape.
	if len(x) == n && len(y) > 0 && n%len(y) == 0 && ewIsSuffix(b.Shape, a.Shape) {
		m := len(y)
		for r := 0; r < n; r += m {
			or, xr := o[r:r+m], x[r:r+m]
			switch op {
			case ewAdd:
				for i := range or {
					or[i] = xr[i] + y[i]
				}
			case ewSub:
				for i := range or {
					or[i] = xr[i] - y[i]
				}
			case ewMul:
				for i := range or {
					or[i] = xr[i] * y[i]
				}
			case ewDiv:
				for i := range or {
					or[i] = xr[i] / y[i]
				}
			}
		}
		return
	}
	ewRunArith[float32](c, out, a, b, st, op)
}

// ewIsSuffix reports whether shape s (ignoring leading 1s) equals the
// trailing dims of full.
func ewIsSuffix(s, full []int64) bool {
	for len(s) > 0 && s[0] == 1 {
		s = s[1:]
	}
	if len(s) > len(full) {
		return false
	}
	return ewSameShape(s, full[len(full)-len(s):])
}

func ewBuildArith(op ewArithOp) Builder {
	return func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		op := op
		st := &ewBinState{}
		if n.OpType == "Mod" {
			if n.AttrInt("fmod", 0) != 0 {
				op = ewFmod
			} else {
				op = ewModInt
			}
		}
		return func(c *Call) error {
			a, b := c.In[0], c.In[1]
			if a == nil || b == nil {
				return ewErr(n, "missing input")
			}
			if a.DType != b.DType {
				return ewErr(n, "input dtypes differ: %s and %s", a.DType, b.DType)
			}
			var err error
			st.shape, err = ewBroadcast(st.shape, a.Shape, b.Shape)
			if err != nil {
				return ewErr(n, "%v", err)
			}
			out, err := c.Out(0, a.DType, st.shape)
			if err != nil {
				return err
			}
			if err := ewArith(c, out, a, b, st, op); err != nil {
				return ewErr(n, "%v", err)
			}
			return nil
		}, nil
	}
}

// Variadic Sum/Mean/Max/Min.
func ewBuildVariadic(op ewArithOp, mean bool) Builder {
	return func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		st := &ewBinState{}
		var shapes [][]int64
		return func(c *Call) error {
			if len(c.In) == 0 || c.In[0] == nil {
				return ewErr(n, "needs at least one input")
			}
			dt := c.In[0].DType
			shapes = shapes[:0]
			for _, t := range c.In {
				if t == nil || t.DType != dt {
					return ewErr(n, "inputs must all be present and of one dtype")
				}
				shapes = append(shapes, t.Shape)
			}
			var err error
			st.shape, err = ewBroadcast(st.shape, shapes...)
			if err != nil {
				return ewErr(n, "%v", err)
			}
			oshape := append([]int64(nil), st.shape...)
			out, err := c.Out(0, dt, oshape)
			if err != nil {
				return err
			}
			// out = broadcast(in0), then fold.
			if len(c.In) == 1 || ewNumel(c.In[0].Shape) != ewNumel(oshape) {
				idx := make([]int, ewNumel(oshape))
				sa := ewBStrides(nil, c.In[0].Shape, oshape)
				ewForEach(oshape, func(i int, ix []int64) {
					p := 0
					for d, v := range ix {
						p += int(v) * sa[d]
					}
					idx[i] = p
				})
				ewTake(out, c.In[0], idx)
			} else {
				copy(out.Raw, c.In[0].Raw)
			}
			for _, t := range c.In[1:] {
				if err := ewArith(c, out, out, t, st, op); err != nil {
					return ewErr(n, "%v", err)
				}
			}
			if mean && len(c.In) > 1 {
				v, err := ewF64s(out)
				if err != nil {
					return ewErr(n, "%v", err)
				}
				for i := range v {
					v[i] /= float64(len(c.In))
				}
				return ewSetF64(out, v)
			}
			return nil
		}, nil
	}
}

// Comparisons and logical ops produce bool.
type ewCmpOp int

const (
	ewEq ewCmpOp = iota
	ewLt
	ewGt
	ewLe
	ewGe
)

func ewCmpFn[T cmp.Ordered](op ewCmpOp) func(a, b T) bool {
	switch op {
	case ewEq:
		return func(a, b T) bool { return a == b }
	case ewLt:
		return func(a, b T) bool { return a < b }
	case ewGt:
		return func(a, b T) bool { return a > b }
	case ewLe:
		return func(a, b T) bool { return a <= b }
	}
	return func(a, b T) bool { return a >= b }
}

func ewRunCmp[T cmp.Ordered](out, a, b *runtime.Tensor, st *ewBinState, op ewCmpOp) {
	o := ewView[bool](out)
	if a.DType == graph.String {
		ewBinLoop(o, any(a.Strings).([]T), any(b.Strings).([]T), a.Shape, b.Shape, out.Shape, st, ewCmpFn[T](op))
		return
	}
	ewBinLoop(o, ewView[T](a), ewView[T](b), a.Shape, b.Shape, out.Shape, st, ewCmpFn[T](op))
}

func ewBuildCmp(op ewCmpOp) Builder {
	return func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		st := &ewBinState{}
		return func(c *Call) error {
			a, b := c.In[0], c.In[1]
			if a == nil || b == nil || a.DType != b.DType {
				return ewErr(n, "needs two inputs of one dtype")
			}
			var err error
			st.shape, err = ewBroadcast(st.shape, a.Shape, b.Shape)
			if err != nil {
				return ewErr(n, "%v", err)
			}
			out, err := c.Out(0, graph.Bool, st.shape)
			if err != nil {
				return err
			}
			switch a.DType {
			case graph.Float:
				ewRunCmp[float32](out, a, b, st, op)
			case graph.Double:
				ewRunCmp[float64](out, a, b, st, op)
			case graph.Int64:
				ewRunCmp[int64](out, a, b, st, op)
			case graph.Int32:
				ewRunCmp[int32](out, a, b, st, op)
			case graph.Int16:
				ewRunCmp[int16](out, a, b, st, op)
			case graph.Int8:
				ewRunCmp[int8](out, a, b, st, op)
			case graph.Uint8, graph.Bool:
				ewRunCmp[uint8](out, a, b, st, op)
			case graph.Uint16:
				ewRunCmp[uint16](out, a, b, st, op)
			case graph.Uint32:
				ewRunCmp[uint32](out, a, b, st, op)
			case graph.Uint64:
				ewRunCmp[uint64](out, a, b, st, op)
			case graph.String:
				ewRunCmp[string](out, a, b, st, op)
			case graph.Float16, graph.BFloat16:
				ewRunCmp[float32](out, ewToF32(a), ewToF32(b), st, op)
			default:
				return ewUnsupported(n, "dtype %s is not supported", a.DType)
			}
			return nil
		}, nil
	}
}

func ewBuildLogic(op ewArithOp) Builder {
	return func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		st := &ewBinState{}
		return func(c *Call) error {
			a, b := c.In[0], c.In[1]
			if a == nil || b == nil || a.DType != graph.Bool || b.DType != graph.Bool {
				return ewErr(n, "needs two bool inputs")
			}
			var err error
			st.shape, err = ewBroadcast(st.shape, a.Shape, b.Shape)
			if err != nil {
				return ewErr(n, "%v", err)
			}
			out, err := c.Out(0, graph.Bool, st.shape)
			if err != nil {
				return err
			}
			ewRunBits[uint8](out, a, b, st, op)
			return nil
		}, nil
	}
}

func ewBuildBitwise(op ewArithOp) Builder {
	return func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		op := op
		st := &ewBinState{}
		if n.OpType == "BitShift" {
			switch n.AttrString("direction", "") {
			case "LEFT":
				op = ewShl
			case "RIGHT":
				op = ewShr
			default:
				return nil, ewErr(n, "direction must be LEFT or RIGHT")
			}
		}
		return func(c *Call) error {
			a, b := c.In[0], c.In[1]
			if a == nil || b == nil || a.DType != b.DType {
				return ewErr(n, "needs two inputs of one dtype")
			}
			var err error
			st.shape, err = ewBroadcast(st.shape, a.Shape, b.Shape)
			if err != nil {
				return ewErr(n, "%v", err)
			}
			out, err := c.Out(0, a.DType, st.shape)
			if err != nil {
				return err
			}
			switch a.DType {
			case graph.Int64:
				ewRunBits[int64](out, a, b, st, op)
			case graph.Int32:
				ewRunBits[int32](out, a, b, st, op)
			case graph.Int16:
				ewRunBits[int16](out, a, b, st, op)
			case graph.Int8:
				ewRunBits[int8](out, a, b, st, op)
			case graph.Uint8:
				ewRunBits[uint8](out, a, b, st, op)
			case graph.Uint16:
				ewRunBits[uint16](out, a, b, st, op)
			case graph.Uint32:
				ewRunBits[uint32](out, a, b, st, op)
			case graph.Uint64:
				ewRunBits[uint64](out, a, b, st, op)
			default:
				return ewUnsupported(n, "dtype %s is not supported", a.DType)
			}
			return nil
		}, nil
	}
}

// Pow(X, Y): Y may have another numeric dtype; the output has X's.
func ewBuildPow(n *graph.Node, bc *BuildContext) (Kernel, error) {
	st := &ewBinState{}
	return func(c *Call) error {
		a, b := c.In[0], c.In[1]
		if a == nil || b == nil {
			return ewErr(n, "missing input")
		}
		var err error
		st.shape, err = ewBroadcast(st.shape, a.Shape, b.Shape)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		out, err := c.Out(0, a.DType, st.shape)
		if err != nil {
			return err
		}
		if a.DType == graph.Float && b.DType == graph.Float {
			ewBinLoop(ewView[float32](out), ewView[float32](a), ewView[float32](b), a.Shape, b.Shape, out.Shape, st,
				func(x, y float32) float32 {
					if y == 2 {
						return x * x
					}
					return float32(math.Pow(float64(x), float64(y)))
				})
			return nil
		}
		x, err := ewF64s(a)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		y, err := ewF64s(b)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		o := make([]float64, ewNumel(out.Shape))
		ewBinLoop(o, x, y, a.Shape, b.Shape, out.Shape, st, math.Pow)
		return ewSetF64(out, o)
	}, nil
}

// PRelu: y = x < 0 ? slope*x : x, slope broadcast (unidirectionally) to x.
func ewBuildPRelu(n *graph.Node, bc *BuildContext) (Kernel, error) {
	st := &ewBinState{}
	return func(c *Call) error {
		a, b := c.In[0], c.In[1]
		if a == nil || b == nil || a.DType != b.DType {
			return ewErr(n, "needs two inputs of one dtype")
		}
		var err error
		st.shape, err = ewBroadcast(st.shape, a.Shape, b.Shape)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		out, err := c.Out(0, a.DType, st.shape)
		if err != nil {
			return err
		}
		if a.DType == graph.Float {
			ewBinLoop(ewView[float32](out), ewView[float32](a), ewView[float32](b), a.Shape, b.Shape, out.Shape, st,
				func(x, s float32) float32 {
					if x < 0 {
						return x * s
					}
					return x
				})
			return nil
		}
		x, err := ewF64s(a)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		y, err := ewF64s(b)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		o := make([]float64, ewNumel(out.Shape))
		ewBinLoop(o, x, y, a.Shape, b.Shape, out.Shape, st, func(x, s float64) float64 {
			if x < 0 {
				return x * s
			}
			return x
		})
		return ewSetF64(out, o)
	}, nil
}

// Where(cond, X, Y) with three-way broadcasting, any dtype.
func ewBuildWhere(n *graph.Node, bc *BuildContext) (Kernel, error) {
	var shape []int64
	return func(c *Call) error {
		cd, x, y := c.In[0], c.In[1], c.In[2]
		if cd == nil || x == nil || y == nil || cd.DType != graph.Bool || x.DType != y.DType {
			return ewErr(n, "needs a bool condition and two inputs of one dtype")
		}
		var err error
		shape, err = ewBroadcast(shape, cd.Shape, x.Shape, y.Shape)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		out, err := c.Out(0, x.DType, shape)
		if err != nil {
			return err
		}
		sc := ewBStrides(nil, cd.Shape, shape)
		sx := ewBStrides(nil, x.Shape, shape)
		sy := ewBStrides(nil, y.Shape, shape)
		ix := make([]int, ewNumel(shape))
		iy := make([]int, len(ix))
		ewForEach(shape, func(i int, m []int64) {
			pc, px, py := 0, 0, 0
			for d, v := range m {
				pc += int(v) * sc[d]
				px += int(v) * sx[d]
				py += int(v) * sy[d]
			}
			if cd.Raw[pc] != 0 {
				ix[i], iy[i] = px, -1
			} else {
				ix[i], iy[i] = -1, py
			}
		})
		ewTake(out, x, ix)
		ewTake(out, y, iy)
		return nil
	}, nil
}

func init() {
	Register("", "Add", ewBuildArith(ewAdd))
	Register("", "Sub", ewBuildArith(ewSub))
	Register("", "Mul", ewBuildArith(ewMul))
	Register("", "Div", ewBuildArith(ewDiv))
	Register("", "Mod", ewBuildArith(ewModInt))
	Register("", "Pow", ewBuildPow)
	Register("", "PRelu", ewBuildPRelu)
	Register("", "Sum", ewBuildVariadic(ewAdd, false))
	Register("", "Mean", ewBuildVariadic(ewAdd, true))
	Register("", "Max", ewBuildVariadic(ewMax, false))
	Register("", "Min", ewBuildVariadic(ewMin, false))
	Register("", "Equal", ewBuildCmp(ewEq))
	Register("", "Less", ewBuildCmp(ewLt))
	Register("", "Greater", ewBuildCmp(ewGt))
	Register("", "LessOrEqual", ewBuildCmp(ewLe))
	Register("", "GreaterOrEqual", ewBuildCmp(ewGe))
	Register("", "And", ewBuildLogic(ewAnd))
	Register("", "Or", ewBuildLogic(ewOr))
	Register("", "Xor", ewBuildLogic(ewXor))
	Register("", "BitwiseAnd", ewBuildBitwise(ewAnd))
	Register("", "BitwiseOr", ewBuildBitwise(ewOr))
	Register("", "BitwiseXor", ewBuildBitwise(ewXor))
	Register("", "BitShift", ewBuildBitwise(ewShl))
	Register("", "Where", ewBuildWhere)
}
