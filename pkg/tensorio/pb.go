package tensorio

import (
	"fmt"
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

// FromProto converts a TensorProto (inline data only) into a runtime tensor,
// decoding it as pkg/graph decodes initializers.
func FromProto(p *onnxpb.TensorProto) (*runtime.Tensor, error) {
	if p.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		return nil, fmt.Errorf("tensorio: tensor %q keeps its data in an external file, which tensor files may not do", p.GetName())
	}
	g, err := graph.TensorFromProto(p)
	if err != nil {
		return nil, fmt.Errorf("tensorio: %w", err)
	}
	return runtime.FromGraphTensor(g), nil
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
