package graph

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/optictl/optictl/pkg/numerics/half"
)

// MaxElements bounds the element count of any single tensor the IR will
// describe (2^40); larger claims in a file are rejected before allocating.
const MaxElements = int64(1) << 40

// Tensor is a constant: an initializer, a Constant's value or an attribute.
// Numeric data lives in Raw as little-endian bytes (ONNX raw_data layout,
// sub-byte types packed); strings live in Strings. Raw must not be modified
// in place once the tensor is part of a graph (see the package doc).
type Tensor struct {
	Name    string
	DType   DType
	Dims    []int64
	Raw     []byte
	Strings [][]byte
	Doc     string

	// External, when set, says where Load found the bytes (relative
	// location, offset, length); Save uses it only when writing external data.
	External *ExternalInfo

	// unknown holds protobuf fields the IR does not model (segment, fields
	// newer than the generated proto), written back unchanged.
	unknown []byte
	segment []byte
}

// ExternalInfo records the external_data entries of a tensor.
type ExternalInfo struct {
	Location string
	Offset   int64
	Length   int64
	Checksum string
}

// NumElements is the product of Dims (1 for a scalar). It returns an error on
// negative dims or overflow past MaxElements.
func NumElements(dims []int64) (int64, error) {
	n := int64(1)
	for _, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d in %v", d, dims)
		}
		if d != 0 && n > MaxElements/d {
			return 0, fmt.Errorf("shape %v has more than 2^40 elements", dims)
		}
		n *= d
	}
	return n, nil
}

// Len is the number of elements (product of Dims; dims are validated on load).
func (t *Tensor) Len() int64 {
	n, err := NumElements(t.Dims)
	if err != nil {
		return 0
	}
	return n
}

// Bytes is the size of the tensor's data in bytes.
func (t *Tensor) Bytes() int64 {
	if t.DType == String {
		var s int64
		for _, b := range t.Strings {
			s += int64(len(b))
		}
		return s
	}
	return int64(len(t.Raw))
}

// Validate checks that the data length agrees with dtype and dims.
func (t *Tensor) Validate() error {
	n, err := NumElements(t.Dims)
	if err != nil {
		return fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	if t.DType == String {
		if int64(len(t.Strings)) != n {
			return fmt.Errorf("tensor %q: %d strings for shape %v", t.Name, len(t.Strings), t.Dims)
		}
		return nil
	}
	if !t.DType.Known() {
		return fmt.Errorf("tensor %q: unknown data type %d", t.Name, int32(t.DType))
	}
	if want := t.DType.ByteSize(n); int64(len(t.Raw)) != want {
		return fmt.Errorf("tensor %q: %s%v needs %d bytes of data, has %d", t.Name, t.DType, t.Dims, want, len(t.Raw))
	}
	return nil
}

// Clone copies the tensor's description; Raw and Strings are shared (immutable).
func (t *Tensor) Clone() *Tensor {
	c := *t
	c.Dims = append([]int64(nil), t.Dims...)
	if t.External != nil {
		e := *t.External
		c.External = &e
	}
	return &c
}

var errDType = errors.New("dtype mismatch")

// Float32s returns the data of a float32 tensor. When Raw is suitably aligned
// the slice aliases Raw (treat it as read-only); otherwise it is a copy.
func (t *Tensor) Float32s() ([]float32, error) {
	if t.DType != Float {
		return nil, fmt.Errorf("tensor %q is %s, not float32: %w", t.Name, t.DType, errDType)
	}
	return bytesAs[float32](t.Raw), nil
}

// Int64s returns the data of an int64 tensor (aliasing Raw when aligned).
func (t *Tensor) Int64s() ([]int64, error) {
	if t.DType != Int64 {
		return nil, fmt.Errorf("tensor %q is %s, not int64: %w", t.Name, t.DType, errDType)
	}
	return bytesAs[int64](t.Raw), nil
}

// Int32s returns the data of an int32 tensor (aliasing Raw when aligned).
func (t *Tensor) Int32s() ([]int32, error) {
	if t.DType != Int32 {
		return nil, fmt.Errorf("tensor %q is %s, not int32: %w", t.Name, t.DType, errDType)
	}
	return bytesAs[int32](t.Raw), nil
}

// AsFloat64s converts any real numeric tensor to float64 values (a copy).
// Useful for constant folding and shape computations, not for hot paths.
func (t *Tensor) AsFloat64s() ([]float64, error) {
	n := int(t.Len())
	out := make([]float64, n)
	r := t.Raw
	switch t.DType {
	case Float:
		for i := range out {
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(r[4*i:])))
		}
	case Double:
		for i := range out {
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(r[8*i:]))
		}
	case Float16:
		for i := range out {
			out[i] = float64(half.Float16ToFloat32(binary.LittleEndian.Uint16(r[2*i:])))
		}
	case BFloat16:
		for i := range out {
			out[i] = float64(half.BFloat16ToFloat32(binary.LittleEndian.Uint16(r[2*i:])))
		}
	case Int8:
		for i := range out {
			out[i] = float64(int8(r[i]))
		}
	case Uint8, Bool:
		for i := range out {
			out[i] = float64(r[i])
		}
	case Int16:
		for i := range out {
			out[i] = float64(int16(binary.LittleEndian.Uint16(r[2*i:])))
		}
	case Uint16:
		for i := range out {
			out[i] = float64(binary.LittleEndian.Uint16(r[2*i:]))
		}
	case Int32:
		for i := range out {
			out[i] = float64(int32(binary.LittleEndian.Uint32(r[4*i:])))
		}
	case Uint32:
		for i := range out {
			out[i] = float64(binary.LittleEndian.Uint32(r[4*i:]))
		}
	case Int64:
		for i := range out {
			out[i] = float64(int64(binary.LittleEndian.Uint64(r[8*i:])))
		}
	case Uint64:
		for i := range out {
			out[i] = float64(binary.LittleEndian.Uint64(r[8*i:]))
		}
	default:
		return nil, fmt.Errorf("tensor %q: cannot read %s as numbers: %w", t.Name, t.DType, errDType)
	}
	return out, nil
}

