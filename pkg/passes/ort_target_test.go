package passes

import (
	"context"
	"fmt"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/runtime/ort"
	"github.com/optictl/optictl/testmodels"
)

// TestORTTargetRunsOnORT checks the --target ort-cpu rewrites on the
// runtime they are written for: every testmodel and the attention,
// residual and hard-swish golden models, optimized at O3/ort-cpu, must run on ONNX
// Runtime with its own graph optimizations off (so our contrib nodes run
// as written) and agree with the original model on ORT, at several batch
// sizes (the fused ops must not have baked in the seeded shape).
func TestORTTargetRunsOnORT(t *testing.T) {
	if len(ort.Candidates("")) == 0 {
		testutil.Missing(t, "ONNX Runtime shared library (run `make setup`)")
		return
	}
	models := map[string]*graph.Model{
		"attention":   attentionModel(false)(),
		"skip-ln":     skipLNModel(13, false)(),
		"skip-ln17":   skipLNModel(17, true)(),
		"hardswish13": hardSwishModel(13, "div")(),
		"hardswish14": hardSwishModel(14, "mul-sixth")(),
	}
	for name, mk := range testmodels.All() {
		models[name] = mk()
	}
	for name, m := range models {
		t.Run(name, func(t *testing.T) {
			out, rep, err := Optimize(m, Options{Level: O3, Target: TargetORTCPU, Verify: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Rollbacks) > 0 {
				t.Fatalf("rolled back: %+v", rep.Rollbacks)
			}
			orig, err := runtime.Open("ort", m, runtime.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer orig.Close()
			opt, err := runtime.Open("ort", out, runtime.Options{Threads: 1, OptLevel: "off"})
			if err != nil {
				t.Fatalf("ORT does not open the O3/ort-cpu model: %v\n%s", err, out.Format())
			}
			defer opt.Close()
			for _, batch := range []int64{1, 3} {
				shapes := map[string][]int64{}
				for _, v := range m.Graph.RealInputs() {
					dims := make([]int64, len(v.Shape))
					for i, d := range v.Shape {
						dims[i] = d.Size
						if !d.Known() {
							dims[i] = batch
						}
					}
					shapes[v.Name] = dims
				}
				in, err := SeededInputs(m, shapes, uint64(batch))
				if err != nil {
					t.Fatal(err)
				}
				want, err := runtime.RunNamed(context.Background(), orig, in)
				if err != nil {
					t.Fatal(err)
				}
				got, err := runtime.RunNamed(context.Background(), opt, in)
				if err != nil {
					t.Fatalf("batch %d: %v", batch, err)
				}
				for k, w := range want {
					if err := compareTensor(w, got[k], Tolerance{ATol: 1e-4, RTol: 1e-3}); err != nil {
						t.Errorf("batch %d: output %s: %v", batch, k, err)
					}
				}
			}
			t.Log(fmt.Sprintf("nodes %d -> %d", rep.Before.Nodes, rep.After.Nodes))
		})
	}
}
