package interp

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics/half"
	"github.com/optictl/optictl/pkg/runtime"
)

// Shared helpers of the "ew" kernels (elementwise, shape, data movement,
// reductions). All names carry the ew prefix.

type ewNum interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

type ewInt interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

// ewView views a fixed-size tensor's bytes as []T. Misaligned data is first
// copied to an aligned buffer (only inputs cut from foreign buffers).
func ewView[T any](t *runtime.Tensor) []T {
	var z T
	sz := int(unsafe.Sizeof(z))
	n := len(t.Raw) / sz
	if n == 0 {
		return nil
	}
	p := unsafe.Pointer(unsafe.SliceData(t.Raw))
	if uintptr(p)%unsafe.Alignof(z) != 0 {
		words := make([]uint64, (len(t.Raw)+7)/8)
		b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), len(t.Raw))
		copy(b, t.Raw)
		t.Raw = b
		p = unsafe.Pointer(unsafe.SliceData(t.Raw))
	}
	return unsafe.Slice((*T)(p), n)
}

func ewNumel(shape []int64) int {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	return n
}

func ewSameShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ewBroadcast computes the numpy broadcast of shapes into dst (reused).
func ewBroadcast(dst []int64, shapes ...[]int64) ([]int64, error) {
	r := 0
	for _, s := range shapes {
		r = max(r, len(s))
	}
	dst = dst[:0]
	for i := 0; i < r; i++ {
		dst = append(dst, 1)
	}
	for _, s := range shapes {
		off := r - len(s)
		for i, d := range s {
			o := dst[off+i]
			switch {
			case d == o || d == 1:
			case o == 1:
				dst[off+i] = d
			default:
				// copy so that shapes does not escape (keeps callers allocation-free)
				return nil, fmt.Errorf("shapes %v are not broadcastable", append([][]int64(nil), shapes...))
			}
		}
	}
	return dst, nil
}

// ewBStrides returns element strides of shape s broadcast to out (0 on
// broadcast dims), written into dst.
func ewBStrides(dst []int, s, out []int64) []int {
	r := len(out)
	dst = dst[:0]
	for i := 0; i < r; i++ {
		dst = append(dst, 0)
	}
	st := 1
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] != 1 {
			dst[r-len(s)+i] = st
		}
		st *= int(s[i])
	}
	return dst
}

func ewStrides(s []int64) []int {
	st := make([]int, len(s))
	acc := 1
	for i := len(s) - 1; i >= 0; i-- {
		st[i] = acc
		acc *= int(s[i])
	}
	return st
}

func ewNormAxis(axis int64, rank int) (int, error) {
	if axis < 0 {
		axis += int64(rank)
	}
	if axis < 0 || axis >= int64(max(rank, 1)) {
		return 0, fmt.Errorf("axis %d out of range for rank %d", axis, rank)
	}
	return int(axis), nil
}

// ewInts reads an integer tensor (int64/int32/…) as []int64 (a copy).
func ewInts(t *runtime.Tensor) ([]int64, error) {
	if t == nil {
		return nil, nil
	}
	switch t.DType {
	case graph.Int64:
		return append([]int64(nil), ewView[int64](t)...), nil
	case graph.Int32:
		v := ewView[int32](t)
		o := make([]int64, len(v))
		for i, x := range v {
			o[i] = int64(x)
		}
		return o, nil
	}
	if t.DType.IsInt() {
		f, err := t.AsFloat64()
		if err != nil {
			return nil, err
		}
		o := make([]int64, len(f))
		for i, x := range f {
			o[i] = int64(x)
		}
		return o, nil
	}
	return nil, fmt.Errorf("expected an integer tensor, got %s", t.DType)
}

