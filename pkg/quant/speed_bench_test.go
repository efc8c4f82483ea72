package quant

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/passes"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/testmodels"
)

// BenchmarkInt8Speedup compares fp32 and int8 variants on ORT (1 thread,
// full graph optimizations) in interleaved A/B runs and reports the median
// latencies and their ratio, on the test CNN, the transformer, ppocr-cls
// and wideCNN (the test CNN's shape with 64-128 channels: where ORT's int8
// convolution kernels pay off):
//
//	go test ./pkg/quant -run '^$' -bench Int8Speedup -benchtime 1x
func BenchmarkInt8Speedup(b *testing.B) {
	models := map[string]func() *graph.Model{
		"cnn":         testmodels.CNN,
		"transformer": testmodels.TransformerEncoder,
		"wide-cnn":    wideCNN,
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
	for _, name := range []string{"cnn", "transformer", "ppocr-cls", "wide-cnn"} {
		for _, mode := range []string{"dynamic", "static-u8", "static-u8-weights", "static-s8"} {
			b.Run(name+"/"+mode, func(b *testing.B) {
				m0 := models[name]()
				// graph passes first (BN folding), as `optictl optimize` does
				m, _, err := passes.Optimize(m0, passes.Options{Level: passes.O2, Backend: "interp", Disable: int8KeepsHardSwish})
				if err != nil {
					b.Fatal(err)
				}
				calib, err := SeededSamples(m, 8, 1000, numerics.Dims{}, 0)
				in, err2 := SeededSamples(m, 1, 7, numerics.Dims{}, 0)
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
					o := StaticOptions{PerChannel: true, Asymmetric: true}
					switch mode {
					case "static-u8-weights": // only Conv/MatMul/Gemm
						o.OpTypes = []string{"Conv", "MatMul", "Gemm"}
					case "static-s8":
						o.Asymmetric = false
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

// BenchmarkInt8Search runs the accuracy-controlled variant search (1 point
// top-1 agreement budget, accuracy on interp, speed on ORT at 1 thread
// with full graph optimizations, interleaved A/B medians) and reports the
// chosen variant's speedup over fp32 and its drop, and every variant's
// speedup:
//
//	go test ./pkg/quant -run '^$' -bench Int8Search -benchtime 1x
func BenchmarkInt8Search(b *testing.B) {
	type data struct {
		m           *graph.Model
		calib, eval [][]*runtime.Tensor
	}
	seededData := func(b *testing.B, m0 *graph.Model, nc, ne int) data {
		m, _, err := passes.Optimize(m0, passes.Options{Level: passes.O2, Backend: "interp", Disable: int8KeepsHardSwish})
		if err != nil {
			b.Fatal(err)
		}
		calib, err := SeededSamples(m, nc, 1000, numerics.Dims{}, 0)
		if err != nil {
			b.Fatal(err)
		}
		eval, err := SeededSamples(m, ne, 7, numerics.Dims{}, 0)
		if err != nil {
			b.Fatal(err)
		}
		return data{m, calib, eval}
	}
	models := map[string]func(b *testing.B) data{
		"cnn":         func(b *testing.B) data { return seededData(b, testmodels.CNN(), 8, 32) },
		"transformer": func(b *testing.B) data { return seededData(b, testmodels.TransformerEncoder(), 8, 32) },
		"ppocr-cls": func(b *testing.B) data {
			m, calib, eval := ppocrData(b)
			return data{m, calib, eval}
		},
	}
	for _, name := range []string{"cnn", "transformer", "ppocr-cls"} {
		b.Run(name, func(b *testing.B) {
			d := models[name](b)
			if s, err := runtime.Open("ort", d.m, runtime.Options{Threads: 1}); err != nil {
				b.Skipf("ort: %v", err)
			} else {
				s.Close()
			}
			for i := 0; i < b.N; i++ {
				vs := Int8Variants(d.m, d.calib, StaticOptions{PerChannel: true}, DynamicOptions{})
				cands, best, err := Search(d.m, vs, d.eval, nil, SearchOptions{MaxDrop: 1, Rounds: 300, Budget: 2 * time.Second})
				if err != nil {
					b.Fatal(err)
				}
				for _, c := range cands {
					if c.Speed != nil {
						b.ReportMetric(c.Speed.Speedup, c.Variant+"-x")
					} else {
						b.Logf("%s: %s", c.Variant, c.Err)
					}
				}
				if best < 0 {
					b.Fatalf("no variant met the budget")
				}
				c := cands[best]
				b.ReportMetric(c.Speed.Speedup, "best-x")
				b.ReportMetric(c.Accuracy.Drop, "best-drop-pts")
				b.ReportMetric(float64(c.Speed.Float.Microseconds()), "fp32-us")
				b.ReportMetric(float64(c.Speed.Quant.Microseconds()), "best-us")
				b.Logf("picked %s: %s; left in float %v", c.Variant, c.Speed, c.Report.LeftInFloat)
			}
		})
	}
}
