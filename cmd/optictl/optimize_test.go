package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/passes"
	"github.com/optictl/optictl/pkg/quant"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tensorio"
	"github.com/optictl/optictl/testmodels"
)

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOptimizeOptions(t *testing.T) {
	base := optimizeOptions{Level: "O2", Target: "generic", Backend: "interp", ATol: 1e-4, RTol: 1e-3}
	tests := []struct {
		name string
		mod  func(o *optimizeOptions)
		bad  string
	}{
		{"defaults", func(o *optimizeOptions) {}, ""},
		{"O3 ort", func(o *optimizeOptions) { o.Level = "3"; o.Target = "ort-cpu" }, ""},
		{"bad level", func(o *optimizeOptions) { o.Level = "O9" }, "level"},
		{"bad target", func(o *optimizeOptions) { o.Target = "tpu" }, "target"},
		{"bad backend", func(o *optimizeOptions) { o.Backend = "nope" }, "backend"},
		{"no-verify ignores backend", func(o *optimizeOptions) { o.Backend = "nope"; o.NoVerify = true }, ""},
		{"unknown pass", func(o *optimizeOptions) { o.Passes = []string{"nope"} }, "valid passes"},
		{"unknown disable", func(o *optimizeOptions) { o.Disable = []string{"nope"} }, "valid passes"},
		{"negative tol", func(o *optimizeOptions) { o.ATol = -1 }, "negative"},
		{"each pass", func(o *optimizeOptions) { o.EachPass = true }, ""},
		{"each pass without verify", func(o *optimizeOptions) { o.EachPass, o.EachPassSet, o.NoVerify = true, true, true }, "contradict"},
		{"default each pass with no-verify", func(o *optimizeOptions) { o.EachPass, o.NoVerify = true, true }, ""},
		{"nchwc 8", func(o *optimizeOptions) { o.Level, o.Target, o.NCHWc = "O3", "ort-cpu", "8" }, ""},
		{"nchwc 16", func(o *optimizeOptions) { o.Level, o.Target, o.NCHWc = "O3", "ort-cpu", "16" }, ""},
		{"nchwc off", func(o *optimizeOptions) { o.NCHWc = "off" }, ""},
		{"nchwc bad value", func(o *optimizeOptions) { o.Level, o.Target, o.NCHWc = "O3", "ort-cpu", "4" }, "want off, auto, 8 or 16"},
		{"nchwc at O2", func(o *optimizeOptions) { o.NCHWc = "8" }, "-O3 --target ort-cpu"},
		{"nchwc generic target", func(o *optimizeOptions) { o.Level, o.NCHWc = "O3", "8" }, "-O3 --target ort-cpu"},
		{"nchwc with quantize", func(o *optimizeOptions) {
			o.Level, o.Target, o.NCHWc, o.Quantize = "O3", "ort-cpu", "8", "int8-dynamic"
		}, "--quantize"},
		{"nchwc pass without block", func(o *optimizeOptions) { o.Target, o.Passes = "ort-cpu", []string{"layout-nchwc"} }, "needs --nchwc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.mod(&o)
			po, err := o.toPassOptions()
			if tc.bad == "" {
				if err != nil {
					t.Fatal(err)
				}
				if po.Verify == o.NoVerify {
					t.Fatal("Verify not set from --no-verify")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.bad) {
				t.Fatalf("got %v, want an error about %s", err, tc.bad)
			}
			var ee *exitError
			if !asExit(err, &ee) || ee.code != ExitUsage {
				t.Fatalf("%v is not a usage error", err)
			}
		})
	}
}

func asExit(err error, ee **exitError) bool {
	e, ok := err.(*exitError)
	*ee = e
	return ok
}

