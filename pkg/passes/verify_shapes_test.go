package passes

import (
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/build"
	"github.com/optictl/optictl/pkg/runtime"
)

// detectorLike is x[N,3,H,W] -> Conv stride 2 -> Resize x2 (nearest) -> y:
// the downsample/upsample structure of a detector with dynamic H and W.
func detectorLike(t *testing.T) *graph.Model {
	t.Helper()
	b := build.New("det", 13)
	x := b.Input("x", graph.Float, build.Dims("N", 3, "H", "W"))
	w := make([]float32, 4*3*3*3)
	for i := range w {
		w[i] = float32(i%7)/7 - 0.4
	}
	c := b.Node("Conv", []string{x, b.Float32("w", []int64{4, 3, 3, 3}, w)}, graph.IntsAttr("strides", 2, 2), graph.IntsAttr("pads", 1, 1, 1, 1))
	scales := b.Float32("scales", []int64{4}, []float32{1, 1, 2, 2})
	y := b.Node("Resize", []string{c, "", scales}, graph.StringAttr("mode", "nearest"))
	b.Output(y, graph.Float, build.Dims("N", 4, "?", "?"))
	m, err := b.Model()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestVerifyWithoutDataUsesRealisticShapes reproduces issue 12's "wrong
// model written with exit 0": a rewrite whose bug shows only at realistic
// spatial sizes (Resize's nearest mode turned linear: on a 1x1 map both
// give the same constant) passed verification when seeded inputs set every
// dynamic dim to 1. Without --data the check must now catch and roll it
// back, and say which shapes it checked.
func TestVerifyWithoutDataUsesRealisticShapes(t *testing.T) {
	if why, ok := interpSupports([]string{"Conv", "Resize"}); !ok {
		t.Skip(why)
	}
	withTestPass(t, &Pass{Name: "test-break-resize-mode", Doc: "Deliberately change Resize's interpolation mode.", Level: O2,
		Run: func(c *Context) (bool, error) {
			for _, n := range c.Graph().Nodes {
				if n.OpType == "Resize" && n.AttrString("mode", "nearest") == "nearest" {
					n.SetAttr(graph.StringAttr("mode", "linear"))
					return true, nil
				}
			}
			return false, nil
		}})
	cases := []struct {
		name       string
		shapes     map[string][]int64
		rolledBack bool
		numeric    []string
	}{
		// The old behaviour, forced with --shape 1x3x1x1: the bug is invisible.
		{"all dims 1 cannot see the bug", map[string][]int64{"x": {1, 3, 1, 1}}, false, []string{"x=1x3x1x1"}},
		// Without --shape or --data: representative shapes (stride 2 divides them).
		{"representative shapes catch it", nil, true, []string{"2 seeded input sets", "x=1x3x64x64", "x=2x3x64x66"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, rep, err := Optimize(detectorLike(t), Options{Passes: []string{"test-break-resize-mode"}, Verify: true, Shapes: c.shapes})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(rep.Rollbacks) > 0; got != c.rolledBack {
				t.Fatalf("rolled back %v, want %v (rollbacks %+v; numeric %q)", got, c.rolledBack, rep.Rollbacks, rep.Numeric)
			}
			if c.rolledBack && rep.Rollbacks[0].Pass != "test-break-resize-mode" {
				t.Fatalf("rollback names %q", rep.Rollbacks[0].Pass)
			}
			for _, s := range c.numeric {
				if !strings.Contains(rep.Numeric, s) {
					t.Fatalf("numeric report %q lacks %q", rep.Numeric, s)
				}
			}
		})
	}
}

// TestVerifyDataDims: with data, the seeded sets take its dims (here a
// 1x3x20x36 --data input), not the representative ones.
func TestVerifyDataDims(t *testing.T) {
	if why, ok := interpSupports([]string{"Conv", "Resize"}); !ok {
		t.Skip(why)
	}
	m := detectorLike(t)
	for _, c := range []struct {
		name string
		opts Options
		want string
	}{
		{"--calib shapes", Options{DataShapes: map[string][]int64{"x": {1, 3, 20, 36}}}, "1 seeded input set (x=1x3x20x36)"},
		{"--data", Options{Inputs: map[string]*runtime.Tensor{"x": runtime.NewTensor(graph.Float, []int64{1, 3, 20, 36})}}, "1 seeded input set (x=1x3x20x36) + --data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := c.opts
			o.Verify, o.Passes = true, []string{"eliminate-noops"}
			_, rep, err := Optimize(m, o)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(rep.Numeric, c.want) {
				t.Fatalf("numeric %q lacks %q", rep.Numeric, c.want)
			}
		})
	}
}

// TestVerifySkipsShapesTheOriginalRejects: a model that hard-codes batch 1
// (Reshape to [1, 8]) cannot run the batch-2 set; that set is left out,
// the batch-1 set still checks the model.
func TestVerifySkipsShapesTheOriginalRejects(t *testing.T) {
	b := build.New("b1", 13)
	x := b.Input("x", graph.Float, build.Dims("N", 8))
	y := b.Node("Reshape", []string{x, b.Int64("shape", []int64{2}, 1, 8)})
	b.Output(b.Node("Relu", []string{y}), graph.Float, build.Dims(1, 8))
	m, err := b.Model()
	if err != nil {
		t.Fatal(err)
	}
	_, rep, err := Optimize(m, Options{Verify: true, Passes: []string{"eliminate-noops"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.Numeric, "outputs match") || !strings.Contains(rep.Numeric, "1 seeded input set (x=1x8)") {
		t.Fatalf("numeric %q", rep.Numeric)
	}
}

// TestVerifyFallsBackToOnes: a model that runs only with every dynamic dim
// 1 (Reshape to [1, 1]) is still checked, on the all-ones set, and the
// report says why.
func TestVerifyFallsBackToOnes(t *testing.T) {
	b := build.New("ones", 13)
	x := b.Input("x", graph.Float, build.Dims("N", "L"))
	y := b.Node("Reshape", []string{x, b.Int64("shape", []int64{2}, 1, 1)})
	b.Output(b.Node("Relu", []string{y}), graph.Float, build.Dims(1, 1))
	m, err := b.Model()
	if err != nil {
		t.Fatal(err)
	}
	_, rep, err := Optimize(m, Options{Verify: true, Passes: []string{"eliminate-noops"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.Numeric, "outputs match") || !strings.Contains(rep.Numeric, "1 seeded input set (x=1x1), dynamic dims 1 because") {
		t.Fatalf("numeric %q", rep.Numeric)
	}
}
