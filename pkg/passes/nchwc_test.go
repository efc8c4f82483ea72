package passes

import (
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// TestLayoutNCHWcCases runs layout-nchwc (block 8, after the O3 ort-cpu
// pipeline) over small graphs at the edges of what it may rewrite, checks
// how many convs it blocks and that interp, which runs the blocked ops,
// agrees with the original; on a CPU whose ONNX Runtime uses block 8 ORT
// runs the result too.
func TestLayoutNCHWcCases(t *testing.T) {
	conv := func(b *builder, in, w string, wdims []int64, out string, attrs ...*graph.Attr) {
		b.node("Conv", []string{in, b.floats(w, wdims, wave)}, []string{out}, attrs...)
	}
	cases := []struct {
		name    string
		model   func() *graph.Model
		blocked int // nchwc.Conv nodes expected
		extra   func(t *testing.T, out *graph.Model)
	}{
		{"conv output is a graph output and read again", func() *graph.Model {
			b := newBuilder(13)
			conv(b, b.input("x", graph.Float, 1, 8, 6, 6), "w", []int64{16, 8, 3, 3}, "c", graph.IntsAttr("pads", 1, 1, 1, 1))
			b.node("Relu", []string{"c"}, []string{"r"})
			b.output("c", graph.Float, 1, 16, 6, 6)
			b.output("r", graph.Float, 1, 16, 6, 6)
			return b.m
		}, 1, func(t *testing.T, out *graph.Model) {
			for _, n := range out.Graph.Nodes {
				if n.Domain == NCHWcDomain && n.OpType == "Conv" && n.Attr("activation") != nil {
					t.Fatal("the Relu was fused into a conv whose output is also a graph output")
				}
			}
		}},
		{"filter fed at run time stays", func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 1, 8, 6, 6)
			w := b.input("w", graph.Float, 16, 8, 3, 3)
			b.node("Conv", []string{x, w}, []string{"y"})
			b.output("y", graph.Float, 1, 16, 4, 4)
			return b.m
		}, 0, nil},
		{"1-D conv stays", func() *graph.Model {
			b := newBuilder(13)
			conv(b, b.input("x", graph.Float, 1, 8, 20), "w", []int64{16, 8, 3}, "y")
			b.output("y", graph.Float, 1, 16, 18)
			return b.m
		}, 0, nil},
		{"10 input channels (not a multiple of 4) stay", func() *graph.Model {
			b := newBuilder(13)
			conv(b, b.input("x", graph.Float, 1, 10, 6, 6), "w", []int64{16, 10, 3, 3}, "y")
			b.output("y", graph.Float, 1, 16, 4, 4)
			return b.m
		}, 0, nil},
		{"grouped and padded depthwise", func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 1, 16, 6, 6)
			conv(b, x, "wg", []int64{16, 8, 3, 3}, "g", graph.IntAttr("group", 2), graph.IntsAttr("pads", 1, 1, 1, 1))
			conv(b, "g", "wd1", []int64{16, 1, 3, 3}, "d1", graph.IntAttr("group", 16), graph.IntsAttr("strides", 2, 2))
			conv(b, "d1", "wp", []int64{12, 16, 1, 1}, "p")
			conv(b, "p", "wd2", []int64{12, 1, 3, 3}, "d2", graph.IntAttr("group", 12), graph.IntsAttr("pads", 1, 1, 1, 1))
			b.output("d2", graph.Float, 1, 12, 2, 2)
			return b.m
		}, 4, nil},
		{"odd channel counts between blocked convs", func() *graph.Model {
			b := newBuilder(13)
			conv(b, b.input("x", graph.Float, 1, 8, 6, 6), "w1", []int64{22, 8, 3, 3}, "a", graph.IntsAttr("pads", 1, 1, 1, 1))
			conv(b, "a", "w2", []int64{6, 22, 1, 1}, "c") // 22 inputs: not a multiple of 4, but already blocked
			conv(b, "c", "w3", []int64{16, 6, 3, 3}, "d") // 6 < 8 inputs, blocked: OIHWBiBo with padding, no reorder
			b.output("d", graph.Float, 1, 16, 4, 4)
			return b.m
		}, 3, func(t *testing.T, out *graph.Model) {
			for _, n := range out.Graph.Nodes {
				if n.OpType == "ReorderOutput" && n.Outputs[0] != "d" {
					t.Fatalf("reorder between blocked convs:\n%s", out.Format())
				}
			}
		}},
		{"subgraph reads a blocked conv's output", func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 1, 8, 4, 4)
			cond := b.input("cond", graph.Bool)
			conv(b, x, "w", []int64{8, 8, 1, 1}, "c")
			then := &graph.Graph{Name: "then", Nodes: []*graph.Node{{Name: "neg", OpType: "Neg", Inputs: []string{"c"}, Outputs: []string{"t"}}},
				Outputs: []*graph.ValueInfo{{Name: "t", DType: graph.Float, HasType: true}}}
			els := &graph.Graph{Name: "else", Nodes: []*graph.Node{{Name: "abs", OpType: "Abs", Inputs: []string{"c"}, Outputs: []string{"e"}}},
				Outputs: []*graph.ValueInfo{{Name: "e", DType: graph.Float, HasType: true}}}
			b.node("If", []string{cond}, []string{"y"}, graph.GraphAttr("then_branch", then), graph.GraphAttr("else_branch", els))
			b.output("y", graph.Float, 1, 8, 4, 4)
			return b.m
		}, 1, func(t *testing.T, out *graph.Model) {
			for _, n := range out.Graph.Nodes {
				if n.OpType == "ReorderOutput" && n.Outputs[0] == "c" {
					return
				}
			}
			t.Fatalf("no ReorderOutput gives the If branches c:\n%s", out.Format())
		}},
		{"ceil-mode AveragePool counting padding stays", func() *graph.Model {
			b := newBuilder(13)
			conv(b, b.input("x", graph.Float, 1, 8, 7, 7), "w", []int64{8, 8, 1, 1}, "c")
			b.node("AveragePool", []string{"c"}, []string{"y"}, graph.IntsAttr("kernel_shape", 3, 3), graph.IntsAttr("strides", 2, 2),
				graph.IntsAttr("pads", 1, 1, 1, 1), graph.IntAttr("ceil_mode", 1), graph.IntAttr("count_include_pad", 1))
			b.output("y", graph.Float, 1, 8, 4, 4)
			return b.m
		}, 1, func(t *testing.T, out *graph.Model) {
			for _, n := range out.Graph.Nodes {
				if n.OpType == "AveragePool" && n.Domain == NCHWcDomain {
					t.Fatal("AveragePool with ceil_mode and count_include_pad was blocked (ORT's kernel divides overhanging windows differently)")
				}
			}
		}},
		{"per-channel Mul broadcast stays plain", func() *graph.Model {
			b := newBuilder(13)
			conv(b, b.input("x", graph.Float, 1, 8, 4, 4), "w", []int64{8, 8, 1, 1}, "c")
			b.node("Mul", []string{"c", b.floats("s", []int64{1, 8, 1, 1}, pos)}, []string{"y"})
			b.output("y", graph.Float, 1, 8, 4, 4)
			return b.m
		}, 1, func(t *testing.T, out *graph.Model) {
			for _, n := range out.Graph.Nodes {
				if n.Is("Mul") && strings.HasSuffix(n.Inputs[0], "_nchwc") {
					t.Fatal("a per-channel broadcast Mul reads the blocked tensor")
				}
			}
		}},
	}
	ortBlock := runtime.HostNCHWcBlock() == 8
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.model()
			out, rep, err := Optimize(m, Options{Level: O3, Target: TargetORTCPU, NCHWcBlock: 8, Verify: true, VerifyEachPass: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Rollbacks) > 0 {
				t.Fatalf("rolled back: %+v", rep.Rollbacks)
			}
			if !strings.HasPrefix(rep.Numeric, "outputs match on interp") {
				t.Fatalf("not verified on interp: %s %v", rep.Numeric, rep.NumericSkips)
			}
			blocked := 0
			for _, n := range out.Graph.Nodes {
				if n.Domain == NCHWcDomain && n.OpType == "Conv" {
					blocked++
				}
			}
			if blocked != tc.blocked {
				t.Fatalf("%d blocked convs, want %d:\n%s", blocked, tc.blocked, out.Format())
			}
			if tc.extra != nil {
				tc.extra(t, out)
			}
			if err := out.Verify(); err != nil {
				t.Fatal(err)
			}
			if ortBlock && blocked > 0 {
				if _, err := runtime.Get("ort"); err == nil {
					ortTargetCheck(t, m, Options{Level: O3, Target: TargetORTCPU, NCHWcBlock: 8}, []int64{1})
				}
			}
		})
	}
}

// TestLayoutNCHWcBlockConflict: a model already blocked for 16 is not
// blocked again for 8; the pass fails and is rolled back, named.
func TestLayoutNCHWcBlockConflict(t *testing.T) {
	m := nchwcModel()
	m.Metadata = append(m.Metadata, graph.KV{Key: NCHWcMetadataKey, Value: "16"})
	_, rep, err := Optimize(m, Options{Passes: []string{"layout-nchwc"}, Target: TargetORTCPU, NCHWcBlock: 8})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rollbacks) != 1 || rep.Rollbacks[0].Pass != "layout-nchwc" || !strings.Contains(rep.Rollbacks[0].Reason, "already uses NCHWc block 16") {
		t.Fatalf("rollbacks %+v", rep.Rollbacks)
	}
}
