package passes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	_ "github.com/optictl/optictl/pkg/runtime/backends"
	"github.com/optictl/optictl/testmodels"
)

// BenchmarkORTRatios measures, in one interleaved run on ONNX Runtime at
// one thread, the latency ratios issue 4 asks for:
//
//	a = median(original, ORT all) / median(optimized, ORT off)   goal >= 0.95
//	b = median(original, ORT all) / median(optimized, ORT all)   goal >= 1.05
//
// (a ratio above 1 means the optimized model is faster.) Each b.N
// iteration runs the sessions once each, in rotating order. ext-vs-opt-off
// compares the original at ORT "extended" (all rewrites but the NCHWc
// layout) with the optimized model at "off".
//
//	go test ./pkg/passes -run '^$' -bench ORTRatios -benchtime 300x
//
// ORT_RATIOS_ONLY=substring picks cases; ORT_RATIOS_BUDGET=20s caps each case's timed loop;
// ORT_RATIOS_NCHWC=0 leaves out the NCHWc layout (layout-nchwc) at O3.
func BenchmarkORTRatios(b *testing.B) {
	light := filepath.Join(testutil.ModelsDir(b), "conformance", "onnx-1.22.0", "light")
	type benchCase struct {
		name  string
		path  string       // a model file, or
		model *graph.Model // a testmodels constructor's model
		opts  Options
	}
	lightOpts := Options{Level: O3, Target: TargetORTCPU, FreezeInitializers: true, FoldGrow: true, FoldMaxBytes: 1 << 30}
	cases := []benchCase{
		{name: "ppocr-cls/O2", path: filepath.Join(testutil.ModelsDir(b), "ppocr-cls", "model.onnx"), opts: Options{Level: O2}},
		{name: "ppocr-cls/O3-ort-cpu", path: filepath.Join(testutil.ModelsDir(b), "ppocr-cls", "model.onnx"), opts: Options{Level: O3, Target: TargetORTCPU}},
		{name: "cnn/O2", model: testmodels.CNN(), opts: Options{Level: O2}},
		{name: "cnn/O3-ort-cpu", model: testmodels.CNN(), opts: Options{Level: O3, Target: TargetORTCPU}},
		{name: "transformer/O2", model: testmodels.TransformerEncoder(), opts: Options{Level: O2}},
		{name: "transformer/O3-ort-cpu", model: testmodels.TransformerEncoder(), opts: Options{Level: O3, Target: TargetORTCPU}},
	}
	// The light model-zoo architectures carry their weights as
	// ConstantOfShape nodes; FoldGrow folds them into real initializers
	// first. The big ones (vgg19 is ~20 GFLOPs) get few rounds: see budget.
	for _, arch := range []string{"squeezenet", "shufflenet", "inception_v1", "inception_v2", "resnet50", "densenet121", "bvlc_alexnet", "zfnet512", "vgg19"} {
		cases = append(cases, benchCase{name: arch + "/O3-ort-cpu", path: filepath.Join(light, "light_"+arch+".onnx"), opts: lightOpts})
	}
	// O3 --target ort-cpu writes ORT's NCHWc layout for this CPU's block
	// size (optimize --nchwc auto); ORT_RATIOS_NCHWC=0 measures without it.
	if os.Getenv("ORT_RATIOS_NCHWC") != "0" {
		for i := range cases {
			if cases[i].opts.Level == O3 && cases[i].opts.Target == TargetORTCPU {
				cases[i].opts.NCHWcBlock = runtime.HostNCHWcBlock()
			}
		}
	}
	if f := os.Getenv("ORT_RATIOS_ONLY"); f != "" {
		cases = slices.DeleteFunc(cases, func(c benchCase) bool { return !strings.Contains(c.name, f) })
	}
	// budget caps the wall time of one case's timed loop: b.N rounds, or
	// fewer (at least 5) once the budget is spent, so one -benchtime works
	// for a 60 us model and a 1 s one alike.
	budget := 20 * time.Second
	if v := os.Getenv("ORT_RATIOS_BUDGET"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			budget = d
		}
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			m := tc.model
			if m == nil {
				var err error
				if m, err = graph.Load(tc.path); err != nil {
					b.Fatal(err)
				}
			}
			if d := os.Getenv("ORT_RATIOS_DISABLE"); d != "" {
				tc.opts.Disable = strings.Split(d, ",")
			}
			opt, rep, err := Optimize(m, tc.opts)
			if err != nil {
				b.Fatal(err)
			}
			if tc.opts.FreezeInitializers {
				// The reference runs with its weights frozen too; ORT
				// refuses an initializer that is neither an input nor read
				// by a node (zfnet512, resnet50 carry such leftovers).
				m.Graph.Inputs = m.Graph.RealInputs()
				read := map[string]bool{}
				for _, n := range m.Graph.Nodes {
					for _, in := range n.Inputs {
						read[in] = true
					}
				}
				for _, o := range m.Graph.Outputs {
					read[o.Name] = true
				}
				m.Graph.Initializers = slices.DeleteFunc(m.Graph.Initializers, func(t *graph.Tensor) bool { return !read[t.Name] })
			}
			// A real model runs on its own test data (ppocr-cls's dynamic
			// height and width would otherwise be 1 in seeded inputs).
			var in map[string]*runtime.Tensor
			if tc.path != "" {
				in = dataInputs(m, tc.path)
			}
			if in == nil {
				var err error
				if in, err = seededInputs(m, nil, 1); err != nil {
					b.Fatal(err)
				}
			}
			for name, t := range in {
				b.Logf("input %s %v", name, t.Shape)
			}
			open := func(mm *graph.Model, level string) runtime.Session {
				s, err := runtime.Open("ort", mm, runtime.Options{Threads: 1, OptLevel: level})
				if err != nil {
					b.Skipf("ort: %v", err)
				}
				b.Cleanup(func() { s.Close() })
				return s
			}
			// The fourth session (original at "extended": every ORT rewrite
			// except the NCHWc layout transformation) tells how much of the
			// gap in ratio a is layout, which standard ONNX cannot express.
			sess := []runtime.Session{open(m, "all"), open(opt, "off"), open(opt, "all"), open(m, "extended")}
			args := make([][]*runtime.Tensor, len(sess))
			for i, s := range sess {
				for _, info := range s.Inputs() {
					args[i] = append(args[i], in[info.Name])
				}
			}
			times := make([][]time.Duration, len(sess))
			ctx := context.Background()
			for i, s := range sess { // warm up
				if _, err := s.Run(ctx, args[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			start := time.Now()
			for it := 0; it < b.N && (it < 5 || time.Since(start) < budget); it++ {
				for k := range sess {
					i := (it + k) % len(sess)
					t0 := time.Now()
					if _, err := sess[i].Run(ctx, args[i]); err != nil {
						b.Fatal(err)
					}
					times[i] = append(times[i], time.Since(t0))
				}
			}
			b.StopTimer()
			med := func(d []time.Duration) float64 {
				s := slices.Clone(d)
				slices.Sort(s)
				return float64(s[len(s)/2])
			}
			orig, offOpt, allOpt := med(times[0]), med(times[1]), med(times[2])
			b.ReportMetric(orig/1e3, "orig-all-us")
			b.ReportMetric(offOpt/1e3, "opt-off-us")
			b.ReportMetric(allOpt/1e3, "opt-all-us")
			b.ReportMetric(orig/offOpt, "ratio-a")
			b.ReportMetric(orig/allOpt, "ratio-b")
			b.ReportMetric(med(times[3])/offOpt, "ext-vs-opt-off")
			b.ReportMetric(float64(len(times[0])), "rounds")
			b.Log(fmt.Sprintf("nodes %d -> %d", rep.Before.Nodes, rep.After.Nodes))
		})
	}
}