// testModel writes a small model: Conv -> BatchNormalization -> Identity.
func testModel(t *testing.T, dir string) string {
	t.Helper()
	f := func(name string, dims []int64, v float32) *graph.Tensor {
		n, _ := graph.NumElements(dims)
		d := make([]float32, n)
		for i := range d {
			d[i] = v + float32(i%5)/10
		}
		return graph.NewFloat32(name, dims, d)
	}
	g := &graph.Graph{Name: "t",
		Inputs:       []*graph.ValueInfo{{Name: "x", DType: graph.Float, Shape: graph.DimsOf(1, 2, 4, 4), HasShape: true, HasType: true}},
		Outputs:      []*graph.ValueInfo{{Name: "y", DType: graph.Float, Shape: graph.DimsOf(1, 3, 4, 4), HasShape: true, HasType: true}},
		Initializers: []*graph.Tensor{f("w", []int64{3, 2, 3, 3}, -0.2), f("s", []int64{3}, 1), f("b", []int64{3}, 0.1), f("m", []int64{3}, 0), f("v", []int64{3}, 0.5)},
		Nodes: []*graph.Node{
			{Name: "conv", OpType: "Conv", Inputs: []string{"x", "w"}, Outputs: []string{"c"}, Attrs: []*graph.Attr{graph.IntsAttr("pads", 1, 1, 1, 1)}},
			{Name: "bn", OpType: "BatchNormalization", Inputs: []string{"c", "s", "b", "m", "v"}, Outputs: []string{"n"}},
			{Name: "id", OpType: "Identity", Inputs: []string{"n"}, Outputs: []string{"y"}},
		}}
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 13}}, Graph: g}
	p := filepath.Join(dir, "m.onnx")
	if err := m.Save(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOptimizeCommand(t *testing.T) {
	dir := t.TempDir()
	in := testModel(t, dir)
	out := filepath.Join(dir, "opt.onnx")
	var so, se bytes.Buffer
	if code := Execute([]string{"optimize", in, "-o", out, "-O2"}, &so, &se); code != ExitOK {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	for _, want := range []string{"FUSE-CONV-BATCHNORM", "fuse-conv-batchnorm", "nodes   3 -> 1", "wrote"} {
		if !strings.Contains(so.String(), want) && !strings.Contains(strings.ToUpper(so.String()), strings.ToUpper(want)) {
			t.Errorf("output lacks %q:\n%s", want, so.String())
		}
	}
	m, err := graph.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Graph.Nodes) != 1 || m.Graph.Nodes[0].OpType != "Conv" || m.Graph.Outputs[0].Name != "y" {
		t.Fatalf("unexpected result:\n%s", m.Format())
	}
	// Idempotent: optimizing the output again writes the same bytes.
	out2 := filepath.Join(dir, "opt2.onnx")
	so.Reset()
	if code := Execute([]string{"optimize", out, "-o", out2, "--json"}, &so, &se); code != ExitOK {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(out2)
	if !bytes.Equal(a, b) {
		t.Fatal("optimize is not idempotent on its own output")
	}
	// --dump-after prints the text form after the named pass, to stderr.
	so.Reset()
	se.Reset()
	if code := Execute([]string{"optimize", in, "-o", filepath.Join(dir, "d.onnx"), "--dump-after", "fuse-conv-batchnorm", "--json"}, &so, &se); code != ExitOK {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	if !strings.Contains(se.String(), "=== after fuse-conv-batchnorm") || !strings.Contains(se.String(), "Conv \"conv\"") {
		t.Fatalf("--dump-after wrote %q", se.String())
	}
	var res optimizeResult
	if err := json.Unmarshal(so.Bytes(), &res); err != nil {
		t.Fatalf("--json: %v\n%s", err, so.String())
	}
	if !res.Wrote || res.Report == nil || res.Report.After.Nodes != 1 {
		t.Fatalf("--json result %+v", res)
	}
}

// TestOptimizeNCHWc writes ONNX Runtime's NCHWc layout for this CPU,
// verified on interp, with the block size in the metadata and a note on
// stderr; optimizing the result again changes nothing.
func TestOptimizeNCHWc(t *testing.T) {
	block := runtime.HostNCHWcBlock()
	if block == 0 {
		t.Skip("--nchwc auto needs an x86-64 CPU with AVX2+FMA")
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "cnn.onnx")
	if err := testmodels.CNN().Save(in); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "opt.onnx")
	var so, se bytes.Buffer
	if code := Execute([]string{"optimize", in, "-o", out, "-O3", "--target", "ort-cpu", "--nchwc", "auto"}, &so, &se); code != ExitOK {
		t.Fatalf("exit %d: %s%s", code, so.String(), se.String())
	}
	if !strings.Contains(so.String(), "outputs match on interp") || !strings.Contains(se.String(), "NCHWc layout with block") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", so.String(), se.String())
	}
	m, err := graph.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	nc := 0
	for _, n := range m.Graph.Nodes {
		if n.Domain == graph.NCHWcDomain {
			nc++
		}
	}
	want := strconv.Itoa(block)
	if got := metadataValue(m, runtime.NCHWcMetadataKey); nc == 0 || got != want {
		t.Fatalf("%d nchwc nodes, metadata %q (want %s)", nc, got, want)
	}
	out2 := filepath.Join(dir, "opt2.onnx")
	so.Reset()
	if code := Execute([]string{"optimize", out, "-o", out2, "-O3", "--target", "ort-cpu", "--nchwc", "auto"}, &so, &se); code != ExitOK {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(out2)
	if !bytes.Equal(a, b) {
		t.Fatal("optimize --nchwc is not idempotent on its own output")
	}
}

func metadataValue(m *graph.Model, key string) string {
	for _, kv := range m.Metadata {
		if kv.Key == key {
			return kv.Value
		}
	}
	return ""
}

func TestOptimizeCommandErrors(t *testing.T) {
	dir := t.TempDir()
	in := testModel(t, dir)
	out := filepath.Join(dir, "o.onnx")
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"optimize", in}, ExitUsage, "-o"},
		{[]string{"optimize", in, "-o", out, "--passes", "nope"}, ExitUsage, "fold-constants"},
		{[]string{"optimize", in, "-o", out, "--level", "O7"}, ExitUsage, "level"},
		{[]string{"optimize", in, "-o", out, "--shape", "q=1x2"}, ExitUsage, "not a graph input"},
		{[]string{"optimize", filepath.Join(dir, "missing.onnx"), "-o", out}, ExitError, "missing.onnx"},
	}
	for _, tc := range tests {
		var so, se bytes.Buffer
		code := Execute(tc.args, &so, &se)
		if code != tc.code || !strings.Contains(se.String(), tc.want) {
			t.Errorf("%v: exit %d (want %d), stderr %q lacks %q", tc.args, code, tc.code, se.String(), tc.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%v: wrote a model", tc.args)
		}
	}
}

