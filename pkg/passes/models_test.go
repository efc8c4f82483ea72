package passes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
	_ "github.com/optictl/optictl/pkg/runtime/backends"
	"github.com/optictl/optictl/pkg/tensorio"
)

// realModels lists every model under ../shared/models plus the light
// model-zoo architectures this test can afford (heavier ones only without
// -short).
func realModels(t *testing.T) []string {
	var out []string
	for _, d := range testutil.RealModels(t) {
		out = append(out, filepath.Join(d, "model.onnx"))
	}
	light := filepath.Join(testutil.ModelsDir(t), "conformance", "onnx-1.22.0", "light")
	names := []string{"light_squeezenet.onnx"}
	if !testing.Short() {
		names = append(names, "light_resnet50.onnx")
	}
	for _, n := range names {
		p := filepath.Join(light, n)
		if _, err := os.Stat(p); err != nil {
			testutil.Missing(t, p)
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		testutil.Missing(t, "real models")
	}
	return out
}

// dataInputs loads the model's first test_data_set as named inputs.
func dataInputs(m *graph.Model, modelPath string) map[string]*runtime.Tensor {
	sets, err := tensorio.DataSets(filepath.Dir(modelPath))
	if err != nil || len(sets) == 0 {
		return nil
	}
	var names []string
	for _, v := range m.Graph.RealInputs() {
		names = append(names, v.Name)
	}
	ds, err := tensorio.LoadDataSet(sets[0], names, nil)
	if err != nil {
		return nil
	}
	in := map[string]*runtime.Tensor{}
	for _, n := range ds.Inputs {
		in[n.Name] = n.Tensor
	}
	return in
}

// TestRealModels runs every level over every real model with numeric
// verification on: no pass may be rolled back, the result must verify and
// be idempotent.
func TestRealModels(t *testing.T) {
	for _, path := range realModels(t) {
		name := filepath.Base(filepath.Dir(path))
		if filepath.Base(path) != "model.onnx" {
			name = filepath.Base(path)
		}
		t.Run(name, func(t *testing.T) {
			m, err := graph.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			// NCHWc at block 8 whatever this CPU: interp reads the block
			// size from the model's metadata, so it checks the layout
			// anywhere.
			for _, cfg := range []Options{{Level: O2}, {Level: O3, Target: TargetORTCPU}, {Level: O3, Target: TargetORTCPU, NCHWcBlock: 8}} {
				cfg.Verify = true
				cfg.Inputs = dataInputs(m, path)
				label := fmt.Sprintf("%s/%s/nchwc=%d", cfg.Level, cfg.Target, cfg.NCHWcBlock)
				start := time.Now()
				out, rep, err := Optimize(m, cfg)
				if err != nil {
					t.Fatalf("%s: %v", label, err)
				}
				for _, rb := range rep.Rollbacks {
					t.Errorf("%s: pass %s rolled back: %s", label, rb.Pass, rb.Reason)
				}
				if err := out.Verify(); err != nil {
					t.Fatal(err)
				}
				if _, err := out.Marshal(); err != nil {
					t.Fatalf("optimized model does not serialize: %v", err)
				}
				t.Logf("%s: nodes %d -> %d, bytes %d -> %d, %d rounds, %v; %s", label, rep.Before.Nodes, rep.After.Nodes,
					rep.Before.Bytes, rep.After.Bytes, rep.Rounds, time.Since(start).Round(time.Millisecond), rep.Numeric)
				if !rep.Converged {
					t.Errorf("did not converge in %d rounds", rep.Rounds)
				}
				again, rep2, err := Optimize(out, Options{Level: cfg.Level, Target: cfg.Target, NCHWcBlock: cfg.NCHWcBlock})
				if err != nil {
					t.Fatal(err)
				}
				if again.Format() != out.Format() {
					for _, st := range rep2.Passes {
						if st.Changed > 0 {
							t.Errorf("not idempotent: %s changed the optimized model again", st.Pass)
						}
					}
				}
			}
		})
	}
}

// TestRealModelsReference optimizes the real models that the test-only
// reference backend (refbackend_test.go) can run, with numeric verification
// on that backend after every pass: every pass must keep the outputs, and
// the reference backend itself must reproduce the data set's outputs.
func TestRealModelsReference(t *testing.T) {
	for _, path := range realModels(t) {
		name := filepath.Base(filepath.Dir(path))
		if filepath.Base(path) != "model.onnx" {
			name = filepath.Base(path)
		}
		t.Run(name, func(t *testing.T) {
			switch {
			case name == "light_resnet50.onnx":
				t.Skip("too slow for the float64 reference backend (4 GFLOPs per run)")
			case strings.HasPrefix(name, "light_") && testing.Short():
				t.Skip("about 100 s on the reference backend; run without -short")
			}
			m, err := graph.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range m.Graph.Nodes {
				d := n.Domain
				if d == "ai.onnx" {
					d = ""
				}
				if !refOps[d+"."+n.OpType] {
					t.Skipf("testref has no %s", n.OpType)
				}
			}
			in := dataInputs(m, path)
			if in != nil {
				checkReference(t, m, path, in)
			}
			for _, cfg := range []Options{{Level: O2}, {Level: O3, Target: TargetORTCPU}} {
				cfg.Verify, cfg.Backend, cfg.Inputs = true, "testref", in
				cfg.Tolerance = numerics.Tolerance{ATol: 1e-4, RTol: 1e-4}
				out, rep, err := Optimize(m, cfg)
				if err != nil {
					t.Fatalf("%s/%s: %v", cfg.Level, cfg.Target, err)
				}
				for _, rb := range rep.Rollbacks {
					t.Errorf("%s/%s: pass %s rolled back: %s", cfg.Level, cfg.Target, rb.Pass, rb.Reason)
				}
				if !strings.HasPrefix(rep.Numeric, "outputs match on testref") || len(rep.NumericSkips) > 0 {
					t.Fatalf("%s/%s: not verified: %s %v", cfg.Level, cfg.Target, rep.Numeric, rep.NumericSkips)
				}
				t.Logf("%s/%s: nodes %d -> %d, FLOPs %d -> %d: %s", cfg.Level, cfg.Target, rep.Before.Nodes, rep.After.Nodes, rep.Before.FLOPs, rep.After.FLOPs, rep.Numeric)
				_ = out
			}
		})
	}
}

// checkReference compares the reference backend on the original model with
// the data set's expected outputs (so the oracle itself is checked).
func checkReference(t *testing.T, m *graph.Model, path string, in map[string]*runtime.Tensor) {
	t.Helper()
	sets, _ := tensorio.DataSets(filepath.Dir(path))
	var outs []string
	for _, v := range m.Graph.Outputs {
		outs = append(outs, v.Name)
	}
	var innames []string
	for _, v := range m.Graph.RealInputs() {
		innames = append(innames, v.Name)
	}
	ds, err := tensorio.LoadDataSet(sets[0], innames, outs)
	if err != nil || len(ds.Outputs) == 0 {
		return
	}
	s, err := runtime.Open("testref", m, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := runtime.RunNamed(context.Background(), s, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range ds.Outputs {
		if err := compareTensor(want.Tensor, got[want.Name], numerics.Tolerance{ATol: 1e-4, RTol: 1e-3}); err != nil {
			t.Fatalf("the reference backend disagrees with %s on %s: %v", sets[0], want.Name, err)
		}
	}
}
