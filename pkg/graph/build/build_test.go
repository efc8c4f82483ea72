package build_test

import (
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/build"
)

func TestBuildValidModel(t *testing.T) {
	b := build.New("tiny", 13)
	x := b.Input("x", graph.Float, build.Dims("N", 4))
	w := b.Float32("w", []int64{4, 2}, []float32{1, 2, 3, 4, 5, 6, 7, 8})
	h := b.Node("MatMul", []string{x, w})
	outs := b.NodeN("Split", []string{h}, 2, graph.IntAttr("axis", 1))
	y := b.Node("Add", outs)
	b.Output(y, graph.Float, build.Dims("N", 1))
	m, err := b.Model()
	if err != nil {
		t.Fatal(err)
	}
	if got := len(m.Graph.Nodes); got != 3 {
		t.Fatalf("%d nodes, want 3", got)
	}
	if h != "matmul_0" || outs[0] != "split_1_0" || outs[1] != "split_1_1" || y != "add_2" {
		t.Errorf("names %q %q %q", h, outs, y)
	}
	if s := m.Graph.Nodes[1].AttrInt("axis", 0); s != 1 {
		t.Errorf("axis = %d", s)
	}
	if m.Opset("") != 13 || m.IRVersion != 8 {
		t.Errorf("opset %d ir %d", m.Opset(""), m.IRVersion)
	}
	// The model survives serialisation.
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := graph.LoadBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Format() != m2.Format() {
		t.Error("text form differs after round trip")
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *build.Builder)
		want  string
	}{
		{"duplicate input", func(b *build.Builder) {
			b.Input("x", graph.Float, nil)
			b.Input("x", graph.Float, nil)
		}, `input "x": name already used`},
		{"initializer clashes with input", func(b *build.Builder) {
			b.Input("x", graph.Float, nil)
			b.Scalar("x", 1)
		}, `initializer "x": name already used`},
		{"malformed tensor", func(b *build.Builder) {
			b.Initializer(graph.NewRaw("w", graph.Float, []int64{3}, make([]byte, 4)))
		}, `tensor "w"`},
		{"empty name", func(b *build.Builder) { b.Input("", graph.Float, nil) }, "empty name"},
		{"undefined input", func(b *build.Builder) {
			b.Output(b.Node("Relu", []string{"ghost"}), graph.Float, nil)
		}, `"ghost"`},
		{"output clash", func(b *build.Builder) {
			x := b.Input("x", graph.Float, nil)
			b.Op("Relu", "r", []string{x}, []string{x})
		}, `Relu output "x"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := build.New("bad", 13)
			tc.build(b)
			m, err := b.Model()
			if err == nil || m != nil {
				t.Fatalf("Model() = %v, %v; want an error", m, err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "build: ") {
				t.Errorf("error %q, want one starting build: and mentioning %q", err, tc.want)
			}
		})
	}
}

func TestDims(t *testing.T) {
	tests := []struct {
		in   []any
		want string
	}{
		{[]any{"N", 3, int64(32), "?"}, "[N,3,32,?]"},
		{nil, "[]"},
	}
	for _, tc := range tests {
		if got := build.Dims(tc.in...).String(); got != tc.want {
			t.Errorf("Dims(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestIRVersionFollowsOpset(t *testing.T) {
	for _, tc := range []struct{ opset, ir int64 }{{13, 8}, {17, 8}, {19, 9}, {21, 10}} {
		b := build.New("g", tc.opset)
		x := b.Input("x", graph.Float, nil)
		b.Output(b.Node("Relu", []string{x}), graph.Float, nil)
		m, err := b.Model()
		if err != nil {
			t.Fatal(err)
		}
		if m.IRVersion != tc.ir {
			t.Errorf("opset %d: ir %d, want %d", tc.opset, m.IRVersion, tc.ir)
		}
	}
}