// TestOptimizeRollbackContract: a pass that breaks the model is rolled
// back and the others' verified work is written (exit 0) with a warning
// that names the pass, the failure and a command that reproduces it (the
// pass alone when that fails, else the whole run), and the JSON report
// lists it; --strict turns the rollback into exit 3 with nothing written.
// The reproduce commands, run, do fail.
func TestOptimizeRollbackContract(t *testing.T) {
	for _, p := range []*passes.Pass{
		{Name: "test-cli-break", Doc: "Deliberately break the graph.", Level: passes.O2,
			Run: func(c *passes.Context) (bool, error) {
				c.Graph().Nodes = c.Graph().Nodes[1:]
				return true, nil
			}},
		// Breaks the outputs only once BatchNormalization is gone: alone
		// on the input model it does nothing.
		{Name: "test-cli-late-break", Doc: "Deliberately negate a fused conv's output.", Level: passes.O2,
			Run: func(c *passes.Context) (bool, error) {
				g := c.Graph()
				for _, n := range g.Nodes {
					if n.Is("BatchNormalization") {
						return false, nil
					}
				}
				for _, n := range g.Nodes {
					if n.Is("Identity") && n.Inputs[0] != "neg" {
						g.Nodes = append(g.Nodes, &graph.Node{Name: "neg", OpType: "Neg", Inputs: []string{n.Inputs[0]}, Outputs: []string{"neg"}})
						n.Inputs[0] = "neg"
						return true, g.TopoSort()
					}
				}
				return false, nil
			}},
	} {
		if err := passes.Register(p); err != nil {
			t.Fatal(err)
		}
		defer passes.Unregister(p.Name)
	}
	dir := t.TempDir()
	in := testModel(t, dir)
	tests := []struct {
		name      string
		args      []string
		code      int
		want      []string
		reproduce string // in the reproduce command
	}{
		{"structural break, written without it", []string{"--passes", "fuse-conv-batchnorm,test-cli-break"}, ExitOK,
			[]string{"warning: pass test-cli-break broke the model and was rolled back", "was written without it", "reproduce: optictl optimize "},
			"--passes test-cli-break --strict"},
		{"numeric break after another pass", []string{"--passes", "fuse-conv-batchnorm,test-cli-late-break"}, ExitOK,
			[]string{"warning: pass test-cli-late-break broke the model", `output "y" differs`, "(inputs x=1x2x4x4)"},
			"--passes fuse-conv-batchnorm,test-cli-late-break --strict"},
		{"strict", []string{"--passes", "fuse-conv-batchnorm,test-cli-break", "--strict"}, ExitFailed,
			[]string{"--strict: pass test-cli-break broke the model", "nothing was written"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "o.onnx")
			var so, se bytes.Buffer
			code := Execute(append([]string{"optimize", in, "-o", out}, tc.args...), &so, &se)
			all := so.String() + se.String()
			if code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.code, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
			m, err := graph.Load(out)
			if tc.code != ExitOK {
				if err == nil {
					t.Fatal("wrote a model with --strict after a rollback")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The other pass's gain is kept.
			for _, n := range m.Graph.Nodes {
				if n.Is("BatchNormalization") || n.Is("Neg") {
					t.Fatalf("written model:\n%s", m.Format())
				}
			}
			// --json lists the rolled-back pass and its command.
			so.Reset()
			if code := Execute(append([]string{"optimize", in, "-o", out, "--json"}, tc.args...), &so, &se); code != ExitOK {
				t.Fatalf("--json: exit %d", code)
			}
			var res optimizeResult
			if err := json.Unmarshal(so.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			if len(res.RolledBack) != 1 || !strings.Contains(res.RolledBack[0].Reproduce, tc.reproduce) || !res.Wrote ||
				len(res.Report.Rollbacks) == 0 {
				t.Fatalf("--json rolled_back %+v, wrote %v", res.RolledBack, res.Wrote)
			}
			// The command reproduces the failure.
			args := strings.Fields(res.RolledBack[0].Reproduce)
			if args[0] != "optictl" || args[3] != "-o" {
				t.Fatalf("reproduce %q", res.RolledBack[0].Reproduce)
			}
			args[4] = filepath.Join(t.TempDir(), "r.onnx")
			so.Reset()
			se.Reset()
			if code := Execute(args[1:], &so, &se); code != ExitFailed || !strings.Contains(se.String(), "--strict: pass "+res.RolledBack[0].Pass) {
				t.Fatalf("%v: exit %d:\n%s", args, code, se.String())
			}
		})
	}
}

// TestOptimizeFinalCheckGuards: per-pass checks (seeded inputs in
// [-1, 1)) pass a rewrite that clamps the output, but the final check on
// --data, whose outputs are large, does not: nothing is written, exit 3,
// whether or not --strict is given.
func TestOptimizeFinalCheckGuards(t *testing.T) {
	p := &passes.Pass{Name: "test-cli-clamp", Doc: "Deliberately clamp the output to [-20, 20].", Level: passes.O2,
		Run: func(c *passes.Context) (bool, error) {
			g := c.Graph()
			for _, n := range g.Nodes {
				if n.Is("Identity") && n.Inputs[0] != "clamped" {
					g.Nodes = append(g.Nodes, &graph.Node{Name: "clamp", OpType: "Clip", Inputs: []string{n.Inputs[0], "lo", "hi"}, Outputs: []string{"clamped"}})
					g.Initializers = append(g.Initializers, graph.NewFloat32("lo", nil, []float32{-20}), graph.NewFloat32("hi", nil, []float32{20}))
					n.Inputs[0] = "clamped"
					return true, g.TopoSort()
				}
			}
			return false, nil
		}}
	if err := passes.Register(p); err != nil {
		t.Fatal(err)
	}
	defer passes.Unregister(p.Name)
	dir := t.TempDir()
	in := testModel(t, dir)
	data := filepath.Join(dir, "test_data_set_0")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	x := runtime.NewTensor(graph.Float, []int64{1, 2, 4, 4})
	for i := range x.Float32s() {
		x.Float32s()[i] = 100
	}
	if err := tensorio.SavePB(filepath.Join(data, "input_0.pb"), "x", x); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"--strict"}} {
		out := filepath.Join(t.TempDir(), "o.onnx")
		var so, se bytes.Buffer
		code := Execute(append([]string{"optimize", in, "-o", out, "--passes", "test-cli-clamp", "--data", data}, extra...), &so, &se)
		if code != ExitFailed || !strings.Contains(se.String(), "verification failed") || !strings.Contains(se.String(), "nothing was written") {
			t.Fatalf("%v: exit %d:\n%s%s", extra, code, so.String(), se.String())
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%v: wrote a model that fails the final check", extra)
		}
	}
}

