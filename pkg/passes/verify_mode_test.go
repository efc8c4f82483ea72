package passes

import (
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// countingBackend wraps the interp backend and counts sessions, to check
// how many model runs each verification mode costs.
type countingBackend struct {
	runtime.Backend
	name  string
	opens *int
}

func (c countingBackend) Name() string { return c.name }
func (c countingBackend) Open(m *graph.Model, o runtime.Options) (runtime.Session, error) {
	*c.opens++
	return c.Backend.Open(m, o)
}

func withCountingInterp(t *testing.T) (string, *int) {
	t.Helper()
	in, err := runtime.Get("interp")
	if err != nil {
		t.Skip("interp backend not linked in")
	}
	opens := new(int)
	name := "test-counting-interp"
	if _, err := runtime.Get(name); err != nil {
		runtime.Register(countingBackend{Backend: in, name: name, opens: opens})
	}
	b, _ := runtime.Get(name)
	return name, b.(countingBackend).opens
}

// TestVerifyModes checks the final-only numeric check and its replay: a
// pipeline of good passes costs two runs (original, final model) whatever
// the number of passes; a broken pass makes the final check fail, and the
// replay with per-pass checks rolls it back by name; VerifyEachPass checks
// after every pass from the start.
func TestVerifyModes(t *testing.T) {
	if why, ok := interpSupports([]string{"Conv", "Relu", "Identity"}); !ok {
		t.Skip(why)
	}
	backend, opens := withCountingInterp(t)
	withTestPass(t, &Pass{Name: "test-break-w2", Doc: "Deliberately change a weight.", Level: O2,
		Run: func(c *Context) (bool, error) {
			g := c.Graph()
			w := g.Initializer("w2")
			if w == nil {
				return false, nil
			}
			v, _ := w.Float32s()
			nv := append([]float32(nil), v...)
			nv[0] += 1
			name := addInitializer(g, "w2_broken", graph.NewFloat32("", w.Dims, nv))
			for _, n := range g.Nodes {
				for i, in := range n.Inputs {
					if in == "w2" {
						n.Inputs[i] = name
					}
				}
			}
			return true, nil
		}})
	// convModel with Identity/Relu chains for the cleanups to remove.
	model := func() *graph.Model {
		b := newBuilder(13)
		x := b.input("x", graph.Float, 1, 2, 5, 5)
		b.node("Identity", []string{x}, []string{"i0"})
		b.node("Conv", []string{"i0", b.floats("w", []int64{3, 2, 3, 3}, wave), b.floats("b", []int64{3}, small)}, []string{"c"}, graph.IntsAttr("pads", 1, 1, 1, 1))
		b.node("Identity", []string{"c"}, []string{"i1"})
		b.node("Relu", []string{"i1"}, []string{"r"})
		b.node("Conv", []string{"r", b.floats("w2", []int64{2, 3, 1, 1}, pos)}, []string{"out"})
		b.output("out", graph.Float, 1, 2, 5, 5)
		return b.m
	}
	tests := []struct {
		name      string
		passes    []string
		eachPass  bool
		mode      string // prefix of Report.NumericMode
		rollback  string // the pass rolled back, if any
		maxOpens  int
		minOpens  int
		wantNodes int
	}{
		{"final only", []string{"eliminate-noops", "eliminate-dead-nodes"}, false, "final", "", 2, 2, 3},
		{"each pass", []string{"eliminate-noops", "eliminate-dead-nodes"}, true, "each-pass", "", 4, 3, 3},
		{"broken pass replayed", []string{"eliminate-noops", "test-break-w2"}, false, "each-pass (replayed: the final model failed", "test-break-w2", 100, 5, 3},
		{"broken pass each pass", []string{"test-break-w2", "eliminate-noops"}, true, "each-pass", "test-break-w2", 100, 3, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			*opens = 0
			m := model()
			out, rep, err := Optimize(m, Options{Passes: tc.passes, Verify: true, VerifyEachPass: tc.eachPass, Backend: backend})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(rep.NumericMode, tc.mode) {
				t.Fatalf("numeric mode %q, want %q...", rep.NumericMode, tc.mode)
			}
			if !strings.HasPrefix(rep.Numeric, "outputs match on "+backend) {
				t.Fatalf("numeric %q", rep.Numeric)
			}
			switch {
			case tc.rollback == "" && len(rep.Rollbacks) > 0:
				t.Fatalf("unexpected rollbacks %+v", rep.Rollbacks)
			case tc.rollback != "" && len(rep.Rollbacks) == 0:
				t.Fatalf("no rollback, want %s rolled back", tc.rollback)
			}
			for _, rb := range rep.Rollbacks {
				// The broken pass runs (and is rolled back) once per round.
				if rb.Pass != tc.rollback || rb.Output != "out" {
					t.Fatalf("rollback %+v, want %s naming output out", rb, tc.rollback)
				}
			}
			if n := len(out.Graph.Nodes); n != tc.wantNodes {
				t.Fatalf("%d nodes left, want %d:\n%s", n, tc.wantNodes, out.Format())
			}
			if out.Graph.Initializer("w2_broken") != nil {
				t.Fatal("the broken weight is still in the model")
			}
			if *opens < tc.minOpens || *opens > tc.maxOpens {
				t.Fatalf("%d verification sessions, want %d..%d", *opens, tc.minOpens, tc.maxOpens)
			}
		})
	}
}

// TestVerifyKeepsWeightsIntact: verification sessions alias the model's
// weights (runtime.FromGraphTensor), so no run may write into them.
func TestVerifyKeepsWeightsIntact(t *testing.T) {
	if why, ok := interpSupports([]string{"Conv", "BatchNormalization", "Add", "Relu", "MatMul"}); !ok {
		t.Skip(why)
	}
	// Conv -> BatchNormalization -> Add -> Relu (the interp backend fuses
	// this chain into the Conv's weights at Open) and MatMul (pre-packed).
	b := newBuilder(13)
	x := b.input("x", graph.Float, 1, 2, 5, 5)
	b.node("Conv", []string{x, b.floats("w", []int64{3, 2, 3, 3}, wave), b.floats("cb", []int64{3}, small)}, []string{"c"}, graph.IntsAttr("pads", 1, 1, 1, 1))
	b.node("BatchNormalization", []string{"c", b.floats("s", []int64{3}, pos), b.floats("bb", []int64{3}, small),
		b.floats("mean", []int64{3}, wave), b.floats("var", []int64{3}, pos)}, []string{"n"})
	b.node("Add", []string{"n", b.floats("shift", []int64{1, 3, 1, 1}, small)}, []string{"a"})
	b.node("Relu", []string{"a"}, []string{"r"})
	b.node("MatMul", []string{"r", b.floats("mw", []int64{5, 4}, wave)}, []string{"out"})
	b.output("out", graph.Float, 1, 3, 5, 4)
	m := b.m
	before := map[string]string{}
	for _, w := range m.Graph.Initializers {
		before[w.Name] = string(w.Raw)
	}
	_, rep, err := Optimize(m, Options{Level: O2, Verify: true, VerifyEachPass: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rep.Numeric, "outputs match on interp") || len(rep.Rollbacks) > 0 {
		t.Fatalf("numeric %q, rollbacks %+v", rep.Numeric, rep.Rollbacks)
	}
	for _, w := range m.Graph.Initializers {
		if string(w.Raw) != before[w.Name] {
			t.Fatalf("verification changed the bytes of initializer %s (sessions alias weights and must never write them)", w.Name)
		}
	}
}
