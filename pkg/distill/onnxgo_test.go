package distill_test

import (
	"fmt"
	"path/filepath"
	"testing"

	onnx "github.com/owulveryck/onnx-go"
	"github.com/owulveryck/onnx-go/backend/x/gorgonnx"
	"gorgonia.org/tensor"

	"github.com/optictl/optictl/pkg/distill"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// onnxGoOutputs runs the model file through onnx-go's gorgonnx backend
// (the ONNX importer for gorgonia), one sample at a time: an implementation
// of the forward pass independent of pkg/distill's graph builder.
func onnxGoOutputs(t *testing.T, path string, samples [][]*runtime.Tensor) [][]float32 {
	t.Helper()
	m, err := graph.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]float32
	for i, s := range samples {
		backend := gorgonnx.NewGraph()
		model := onnx.NewModel(backend)
		if err := model.UnmarshalBinary(raw); err != nil {
			t.Fatalf("onnx-go: %v", err)
		}
		in := tensor.New(tensor.WithShape(1, 1, 28, 28), tensor.WithBacking(append([]float32(nil), s[0].Float32s()...)))
		if err := model.SetInput(0, in); err != nil {
			t.Fatalf("onnx-go: sample %d: %v", i, err)
		}
		if err := backend.Run(); err != nil {
			t.Fatalf("onnx-go: sample %d: %v", i, err)
		}
		res, err := model.GetOutputTensors()
		if err != nil || len(res) == 0 {
			t.Fatalf("onnx-go: sample %d: outputs %v", i, err)
		}
		v, ok := res[0].Data().([]float32)
		if !ok {
			t.Fatalf("onnx-go: sample %d: output is %T", i, res[0].Data())
		}
		out = append(out, append([]float32(nil), v...))
	}
	return out
}

// TestForwardMatchesOnnxGo: the MNIST CNN teacher and a distilled,
// written-back student give the same outputs through onnx-go's gorgonnx
// backend as through pkg/distill's gorgonia graph and interp. onnx-go
// serves as the independent reference here; it is not the trainer, since
// gorgonnx has no gradients for Gemm or BatchNormalization and exposes no
// parameters to write back.
func TestForwardMatchesOnnxGo(t *testing.T) {
	teacher := mnistModel(t)
	samples, labels := mnistSamples(t, teacher, 64)
	student, _ := train(t, teacher, samples, labels, distill.Options{Epochs: 1, Batch: 32, LR: 1e-3, Temperature: 1, Alpha: 0.5, Seed: 1, Workers: 2, Standardize: true})
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		m    *graph.Model
	}{{"teacher", teacher}, {"distilled student", student}} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("%s.onnx", tc.name))
			if err := tc.m.Save(path); err != nil {
				t.Fatal(err)
			}
			few := samples[:4]
			ref := onnxGoOutputs(t, path, few)
			assertClose(t, "pkg/distill graph vs onnx-go", gorgoniaOutputs(t, tc.m, few), ref)
			assertClose(t, "interp vs onnx-go", interpOutputs(t, tc.m, few), ref)
		})
	}
}
