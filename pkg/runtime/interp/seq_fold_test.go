package interp

import (
	"context"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// TestSeqConstantFolding checks that a node whose inputs are all constants
// runs once at Open, and that subgraphs see outer constants as constants.
func TestSeqConstantFolding(t *testing.T) {
	w := graph.NewFloat32("W", []int64{1, 2, 1}, []float32{0.5, -0.25})
	r := graph.NewFloat32("R", []int64{1, 2, 2}, []float32{0.1, 0.2, 0.3, 0.4})
	x := graph.NewFloat32("X", []int64{1, 1, 1}, []float32{1})
	rnn := &graph.Node{OpType: "RNN", Inputs: []string{"X", "W", "R"}, Outputs: []string{"", "H"}}
	rnn.SetAttr(graph.IntAttr("hidden_size", 2))
	// A branch reading the outer initializer W and the folded H.
	thenG := &graph.Graph{Name: "then", Outputs: []*graph.ValueInfo{{Name: "H"}}}
	elseG := &graph.Graph{Name: "else", Outputs: []*graph.ValueInfo{{Name: "W"}}}
	iff := &graph.Node{OpType: "If", Inputs: []string{"cond"}, Outputs: []string{"out"}}
	iff.SetAttr(graph.GraphAttr("then_branch", thenG))
	iff.SetAttr(graph.GraphAttr("else_branch", elseG))
	g := &graph.Graph{
		Nodes:        []*graph.Node{rnn, iff},
		Initializers: []*graph.Tensor{w, r, x},
		Inputs:       []*graph.ValueInfo{{Name: "cond"}},
		Outputs:      []*graph.ValueInfo{{Name: "H"}, {Name: "out"}},
	}
	s, err := Open(&graph.Model{Opsets: []graph.OpsetImport{{Version: 14}}, Graph: g}, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.prog.steps); n != 1 || s.prog.steps[0].node != iff {
		t.Fatalf("%d run-time steps, want only the If", n)
	}
	want := []float32{seqTanh(0.5), seqTanh(-0.25)}
	for _, cond := range []byte{1, 0} {
		c := &runtime.Tensor{DType: graph.Bool, Shape: []int64{}, Raw: []byte{cond}}
		out, err := s.Run(context.Background(), []*runtime.Tensor{c})
		if err != nil {
			t.Fatal(err)
		}
		h := out[0].Float32s()
		if len(h) != 2 || h[0] != want[0] || h[1] != want[1] {
			t.Fatalf("H = %v, want %v", h, want)
		}
		o := out[1].Float32s()
		if cond == 1 && o[0] != want[0] || cond == 0 && o[0] != 0.5 {
			t.Fatalf("cond %d: out = %v", cond, o)
		}
	}
}
