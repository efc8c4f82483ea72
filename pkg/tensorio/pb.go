package tensorio

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"

	"google.golang.org/protobuf/proto"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/onnxpb"
	"github.com/optictl/optictl/pkg/runtime"
)

// LoadPB reads an ONNX TensorProto file and returns its name (may be
// empty) and data.
func LoadPB(path string) (string, *runtime.Tensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("tensorio: %w", err)
	}
	name, t, err := DecodePB(b)
	if err != nil {
		return "", nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return name, t, nil
}

// DecodePB parses a serialized ONNX TensorProto with the same rules as
// pkg/graph uses for initializers: raw_data when present, otherwise the
// typed field that ONNX assigns to the data type.
func DecodePB(b []byte) (string, *runtime.Tensor, error) {
	var p onnxpb.TensorProto
	if err := proto.Unmarshal(b, &p); err != nil {
		return "", nil, fmt.Errorf("tensorio: not an ONNX TensorProto: %w", err)
	}
	t, err := FromProto(&p)
	return p.GetName(), t, err
}

// FromProto converts a TensorProto (inline data only) into a runtime tensor.
func FromProto(p *onnxpb.TensorProto) (*runtime.Tensor, error) {
	name := p.GetName()
	dt := graph.DType(p.GetDataType())
	dims := p.GetDims()
	if dims == nil {
		dims = []int64{}
	}
	n, err := graph.NumElements(dims)
	if err != nil {
		return nil, fmt.Errorf("tensorio: tensor %q: %w", name, err)
	}
	if p.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		return nil, fmt.Errorf("tensorio: tensor %q keeps its data in an external file, which tensor files may not do", name)
	}
	if dt == graph.String {
		if int64(len(p.StringData)) != n {
			return nil, fmt.Errorf("tensorio: tensor %q: %d strings for shape %v", name, len(p.StringData), dims)
		}
		t := &runtime.Tensor{DType: dt, Shape: append([]int64{}, dims...), Strings: make([]string, n)}
		for i, s := range p.StringData {
			t.Strings[i] = string(s)
		}
		return t, nil
	}
	if !dt.Known() || dt.BitSize()%8 != 0 {
		return nil, fmt.Errorf("tensorio: tensor %q: unsupported data type %s (%d)", name, dt, int32(dt))
	}
	want := dt.ByteSize(n)
	if p.RawData != nil {
		if int64(len(p.RawData)) != want {
			return nil, fmt.Errorf("tensorio: tensor %q: raw_data has %d bytes, %s%v needs %d", name, len(p.RawData), dt, dims, want)
		}
		t := runtime.NewTensor(dt, dims)
		copy(t.Raw, p.RawData)
		return t, nil
	}
	per := int64(1)
	if dt == graph.Complex64 || dt == graph.Complex128 {
		per = 2
	}
	var have int
	switch dt {
	case graph.Float, graph.Complex64:
		have = len(p.FloatData)
	case graph.Double, graph.Complex128:
		have = len(p.DoubleData)
	case graph.Int64:
		have = len(p.Int64Data)
	case graph.Uint64, graph.Uint32:
		have = len(p.Uint64Data)
	default:
		have = len(p.Int32Data)
	}
	if int64(have) != n*per {
		return nil, fmt.Errorf("tensorio: tensor %q: %d values for %d elements of %s", name, have, n, dt)
	}
	t := runtime.NewTensor(dt, dims)
	r := t.Raw
	switch dt {
	case graph.Float, graph.Complex64:
		for i, v := range p.FloatData {
			binary.LittleEndian.PutUint32(r[4*i:], math.Float32bits(v))
		}
	case graph.Double, graph.Complex128:
		for i, v := range p.DoubleData {
			binary.LittleEndian.PutUint64(r[8*i:], math.Float64bits(v))
		}
	case graph.Int64:
		for i, v := range p.Int64Data {
			binary.LittleEndian.PutUint64(r[8*i:], uint64(v))
		}
	case graph.Uint64:
		for i, v := range p.Uint64Data {
			binary.LittleEndian.PutUint64(r[8*i:], v)
		}
	case graph.Uint32:
		for i, v := range p.Uint64Data {
			binary.LittleEndian.PutUint32(r[4*i:], uint32(v))
		}
	case graph.Int32:
		for i, v := range p.Int32Data {
			binary.LittleEndian.PutUint32(r[4*i:], uint32(v))
		}
	default:
		switch dt.Size() {
		case 2:
			for i, v := range p.Int32Data {
				binary.LittleEndian.PutUint16(r[2*i:], uint16(v))
			}
		case 1:
			for i, v := range p.Int32Data {
				r[i] = byte(v)
			}
		default:
			return nil, fmt.Errorf("tensorio: tensor %q: unsupported data type %s", name, dt)
		}
	}
	return t, nil
}

// EncodePB serializes t as an ONNX TensorProto named name (data in raw_data).
func EncodePB(name string, t *runtime.Tensor) ([]byte, error) {
	if err := t.Check(); err != nil {
		return nil, fmt.Errorf("tensorio: tensor %q: %w", name, err)
	}
	p, err := graph.TensorToProto(t.ToGraphTensor(name))
	if err != nil {
		return nil, fmt.Errorf("tensorio: tensor %q: %w", name, err)
	}
	b, err := proto.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("tensorio: tensor %q: %w", name, err)
	}
	return b, nil
}

// SavePB writes t as a TensorProto file.
func SavePB(path, name string, t *runtime.Tensor) error {
	b, err := EncodePB(name, t)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("tensorio: %w", err)
	}
	return nil
}
