package runtime

import (
	"fmt"
	"unsafe"

	"github.com/optictl/optictl/pkg/graph"
)

// Tensor is a host tensor: element data as little-endian bytes in Raw (for
// every fixed-size dtype), or Strings for string tensors.
type Tensor struct {
	DType   graph.DType
	Shape   []int64
	Raw     []byte
	Strings []string
}

// Len is the number of elements.
func (t *Tensor) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= int(d)
	}
	return n
}

// Clone deep-copies the tensor.
func (t *Tensor) Clone() *Tensor {
	c := &Tensor{DType: t.DType, Shape: append([]int64{}, t.Shape...)}
	if t.Raw != nil {
		c.Raw = append([]byte{}, t.Raw...)
	}
	if t.Strings != nil {
		c.Strings = append([]string{}, t.Strings...)
	}
	return c
}

// Check validates that data length agrees with dtype and shape.
func (t *Tensor) Check() error {
	n, err := graph.NumElements(t.Shape)
	if err != nil {
		return err
	}
	if t.DType == graph.String {
		if int64(len(t.Strings)) != n {
			return fmt.Errorf("%d strings for shape %v", len(t.Strings), t.Shape)
		}
		return nil
	}
	if want := t.DType.ByteSize(n); int64(len(t.Raw)) != want {
		return fmt.Errorf("%d bytes of data for %s%v, want %d", len(t.Raw), t.DType, t.Shape, want)
	}
	return nil
}

// view returns t.Raw as a []T. Misaligned data (a tensor cut out of a
// request body, say) is first moved to an aligned buffer, so the view can
// also be written through.
func view[T any](t *Tensor) []T {
	var z T
	n := len(t.Raw) / int(unsafe.Sizeof(z))
	if n == 0 {
		return nil
	}
	p := unsafe.Pointer(unsafe.SliceData(t.Raw))
	if uintptr(p)%unsafe.Alignof(z) != 0 {
		words := make([]uint64, (len(t.Raw)+7)/8)
		b := bytesOf(words)[:len(t.Raw)]
		copy(b, t.Raw)
		t.Raw = b
		p = unsafe.Pointer(unsafe.SliceData(t.Raw))
	}
	return unsafe.Slice((*T)(p), n)
}

func bytesOf[T any](s []T) []byte {
	if len(s) == 0 {
		return []byte{}
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(z)))
}

// Float32s views the data of a float32 tensor (no copy).
func (t *Tensor) Float32s() []float32 { return view[float32](t) }

// Float64s views the data of a float64 tensor (no copy).
func (t *Tensor) Float64s() []float64 { return view[float64](t) }

// Int64s views the data of an int64 tensor (no copy).
func (t *Tensor) Int64s() []int64 { return view[int64](t) }

// Int32s views the data of an int32 tensor (no copy).
func (t *Tensor) Int32s() []int32 { return view[int32](t) }

// Uint16s views 16-bit data (float16/bfloat16 bits, uint16, int16 as bits).
func (t *Tensor) Uint16s() []uint16 { return view[uint16](t) }

// Int8s views int8 data.
func (t *Tensor) Int8s() []int8 { return view[int8](t) }

// NewTensor allocates a zeroed tensor (8-byte aligned).
func NewTensor(dt graph.DType, shape []int64) *Tensor {
	n, err := graph.NumElements(shape)
	if err != nil {
		n = 0
	}
	t := &Tensor{DType: dt, Shape: append([]int64{}, shape...)}
	if dt == graph.String {
		t.Strings = make([]string, n)
		return t
	}
	nb := dt.ByteSize(n)
	words := make([]uint64, (nb+7)/8)
	t.Raw = bytesOf(words)[:nb]
	return t
}

// FromFloat32 makes a float32 tensor that aliases data.
func FromFloat32(shape []int64, data []float32) *Tensor {
	return &Tensor{DType: graph.Float, Shape: append([]int64{}, shape...), Raw: bytesOf(data)}
}

// FromInt64 makes an int64 tensor that aliases data.
func FromInt64(shape []int64, data []int64) *Tensor {
	return &Tensor{DType: graph.Int64, Shape: append([]int64{}, shape...), Raw: bytesOf(data)}
}

// FromInt32 makes an int32 tensor that aliases data.
func FromInt32(shape []int64, data []int32) *Tensor {
	return &Tensor{DType: graph.Int32, Shape: append([]int64{}, shape...), Raw: bytesOf(data)}
}

// FromGraphTensor makes a runtime tensor of a graph.Tensor (initializer,
// .pb file). When g.Raw has exactly the bytes dtype and shape call for and
// starts at an 8-byte aligned address (as Go allocates any buffer of 8
// bytes or more), the result aliases g.Raw instead of copying it: weights
// are immutable by convention (see package graph), and a backend must never
// write into a tensor it got this way (interp kernels never write their
// inputs). Anything else (strings, misaligned or malformed data) is copied
// into a fresh, zero-padded tensor as before.
func FromGraphTensor(g *graph.Tensor) *Tensor {
	if g.DType != graph.String {
		if n, err := graph.NumElements(g.Dims); err == nil {
			nb := g.DType.ByteSize(n)
			if nb > 0 && int64(len(g.Raw)) == nb && uintptr(unsafe.Pointer(unsafe.SliceData(g.Raw)))%8 == 0 {
				return &Tensor{DType: g.DType, Shape: append([]int64{}, g.Dims...), Raw: g.Raw[:nb:nb]}
			}
		}
	}
	t := NewTensor(g.DType, g.Dims)
	if g.DType == graph.String {
		for i, s := range g.Strings {
			if i < len(t.Strings) {
				t.Strings[i] = string(s)
			}
		}
		return t
	}
	copy(t.Raw, g.Raw)
	return t
}

// ToGraphTensor converts to a graph.Tensor (for writing .pb files).
func (t *Tensor) ToGraphTensor(name string) *graph.Tensor {
	g := &graph.Tensor{Name: name, DType: t.DType, Dims: append([]int64{}, t.Shape...)}
	if t.DType == graph.String {
		for _, s := range t.Strings {
			g.Strings = append(g.Strings, []byte(s))
		}
		return g
	}
	g.Raw = append([]byte{}, t.Raw...)
	return g
}

// AsFloat64 converts any numeric tensor's values to float64 (a copy), for
// comparisons and metrics.
func (t *Tensor) AsFloat64() ([]float64, error) {
	if t.DType == graph.String {
		return nil, fmt.Errorf("runtime: string tensor has no numeric values")
	}
	g := &graph.Tensor{DType: t.DType, Dims: t.Shape, Raw: t.Raw}
	return g.AsFloat64s()
}

// Equal reports bitwise equality of dtype, shape and data (NaNs with equal bits are equal).
func (t *Tensor) Equal(o *Tensor) bool {
	if t.DType != o.DType || len(t.Shape) != len(o.Shape) {
		return false
	}
	for i := range t.Shape {
		if t.Shape[i] != o.Shape[i] {
			return false
		}
	}
	if t.DType == graph.String {
		if len(t.Strings) != len(o.Strings) {
			return false
		}
		for i := range t.Strings {
			if t.Strings[i] != o.Strings[i] {
				return false
			}
		}
		return true
	}
	return string(t.Raw) == string(o.Raw)
}
