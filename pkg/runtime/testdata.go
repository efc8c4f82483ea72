package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/onnxpb"
)

// maxTensorFile bounds the size of a tensor file read whole (1 GiB).
const maxTensorFile = 1 << 30

// LoadTensorFile reads one ONNX TensorProto file (an input_K.pb or
// output_K.pb of an ONNX test_data_set_N folder). The data is decoded by
// the same rules pkg/graph applies to initializers (raw_data or the typed
// field of the dtype, sizes checked against the dims).
func LoadTensorFile(path string) (*Tensor, error) {
	_, t, err := loadTensorFile(path)
	return t, err
}

func loadTensorFile(path string) (string, *Tensor, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", nil, fmt.Errorf("runtime: %w", err)
	}
	if st.Size() > maxTensorFile {
		return "", nil, fmt.Errorf("runtime: %s: %d bytes is over the %d-byte limit for a tensor file", path, st.Size(), maxTensorFile)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("runtime: %w", err)
	}
	var p onnxpb.TensorProto
	if err := proto.Unmarshal(b, &p); err != nil {
		return "", nil, fmt.Errorf("runtime: %s is not an ONNX TensorProto: %w", path, err)
	}
	if p.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		return "", nil, fmt.Errorf("runtime: %s: tensor keeps its data in an external file, which tensor files may not do", path)
	}
	name := p.GetName()
	g, err := graph.TensorFromProto(&p)
	if err != nil {
		return "", nil, fmt.Errorf("runtime: %s: %w", path, err)
	}
	t := FromGraphTensor(g)
	if err := t.Check(); err != nil {
		return "", nil, fmt.Errorf("runtime: %s: %w", path, err)
	}
	return name, t, nil
}

// LoadTestDataSet reads an ONNX test_data_set_N folder: input_K.pb and
// output_K.pb in index order, with the names stored in the files (empty
// where a file has none).
func LoadTestDataSet(dir string) (inputs, outputs []*Tensor, inNames, outNames []string, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("runtime: %w", err)
	}
	idx := map[string]map[int]string{"input_": {}, "output_": {}}
	for _, e := range ents {
		base, ok := strings.CutSuffix(e.Name(), ".pb")
		if e.IsDir() || !ok {
			continue
		}
		for pre := range idx {
			if rest, ok := strings.CutPrefix(base, pre); ok {
				if k, err := strconv.Atoi(rest); err == nil && k >= 0 {
					idx[pre][k] = filepath.Join(dir, e.Name())
				}
			}
		}
	}
	if len(idx["input_"]) == 0 {
		return nil, nil, nil, nil, fmt.Errorf("runtime: %s holds no input_K.pb files", dir)
	}
	load := func(pre string) ([]*Tensor, []string, error) {
		files := idx[pre]
		keys := make([]int, 0, len(files))
		for k := range files {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		var ts []*Tensor
		var names []string
		for i, k := range keys {
			if k != i {
				return nil, nil, fmt.Errorf("runtime: %s: %s%d.pb is missing", dir, pre, i)
			}
			name, t, err := loadTensorFile(files[k])
			if err != nil {
				return nil, nil, err
			}
			ts = append(ts, t)
			names = append(names, name)
		}
		return ts, names, nil
	}
	if inputs, inNames, err = load("input_"); err != nil {
		return nil, nil, nil, nil, err
	}
	if outputs, outNames, err = load("output_"); err != nil {
		return nil, nil, nil, nil, err
	}
	return inputs, outputs, inNames, outNames, nil
}
