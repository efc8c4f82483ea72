//go:build cgo && ortbench

package interp

// The paired interp/ort benchmark lives behind the ortbench tag so that
// interp's tests never depend on the cgo backend compiling:
//
//	go test -tags ortbench ./pkg/runtime/interp -run '^$' -bench PairORT -benchtime 4000x
//
// Both backends run at 1 thread on the model's test_data_set_0, A/B
// interleaved: b.N runs per backend cut into pairOrtRounds blocks, the
// order of the two blocks alternating each round, on one locked OS
// thread. It reports the medians over rounds of each backend's latency and
// of the per-round ratio ("interp/ort", below 1 means interp is faster).

import (
	"context"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"testing"
	"time"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	_ "github.com/optictl/optictl/pkg/runtime/ort"
)

const pairOrtRounds = 15

func BenchmarkPairORT(b *testing.B) {
	for _, name := range []string{"silero-vad-v5", "silero-vad-16k-op15", "gonnx-ndm", "gonnx-gru", "mnist", "ppocr-cls"} {
		b.Run(name, func(b *testing.B) {
			dir := filepath.Join(testutil.ModelsDir(b), name)
			m, err := graph.Load(filepath.Join(dir, "model.onnx"))
			if err != nil {
				testutil.Missing(b, dir)
				return
			}
			var sess [2]runtime.Session
			for i, backend := range []string{"interp", "ort"} {
				s, err := runtime.Open(backend, m, runtime.Options{Threads: 1})
				if err != nil {
					testutil.Missing(b, backend+" backend ("+err.Error()+")")
					return
				}
				defer s.Close()
				sess[i] = s
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
			for _, s := range sess {
				if _, err := s.Run(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
			goruntime.LockOSThread()
			defer goruntime.UnlockOSThread()
			n := max(1, b.N/pairOrtRounds)
			var ns [2][]float64
			var ratio []float64
			b.ResetTimer()
			for r := 0; r < pairOrtRounds; r++ {
				var per [2]float64
				for j := 0; j < 2; j++ {
					k := (j + r) % 2 // alternate which backend goes first
					t0 := time.Now()
					for i := 0; i < n; i++ {
						if _, err := sess[k].Run(ctx, in); err != nil {
							b.Fatal(err)
						}
					}
					per[k] = float64(time.Since(t0).Nanoseconds()) / float64(n)
					ns[k] = append(ns[k], per[k])
				}
				ratio = append(ratio, per[0]/per[1])
			}
			b.StopTimer()
			med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
			b.ReportMetric(med(ns[0]), "interp-ns/op")
			b.ReportMetric(med(ns[1]), "ort-ns/op")
			b.ReportMetric(med(ratio), "interp/ort")
		})
	}
}
