package quant

import (
	"testing"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/passes"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/testmodels"
)

// BenchmarkInt8Mixed runs int8-mixed (per-layer profile on ORT, the plan,
// then KeepFaster against fp32) and static uint8 on every layer for
// comparison, on the wide CNN, the test CNN, ppocr-cls (its
// test_data_set_0, 1x3x48x192) and DBNet at 320x320, and reports the
// speedups over fp32 (ORT, 1 thread, interleaved A/B medians) and logs
// the per-layer profile:
//
//	go test ./pkg/quant -run '^$' -bench Int8Mixed -benchtime 1x -v
func BenchmarkInt8Mixed(b *testing.B) {
	seededData := func(b *testing.B, m0 *graph.Model, dims numerics.Dims) (*graph.Model, [][]*runtime.Tensor) {
		m, _, err := passes.Optimize(m0, passes.Options{Level: passes.O2, Backend: "interp", Disable: int8KeepsHardSwish})
		if err != nil {
			b.Fatal(err)
		}
		calib, err := SeededSamples(m, 4, 1000, dims, 0)
		if err != nil {
			b.Fatal(err)
		}
		return m, calib
	}
	models := map[string]func(b *testing.B) (*graph.Model, [][]*runtime.Tensor){
		"wide-cnn": func(b *testing.B) (*graph.Model, [][]*runtime.Tensor) {
			return seededData(b, wideCNN(), numerics.Dims{})
		},
		"cnn": func(b *testing.B) (*graph.Model, [][]*runtime.Tensor) {
			return seededData(b, testmodels.CNN(), numerics.Dims{})
		},
		"dbnet-320": func(b *testing.B) (*graph.Model, [][]*runtime.Tensor) {
			return seededData(b, testmodels.DBNet(), numerics.Dims{Shapes: map[string][]int64{"x": {1, 3, 320, 320}}})
		},
		"ppocr-cls": func(b *testing.B) (*graph.Model, [][]*runtime.Tensor) {
			m, calib, _ := ppocrData(b)
			return m, calib
		},
	}
	for _, name := range []string{"wide-cnn", "cnn", "ppocr-cls", "dbnet-320"} {
		b.Run(name, func(b *testing.B) {
			m, calib := models[name](b)
			if s, err := runtime.Open("ort", m, runtime.Options{Threads: 1}); err != nil {
				b.Skipf("ort: %v", err)
			} else {
				s.Close()
			}
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				quantize := func(ex []string) (*graph.Model, *Report, error) {
					return Mixed(m, calib, MixedOptions{Static: StaticOptions{PerChannel: true, ExcludeNodes: ex}})
				}
				q, rep, err := quantize(nil)
				if err != nil {
					b.Fatal(err)
				}
				took := time.Since(t0)
				in := calib[0]
				sp, err := MeasureSpeed(m, q, "ort", in, 400, 3*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				b.Logf("%s: profile and plan in %v\n%s\nplanned: %s", name, took.Round(time.Millisecond), rep.String(), sp)
				q2, _, sp2, tries, ok, err := KeepFaster(m, q, rep, sp, quantize, "ort", in, 400, 3*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				for _, t := range tries {
					b.Logf("  fallback, %d more layers in float: %.2fx", len(t.BackInFloat), t.Speed.Speedup)
				}
				if !ok {
					b.Logf("  refused: int8 does not pay on this model here")
				}
				_ = q2
				full, _, err := Static(m, calib, StaticOptions{PerChannel: true, Asymmetric: true})
				if err != nil {
					b.Fatal(err)
				}
				spFull, err := MeasureSpeed(m, full, "ort", in, 400, 3*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				b.Logf("written: %s\nstatic-u8 on every layer: %s", sp2, spFull)
				b.ReportMetric(sp.Speedup, "planned-x")
				b.ReportMetric(sp2.Speedup, "mixed-x")
				b.ReportMetric(spFull.Speedup, "static-u8-x")
				b.ReportMetric(float64(sp2.Float.Microseconds()), "fp32-us")
			}
		})
	}
}
