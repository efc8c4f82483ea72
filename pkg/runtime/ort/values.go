//go:build cgo

package ort

import (
	"fmt"
	"unsafe"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// slot is one ONNX Runtime value backed by Go memory the session owns.
type slot struct {
	dt    graph.DType
	shape []int64
	v     ortgo.Value
	// raw views the value's data for every fixed-size dtype (for scalars it
	// is the session's own 8-byte buffer, synced through load/store).
	raw    []byte
	scalar bool
	load   func() error // scalars: raw -> ORT value (may replace v)
	store  func()       // scalars: ORT value -> raw
	str    *ortgo.StringTensor
}

func (s *slot) destroy() {
	if s != nil && s.v != nil {
		s.v.Destroy()
		s.v = nil
	}
}

func (s *slot) sameShape(shape []int64) bool {
	if len(s.shape) != len(shape) {
		return false
	}
	for i := range shape {
		if s.shape[i] != shape[i] {
			return false
		}
	}
	return true
}

// tensor returns the runtime tensor that views the slot (t is reused).
func (s *slot) tensor(t *runtime.Tensor) *runtime.Tensor {
	if t == nil {
		t = &runtime.Tensor{}
	}
	t.DType, t.Shape, t.Raw, t.Strings = s.dt, s.shape, s.raw, nil
	return t
}

func bytesOf[T any](s []T) []byte {
	if len(s) == 0 {
		return []byte{}
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(z)))
}

func typedSlot[T ortgo.TensorData](dt graph.DType, shape []int64) (*slot, error) {
	s := &slot{dt: dt, shape: append([]int64{}, shape...)}
	if len(shape) == 0 {
		sc, err := ortgo.NewEmptyScalar[T]()
		if err != nil {
			return nil, err
		}
		cell := make([]T, 1)
		s.v, s.scalar, s.raw = sc, true, bytesOf(cell)
		// onnxruntime_go's Scalar.Set swaps its Go slice without touching
		// the memory ONNX Runtime reads, so a new value needs a new scalar
		// (only when the value changes: the hot path stays allocation-free).
		s.load = func() error {
			if sc.GetData() == cell[0] {
				return nil
			}
			n, err := ortgo.NewScalar(cell[0])
			if err != nil {
				return err
			}
			sc.Destroy()
			sc, s.v = n, n
			return nil
		}
		s.store = func() { cell[0] = sc.GetData() }
		return s, nil
	}
	n, err := graph.NumElements(shape)
	if err != nil {
		return nil, err
	}
	data := make([]T, n)
	t, err := ortgo.NewTensor(ortgo.Shape(s.shape), data)
	if err != nil {
		return nil, err
	}
	s.v, s.raw = t, bytesOf(data)
	return s, nil
}

// wrapTyped adopts a tensor ONNX Runtime allocated (Go-backed by
// onnxruntime_go) as a slot.
func wrapTyped[T ortgo.TensorData](dt graph.DType, t *ortgo.Tensor[T]) *slot {
	return &slot{dt: dt, shape: []int64(t.GetShape()), v: t, raw: bytesOf(t.GetData())}
}

// newSlot allocates a value of dt and shape.
func newSlot(dt graph.DType, shape []int64) (*slot, error) {
	n, err := graph.NumElements(shape)
	if err != nil {
		return nil, err
	}
	switch dt {
	case graph.Float:
		return typedSlot[float32](dt, shape)
	case graph.Double:
		return typedSlot[float64](dt, shape)
	case graph.Int8:
		return typedSlot[int8](dt, shape)
	case graph.Uint8:
		return typedSlot[uint8](dt, shape)
	case graph.Int16:
		return typedSlot[int16](dt, shape)
	case graph.Uint16:
		return typedSlot[uint16](dt, shape)
	case graph.Int32:
		return typedSlot[int32](dt, shape)
	case graph.Uint32:
		return typedSlot[uint32](dt, shape)
	case graph.Int64:
		return typedSlot[int64](dt, shape)
	case graph.Uint64:
		return typedSlot[uint64](dt, shape)
	case graph.Bool:
		return typedSlot[bool](dt, shape)
	case graph.Float16, graph.BFloat16:
		if len(shape) == 0 || n == 0 {
			return nil, &runtime.UnsupportedError{Reason: fmt.Sprintf("%s tensors of shape %v are not supported by the ort backend (onnxruntime_go needs at least one dimension and one element for them)", dt, shape)}
		}
		words := make([]uint64, (dt.ByteSize(n)+7)/8)
		raw := bytesOf(words)[:dt.ByteSize(n)]
		t, err := ortgo.NewCustomDataTensor(ortgo.Shape(append([]int64{}, shape...)), raw, ortgo.TensorElementDataType(dt))
		if err != nil {
			return nil, err
		}
		return &slot{dt: dt, shape: append([]int64{}, shape...), v: t, raw: raw}, nil
	case graph.String:
		if len(shape) == 0 {
			return nil, &runtime.UnsupportedError{Reason: "string scalars are not supported by the ort backend (onnxruntime_go needs at least one dimension)"}
		}
		t, err := ortgo.NewStringTensor(ortgo.Shape(append([]int64{}, shape...)))
		if err != nil {
			return nil, err
		}
		return &slot{dt: dt, shape: append([]int64{}, shape...), v: t, str: t}, nil
	}
	return nil, &runtime.UnsupportedError{Reason: fmt.Sprintf("dtype %s is not supported by the ort backend", dt)}
}

// adopt turns an output value ONNX Runtime allocated into a slot. ok is
// false when the value cannot serve as a reusable output buffer (strings,
// and float16/bfloat16, whose data onnxruntime_go copies short): the caller
// then allocates a proper slot from dt and shape.
func adopt(v ortgo.Value) (s *slot, dt graph.DType, shape []int64, ok bool) {
	shape = []int64(v.GetShape())
	dt = graph.DType(int32(v.DataType()))
	switch t := v.(type) {
	case *ortgo.Tensor[float32]:
		return wrapTyped(graph.Float, t), graph.Float, shape, true
	case *ortgo.Tensor[float64]:
		return wrapTyped(graph.Double, t), graph.Double, shape, true
	case *ortgo.Tensor[int8]:
		return wrapTyped(graph.Int8, t), graph.Int8, shape, true
	case *ortgo.Tensor[uint8]:
		return wrapTyped(graph.Uint8, t), graph.Uint8, shape, true
	case *ortgo.Tensor[int16]:
		return wrapTyped(graph.Int16, t), graph.Int16, shape, true
	case *ortgo.Tensor[uint16]:
		return wrapTyped(graph.Uint16, t), graph.Uint16, shape, true
	case *ortgo.Tensor[int32]:
		return wrapTyped(graph.Int32, t), graph.Int32, shape, true
	case *ortgo.Tensor[uint32]:
		return wrapTyped(graph.Uint32, t), graph.Uint32, shape, true
	case *ortgo.Tensor[int64]:
		return wrapTyped(graph.Int64, t), graph.Int64, shape, true
	case *ortgo.Tensor[uint64]:
		return wrapTyped(graph.Uint64, t), graph.Uint64, shape, true
	case *ortgo.Tensor[bool]:
		return wrapTyped(graph.Bool, t), graph.Bool, shape, true
	}
	return nil, dt, shape, false
}
