package runtime_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// TestLoadTestDataSetReal reads every test_data_set of the shared real
// models and checks each tensor against the model's declared IO.
func TestLoadTestDataSetReal(t *testing.T) {
	n := 0
	for _, dir := range testutil.RealModels(t) {
		sets, _ := filepath.Glob(filepath.Join(dir, "test_data_set_*"))
		if len(sets) == 0 {
			continue
		}
		m, err := graph.Load(filepath.Join(dir, "model.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		ins := m.Graph.RealInputs()
		for _, set := range sets {
			in, out, inNames, outNames, err := runtime.LoadTestDataSet(set)
			if err != nil {
				t.Fatal(err)
			}
			if len(in) != len(ins) || len(out) != len(m.Graph.Outputs) || len(inNames) != len(in) || len(outNames) != len(out) {
				t.Fatalf("%s: %d inputs, %d outputs; the model has %d and %d", set, len(in), len(out), len(ins), len(m.Graph.Outputs))
			}
			for i, x := range in {
				if x.DType != ins[i].DType || len(x.Shape) != len(ins[i].Shape) {
					t.Fatalf("%s: input %d is %s%v, model declares %s%v", set, i, x.DType, x.Shape, ins[i].DType, ins[i].Shape)
				}
				if err := x.Check(); err != nil {
					t.Fatal(err)
				}
			}
			n++
		}
	}
	if n < 9 {
		t.Fatalf("read only %d data sets", n)
	}
}

func TestLoadTensorFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// float32 [2] with 4 bytes of raw_data (8 needed): field 1 dims=2,
	// field 2 data_type=1, field 9 raw_data.
	short := []byte{0x08, 0x02, 0x10, 0x01, 0x4a, 0x04, 0, 0, 0x80, 0x3f}
	cases := []struct {
		name string
		path string
		want string
	}{
		{"missing", filepath.Join(dir, "nope.pb"), "no such file"},
		{"garbage", write("garbage.pb", []byte{0xff, 0xff, 0xff}), "not an ONNX TensorProto"},
		{"short-data", write("short.pb", short), "short.pb"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := runtime.LoadTensorFile(c.path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one mentioning %q", err, c.want)
			}
		})
	}
	ok := write("ok.pb", []byte{0x08, 0x02, 0x10, 0x01, 0x4a, 0x08, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40})
	x, err := runtime.LoadTensorFile(ok)
	if err != nil {
		t.Fatal(err)
	}
	if f := x.Float32s(); len(f) != 2 || f[0] != 1 || f[1] != 2 {
		t.Fatalf("decoded %v", f)
	}
	if _, _, _, _, err := runtime.LoadTestDataSet(dir); err == nil || !strings.Contains(err.Error(), "no input_K.pb") {
		t.Fatalf("LoadTestDataSet on a folder without inputs: %v", err)
	}
}