// TestOptimizeNumericBreakNamed: a pass that keeps the graph valid but
// changes its outputs fails the final check; the replay with per-pass
// checks names it and rolls it back: the rest is written (--strict: exit
// 3, nothing written). With --verify-each-pass the report says every pass
// was checked; by default only the final model.
func TestOptimizeNumericBreakNamed(t *testing.T) {
	p := &passes.Pass{Name: "test-cli-numeric-break", Doc: "Deliberately scale a weight.", Level: passes.O2,
		Run: func(c *passes.Context) (bool, error) {
			g := c.Graph()
			w := g.Initializer("w")
			v, err := w.Float32s()
			if err != nil {
				return false, err
			}
			nv := append([]float32(nil), v...)
			for i := range nv {
				nv[i] *= 2
			}
			g.Initializers = append(g.Initializers, graph.NewFloat32("w_x2", w.Dims, nv))
			g.Nodes[0].Inputs[1] = "w_x2"
			return true, nil
		}}
	if err := passes.Register(p); err != nil {
		t.Fatal(err)
	}
	defer passes.Unregister(p.Name)
	dir := t.TempDir()
	in := testModel(t, dir)
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"final check replays", []string{"--passes", "fuse-conv-batchnorm,test-cli-numeric-break", "--verify-each-pass=false"}, ExitOK,
			[]string{"pass test-cli-numeric-break broke the model", `output "y"`, "numeric checks: each-pass (replayed: the final model failed"}},
		{"final check replays, strict", []string{"--passes", "fuse-conv-batchnorm,test-cli-numeric-break", "--verify-each-pass=false", "--strict"}, ExitFailed,
			[]string{"--strict: pass test-cli-numeric-break broke the model", `output "y"`, "nothing was written"}},
		{"each pass (default)", []string{"--passes", "test-cli-numeric-break"}, ExitOK,
			[]string{"pass test-cli-numeric-break broke the model", "numeric checks: each-pass\n"}},
		{"good passes final only", []string{"--passes", "fuse-conv-batchnorm,eliminate-noops", "--verify-each-pass=false"}, ExitOK,
			[]string{"verification: outputs match on interp", "numeric checks: final\n"}},
		{"good passes each pass", []string{"--passes", "fuse-conv-batchnorm,eliminate-noops", "--verify-each-pass"}, ExitOK,
			[]string{"verification: outputs match on interp", "numeric checks: each-pass\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "o.onnx")
			var so, se bytes.Buffer
			code := Execute(append([]string{"optimize", in, "-o", out}, tc.args...), &so, &se)
			all := so.String() + se.String()
			if code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.code, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
			_, err := os.Stat(out)
			if wrote := err == nil; wrote != (tc.code == ExitOK) {
				t.Fatalf("wrote %v with exit %d", wrote, code)
			}
		})
	}
}

