package bench

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// maxInputBytes bounds one generated or stacked input tensor (4 GiB), so an
// absurd --shape or --batch fails cleanly instead of exhausting memory.
const maxInputBytes = 4 << 30

// InputShape resolves the concrete shape of one model input: shapes[name]
// when given (it must agree with the model's fixed dims and rank), else the
// model's shape with a dynamic first dim set to batch and every other
// dynamic dim set to 1. A scalar input stays a scalar.
func InputShape(info runtime.IOInfo, shapes map[string][]int64, batch int) ([]int64, error) {
	if s, ok := shapes[info.Name]; ok {
		if info.Shape != nil && len(s) != len(info.Shape) {
			return nil, fmt.Errorf("bench: --shape %s=%v: the model's input has rank %d (%s)", info.Name, s, len(info.Shape), runtime.ShapeString(info.Shape))
		}
		for k, d := range s {
			if d < 0 {
				return nil, fmt.Errorf("bench: --shape %s: dim %d is negative", info.Name, k)
			}
			if info.Shape != nil && info.Shape[k] >= 0 && info.Shape[k] != d {
				return nil, fmt.Errorf("bench: --shape %s=%v: dim %d is fixed to %d by the model", info.Name, s, k, info.Shape[k])
			}
		}
		return append([]int64{}, s...), nil
	}
	out := make([]int64, len(info.Shape))
	for k, d := range info.Shape {
		switch {
		case d >= 0:
			out[k] = d
		case k == 0:
			out[k] = int64(batch)
		default:
			out[k] = 1
		}
	}
	return out, nil
}

// RandomInputs makes one seeded random tensor per input info, in order.
// Shapes come from InputShape. Values respect the dtype: floats uniform in
// [0, 1), signed and unsigned integers uniform in [0, 10) (safe as indices
// into small tables), bools fair coins, strings "s0".."s9". The same
// arguments always give the same tensors.
func RandomInputs(infos []runtime.IOInfo, shapes map[string][]int64, batch int, seed int64) ([]*runtime.Tensor, error) {
	if batch < 1 {
		return nil, fmt.Errorf("bench: batch %d is not positive", batch)
	}
	r := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	out := make([]*runtime.Tensor, len(infos))
	for i, info := range infos {
		shape, err := InputShape(info, shapes, batch)
		if err != nil {
			return nil, err
		}
		n, err := graph.NumElements(shape)
		if err != nil {
			return nil, fmt.Errorf("bench: input %q shape %v: %w", info.Name, shape, err)
		}
		dt := info.DType
		if dt == graph.Undefined {
			dt = graph.Float
		}
		if b := dt.ByteSize(n); b > maxInputBytes || (dt == graph.String && n > maxInputBytes/16) {
			return nil, fmt.Errorf("bench: input %q shape %v would take %d bytes (limit %d)", info.Name, shape, b, int64(maxInputBytes))
		}
		t := runtime.NewTensor(dt, shape)
		if err := fillRandom(t, r); err != nil {
			return nil, fmt.Errorf("bench: input %q: %w", info.Name, err)
		}
		out[i] = t
	}
	return out, nil
}

func fillRandom(t *runtime.Tensor, r *rand.Rand) error {
	n := t.Len()
	b := t.Raw
	switch t.DType {
	case graph.Float:
		for i := range n {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(r.Float32()))
		}
	case graph.Double:
		for i := range n {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(r.Float64()))
		}
	case graph.Float16:
		for i := range n {
			binary.LittleEndian.PutUint16(b[2*i:], float32ToHalf(r.Float32()))
		}
	case graph.BFloat16:
		for i := range n {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(math.Float32bits(r.Float32())>>16))
		}
	case graph.Int8, graph.Uint8:
		for i := range n {
			b[i] = byte(r.IntN(10))
		}
	case graph.Int16, graph.Uint16:
		for i := range n {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(r.IntN(10)))
		}
	case graph.Int32, graph.Uint32:
		for i := range n {
			binary.LittleEndian.PutUint32(b[4*i:], uint32(r.IntN(10)))
		}
	case graph.Int64, graph.Uint64:
		for i := range n {
			binary.LittleEndian.PutUint64(b[8*i:], uint64(r.IntN(10)))
		}
	case graph.Bool:
		for i := range n {
			b[i] = byte(r.IntN(2))
		}
	case graph.String:
		for i := range t.Strings {
			t.Strings[i] = "s" + strconv.Itoa(r.IntN(10))
		}
	default:
		return fmt.Errorf("no random generator for dtype %s", t.DType)
	}
	return nil
}

// float32ToHalf converts to IEEE 754 binary16 (round to nearest even) for
// values in [0, 1), the range RandomInputs draws from; it also handles the
// general finite case, overflow to Inf and subnormals.
func float32ToHalf(f float32) uint16 {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	exp := int32(bits>>23&0xff) - 127 + 15
	man := bits & 0x7fffff
	switch {
	case bits&0x7fffffff == 0:
		return sign
	case exp >= 0x1f:
		return sign | 0x7c00
	case exp <= 0:
		if exp < -10 {
			return sign
		}
		man |= 0x800000
		shift := uint32(14 - exp)
		h := man >> shift
		rem := man & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(exp)<<10 | man>>13
	rem := man & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++
	}
	return sign | uint16(h)
}

// Stack concatenates samples along the first axis into one batch: every
// sample of one input must have the same dtype and the same dims after the
// first. It returns an error naming the input otherwise.
func Stack(name string, samples []*runtime.Tensor) (*runtime.Tensor, error) {
	if len(samples) == 0 {
		return nil, fmt.Errorf("bench: input %q: nothing to stack", name)
	}
	first := samples[0]
	if len(first.Shape) == 0 {
		return nil, fmt.Errorf("bench: input %q is a scalar and cannot be stacked into a batch", name)
	}
	var rows int64
	var bytes int64
	for i, s := range samples {
		if s.DType != first.DType || len(s.Shape) != len(first.Shape) {
			return nil, fmt.Errorf("bench: input %q: sample %d is %s%v, sample 0 is %s%v", name, i, s.DType, s.Shape, first.DType, first.Shape)
		}
		for k := 1; k < len(s.Shape); k++ {
			if s.Shape[k] != first.Shape[k] {
				return nil, fmt.Errorf("bench: input %q: sample %d has shape %v, sample 0 has %v", name, i, s.Shape, first.Shape)
			}
		}
		rows += s.Shape[0]
		bytes += int64(len(s.Raw))
		if bytes > maxInputBytes {
			return nil, fmt.Errorf("bench: input %q: the stacked batch would exceed %d bytes", name, int64(maxInputBytes))
		}
	}
	shape := append([]int64{rows}, first.Shape[1:]...)
	out := runtime.NewTensor(first.DType, shape)
	if first.DType == graph.String {
		out.Strings = out.Strings[:0]
		for _, s := range samples {
			out.Strings = append(out.Strings, s.Strings...)
		}
		return out, nil
	}
	off := 0
	for _, s := range samples {
		off += copy(out.Raw[off:], s.Raw)
	}
	return out, nil
}
