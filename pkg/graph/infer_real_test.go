package graph_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/onnxpb"
)

type provIO struct {
	Name  string  `json:"name"`
	DType string  `json:"dtype"`
	Dims  []int64 `json:"dims"`
}

// expectedIO reads a model folder's input and output names, dtypes and
// dims: from provenance.json, or from test_data_set_0/*.pb in graph order.
func expectedIO(t *testing.T, dir string, m *graph.Model) (ins, outs []provIO) {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(dir, "provenance.json")); err == nil {
		var p struct {
			Inputs  []provIO `json:"inputs"`
			Outputs []provIO `json:"outputs"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("%s: provenance.json: %v", dir, err)
		}
		return p.Inputs, p.Outputs
	}
	read := func(prefix string, vis []*graph.ValueInfo) []provIO {
		files, _ := filepath.Glob(filepath.Join(dir, "test_data_set_0", prefix+"_*.pb"))
		sort.Strings(files)
		if len(files) != len(vis) {
			t.Fatalf("%s: %d %s files for %d values", dir, len(files), prefix, len(vis))
		}
		var out []provIO
		for i, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var tp onnxpb.TensorProto
			if err := proto.Unmarshal(b, &tp); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			name := tp.GetName()
			if name == "" {
				name = vis[i].Name
			}
			out = append(out, provIO{Name: name, DType: graph.DType(tp.GetDataType()).String(), Dims: tp.GetDims()})
		}
		return out
	}
	return read("input", m.Graph.RealInputs()), read("output", m.Graph.Outputs)
}

// TestInferRealModels strips every declared output type and value_info of
// the real models, infers them from the real input shapes and requires the
// dtype and fully static shape their reference data has. (silero-vad-v5 is
// left out: its top-level If picks the 8 kHz or 16 kHz network from the
// value of the runtime input sr, and the 8 kHz branch does not fit a
// 512-sample input, so the merged outputs are rightly partly unknown.)
func TestInferRealModels(t *testing.T) {
	root := testutil.ModelsDir(t)
	for _, name := range []string{"mnist", "ppocr-cls", "oww-melspectrogram", "oww-embedding", "gonnx-ndm", "gonnx-gru", "silero-vad-16k-op15", "tiny-gpt2-ortfused"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(root, name)
			if _, err := os.Stat(dir); err != nil {
				testutil.Missing(t, dir)
				return
			}
			m, err := graph.Load(filepath.Join(dir, "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			ins, outs := expectedIO(t, dir, m)
			fixed := map[string][]int64{}
			for _, in := range ins {
				fixed[in.Name] = in.Dims
			}
			for _, v := range m.Graph.Outputs {
				v.HasType, v.HasShape, v.DType, v.Shape = false, false, graph.Undefined, nil
			}
			m.Graph.ValueInfo = nil
			res, err := graph.InferShapes(m, graph.InferOptions{Fixed: fixed})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Problems) > 0 {
				t.Errorf("problems: %v", res.Problems)
			}
			if len(outs) != len(m.Graph.Outputs) {
				t.Fatalf("%d reference outputs, model has %d", len(outs), len(m.Graph.Outputs))
			}
			for i, want := range outs {
				v := m.Graph.Outputs[i]
				dims, ok := v.Shape.Static()
				if !v.HasType || v.DType.String() != want.DType || !v.HasShape || !ok || fmt.Sprint(dims) != fmt.Sprint(want.Dims) {
					t.Errorf("output %q: inferred %s, want %s%v", v.Name, v.TypeString(), want.DType, want.Dims)
				}
			}
		})
	}
}

// TestInferRealModelsSymbolic runs inference without --shape: the declared
// symbolic batch dims must come through to the outputs.
func TestInferRealModelsSymbolic(t *testing.T) {
	root := testutil.ModelsDir(t)
	cases := map[string]string{
		"gonnx-ndm":     "float32[batch_size,1]",
		"oww-embedding": "float32[unk__314,1,1,96]",
	}
	for name, want := range cases {
		m, err := graph.Load(filepath.Join(root, name, "model.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range m.Graph.Outputs {
			v.HasType, v.HasShape, v.DType, v.Shape = false, false, graph.Undefined, nil
		}
		m.Graph.ValueInfo = nil
		if _, err := graph.InferShapes(m, graph.InferOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := m.Graph.Outputs[0].TypeString(); got != want {
			t.Errorf("%s: output %s, want %s", name, got, want)
		}
	}
}

// BenchmarkInferShapes measures inference plus cost on ppocr-cls (471 nodes).
func BenchmarkInferShapes(b *testing.B) {
	m, err := graph.Load(filepath.Join(testutil.ModelsDir(b), "ppocr-cls", "model.onnx"))
	if err != nil {
		b.Fatal(err)
	}
	fixed := map[string][]int64{"x": {1, 3, 48, 192}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := m.Clone()
		if _, err := graph.InferShapes(c, graph.InferOptions{Fixed: fixed}); err != nil {
			b.Fatal(err)
		}
		if _, err := graph.Cost(c); err != nil {
			b.Fatal(err)
		}
	}
}
