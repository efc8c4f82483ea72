package passes

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
)

func TestRegistryAndPipelineValid(t *testing.T) {
	if err := Validate(); err != nil {
		t.Fatal(err)
	}
	inPipeline := map[string]bool{}
	for _, s := range pipeline {
		inPipeline[s.Pass] = true
	}
	for _, p := range builtin {
		if !inPipeline[p.Name] {
			t.Errorf("built-in pass %s is not in the pipeline table", p.Name)
		}
		if p.Title() == "" || strings.HasSuffix(p.Title(), "\n") {
			t.Errorf("pass %s: bad title %q", p.Name, p.Title())
		}
	}
	if len(All()) < len(builtin) {
		t.Fatalf("All() lists %d passes, want at least %d", len(All()), len(builtin))
	}
}

func TestRegisterRejects(t *testing.T) {
	run := func(*Context) (bool, error) { return false, nil }
	tests := []struct {
		name string
		p    *Pass
		want string
	}{
		{"not kebab", &Pass{Name: "Bad_Name", Doc: "x", Level: O1, Run: run}, "kebab"},
		{"no doc", &Pass{Name: "test-no-doc", Level: O1, Run: run}, "no doc"},
		{"bad level", &Pass{Name: "test-level", Doc: "x", Level: O0, Run: run}, "level"},
		{"no run", &Pass{Name: "test-no-run", Doc: "x", Level: O1}, "no Run"},
		{"duplicate", &Pass{Name: "fold-constants", Doc: "x", Level: O1, Run: run}, "twice"},
		{"unknown requirement", &Pass{Name: "test-req", Doc: "x", Level: O1, Run: run, Requires: []string{"nope"}}, "unknown pass"},
		{"cycle", &Pass{Name: "test-cycle", Doc: "x", Level: O1, Run: run, Requires: []string{"test-cycle"}}, "cycle"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Register(tc.p)
			if err == nil {
				Unregister(tc.p.Name)
				t.Fatal("registered")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestUnknownPassListsValid(t *testing.T) {
	for _, opts := range []Options{{Passes: []string{"no-such-pass"}}, {Level: O2, Disable: []string{"no-such-pass"}}, {Level: O2, DumpAfter: []string{"no-such-pass"}}} {
		_, _, err := ResolvePasses(opts)
		var up *UnknownPassError
		if !errors.As(err, &up) || !strings.Contains(err.Error(), "fold-constants") {
			t.Fatalf("%+v: got %v, want an UnknownPassError listing valid passes", opts, err)
		}
	}
}

func TestResolveLevels(t *testing.T) {
	names := func(ps []*Pass) map[string]bool {
		m := map[string]bool{}
		for _, p := range ps {
			m[p.Name] = true
		}
		return m
	}
	tests := []struct {
		opts       Options
		has, lacks []string
	}{
		{Options{Level: O0}, nil, []string{"fold-constants"}},
		{Options{Level: O1}, []string{"fold-constants", "eliminate-dead-nodes"}, []string{"fuse-conv-batchnorm", "schedule-memory"}},
		{Options{Level: O2}, []string{"fuse-conv-batchnorm", "schedule-memory"}, []string{"fuse-ort-conv-activation"}},
		{Options{Level: O3}, []string{"fuse-conv-batchnorm"}, []string{"fuse-ort-conv-activation"}},
		{Options{Level: O3, Target: TargetORTCPU}, []string{"fuse-ort-conv-activation", "fuse-ort-gemm-activation"}, nil},
		{Options{Level: O2, Disable: []string{"fuse-conv-batchnorm"}}, []string{"fold-constants"}, []string{"fuse-conv-batchnorm"}},
		{Options{Passes: []string{"fuse-gemm-batchnorm"}}, []string{"fuse-gemm-batchnorm", "fuse-matmul-add"}, []string{"fold-constants"}},
	}
	for _, tc := range tests {
		loop, final, err := ResolvePasses(tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		got := names(append(loop, final...))
		for _, h := range tc.has {
			if !got[h] {
				t.Errorf("%+v: missing %s", tc.opts, h)
			}
		}
		for _, l := range tc.lacks {
			if got[l] {
				t.Errorf("%+v: should not run %s", tc.opts, l)
			}
		}
	}
	if _, _, err := ResolvePasses(Options{Level: O2, Target: "tpu"}); err == nil {
		t.Fatal("unknown target accepted")
	}
}

// convModel is a model the interp backend can run (Conv only).
func convModel() *graph.Model {
	b := newBuilder(13)
	x := b.input("x", graph.Float, 1, 2, 5, 5)
	b.node("Conv", []string{x, b.floats("w", []int64{3, 2, 3, 3}, wave), b.floats("b", []int64{3}, small)}, []string{"c"}, graph.IntsAttr("pads", 1, 1, 1, 1))
	b.node("Conv", []string{"c", b.floats("w2", []int64{2, 3, 1, 1}, pos)}, []string{"out"})
	b.output("out", graph.Float, 1, 2, 5, 5)
	return b.m
}

func withTestPass(t *testing.T, p *Pass) {
	t.Helper()
	if err := Register(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Unregister(p.Name) })
}

func TestRollbackNumeric(t *testing.T) {
	if why, ok := interpSupports([]string{"Conv"}); !ok {
		t.Skip(why)
	}
	withTestPass(t, &Pass{Name: "test-break-weights", Doc: "Deliberately change a weight.", Level: O2,
		Run: func(c *Context) (bool, error) {
			g := c.Graph()
			w := g.Initializer("w2")
			v, _ := w.Float32s()
			nv := append([]float32(nil), v...)
			nv[0] += 1
			name := addInitializer(g, "w2_broken", graph.NewFloat32("", w.Dims, nv))
			g.Nodes[1].Inputs[1] = name
			return true, nil
		}})
	m := convModel()
	out, rep, err := Optimize(m, Options{Passes: []string{"test-break-weights"}, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rollbacks) == 0 {
		t.Fatalf("the broken pass was not rolled back; numeric: %s", rep.Numeric)
	}
	rb := rep.Rollbacks[0]
	if rb.Pass != "test-break-weights" || rb.Output != "out" || !strings.Contains(rb.Reason, "out") {
		t.Fatalf("rollback %+v does not name the pass and output", rb)
	}
	if len(rb.Inputs) != 1 || rb.Inputs[0] != "x=1x2x5x5" {
		t.Fatalf("rollback %+v does not say which input shapes were checked", rb)
	}
	if out.Format() != m.Format() {
		t.Fatal("the rolled-back change is still in the model")
	}
	if !strings.Contains(rep.Numeric, "outputs match") {
		t.Fatalf("final numeric check: %q", rep.Numeric)
	}
}

func TestRollbackVerify(t *testing.T) {
	withTestPass(t, &Pass{Name: "test-break-structure", Doc: "Deliberately drop a producer.", Level: O2,
		Run: func(c *Context) (bool, error) {
			c.Graph().Nodes = c.Graph().Nodes[1:]
			return true, nil
		}})
	withTestPass(t, &Pass{Name: "test-break-output", Doc: "Deliberately rename a graph output.", Level: O2,
		Run: func(c *Context) (bool, error) {
			g := c.Graph()
			g.Nodes[len(g.Nodes)-1].Outputs[0] = "renamed"
			g.Outputs[0].Name = "renamed"
			return true, nil
		}})
	for _, name := range []string{"test-break-structure", "test-break-output"} {
		m := convModel()
		out, rep, err := Optimize(m, Options{Passes: []string{name}})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Rollbacks) != 1 || rep.Rollbacks[0].Pass != name {
			t.Fatalf("%s: rollbacks %+v", name, rep.Rollbacks)
		}
		if out.Format() != m.Format() {
			t.Fatalf("%s: change kept", name)
		}
	}
}

func TestPanicRecovered(t *testing.T) {
	withTestPass(t, &Pass{Name: "test-panic", Doc: "Deliberately panic.", Level: O2,
		Run: func(c *Context) (bool, error) {
			c.Graph().Nodes[0].Inputs = nil
			c.At(c.Graph().Nodes[1])
			var s []int
			_ = s[3]
			return true, nil
		}})
	m := convModel()
	out, rep, err := Optimize(m, Options{Passes: []string{"test-panic"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rollbacks) != 1 {
		t.Fatalf("rollbacks %+v", rep.Rollbacks)
	}
	rb := rep.Rollbacks[0]
	if rb.Pass != "test-panic" || !strings.Contains(rb.Node, "Conv_2") || !strings.Contains(rb.Reason, "panicked") {
		t.Fatalf("rollback %+v does not name pass and node", rb)
	}
	if out.Format() != m.Format() {
		t.Fatal("the panicking pass's partial change was kept")
	}
}

func TestIdempotentGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		target := tc.target
		for _, lvl := range []Level{O2, O3} {
			m := tc.model()
			once, _, err := Optimize(m, Options{Level: lvl, Target: target})
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			twice, rep, err := Optimize(once, Options{Level: lvl, Target: target})
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if once.Format() != twice.Format() {
				t.Errorf("%s %s: not idempotent:\n%s\nvs\n%s", tc.name, lvl, once.Format(), twice.Format())
			}
			for _, st := range rep.Passes {
				if st.Changed > 0 {
					t.Errorf("%s %s: second run: %s changed the model", tc.name, lvl, st.Pass)
				}
			}
		}
	}
}

func TestShapesOverride(t *testing.T) {
	b := newBuilder(13)
	x := b.input("x", graph.Float, 1, 6)
	b.g.Inputs[0].Shape[0] = graph.SymDim("batch")
	b.node("Shape", []string{x}, []string{"s"})
	b.node("Reshape", []string{x, "s"}, []string{"out"})
	b.output("out", graph.Float)
	m := b.m
	out, _, err := Optimize(m, Options{Passes: []string{"fold-shapes"}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Graph.Nodes[0].OpType != "Shape" {
		t.Fatal("folded a dynamic shape")
	}
	out, _, err = Optimize(m, Options{Passes: []string{"fold-shapes"}, Shapes: map[string][]int64{"x": {4, 6}}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Graph.Nodes[0].OpType != "Constant" || out.Graph.Inputs[0].Shape.String() != "[4,6]" {
		t.Fatalf("--shape not applied:\n%s", out.Format())
	}
	for _, bad := range []map[string][]int64{{"y": {1, 6}}, {"x": {1, 6, 1}}, {"x": {2, 5}}} {
		if _, _, err := Optimize(m, Options{Passes: []string{"fold-shapes"}, Shapes: bad}); err == nil {
			t.Errorf("shape override %v accepted", bad)
		}
	}
}

func TestCustomDomainUntouched(t *testing.T) {
	b := newBuilder(13)
	x := b.input("x", graph.Float, 2, 3)
	n := b.node("Identity", []string{x}, []string{"a"})
	n.Domain = "com.example"
	n2 := b.node("Relu", []string{"a"}, []string{"r1"})
	n2.Domain = "com.example"
	b.node("Relu", []string{"a"}, []string{"r2"})
	b.node("Add", []string{"r1", "r2"}, []string{"out"})
	b.output("out", graph.Float, 2, 3)
	b.m.SetOpset("com.example", 1)
	out, _, err := Optimize(b.m, Options{Level: O3, Target: TargetORTCPU})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Format(); !strings.Contains(got, "com.example.Identity") || !strings.Contains(got, "com.example.Relu") {
		t.Fatalf("custom-domain nodes changed:\n%s", got)
	}
}

func TestFreezeInitializers(t *testing.T) {
	if why, ok := interpSupports([]string{"Add"}); !ok {
		t.Skip(why)
	}
	b := newBuilder(9)
	b.m.IRVersion = 3
	x := b.input("x", graph.Float, 2, 3)
	k := b.floats("k", []int64{3}, wave)
	b.input("k", graph.Float, 3) // IR 3: weights are listed as inputs
	b.node("Add", []string{k, b.floats("k2", []int64{3}, pos)}, []string{"s"})
	b.input("k2", graph.Float, 3)
	b.node("Mul", []string{x, "s"}, []string{"out"})
	b.output("out", graph.Float, 2, 3)
	out, _, err := Optimize(b.m, Options{Passes: []string{"fold-constants"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Graph.Nodes) != 2 {
		t.Fatalf("folded an overridable initializer:\n%s", out.Format())
	}
	out, _, err = Optimize(b.m, Options{Passes: []string{"fold-constants"}, FreezeInitializers: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Graph.Nodes) != 1 || len(out.Graph.Inputs) != 1 || out.IRVersion < 4 {
		t.Fatalf("--freeze-initializers did not take effect:\n%s", out.Format())
	}
}

// TestPassFiles checks that every built-in pass records the file it is
// written in, that the file exists, holds the pass's name, and is named
// after the pass or its family: the file's words (split at "_") appear in
// order among the pass name's words (split at "-"), so fuse_conv.go may
// hold fuse-conv-batchnorm but not fuse-gelu.
func TestPassFiles(t *testing.T) {
	for _, p := range builtin {
		base := filepath.Base(p.File)
		if p.File != "pkg/passes/"+base {
			t.Errorf("pass %s: File %q, want pkg/passes/<file>.go", p.Name, p.File)
			continue
		}
		src, err := os.ReadFile(base)
		if err != nil {
			t.Errorf("pass %s: %v", p.Name, err)
			continue
		}
		if !strings.Contains(string(src), `"`+p.Name+`"`) {
			t.Errorf("pass %s: %s does not name it", p.Name, base)
		}
		words := strings.Split(p.Name, "-")
		j := 0
		for _, w := range strings.Split(strings.TrimSuffix(base, ".go"), "_") {
			for j < len(words) && words[j] != w {
				j++
			}
			if j == len(words) {
				t.Errorf("pass %s lives in %s, which is not named after it or its family", p.Name, base)
				break
			}
			j++
		}
	}
}
