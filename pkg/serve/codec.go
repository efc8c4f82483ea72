package serve

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics/half"
	"github.com/optictl/optictl/pkg/runtime"
)

// kserve datatype names <-> dtypes.
var kDTypes = map[string]graph.DType{
	"BOOL": graph.Bool, "UINT8": graph.Uint8, "UINT16": graph.Uint16, "UINT32": graph.Uint32,
	"UINT64": graph.Uint64, "INT8": graph.Int8, "INT16": graph.Int16, "INT32": graph.Int32,
	"INT64": graph.Int64, "FP16": graph.Float16, "FP32": graph.Float, "FP64": graph.Double,
	"BYTES": graph.String, "BF16": graph.BFloat16,
}

// DatatypeName is the KServe name of a dtype ("FP32").
func DatatypeName(d graph.DType) string {
	if n, ok := dtypeNames[d]; ok {
		return n
	}
	return "UNKNOWN"
}

// dtypeNames inverts kDTypes.
var dtypeNames = func() map[graph.DType]string {
	m := make(map[graph.DType]string, len(kDTypes))
	for k, v := range kDTypes {
		m[v] = k
	}
	return m
}()

func parseDatatype(s string) (graph.DType, error) {
	if d, ok := kDTypes[s]; ok {
		return d, nil
	}
	return 0, fmt.Errorf("unknown datatype %q", s)
}

// elements validates a request shape and returns its element count.
func elements(shape []int64) (int, error) {
	n, err := graph.NumElements(shape)
	if err != nil {
		return 0, err
	}
	if n > 1<<28 {
		return 0, fmt.Errorf("shape %v has %d elements, more than the server accepts", shape, n)
	}
	return int(n), nil
}

func putNumber(t *runtime.Tensor, i int, f float64, allowNaN bool) error {
	r := t.Raw
	intRange := func(lo, hi float64) error {
		if f != math.Trunc(f) || f < lo || f > hi {
			return fmt.Errorf("%v is not a valid %s", f, t.DType)
		}
		return nil
	}
	switch t.DType {
	case graph.Float, graph.Double, graph.Float16:
		if !allowNaN && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return fmt.Errorf("non-finite value %v", f)
		}
	}
	switch t.DType {
	case graph.Float:
		binary.LittleEndian.PutUint32(r[4*i:], math.Float32bits(float32(f)))
	case graph.Double:
		binary.LittleEndian.PutUint64(r[8*i:], math.Float64bits(f))
	case graph.Float16:
		binary.LittleEndian.PutUint16(r[2*i:], half.Float32ToFloat16(float32(f)))
	case graph.Int8:
		if err := intRange(math.MinInt8, math.MaxInt8); err != nil {
			return err
		}
		r[i] = byte(int8(f))
	case graph.Uint8:
		if err := intRange(0, math.MaxUint8); err != nil {
			return err
		}
		r[i] = byte(f)
	case graph.Int16:
		if err := intRange(math.MinInt16, math.MaxInt16); err != nil {
			return err
		}
		binary.LittleEndian.PutUint16(r[2*i:], uint16(int16(f)))
	case graph.Uint16:
		if err := intRange(0, math.MaxUint16); err != nil {
			return err
		}
		binary.LittleEndian.PutUint16(r[2*i:], uint16(f))
	case graph.Int32:
		if err := intRange(math.MinInt32, math.MaxInt32); err != nil {
			return err
		}
		binary.LittleEndian.PutUint32(r[4*i:], uint32(int32(f)))
	case graph.Uint32:
		if err := intRange(0, math.MaxUint32); err != nil {
			return err
		}
		binary.LittleEndian.PutUint32(r[4*i:], uint32(f))
	case graph.Int64:
		if err := intRange(-(1 << 63), 1<<63-1); err != nil {
			return err
		}
		binary.LittleEndian.PutUint64(r[8*i:], uint64(int64(f)))
	case graph.Uint64:
		if err := intRange(0, 1<<64-1); err != nil {
			return err
		}
		binary.LittleEndian.PutUint64(r[8*i:], uint64(f))
	default:
		return fmt.Errorf("datatype %s is not supported in JSON", t.DType)
	}
	return nil
}

// checkFinite rejects NaN/Inf in float tensors (binary inputs). A value
// is not finite when its exponent bits are all ones; adding one to the
// lowest exponent bit then carries into the sign position, which lets one
// 64-bit add test two float32s at once without a branch per element. The
// scan reads bytes, so it also takes a tensor that borrows unaligned
// request bytes (see borrowRaw); the error is worded only on a find.
func checkFinite(name string, t *runtime.Tensor) error {
	const msg = "input %q: element %d is %v (non-finite values are refused; start the server with --allow-nan to accept them)"
	r := t.Raw
	switch t.DType {
	case graph.Float:
		const exp, one, top = 0x7f8000007f800000, 0x0080000000800000, 0x8000000080000000
		var acc uint64
		for p := r; len(p) >= 8; p = p[8:] {
			acc |= binary.LittleEndian.Uint64(p)&exp + one
		}
		if acc&top == 0 && (len(r)%8 == 0 || len(r)%8 == 4 && binary.LittleEndian.Uint32(r[len(r)-4:])&0x7f800000 != 0x7f800000) {
			return nil
		}
		for i := 0; 4*i+4 <= len(r); i++ {
			if v := binary.LittleEndian.Uint32(r[4*i:]); v&0x7f800000 == 0x7f800000 {
				return fmt.Errorf(msg, name, i, math.Float32frombits(v))
			}
		}
	case graph.Double:
		const exp, one, top = 0x7ff0000000000000, 0x0010000000000000, 0x8000000000000000
		var acc uint64
		for p := r; len(p) >= 8; p = p[8:] {
			acc |= binary.LittleEndian.Uint64(p)&exp + one
		}
		if acc&top == 0 {
			return nil
		}
		for i := 0; 8*i+8 <= len(r); i++ {
			if v := binary.LittleEndian.Uint64(r[8*i:]); v&0x7ff0000000000000 == 0x7ff0000000000000 {
				return fmt.Errorf(msg, name, i, math.Float64frombits(v))
			}
		}
	}
	return nil
}