func TestPassesCommand(t *testing.T) {
	var so, se bytes.Buffer
	if code := Execute([]string{"passes"}, &so, &se); code != ExitOK {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	for _, p := range passes.All() {
		if !strings.Contains(so.String(), p.Name) {
			t.Errorf("passes output lacks %s", p.Name)
		}
	}
	so.Reset()
	if code := Execute([]string{"passes", "--json"}, &so, &se); code != ExitOK {
		t.Fatal(se.String())
	}
	var list []passInfo
	if err := json.Unmarshal(so.Bytes(), &list); err != nil || len(list) < 20 {
		t.Fatalf("--json: %v (%d passes)", err, len(list))
	}
}

func TestOptimizeQuantFlags(t *testing.T) {
	base := optimizeOptions{Calibrate: "minmax", Percentile: 99.999, CalibSamples: 100, PruneMode: "structured", MaxDrop: -1}
	tests := []struct {
		name string
		mod  func(o *optimizeOptions)
		bad  string
	}{
		{"none", func(o *optimizeOptions) {}, ""},
		{"dynamic", func(o *optimizeOptions) { o.Quantize = "int8-dynamic" }, ""},
		{"fp16", func(o *optimizeOptions) { o.Quantize = "fp16" }, ""},
		{"static", func(o *optimizeOptions) { o.Quantize = "int8-static"; o.Calib = "c" }, ""},
		{"static without calib", func(o *optimizeOptions) { o.Quantize = "int8-static" }, "--calib"},
		{"calib without static", func(o *optimizeOptions) { o.Calib = "c" }, "--calib"},
		{"calib is data", func(o *optimizeOptions) { o.Quantize = "int8-static"; o.Calib = "d/"; o.Data = "d" }, "disjoint"},
		{"bad mode", func(o *optimizeOptions) { o.Quantize = "int4" }, "--quantize"},
		{"bad method", func(o *optimizeOptions) { o.Quantize = "int8-dynamic"; o.Calibrate = "median" }, "--calibrate"},
		{"bad percentile", func(o *optimizeOptions) { o.Quantize = "int8-dynamic"; o.Percentile = 0 }, "--percentile"},
		{"bad samples", func(o *optimizeOptions) { o.Quantize = "int8-dynamic"; o.CalibSamples = 0 }, "--calib-samples"},
		{"bad op type", func(o *optimizeOptions) { o.Quantize = "int8-dynamic"; o.OpTypes = []string{"Relu"} }, "--op-types"},
		{"static op type Add", func(o *optimizeOptions) {
			o.Quantize = "int8-static"
			o.Calib = "c"
			o.OpTypes = []string{"Conv", "Add"}
		}, ""},
		{"dynamic op type Add", func(o *optimizeOptions) { o.Quantize = "int8-dynamic"; o.OpTypes = []string{"Add"} }, "MatMul and Gemm only"},
		{"auto", func(o *optimizeOptions) { o.Quantize = "int8-auto"; o.Data = "d" }, ""},
		{"auto with calib and drop", func(o *optimizeOptions) { o.Quantize = "int8-auto"; o.Data = "d"; o.Calib = "c"; o.MaxDrop = 0.5 }, ""},
		{"auto without data", func(o *optimizeOptions) { o.Quantize = "int8-auto" }, "--data"},
		{"auto with calib only", func(o *optimizeOptions) { o.Quantize = "int8-auto"; o.Calib = "c" }, ""},
		{"auto calib is data", func(o *optimizeOptions) { o.Quantize = "int8-auto"; o.Calib = "d"; o.Data = "d/" }, "disjoint"},
		{"max drop", func(o *optimizeOptions) { o.Quantize = "int8-dynamic"; o.MaxDrop = 1; o.Data = "d" }, ""},
		// without --data the budget is measured on held-out --calib or seeded inputs
		{"max drop without data", func(o *optimizeOptions) { o.Quantize = "int8-dynamic"; o.MaxDrop = 1 }, ""},
		{"max drop without quantize", func(o *optimizeOptions) { o.MaxDrop = 1 }, "--max-accuracy-drop needs --quantize or --prune"},
		{"max drop when pruning", func(o *optimizeOptions) {
			o.Prune, o.MaxDrop = 0.3, 2
			o.PruneReconstruct = true
			o.PruneMinCosine, o.PruneMinTop1 = 0.98, 0.95
		}, ""},
		{"labels without data", func(o *optimizeOptions) { o.Quantize = "int8-dynamic"; o.Labels = "l" }, "--labels needs --data"},
		{"metric iou@0.5", func(o *optimizeOptions) { o.Quantize = "int8-dynamic"; o.Metric = "iou@0.5" }, ""},
		{"bad metric", func(o *optimizeOptions) { o.Quantize = "int8-dynamic"; o.Metric = "map" }, "--metric"},
		{"metric without quantize", func(o *optimizeOptions) { o.Metric = "cosine" }, "--metric needs --quantize or --prune"},
		{"min metric", func(o *optimizeOptions) { o.Quantize = "int8-dynamic"; o.MinMetric = "iou=1.0" }, ""},
		{"min metric and same metric", func(o *optimizeOptions) { o.Quantize = "int8-dynamic"; o.Metric = "iou"; o.MinMetric = "iou@0.3=0.9" }, ""},
		{"min metric other than metric", func(o *optimizeOptions) { o.Quantize = "int8-dynamic"; o.Metric = "cosine"; o.MinMetric = "sqnr=25" }, "--min-metric sqnr=25 bounds sqnr, but --metric is cosine"},
		{"min metric on a drop", func(o *optimizeOptions) { o.Quantize = "int8-dynamic"; o.MinMetric = "agreement=0.99" }, "--max-accuracy-drop"},
		{"max drop with cosine", func(o *optimizeOptions) { o.Quantize = "int8-dynamic"; o.Metric = "cosine"; o.MaxDrop = 1 }, "--min-metric cosine=VALUE"},
		{"budget without verification", func(o *optimizeOptions) { o.Quantize = "int8-dynamic"; o.NoVerify = true; o.MinMetric = "cosine=0.999" }, "--no-verify measures nothing"},
		{"top1 without labels", func(o *optimizeOptions) { o.Quantize = "int8-dynamic"; o.Metric = "top1" }, "--labels"},
		{"prune", func(o *optimizeOptions) {
			o.Prune = 0.3
			o.PruneMode = "unstructured"
			o.PruneReconstruct = true
			o.PruneMinCosine, o.PruneMinTop1 = 0.98, 0.95
		}, ""},
		{"prune too much", func(o *optimizeOptions) { o.Prune = 1 }, "--prune"},
		{"bad prune mode", func(o *optimizeOptions) { o.Prune = 0.3; o.PruneMode = "random" }, "--prune-mode"},
		{"structured prune with calib", func(o *optimizeOptions) { o.Prune = 0.3; o.Calib = "c"; o.PruneMinCosine, o.PruneMinTop1 = 0.98, 0.95 }, ""},
		{"reconstruct off with unstructured", func(o *optimizeOptions) {
			o.Prune = 0.3
			o.PruneMode = "unstructured"
			o.PruneMinCosine, o.PruneMinTop1 = 0.98, 0.95
		}, "--prune-reconstruct"},
		{"calib without quantize or prune", func(o *optimizeOptions) { o.Calib = "c" }, "--calib"},
		{"prune budget out of range", func(o *optimizeOptions) { o.Prune = 0.3; o.PruneMinCosine, o.PruneMinTop1 = 1.5, 0.95 }, "--prune-min-cosine"},
		{"prune top-1 budget out of range", func(o *optimizeOptions) { o.Prune = 0.3; o.PruneMinCosine, o.PruneMinTop1 = 0.98, 0 }, "--prune-min-top1"},
		{"structured prune global", func(o *optimizeOptions) {
			o.Prune = 0.3
			o.PruneGlobal = true
			o.PruneMinCosine, o.PruneMinTop1 = 0.98, 0.95
		}, "--prune-global"},
		{"speedup without quantize", func(o *optimizeOptions) { o.RequireSpeedup = true }, "--require-speedup"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.mod(&o)
			err := o.checkQuantFlags()
			if tc.bad == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ee *exitError
			if err == nil || !strings.Contains(err.Error(), tc.bad) || !asExit(err, &ee) || ee.code != ExitUsage {
				t.Fatalf("got %v, want a usage error about %s", err, tc.bad)
			}
		})
	}
}