// AsInt64s converts an integer tensor (any width, or bool) to int64 values.
func (t *Tensor) AsInt64s() ([]int64, error) {
	if t.DType == Int64 {
		return append([]int64(nil), bytesAs[int64](t.Raw)...), nil
	}
	if !t.DType.IsInt() && t.DType != Bool {
		return nil, fmt.Errorf("tensor %q is %s, not an integer type: %w", t.Name, t.DType, errDType)
	}
	f, err := t.AsFloat64s()
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(f))
	for i, v := range f {
		out[i] = int64(v)
	}
	return out, nil
}

// bytesAs views b as a []T when aligned, or copies it.
func bytesAs[T any](b []byte) []T {
	var z T
	sz := int(unsafe.Sizeof(z))
	n := len(b) / sz
	if n == 0 {
		return []T{}
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if uintptr(p)%unsafe.Alignof(z) == 0 {
		return unsafe.Slice((*T)(p), n)
	}
	out := make([]T, n)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), n*sz), b)
	return out
}

// asBytes views a slice of fixed-size numbers as little-endian bytes (the
// platform is little-endian on every target optictl supports).
func asBytes[T any](s []T) []byte {
	if len(s) == 0 {
		return []byte{}
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(z)))
}

// NewFloat32 makes a float32 tensor that owns a copy of data.
func NewFloat32(name string, dims []int64, data []float32) *Tensor {
	return &Tensor{Name: name, DType: Float, Dims: append([]int64{}, dims...), Raw: append([]byte(nil), asBytes(data)...)}
}

// WrapFloat32 makes a float32 tensor whose Raw views data's memory (no
// copy): the tensor takes data over, and the caller must not modify data
// afterwards (tensor bytes are immutable by convention). Rewrites that
// compute new weights use it so that a 100 MB model does not briefly need
// its weights twice per rewritten tensor.
func WrapFloat32(name string, dims []int64, data []float32) *Tensor {
	return &Tensor{Name: name, DType: Float, Dims: append([]int64{}, dims...), Raw: asBytes(data)}
}

// NewInt64 makes an int64 tensor that owns a copy of data.
func NewInt64(name string, dims []int64, data []int64) *Tensor {
	return &Tensor{Name: name, DType: Int64, Dims: append([]int64{}, dims...), Raw: append([]byte(nil), asBytes(data)...)}
}

// NewInt32 makes an int32 tensor that owns a copy of data.
func NewInt32(name string, dims []int64, data []int32) *Tensor {
	return &Tensor{Name: name, DType: Int32, Dims: append([]int64{}, dims...), Raw: append([]byte(nil), asBytes(data)...)}
}

// NewRaw makes a tensor of any fixed-size dtype from little-endian bytes
// (not copied).
func NewRaw(name string, dt DType, dims []int64, raw []byte) *Tensor {
	return &Tensor{Name: name, DType: dt, Dims: append([]int64{}, dims...), Raw: raw}
}
