package interp

import (
	"context"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// seqLoopModel: Loop(M, cond, y0) with body y = y + i, scan = y.
func seqLoopModel(t *testing.T, maxMemory int64) *Session {
	t.Helper()
	body := &graph.Graph{
		Name:   "body",
		Inputs: []*graph.ValueInfo{{Name: "i"}, {Name: "c_in"}, {Name: "y_in"}},
		Nodes: []*graph.Node{
			{OpType: "Identity", Domain: seqShimDomain, Inputs: []string{"c_in"}, Outputs: []string{"c_out"}},
			{OpType: "Add", Domain: seqShimDomain, Inputs: []string{"y_in", "i"}, Outputs: []string{"y_out"}},
			{OpType: "Identity", Domain: seqShimDomain, Inputs: []string{"y_out"}, Outputs: []string{"scan"}},
		},
		Outputs: []*graph.ValueInfo{{Name: "c_out"}, {Name: "y_out"}, {Name: "scan", DType: graph.Int64, Shape: graph.DimsOf(), HasShape: true}},
	}
	loop := &graph.Node{OpType: "Loop", Inputs: []string{"M", "cond", "y0"}, Outputs: []string{"y", "ys"}}
	loop.SetAttr(graph.GraphAttr("body", body))
	g := &graph.Graph{
		Nodes:   []*graph.Node{loop},
		Inputs:  []*graph.ValueInfo{{Name: "M"}, {Name: "cond"}, {Name: "y0"}},
		Outputs: []*graph.ValueInfo{{Name: "y"}, {Name: "ys"}},
	}
	s, err := Open(&graph.Model{Opsets: []graph.OpsetImport{{Version: 16}}, Graph: g}, runtime.Options{Threads: 1, MaxMemory: maxMemory})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSeqLoop(t *testing.T) {
	s := seqLoopModel(t, 0)
	i64 := func(v int64) *runtime.Tensor { return runtime.FromInt64([]int64{}, []int64{v}) }
	tru := &runtime.Tensor{DType: graph.Bool, Shape: []int64{}, Raw: []byte{1}}
	fal := &runtime.Tensor{DType: graph.Bool, Shape: []int64{}, Raw: []byte{0}}
	cases := []struct {
		name  string
		m     int64
		cond  *runtime.Tensor
		y0    int64
		want  int64
		scans []int64
	}{
		{"five", 5, tru, 0, 10, []int64{0, 1, 3, 6, 10}},
		{"start 100", 3, tru, 100, 103, []int64{100, 101, 103}},
		{"zero trips", 0, tru, 7, 7, nil},
		{"cond false", 5, fal, 7, 7, nil},
		{"again five", 5, tru, 0, 10, []int64{0, 1, 3, 6, 10}},
	}
	for _, c := range cases {
		out, err := s.Run(context.Background(), []*runtime.Tensor{i64(c.m), c.cond, i64(c.y0)})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := out[0].Int64s()[0]; got != c.want {
			t.Errorf("%s: y = %d, want %d", c.name, got, c.want)
		}
		if got := out[1]; len(got.Shape) != 1 || int(got.Shape[0]) != len(c.scans) {
			t.Errorf("%s: scan shape %v, want [%d]", c.name, got.Shape, len(c.scans))
		} else {
			for k, v := range got.Int64s() {
				if v != c.scans[k] {
					t.Errorf("%s: scan[%d] = %d, want %d", c.name, k, v, c.scans[k])
				}
			}
		}
	}
	// The inputs are never written.
	y0 := i64(5)
	if _, err := s.Run(context.Background(), []*runtime.Tensor{i64(3), tru, y0}); err != nil || y0.Int64s()[0] != 5 {
		t.Fatalf("loop wrote its input: %v %v", y0.Int64s(), err)
	}
	// Bad M and cond are errors, not panics.
	if _, err := s.Run(context.Background(), []*runtime.Tensor{runtime.FromInt64([]int64{2}, []int64{1, 2}), tru, i64(0)}); err == nil {
		t.Error("two-element M accepted")
	}
	if _, err := s.Run(context.Background(), []*runtime.Tensor{i64(2), i64(1), i64(0)}); err == nil {
		t.Error("int64 cond accepted")
	}
	// A loop that would accumulate past --max-memory stops with an error.
	big := seqLoopModel(t, 4096)
	_, err := big.Run(context.Background(), []*runtime.Tensor{i64(1 << 40), tru, i64(0)})
	if err == nil || !strings.Contains(err.Error(), "bound") {
		t.Fatalf("unbounded loop: %v", err)
	}
	// Cancellation stops a long loop.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Run(ctx, []*runtime.Tensor{i64(1 << 40), tru, i64(0)}); err == nil {
		t.Fatal("cancelled loop ran on")
	}
}

func TestSeqScanAxes(t *testing.T) {
	body := &graph.Graph{
		Name:   "body",
		Inputs: []*graph.ValueInfo{{Name: "s_in"}, {Name: "x_t"}},
		Nodes: []*graph.Node{
			{OpType: "Add", Domain: seqShimDomain, Inputs: []string{"s_in", "x_t"}, Outputs: []string{"s_out"}},
			{OpType: "Identity", Domain: seqShimDomain, Inputs: []string{"s_out"}, Outputs: []string{"y_t"}},
		},
		Outputs: []*graph.ValueInfo{{Name: "s_out"}, {Name: "y_t"}},
	}
	scan := &graph.Node{OpType: "Scan", Inputs: []string{"s0", "x"}, Outputs: []string{"s", "y"}}
	scan.SetAttr(graph.GraphAttr("body", body))
	scan.SetAttr(graph.IntAttr("num_scan_inputs", 1))
	scan.SetAttr(graph.IntsAttr("scan_input_axes", 1))
	scan.SetAttr(graph.IntsAttr("scan_input_directions", 1))
	scan.SetAttr(graph.IntsAttr("scan_output_axes", -1))
	scan.SetAttr(graph.IntsAttr("scan_output_directions", 1))
	g := &graph.Graph{Nodes: []*graph.Node{scan}, Inputs: []*graph.ValueInfo{{Name: "s0"}, {Name: "x"}}, Outputs: []*graph.ValueInfo{{Name: "s"}, {Name: "y"}}}
	s, err := Open(&graph.Model{Opsets: []graph.OpsetImport{{Version: 16}}, Graph: g}, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	x := runtime.FromFloat32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	s0 := runtime.FromFloat32([]int64{2}, []float32{0, 0})
	for run := 0; run < 2; run++ {
		out, err := s.Run(context.Background(), []*runtime.Tensor{s0, x})
		if err != nil {
			t.Fatal(err)
		}
		if got := out[0].Float32s(); got[0] != 6 || got[1] != 15 {
			t.Fatalf("final state %v, want [6 15]", got)
		}
		want := []float32{6, 5, 3, 15, 11, 6}
		if runtime.ShapeString(out[1].Shape) != "[2,3]" {
			t.Fatalf("scan output shape %v", out[1].Shape)
		}
		for i, v := range out[1].Float32s() {
			if v != want[i] {
				t.Fatalf("scan output %v, want %v", out[1].Float32s(), want)
			}
		}
	}
	if _, err := s.Run(context.Background(), []*runtime.Tensor{s0, runtime.FromFloat32([]int64{3}, []float32{1, 2, 3})}); err == nil {
		t.Fatal("axis 1 of a 1-D input accepted")
	}
}

// BenchmarkSeqExecOverhead measures the executor's per-node cost: a chain
// of 256 pass-through nodes (ns/op / 256 = dispatch cost per node).
func BenchmarkSeqExecOverhead(b *testing.B) {
	g := &graph.Graph{Inputs: []*graph.ValueInfo{{Name: "v0"}}}
	prev := "v0"
	for i := 1; i <= 256; i++ {
		out := "v" + itoa(i)
		g.Nodes = append(g.Nodes, &graph.Node{OpType: "Identity", Domain: seqShimDomain, Inputs: []string{prev}, Outputs: []string{out}})
		prev = out
	}
	g.Outputs = []*graph.ValueInfo{{Name: prev}}
	s, err := Open(&graph.Model{Opsets: []graph.OpsetImport{{Version: 16}}, Graph: g}, runtime.Options{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	in := []*runtime.Tensor{runtime.FromFloat32([]int64{1}, []float32{1})}
	ctx := context.Background()
	b.ReportAllocs()
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	b.ResetTimer()
	cpu0 := seqThreadCPU()
	for i := 0; i < b.N; i++ {
		if _, err := s.Run(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	seqReportCPU(b, cpu0)
}

// TestSeqKernelPanic: a panicking kernel, even inside an If branch, gives
// an error naming the node, and the session keeps working.
func TestSeqKernelPanic(t *testing.T) {
	then := &graph.Graph{Name: "then", Nodes: []*graph.Node{{Name: "boom", OpType: "Panic", Domain: seqShimDomain, Inputs: []string{"x"}, Outputs: []string{"y"}}},
		Outputs: []*graph.ValueInfo{{Name: "y"}}}
	els := &graph.Graph{Name: "else", Nodes: []*graph.Node{{OpType: "Identity", Domain: seqShimDomain, Inputs: []string{"x"}, Outputs: []string{"z"}}},
		Outputs: []*graph.ValueInfo{{Name: "z"}}}
	iff := &graph.Node{OpType: "If", Inputs: []string{"c"}, Outputs: []string{"out"}}
	iff.SetAttr(graph.GraphAttr("then_branch", then))
	iff.SetAttr(graph.GraphAttr("else_branch", els))
	g := &graph.Graph{Nodes: []*graph.Node{iff}, Inputs: []*graph.ValueInfo{{Name: "c"}, {Name: "x"}}, Outputs: []*graph.ValueInfo{{Name: "out"}}}
	s, err := Open(&graph.Model{Opsets: []graph.OpsetImport{{Version: 16}}, Graph: g}, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	tru := &runtime.Tensor{DType: graph.Bool, Shape: []int64{}, Raw: []byte{1}}
	x3 := runtime.FromFloat32([]int64{3}, []float32{1, 2, 3})
	_, err = s.Run(context.Background(), []*runtime.Tensor{tru, x3})
	if err == nil || !strings.Contains(err.Error(), "internal error") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("panic not reported with the node: %v", err)
	}
	x2 := runtime.FromFloat32([]int64{2}, []float32{1, 2})
	out, err := s.Run(context.Background(), []*runtime.Tensor{tru, x2})
	if err != nil || out[0].Len() != 2 {
		t.Fatalf("session broken after a panic: %v", err)
	}
	if _, err := s.Run(context.Background(), []*runtime.Tensor{&runtime.Tensor{DType: graph.Int64, Shape: []int64{}, Raw: make([]byte, 8)}, x2}); err == nil || !strings.Contains(err.Error(), "cond") {
		t.Fatalf("int64 cond: %v", err)
	}
}
