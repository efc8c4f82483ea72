package tensorio

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/optictl/optictl/pkg/runtime"
)

// DataSet is an ONNX test_data_set_N folder: inputs and reference outputs
// in file order (input_0.pb, input_1.pb, ...).
type DataSet struct {
	Dir     string
	Inputs  []Named
	Outputs []Named
}

// LoadDataSet reads a test_data_set_N folder. It reuses
// runtime.LoadTestDataSet (one implementation of the folder layout and of
// TensorProto decoding for the runtime and the commands) and adds names: a
// tensor without a name in its file takes the name at its position in
// inputNames / outputNames (the model's input and output order), when given.
func LoadDataSet(dir string, inputNames, outputNames []string) (*DataSet, error) {
	ins, outs, inN, outN, err := runtime.LoadTestDataSet(dir)
	if err != nil {
		return nil, err
	}
	name := func(ts []*runtime.Tensor, names, model []string) []Named {
		out := make([]Named, len(ts))
		for i, t := range ts {
			n := names[i]
			if n == "" && i < len(model) {
				n = model[i]
			}
			out[i] = Named{Name: n, Tensor: t}
		}
		return out
	}
	return &DataSet{Dir: dir, Inputs: name(ins, inN, inputNames), Outputs: name(outs, outN, outputNames)}, nil
}

// DataSets lists the test_data_set_* folders under dir, sorted; if dir is
// itself a data set folder (it holds input_0.pb) it is the only one.
func DataSets(dir string) ([]string, error) {
	if _, err := os.Stat(filepath.Join(dir, "input_0.pb")); err == nil {
		return []string{dir}, nil
	}
	m, err := filepath.Glob(filepath.Join(dir, "test_data_set_*"))
	if err != nil {
		return nil, fmt.Errorf("tensorio: %w", err)
	}
	var out []string
	for _, d := range m {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			out = append(out, d)
		}
	}
	// test_data_set_2 before test_data_set_10.
	num := func(p string) int {
		n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), "test_data_set_"))
		if err != nil {
			return -1
		}
		return n
	}
	sort.Slice(out, func(i, j int) bool {
		if a, b := num(out[i]), num(out[j]); a != b {
			return a < b
		}
		return out[i] < out[j]
	})
	return out, nil
}

// LoadFile reads the tensors of one file by extension: .npy (one array,
// named after the file), .npz (every array) or .pb (one TensorProto; its
// name, or the file's base name when it has none). A directory is read as
// a test_data_set folder (its inputs).
func LoadFile(path string) ([]Named, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tensorio: %w", err)
	}
	if st.IsDir() {
		ds, err := LoadDataSet(path, nil, nil)
		if err != nil {
			return nil, err
		}
		return ds.Inputs, nil
	}
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	switch strings.ToLower(filepath.Ext(path)) {
	case ".npy":
		t, err := LoadNPY(path)
		if err != nil {
			return nil, err
		}
		return []Named{{Name: base, Tensor: t}}, nil
	case ".npz":
		return LoadNPZ(path)
	case ".pb":
		name, t, err := LoadPB(path)
		if err != nil {
			return nil, err
		}
		if name == "" {
			name = base
		}
		return []Named{{Name: name, Tensor: t}}, nil
	}
	return nil, fmt.Errorf("tensorio: %s: unknown tensor file type (want .npy, .npz or .pb)", path)
}