// ewF64s reads any numeric tensor as float64 values (a copy).
func ewF64s(t *runtime.Tensor) ([]float64, error) {
	switch t.DType {
	case graph.Float:
		v := ewView[float32](t)
		o := make([]float64, len(v))
		for i, x := range v {
			o[i] = float64(x)
		}
		return o, nil
	case graph.Double:
		return append([]float64(nil), ewView[float64](t)...), nil
	case graph.Bool:
		o := make([]float64, len(t.Raw))
		for i, x := range t.Raw {
			if x != 0 {
				o[i] = 1
			}
		}
		return o, nil
	}
	return t.AsFloat64()
}

// ewSetF64 writes float64 values into a tensor of a numeric dtype,
// converting as a C cast would (ints truncate toward zero).
func ewSetF64(t *runtime.Tensor, v []float64) error {
	switch t.DType {
	case graph.Float:
		o := ewView[float32](t)
		for i := range o {
			o[i] = float32(v[i])
		}
	case graph.Double:
		copy(ewView[float64](t), v)
	case graph.Float16:
		o := ewView[uint16](t)
		for i := range o {
			o[i] = half.Float32ToFloat16(float32(v[i]))
		}
	case graph.BFloat16:
		o := ewView[uint16](t)
		for i := range o {
			o[i] = half.Float32ToBFloat16(float32(v[i]))
		}
	case graph.Bool:
		for i := range t.Raw {
			if v[i] != 0 {
				t.Raw[i] = 1
			} else {
				t.Raw[i] = 0
			}
		}
	case graph.Int8:
		ewSetInts(ewView[int8](t), v)
	case graph.Int16:
		ewSetInts(ewView[int16](t), v)
	case graph.Int32:
		ewSetInts(ewView[int32](t), v)
	case graph.Int64:
		ewSetInts(ewView[int64](t), v)
	case graph.Uint8:
		ewSetInts(ewView[uint8](t), v)
	case graph.Uint16:
		ewSetInts(ewView[uint16](t), v)
	case graph.Uint32:
		ewSetInts(ewView[uint32](t), v)
	case graph.Uint64:
		ewSetInts(ewView[uint64](t), v)
	default:
		return unsupportedf("dtype %s is not supported", t.DType)
	}
	return nil
}

func ewSetInts[T ewInt](o []T, v []float64) {
	for i := range o {
		f := v[i]
		if math.IsNaN(f) {
			o[i] = 0
			continue
		}
		if f < 0 {
			o[i] = T(int64(f))
		} else if f >= 9.223372036854775807e18 {
			o[i] = T(uint64(f))
		} else {
			o[i] = T(int64(f))
		}
	}
}

// ewIsNumeric reports the dtypes the ew arithmetic kernels handle.
func ewIsNumeric(dt graph.DType) bool {
	switch dt {
	case graph.Float, graph.Double, graph.Float16, graph.BFloat16, graph.Int8, graph.Int16, graph.Int32, graph.Int64,
		graph.Uint8, graph.Uint16, graph.Uint32, graph.Uint64:
		return true
	}
	return false
}

// ewTake sets dst[i] = src[idx[i]] for any dtype (idx < 0 leaves the element
// as is). dst must already have its shape and dtype.
func ewTake(dst, src *runtime.Tensor, idx []int) {
	if src.DType == graph.String {
		for i, j := range idx {
			if j >= 0 {
				dst.Strings[i] = src.Strings[j]
			}
		}
		return
	}
	switch src.DType.Size() {
	case 1:
		ewTakeT(dst.Raw, src.Raw, idx)
	case 2:
		ewTakeT(ewView[uint16](dst), ewView[uint16](src), idx)
	case 4:
		ewTakeT(ewView[uint32](dst), ewView[uint32](src), idx)
	case 8:
		ewTakeT(ewView[uint64](dst), ewView[uint64](src), idx)
	}
}

func ewTakeT[T any](d, s []T, idx []int) {
	d = d[:len(idx)]
	for i, j := range idx {
		if j >= 0 {
			d[i] = s[j]
		}
	}
}

// ewCopyElems copies n elements from src[so:] to dst[do:] (any dtype).
func ewCopyElems(dst *runtime.Tensor, do int, src *runtime.Tensor, so, n int) {
	if src.DType == graph.String {
		copy(dst.Strings[do:do+n], src.Strings[so:so+n])
		return
	}
	es := src.DType.Size()
	copy(dst.Raw[do*es:(do+n)*es], src.Raw[so*es:(so+n)*es])
}

