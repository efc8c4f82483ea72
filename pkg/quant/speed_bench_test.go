package quant

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/passes"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/testmodels"
)

// BenchmarkInt8Speedup compares fp32 and int8 variants on ORT (1 thread,
// full graph optimizations) in interleaved A/B runs and reports the median
// latencies and their ratio:
//
//	go test ./pkg/quant -run '^$' -bench Int8Speedup -benchtime 1x
func BenchmarkInt8Speedup(b *testing.B) {
	models := map[string]func() *graph.Model{
		"cnn":         testmodels.CNN,
		"transformer": testmodels.TransformerEncoder,
		"ppocr-cls": func() *graph.Model {
			p := filepath.Join(testutil.ModelsDir(b), "ppocr-cls", "model.onnx")
			if _, err := os.Stat(p); err != nil {
				testutil.Missing(b, p)
			}
			m, err := graph.Load(p)
			if err != nil {
				b.Fatal(err)
			}
			return m
		},
	}
	for _, name := range []string{"cnn", "transformer", "ppocr-cls"} {
		for _, mode := range []string{"dynamic", "static", "static-u8", "static-conv-only"} {
			b.Run(name+"/"+mode, func(b *testing.B) {
				m0 := models[name]()
				// graph passes first (BN folding), as `optictl optimize` does
				m, _, err := passes.Optimize(m0, passes.Options{Level: passes.O2, Backend: "interp"})
				if err != nil {
					b.Fatal(err)
				}
				calib, err := SeededSamples(m, "interp", 8, 1000)
				in, err2 := SeededSamples(m, "interp", 1, 7)
				if name == "ppocr-cls" {
					// dynamic dims: use the real input (speed only)
					x, _, _, _, err3 := runtime.LoadTestDataSet(filepath.Join(testutil.ModelsDir(b), "ppocr-cls", "test_data_set_0"))
					calib, in, err, err2 = [][]*runtime.Tensor{x}, [][]*runtime.Tensor{x}, err3, nil
				}
				if err != nil || err2 != nil {
					b.Fatal(err, err2)
				}
				var q *graph.Model
				var rep *Report
				if mode == "dynamic" {
					q, rep, err = Dynamic(m, DynamicOptions{})
				} else {
					o := StaticOptions{PerChannel: true}
					switch mode {
					case "static-u8":
						o.Asymmetric = true
					case "static-conv-only":
						o.OpTypes = []string{"Conv", "Gemm"}
					}
					q, rep, err = Static(m, calib, o)
				}
				if err != nil {
					b.Fatal(err)
				}
				if s, err := runtime.Open("ort", m, runtime.Options{Threads: 1}); err != nil {
					b.Skipf("ort: %v", err)
				} else {
					s.Close()
				}
				for i := 0; i < b.N; i++ {
					sp, err := MeasureSpeed(m, q, "ort", in[0], 400, 3*time.Second)
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(sp.Float.Microseconds()), "fp32-us")
					b.ReportMetric(float64(sp.Quant.Microseconds()), "int8-us")
					b.ReportMetric(sp.Speedup, "speedup")
					b.ReportMetric(float64(rep.Int8Ops), "int8-ops")
				}
			})
		}
	}
}
