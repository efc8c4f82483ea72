//go:build ortbench

package interp

// The interp/ORT pairing benchmark. It links the cgo ort backend and needs
// libonnxruntime (found as the ort backend documents: --ort-lib,
// $ONNXRUNTIME_SHARED_LIBRARY_PATH, the make setup cache, ...), so it lives
// behind a build tag:
//
//	go test -tags ortbench -run XXX -bench NNVersusORT ./pkg/runtime/interp
//	GOEXPERIMENT=simd go test -tags ortbench -run XXX -bench NNVersusORT ./pkg/runtime/interp

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
	_ "github.com/optictl/optictl/pkg/runtime/ort"
	"github.com/optictl/optictl/testmodels"
)

// nnRandomInputs makes seeded inputs for a session (numerics' policy,
// dynamic dims 1).
func nnRandomInputs(b *testing.B, s runtime.Session) []*runtime.Tensor {
	ins, err := numerics.Seeded(numerics.InputsFromInfos(s.Inputs()), numerics.SeedOptions{Seed: 11})
	if err != nil {
		b.Fatal(err)
	}
	return ins
}

// BenchmarkNNVersusORT runs each model on interp and on ORT at 1 thread and
// reports both latencies and their ratio (goal: interp/ORT
// ≤ 3).
func BenchmarkNNVersusORT(b *testing.B) {
	type model struct {
		name string
		m    func(b *testing.B) (*graph.Model, string)
	}
	shared := func(name string) func(b *testing.B) (*graph.Model, string) {
		return func(b *testing.B) (*graph.Model, string) {
			dir := filepath.Join(testutil.ModelsDir(b), name)
			m, err := graph.Load(filepath.Join(dir, "model.onnx"))
			if err != nil {
				testutil.Missing(b, dir)
			}
			return m, dir
		}
	}
	gen := func(name string) func(b *testing.B) (*graph.Model, string) {
		return func(b *testing.B) (*graph.Model, string) { return testmodels.All()[name](), "" }
	}
	for _, tc := range []model{
		{"mnist", shared("mnist")}, {"ppocr-cls", shared("ppocr-cls")},
		{"testmodels-cnn", gen("cnn")}, {"testmodels-dwsep", gen("dwsep")}, {"testmodels-transformer", gen("transformer")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m, dir := tc.m(b)
			opts := runtime.Options{Threads: 1}
			si, err := runtime.Open("interp", m, opts)
			if err != nil {
				b.Fatal(err)
			}
			so, err := runtime.Open("ort", m, opts)
			if err != nil {
				testutil.Missing(b, "ONNX Runtime ("+err.Error()+")")
				return
			}
			defer so.Close()
			var ins []*runtime.Tensor
			if dir != "" {
				ins = nnBenchInputs(b, dir)
			} else {
				ins = nnRandomInputs(b, si)
			}
			ctx := context.Background()
			oi, err := si.Run(ctx, ins)
			if err != nil {
				b.Fatal(err)
			}
			oo, err := so.Run(ctx, ins)
			if err != nil {
				b.Fatal(err)
			}
			for k := range oo {
				if err := nnCompare(oi[k], oo[k], 1e-3, 1e-4); err != nil {
					b.Fatalf("output %d: interp and ORT differ: %v", k, err)
				}
			}
			// Two blocks rather than alternating runs: ORT's idle worker
			// threads spin for a while after a run and would steal the CPU
			// from the interp run that follows.
			b.ResetTimer()
			t0 := time.Now()
			for i := 0; i < b.N; i++ {
				if _, err := si.Run(ctx, ins); err != nil {
					b.Fatal(err)
				}
			}
			t1 := time.Now()
			for i := 0; i < b.N; i++ {
				if _, err := so.Run(ctx, ins); err != nil {
					b.Fatal(err)
				}
			}
			ti, to := t1.Sub(t0), time.Since(t1)
			b.ReportMetric(float64(ti.Nanoseconds())/float64(b.N), "interp-ns/op")
			b.ReportMetric(float64(to.Nanoseconds())/float64(b.N), "ort-ns/op")
			b.ReportMetric(float64(ti)/float64(to), "interp/ort")
		})
	}
}