// ewIdxCache keeps an index map for a given input shape and parameters so
// data movement kernels stay allocation-free across runs with fixed shapes.
type ewIdxCache struct {
	key []int64
	idx []int
}

func (c *ewIdxCache) get(key []int64) ([]int, bool) {
	if c.idx != nil && ewSameShape(c.key, key) {
		return c.idx, true
	}
	return nil, false
}

func (c *ewIdxCache) put(key []int64, idx []int) {
	c.key = append(c.key[:0], key...)
	c.idx = idx
}

// ewForEach calls fn for every multi-index of shape in row-major order.
func ewForEach(shape []int64, fn func(i int, ix []int64)) {
	n := ewNumel(shape)
	ix := make([]int64, len(shape))
	for i := 0; i < n; i++ {
		fn(i, ix)
		for d := len(shape) - 1; d >= 0; d-- {
			ix[d]++
			if ix[d] < shape[d] {
				break
			}
			ix[d] = 0
		}
	}
}

// ewCheckSize refuses absurd shapes before allocation.
func ewCheckSize(shape []int64) error {
	if _, err := graph.NumElements(shape); err != nil {
		return err
	}
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("negative dimension in %v", shape)
		}
	}
	return nil
}

// ewErr formats an error naming the node.
func ewErr(n *graph.Node, format string, args ...any) error {
	return fmt.Errorf("interp: %s: %s", n, fmt.Sprintf(format, args...))
}

// ewInputInts returns input i as int64s: from the constant when known at
// build time, else at run time.
func ewConstInts(bc *BuildContext, i int) ([]int64, bool, error) {
	if !bc.HasInput(i) {
		return nil, false, nil
	}
	if t := bc.Const(i); t != nil {
		v, err := ewInts(t)
		return v, true, err
	}
	return nil, false, nil
}

func ewF16s(t *runtime.Tensor) []float32 {
	v := ewView[uint16](t)
	o := make([]float32, len(v))
	if t.DType == graph.BFloat16 {
		for i, h := range v {
			o[i] = half.BFloat16ToFloat32(h)
		}
		return o
	}
	for i, h := range v {
		o[i] = half.Float16ToFloat32(h)
	}
	return o
}

func ewBytesF32(s []float32) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*4)
}

// ewIntsInto is ewInts reusing dst (no allocation once dst is large enough).
func ewIntsInto(dst []int64, t *runtime.Tensor) ([]int64, error) {
	dst = dst[:0]
	switch t.DType {
	case graph.Int64:
		return append(dst, ewView[int64](t)...), nil
	case graph.Int32:
		for _, x := range ewView[int32](t) {
			dst = append(dst, int64(x))
		}
		return dst, nil
	}
	v, err := ewInts(t)
	return append(dst, v...), err
}

// unsupportedf is a kernel's "this backend cannot run that" error (a dtype
// or attribute value without an implementation): it matches
// runtime.ErrUnsupported, and the node's op is filled in where the error is
// wrapped with the node (compile, kernelErr).
func unsupportedf(format string, args ...any) error {
	return &runtime.UnsupportedError{Reason: fmt.Sprintf(format, args...)}
}

// ewUnsupported is ewErr for what the backend cannot run.
func ewUnsupported(n *graph.Node, format string, args ...any) error {
	return &runtime.UnsupportedError{Op: n.OpType, Domain: n.Domain, Reason: fmt.Sprintf("interp: %s: %s", n, fmt.Sprintf(format, args...))}
}

// withOp fills in the op of an UnsupportedError in err's chain that lacks
// one, and returns err.
func withOp(err error, n *graph.Node) error {
	if ue, ok := runtime.AsUnsupported(err); ok && ue.Op == "" && n != nil {
		ue.Op, ue.Domain = n.OpType, n.Domain
	}
	return err
}
