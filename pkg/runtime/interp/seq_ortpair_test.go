//go:build cgo && ortbench

package interp

// The paired interp/ort benchmark lives behind the ortbench tag so that
// interp's tests never depend on the cgo backend compiling:
//
//	go test -tags ortbench ./pkg/runtime/interp -run '^$' -bench PairORT -benchtime 2000x
//
// Both backends run at 1 thread on the model's test_data_set_0; the ort
// sub-benchmark reports interp's latency divided by ORT's ("interp/ort",
// below 1 means interp is faster).

import (
	"context"
	"path/filepath"
	goruntime "runtime"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	_ "github.com/optictl/optictl/pkg/runtime/ort"
)

func BenchmarkPairORT(b *testing.B) {
	for _, name := range []string{"silero-vad-v5", "silero-vad-16k-op15", "gonnx-ndm", "gonnx-gru", "mnist", "ppocr-cls"} {
		dir := filepath.Join(testutil.ModelsDir(b), name)
		var interpNs float64
		for _, backend := range []string{"interp", "ort"} {
			b.Run(name+"/"+backend, func(b *testing.B) {
				m, err := graph.Load(filepath.Join(dir, "model.onnx"))
				if err != nil {
					b.Fatal(err)
				}
				s, err := runtime.Open(backend, m, runtime.Options{Threads: 1})
				if err != nil {
					b.Skipf("%s: %v", backend, err)
				}
				defer s.Close()
				var names []string
				for _, in := range s.Inputs() {
					names = append(names, in.Name)
				}
				is, err := Open(m, runtime.Options{Threads: 1})
				if err != nil {
					b.Fatal(err)
				}
				in, err := seqLoadInputs(is, filepath.Join(dir, "test_data_set_0"))
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				if _, err := s.Run(ctx, in); err != nil {
					b.Skipf("%s: %v", backend, err)
				}
				goruntime.LockOSThread()
				defer goruntime.UnlockOSThread()
				b.ResetTimer()
				cpu0 := seqThreadCPU()
				for i := 0; i < b.N; i++ {
					if _, err := s.Run(ctx, in); err != nil {
						b.Fatal(err)
					}
				}
				ns := seqReportCPU(b, cpu0)
				if ns == 0 {
					ns = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				}
				if backend == "interp" {
					interpNs = ns
				} else if interpNs > 0 {
					b.ReportMetric(interpNs/ns, "interp/ort")
				}
			})
		}
	}
}
