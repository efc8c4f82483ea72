package interp

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// nnBenchInputs loads test_data_set_0's inputs of a model folder.
func nnBenchInputs(b *testing.B, dir string) []*runtime.Tensor {
	b.Helper()
	var ins []*runtime.Tensor
	for i := 0; ; i++ {
		p := filepath.Join(dir, "test_data_set_0", "input_"+string(rune('0'+i))+".pb")
		if _, err := os.Stat(p); err != nil {
			break
		}
		t, err := nnLoadPB(p)
		if err != nil {
			b.Fatal(err)
		}
		ins = append(ins, t)
	}
	return ins
}

// BenchmarkNNModels times whole models on the interp backend at 1 thread
// (the pairing with ORT is in nn_ortbench_test.go, build tag ortbench).
func BenchmarkNNModels(b *testing.B) {
	root := testutil.ModelsDir(b)
	for _, name := range []string{"mnist", "ppocr-cls"} {
		b.Run(name, func(b *testing.B) {
			dir := filepath.Join(root, name)
			m, err := graph.Load(filepath.Join(dir, "model.onnx"))
			if err != nil {
				testutil.Missing(b, dir)
				return
			}
			if bad, _ := unsupportedOps(m.Graph); len(bad) > 0 {
				testutil.Missing(b, "interp kernels for the model's ops")
				return
			}
			s, err := runtime.Open("interp", m, runtime.Options{Threads: 1})
			if err != nil {
				b.Fatal(err)
			}
			ins := nnBenchInputs(b, dir)
			if _, err := s.Run(context.Background(), ins); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.Run(context.Background(), ins); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
