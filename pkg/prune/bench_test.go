package prune

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/testmodels"
)

// BenchmarkStructuredORT measures, on ONNX Runtime at one thread (graph
// optimizations "all", batch 1), the latency of each test model before and
// after structured pruning of 30% of channels, in one interleaved run: each
// b.N iteration runs both sessions once, alternating which goes first.
// "exact" prunes round(30%) of each layer's channels; "multiple8" rounds the
// kept count to a multiple of 8 (Options.Multiple), the block ORT's NCHWc
// convolutions need: without it the pruned CNN is slower than the original.
// Metrics: median latencies, speedup = median(orig)/median(pruned) (goal
// >= 1.3 on cnn) and the params/FLOPs ratios from graph.Cost.
//
//	go test ./pkg/prune -run '^$' -bench StructuredORT -benchtime 2000x
func BenchmarkStructuredORT(b *testing.B) {
	cases := []struct {
		name, model string
		multiple    int
	}{
		{"cnn/exact", "cnn", 0},
		{"cnn/multiple8", "cnn", 8},
		{"dwsep/exact", "dwsep", 0},
		{"mlp/exact", "mlp", 0},
		{"mlp/multiple8", "mlp", 8},
		{"ppocr-cls/exact", "ppocr-cls", 0},
		{"ppocr-cls/multiple8", "ppocr-cls", 8},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			var orig *graph.Model
			if mk := testmodels.All()[tc.model]; mk != nil {
				orig = mk()
			} else {
				var err error
				if orig, err = graph.Load(filepath.Join(testutil.ModelsDir(b), tc.model, "model.onnx")); err != nil {
					b.Fatal(err)
				}
			}
			pruned := orig.Clone()
			rep, err := Prune(pruned, Options{Fraction: 0.3, Mode: Structured, Multiple: tc.multiple})
			if err != nil {
				b.Fatal(err)
			}
			open := func(m *graph.Model) runtime.Session {
				s, err := runtime.Open("ort", m, runtime.Options{Threads: 1, OptLevel: "all"})
				if err != nil {
					b.Skipf("ort: %v", err)
				}
				b.Cleanup(func() { s.Close() })
				return s
			}
			sess := []runtime.Session{open(orig), open(pruned)}
			in, err := numerics.Seeded(numerics.InputsFromInfos(sess[0].Inputs()), numerics.SeedOptions{Seed: 1})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			for _, s := range sess { // warm up
				for range 20 {
					if _, err := s.Run(ctx, in); err != nil {
						b.Fatal(err)
					}
				}
			}
			times := make([][]time.Duration, 2)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range 2 {
					k := (i + j) % 2
					t0 := time.Now()
					if _, err := sess[k].Run(ctx, in); err != nil {
						b.Fatal(err)
					}
					times[k] = append(times[k], time.Since(t0))
				}
			}
			b.StopTimer()
			med := func(d []time.Duration) float64 {
				slices.Sort(d)
				return float64(d[len(d)/2].Nanoseconds())
			}
			mo, mp := med(times[0]), med(times[1])
			b.ReportMetric(mo/1e3, "orig-us")
			b.ReportMetric(mp/1e3, "pruned-us")
			b.ReportMetric(mo/mp, "speedup")
			b.ReportMetric(float64(rep.ParamsAfter)/float64(max(rep.ParamsBefore, 1)), "params-ratio")
			b.ReportMetric(float64(rep.FLOPsAfter)/float64(max(rep.FLOPsBefore, 1)), "flops-ratio")
		})
	}
}
