package graph_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/onnxpb"
)

// TestVerifyStructuralProblems builds models that load fine (the protobuf
// is valid) but break the IR's structural rules; Verify must name each.
func TestVerifyStructuralProblems(t *testing.T) {
	node := func(name, op string, in []string, out ...string) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{Name: proto.String(name), OpType: proto.String(op), Input: in, Output: out}
	}
	tests := []struct {
		name   string
		mutate func(p *onnxpb.ModelProto)
		want   []string
	}{
		{"node consumes an undefined value", func(p *onnxpb.ModelProto) {
			p.Graph.Node[0].Input[1] = "ghost"
		}, []string{`Add "add"`, `"ghost"`, "no earlier node"}},
		{"cycle", func(p *onnxpb.ModelProto) {
			// A = Relu(B); B = Relu(A); Y = Add(X, B)
			p.Graph.Node = []*onnxpb.NodeProto{
				node("r1", "Relu", []string{"B"}, "A"),
				node("r2", "Relu", []string{"A"}, "B"),
				node("add", "Add", []string{"X", "B"}, "Y"),
			}
		}, []string{`Relu "r1"`, `"B"`}},
		{"duplicate output names", func(p *onnxpb.ModelProto) {
			p.Graph.Node = append(p.Graph.Node, node("add2", "Add", []string{"X", "W"}, "Y"))
		}, []string{`"Y"`, "produced more than once", `Add "add2"`}},
		{"node output shadows an input", func(p *onnxpb.ModelProto) {
			p.Graph.Node = append(p.Graph.Node, node("relu", "Relu", []string{"Y"}, "X"))
		}, []string{`"X"`, "produced more than once"}},
		{"duplicate initializer", func(p *onnxpb.ModelProto) {
			p.Graph.Initializer = append(p.Graph.Initializer, proto.Clone(p.Graph.Initializer[0]).(*onnxpb.TensorProto))
		}, []string{"duplicate initializer", `"W"`}},
		{"graph output not produced", func(p *onnxpb.ModelProto) {
			p.Graph.Node[0].Output[0] = "Z"
		}, []string{"graph output", `"Y"`, "not produced"}},
		{"node without op type", func(p *onnxpb.ModelProto) {
			p.Graph.Node[0].OpType = proto.String("")
		}, []string{"has no op_type"}},
		{"subgraph reads an undefined value", func(p *onnxpb.ModelProto) {
			body := &onnxpb.GraphProto{Name: proto.String("then"),
				Node:   []*onnxpb.NodeProto{node("inner", "Relu", []string{"nowhere"}, "T")},
				Output: []*onnxpb.ValueInfoProto{{Name: proto.String("T")}}}
			p.Graph.Node = append(p.Graph.Node, &onnxpb.NodeProto{Name: proto.String("if"), OpType: proto.String("If"),
				Input: []string{"X"}, Output: []string{"Z"}, Attribute: []*onnxpb.AttributeProto{
					{Name: proto.String("then_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: body},
					{Name: proto.String("else_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: body}}})
		}, []string{`If "if"`, `"then_branch"`, `Relu "inner"`, `"nowhere"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tinyProto()
			tc.mutate(p)
			m, err := graph.LoadBytes(marshal(t, p))
			if err != nil {
				t.Fatalf("load: %v (structural problems are Verify's to report)", err)
			}
			err = m.Verify()
			if err == nil {
				t.Fatal("Verify accepted the model")
			}
			if !graph.IsVerifyError(err) {
				t.Errorf("not a VerifyError: %T", err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "graph: verify: ") {
				t.Errorf("unclear error %q", msg)
			}
			all := strings.Join(err.(*graph.VerifyError).Problems, "; ")
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("problems %q do not mention %q", all, w)
				}
			}
		})
	}
}

func TestVerifyAcceptsValidModel(t *testing.T) {
	m, err := graph.LoadBytes(marshal(t, tinyProto()))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyTensorData covers tensors built in Go (not loaded) whose bytes
// disagree with their shape: Verify, not Load, is what sees those.
func TestVerifyTensorData(t *testing.T) {
	tests := []struct {
		name string
		t    *graph.Tensor
		want string
	}{
		{"raw too short", graph.NewRaw("W", graph.Float, []int64{2}, make([]byte, 5)), "needs 8 bytes of data, has 5"},
		{"negative dim", graph.NewRaw("W", graph.Float, []int64{-1}, nil), "negative dimension"},
		{"overflowing dims", graph.NewRaw("W", graph.Float, []int64{1 << 40, 1 << 40}, nil), "more than 2^40"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := graph.LoadBytes(marshal(t, tinyProto()))
			if err != nil {
				t.Fatal(err)
			}
			m.Graph.Initializers[0] = tc.t
			err = m.Verify()
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"W"`) {
				t.Errorf("Verify = %v, want a problem with W mentioning %q", err, tc.want)
			}
		})
	}
}

// TestTopoSortCycle checks that TopoSort refuses a cycle, names its nodes
// and leaves the graph as it was.
func TestTopoSortCycle(t *testing.T) {
	p := tinyProto()
	p.Graph.Node = []*onnxpb.NodeProto{
		{Name: proto.String("add"), OpType: proto.String("Add"), Input: []string{"X", "B"}, Output: []string{"Y"}},
		{Name: proto.String("r1"), OpType: proto.String("Relu"), Input: []string{"B"}, Output: []string{"A"}},
		{Name: proto.String("r2"), OpType: proto.String("Relu"), Input: []string{"A"}, Output: []string{"B"}},
	}
	m, err := graph.LoadBytes(marshal(t, p))
	if err != nil {
		t.Fatal(err)
	}
	before := m.Format()
	err = m.Graph.TopoSort()
	if err == nil || !strings.Contains(err.Error(), "cycle") || !strings.Contains(err.Error(), `Relu "r1"`) {
		t.Errorf("TopoSort = %v, want a cycle error naming r1", err)
	}
	if m.Format() != before {
		t.Error("TopoSort changed the graph although it failed")
	}
	// Out of order but acyclic: TopoSort fixes it and Verify then passes.
	p.Graph.Node[2].Input = []string{"X"}
	m, err = graph.LoadBytes(marshal(t, p))
	if err != nil {
		t.Fatal(err)
	}
	if m.Verify() == nil {
		t.Fatal("Verify accepted out-of-order nodes")
	}
	if err := m.Graph.TopoSort(); err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(); err != nil {
		t.Errorf("after TopoSort: %v", err)
	}
}