func TestOptimizeQuantize(t *testing.T) {
	dir := t.TempDir()
	mlp := filepath.Join("..", "..", "testmodels", "mlp.onnx")
	// calibration data: input_0.pb files in test_data_set folders
	m, err := graph.Load(mlp)
	if err != nil {
		t.Fatal(err)
	}
	calib := filepath.Join(dir, "calib")
	samples, err := quant.SeededSamples(m, 3, 100, numerics.Dims{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range samples {
		d := filepath.Join(calib, fmt.Sprintf("test_data_set_%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := tensorio.SavePB(filepath.Join(d, "input_0.pb"), "input", s[0]); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	evals, err := quant.SeededSamples(m, 2, 500, numerics.Dims{}, 0) // disjoint from calib
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range evals {
		d := filepath.Join(data, fmt.Sprintf("test_data_set_%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := tensorio.SavePB(filepath.Join(d, "input_0.pb"), "input", s[0]); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		args  []string
		want  string
		optyp string // op type that must appear in the output model
	}{
		{[]string{"--quantize", "int8-static", "--calib", calib, "--data", data, "--max-accuracy-drop", "1"}, "accuracy budget: agreement drop 0.00 points, within <= 1 points", "DequantizeLinear"},
		{[]string{"--quantize", "int8-dynamic"}, "int8-dynamic: 3 nodes quantized", "MatMulInteger"},
		{[]string{"--quantize", "int8-static", "--calib", calib, "--calibrate", "percentile"}, "int8-static (percentile): 3 nodes quantized", "QuantizeLinear"},
		{[]string{"--quantize", "fp16"}, "fp16", "Cast"},
		{[]string{"--quantize", "int8-auto", "--calib", calib, "--data", data}, "<- picked", "DequantizeLinear"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args[1:2], ""), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "q.onnx")
			var so, se bytes.Buffer
			if code := Execute(append([]string{"optimize", mlp, "-o", out}, tc.args...), &so, &se); code != ExitOK {
				t.Fatalf("exit %d: %s\n%s", code, se.String(), so.String())
			}
			if !strings.Contains(so.String(), tc.want) || !strings.Contains(so.String(), "quantized vs float") || !strings.Contains(so.String(), "speed") {
				t.Fatalf("output lacks %q:\n%s", tc.want, so.String())
			}
			q, err := graph.Load(out)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, n := range q.Graph.Nodes {
				found = found || n.OpType == tc.optyp
			}
			if !found {
				t.Fatalf("no %s in the written model", tc.optyp)
			}
		})
	}
}

// TestOptimizeRequireSpeedup: with --no-verify the speed is not measured,
// so --require-speedup cannot be met: exit 3 and nothing written. (Whether
// a model is faster is timing, checked by BenchmarkInt8Speedup, not here.)
func TestOptimizeRequireSpeedup(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "q.onnx")
	var so, se bytes.Buffer
	code := Execute([]string{"optimize", filepath.Join("..", "..", "testmodels", "mlp.onnx"), "-o", out, "--quantize", "int8-dynamic", "--no-verify", "--require-speedup"}, &so, &se)
	if code != ExitFailed {
		t.Fatalf("exit %d, want %d:\n%s%s", code, ExitFailed, so.String(), se.String())
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a model was written despite the failed speed requirement")
	}
	if !strings.Contains(so.String()+se.String(), "--require-speedup") {
		t.Fatalf("no explanation:\n%s%s", so.String(), se.String())
	}
}

// TestOptimizePruneThenQuantize: --prune runs after the passes and before
// --quantize; the written model has fewer channels and int8 ops.
func TestOptimizePruneThenQuantize(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join("..", "..", "testmodels", "cnn.onnx")
	out := filepath.Join(dir, "p.onnx")
	var so, se bytes.Buffer
	// 25% of the CNN's channels without reconstruction changes its top-1
	// on seeded inputs: the budget is opened wide (TestOptimizePruneBudget
	// checks that the default refuses it)
	if code := Execute([]string{"optimize", in, "-o", out, "--prune", "0.25", "--quantize", "int8-dynamic", "--max-accuracy-drop", "100", "--json"}, &so, &se); code != ExitOK {
		t.Fatalf("exit %d: %s\n%s", code, se.String(), so.String())
	}
	var res optimizeResult
	if err := json.Unmarshal(so.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.Prune == nil || res.Prune.ChannelsAfter >= res.Prune.ChannelsBefore {
		t.Fatalf("no channels pruned: %+v", res.Prune)
	}
	if res.Quantize == nil || res.Quantize.Report.Int8Ops != 1 {
		t.Fatalf("quantize result %+v", res.Quantize)
	}
	q, err := graph.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestInt8Disable(t *testing.T) {
	tests := []struct {
		quantize string
		passes   []string
		disable  []string
		want     []string
	}{
		{"", nil, []string{"cse"}, []string{"cse"}},
		{"fp16", nil, nil, nil},
		{"int8-static", nil, []string{"cse"}, []string{"cse", "fuse-hardswish"}},
		{"int8-auto", nil, nil, []string{"fuse-hardswish"}},
		{"int8-dynamic", []string{"fuse-hardswish"}, nil, nil},
		{"int8-dynamic", nil, []string{"fuse-hardswish"}, []string{"fuse-hardswish"}},
	}
	for _, tc := range tests {
		o := &optimizeOptions{Quantize: tc.quantize, Passes: tc.passes, Disable: tc.disable}
		if got := int8Disable(o); !slices.Equal(got, tc.want) {
			t.Errorf("%s passes=%v disable=%v: got %v, want %v", tc.quantize, tc.passes, tc.disable, got, tc.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"models/det.onnx", "models/det.onnx"},
		{"x=1x3x64x96", "x=1x3x64x96"},
		{"my model.onnx", "'my model.onnx'"},
		{"it's.onnx", `'it'\''s.onnx'`},
		{"", "''"},
		{"a;rm -rf", "'a;rm -rf'"},
	} {
		if got := shellQuote(tc.in); got != tc.want {
			t.Errorf("shellQuote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
