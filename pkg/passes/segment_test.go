package passes

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
)

// segmentModel is a chain of MatMul+Add+Relu blocks with a skip connection
// from the first block to the last, an intermediate graph output, a
// weight read in two places, a dead node, and an If whose branches read an
// outer value, so that cuts fall across all of them.
func segmentModel() *graph.Model {
	b := newBuilder(13)
	const d = 16
	x := b.input("x", graph.Float, 2, d)
	shared := b.floats("shared", []int64{d, d}, wave)
	cur := x
	for i := 0; i < 6; i++ {
		s := itoa(i)
		w := b.floats("w"+s, []int64{d, d}, func(k int) float32 { return float32((k*7+i)%13)/26 - 0.25 })
		b.node("MatMul", []string{cur, w}, []string{"mm" + s})
		b.node("Add", []string{"mm" + s, b.floats("b"+s, []int64{d}, small)}, []string{"a" + s})
		b.node("Relu", []string{"a" + s}, []string{"r" + s})
		cur = "r" + s
		if i == 2 {
			b.node("Neg", []string{cur}, []string{"dead"})
		}
	}
	b.node("MatMul", []string{"r0", shared}, []string{"skip0"})
	b.node("MatMul", []string{cur, shared}, []string{"late"})
	b.node("Add", []string{"late", "skip0"}, []string{"sum"})
	then := &graph.Graph{Name: "then", Outputs: []*graph.ValueInfo{{Name: "t_out", DType: graph.Float, HasType: true}},
		Nodes: []*graph.Node{{Name: "t", OpType: "Relu", Inputs: []string{"sum"}, Outputs: []string{"t_out"}}}}
	els := &graph.Graph{Name: "else", Outputs: []*graph.ValueInfo{{Name: "e_out", DType: graph.Float, HasType: true}},
		Nodes: []*graph.Node{{Name: "e", OpType: "Neg", Inputs: []string{"r1"}, Outputs: []string{"e_out"}}}}
	b.g.Initializers = append(b.g.Initializers, graph.NewRaw("cond", graph.Bool, nil, []byte{1}))
	b.node("If", []string{"cond"}, []string{"out"}, graph.GraphAttr("then_branch", then), graph.GraphAttr("else_branch", els))
	b.output("out", graph.Float, 2, d)
	b.output("r3", graph.Float, 2, d)
	b.output("x", graph.Float, 2, d) // an input passed straight through
	return b.m
}

func TestSegmentedRunMatchesWhole(t *testing.T) {
	if why, ok := interpSupports([]string{"MatMul", "Add", "Relu", "Neg", "If"}); !ok {
		t.Skip(why)
	}
	m := segmentModel()
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	in, err := seededInputs(m, nil, 7)
	if err != nil {
		t.Fatal(err)
	}
	opts := runtime.Options{OptLevel: "off"}
	s, err := runtime.Open("interp", m, opts)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := runtime.RunNamed(context.Background(), s, in)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	var total int64
	for _, w := range m.Graph.Initializers {
		total += w.Bytes()
	}
	tests := []struct {
		name    string
		limit   int64
		minSegs int
	}{
		{"one weight per segment", 16 * 16 * 4, 6},
		{"three weights per segment", 3 * 16 * 16 * 4, 2},
		{"everything fits", total, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			segs := splitSegments(m.Graph, tc.limit)
			if len(segs) < tc.minSegs {
				t.Fatalf("%d segments, want at least %d", len(segs), tc.minSegs)
			}
			var n int
			for _, seg := range segs {
				n += len(seg)
			}
			if n != len(m.Graph.Nodes) {
				t.Fatalf("segments hold %d nodes, the graph %d", n, len(m.Graph.Nodes))
			}
			got, err := runSegments("interp", m, segs, in, opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range m.Graph.Outputs {
				if err := compareTensor(whole[v.Name], got[v.Name], numerics.Tolerance{ATol: 1e-6, RTol: 1e-6}); err != nil {
					t.Fatalf("output %s: %v", v.Name, err)
				}
			}
		})
	}
}

// TestSegmentedVerificationCatchesBreak: with verification cut into
// segments, a pass that changes one weight deep inside the model is still
// caught, rolled back and named.
func TestSegmentedVerificationCatchesBreak(t *testing.T) {
	if why, ok := interpSupports([]string{"MatMul", "Add", "Relu", "Neg", "If"}); !ok {
		t.Skip(why)
	}
	old := verifySegmentBytes
	verifySegmentBytes = 2 * 16 * 16 * 4
	t.Cleanup(func() { verifySegmentBytes = old })
	withTestPass(t, &Pass{Name: "test-break-w4", Doc: "Deliberately change a weight.", Level: O2,
		Run: func(c *Context) (bool, error) {
			g := c.Graph()
			w := g.Initializer("w4")
			if w == nil {
				return false, nil
			}
			v, _ := w.Float32s()
			nv := append([]float32(nil), v...)
			for i := range nv {
				nv[i] += 0.5
			}
			name := addInitializer(g, "w4_broken", graph.NewFloat32("", w.Dims, nv))
			for _, n := range g.Nodes {
				for i, in := range n.Inputs {
					if in == "w4" {
						n.Inputs[i] = name
					}
				}
			}
			return true, nil
		}})
	m := segmentModel()
	out, rep, err := Optimize(m, Options{Passes: []string{"fuse-matmul-add", "test-break-w4", "eliminate-dead-nodes"}, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rollbacks) == 0 || rep.Rollbacks[0].Pass != "test-break-w4" {
		for _, st := range rep.Passes {
			t.Logf("%+v", *st)
		}
		t.Fatalf("rollbacks %+v; numeric %s (%s)", rep.Rollbacks, rep.Numeric, rep.NumericMode)
	}
	if out.Graph.Initializer("w4_broken") != nil {
		t.Fatal("the broken weight is still in the model")
	}
	if rep.After.Ops["Gemm"] == 0 {
		t.Fatalf("the good pass was rolled back too: %v", rep.After.Ops)
	}
}

// TestSegmentedRealModels: on every real model the interp backend runs, a
// run cut into segments of at most 32 KB of weights gives the whole run's
// outputs (or fails, and verification then runs the model whole).
func TestSegmentedRealModels(t *testing.T) {
	for _, path := range realModels(t) {
		name := filepath.Base(filepath.Dir(path)) + "/" + filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			m, err := graph.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			shapes := map[string][]int64{}
			for k, v := range dataInputs(m, path) {
				shapes[k] = v.Shape
			}
			in, err := seededInputs(m, shapes, 11)
			if err != nil {
				t.Skipf("no seeded inputs: %v", err)
			}
			opts := runtime.Options{OptLevel: "off"}
			s, err := runtime.Open("interp", m, opts)
			if err != nil {
				t.Skipf("interp cannot run it: %v", err)
			}
			whole, err := runtime.RunNamed(context.Background(), s, in)
			s.Close()
			if err != nil {
				t.Skipf("interp cannot run it: %v", err)
			}
			segs := splitSegments(m.Graph, 32<<10)
			got, err := runSegments("interp", m, segs, in, opts)
			if err != nil {
				t.Logf("%d segments fail (verification would run it whole): %v", len(segs), err)
				return
			}
			for _, v := range m.Graph.Outputs {
				if err := compareTensor(whole[v.Name], got[v.Name], numerics.Tolerance{ATol: 1e-5, RTol: 1e-4}); err != nil {
					t.Fatalf("%d segments: output %s: %v", len(segs), v.Name, err)
				}
			}
			t.Logf("%d segments match the whole run", len(segs))
		})
	}
}