// jsonData renders a tensor's values as a flat JSON-able slice.
func jsonData(t *runtime.Tensor) (any, error) {
	switch t.DType {
	case graph.String:
		return t.Strings, nil
	case graph.Bool:
		out := make([]bool, len(t.Raw))
		for i, b := range t.Raw {
			out[i] = b != 0
		}
		return out, nil
	case graph.Float:
		vs := t.Float32s()
		out := make([]any, len(vs))
		for i, v := range vs {
			out[i] = jsonFloat(float64(v))
		}
		return out, nil
	case graph.Int64:
		return append([]int64{}, t.Int64s()...), nil
	}
	vs, err := t.AsFloat64()
	if err != nil {
		return nil, err
	}
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = jsonFloat(v)
	}
	return out, nil
}

// jsonFloat keeps non-finite outputs representable (JSON has no NaN).
func jsonFloat(v float64) any {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "Infinity"
	case math.IsInf(v, -1):
		return "-Infinity"
	}
	return v
}

// tensorFromRaw builds a tensor from binary data (binary-data extension /
// gRPC raw contents); BYTES elements are 4-byte little-endian length prefixed.
func tensorFromRaw(name string, dt graph.DType, shape []int64, raw []byte) (*runtime.Tensor, error) {
	n, err := elements(shape)
	if err != nil {
		return nil, fmt.Errorf("input %q: %w", name, err)
	}
	if dt == graph.String {
		if n > len(raw)/4 { // every element has a 4-byte length prefix
			return nil, fmt.Errorf("input %q: %d bytes cannot hold %d BYTES elements", name, len(raw), n)
		}
		t := runtime.NewTensor(dt, shape)
		for i := 0; i < n; i++ {
			if len(raw) < 4 {
				return nil, fmt.Errorf("input %q: binary BYTES data ends early at element %d", name, i)
			}
			l := binary.LittleEndian.Uint32(raw)
			raw = raw[4:]
			if uint64(l) > uint64(len(raw)) {
				return nil, fmt.Errorf("input %q: element %d claims %d bytes, %d left", name, i, l, len(raw))
			}
			t.Strings[i] = string(raw[:l])
			raw = raw[l:]
		}
		if len(raw) != 0 {
			return nil, fmt.Errorf("input %q: %d bytes of binary data left over", name, len(raw))
		}
		return t, nil
	}
	want := dt.ByteSize(int64(n))
	if int64(len(raw)) != want {
		return nil, fmt.Errorf("input %q: binary data has %d bytes, %s%v needs %d", name, len(raw), dt, shape, want)
	}
	t := runtime.NewTensor(dt, shape)
	copy(t.Raw, raw)
	return t, nil
}

// borrowRaw is tensorFromRaw without the copy: the tensor's Raw is raw
// itself (BYTES data is still decoded). Such a tensor may be unaligned and
// lives only as long as the request body: it is good for validation and the
// cache key, and own makes the copy a session may run on.
func borrowRaw(name string, dt graph.DType, shape []int64, raw []byte) (*runtime.Tensor, error) {
	if dt == graph.String {
		return tensorFromRaw(name, dt, shape, raw)
	}
	n, err := elements(shape)
	if err != nil {
		return nil, fmt.Errorf("input %q: %w", name, err)
	}
	want := dt.ByteSize(int64(n))
	if int64(len(raw)) != want {
		return nil, fmt.Errorf("input %q: binary data has %d bytes, %s%v needs %d", name, len(raw), dt, shape, want)
	}
	return &runtime.Tensor{DType: dt, Shape: shape, Raw: raw[:len(raw):len(raw)]}, nil
}

// own returns t's data in memory of its own (see borrowRaw).
func own(t *runtime.Tensor) *runtime.Tensor {
	if t.DType == graph.String {
		return t
	}
	c := runtime.NewTensor(t.DType, t.Shape)
	copy(c.Raw, t.Raw)
	return c
}

// rawBytes is the binary form of a tensor (see tensorFromRaw).
func rawBytes(t *runtime.Tensor) []byte {
	if t.DType != graph.String {
		return t.Raw
	}
	var out []byte
	for _, s := range t.Strings {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(s)))
		out = append(out, s...)
	}
	return out
}
