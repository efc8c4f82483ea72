package graph_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/onnxpb"
)

// TestLoadRefusesSchemaViolations: a node with fewer (or more) inputs or
// outputs than its op's schema allows, or a required input left empty, is
// refused by Load with the node, op and counts named.
func TestLoadRefusesSchemaViolations(t *testing.T) {
	tests := []struct {
		name   string
		opset  int64
		mutate func(n *onnxpb.NodeProto)
		want   []string
	}{
		{"binary op with one input", 13, func(n *onnxpb.NodeProto) { n.Input = []string{"X"} },
			[]string{`Add "add"`, "has 1 input,", "Add (opset 13) takes exactly 2"}},
		{"conv without its weight", 13, func(n *onnxpb.NodeProto) { n.OpType = proto.String("Conv"); n.Input = []string{"X"} },
			[]string{`Conv "add"`, "has 1 input,", "2 to 3"}},
		{"maxpool without inputs", 13, func(n *onnxpb.NodeProto) { n.OpType = proto.String("MaxPool"); n.Input = nil },
			[]string{`MaxPool "add"`, "has 0 inputs", "exactly 1"}},
		{"reshape without its shape at opset 13", 13, func(n *onnxpb.NodeProto) { n.OpType = proto.String("Reshape"); n.Input = []string{"X"} },
			[]string{`Reshape "add"`, "has 1 input,", "exactly 2"}},
		{"too many outputs", 13, func(n *onnxpb.NodeProto) { n.Output = []string{"Y", "Z"} },
			[]string{`Add "add"`, "has 2 outputs", "gives exactly 1"}},
		{"required input empty", 13, func(n *onnxpb.NodeProto) { n.OpType = proto.String("Conv"); n.Input = []string{"X", ""} },
			[]string{`Conv "add"`, "input 1 is empty"}},
		{"variadic input empty", 13, func(n *onnxpb.NodeProto) { n.OpType = proto.String("Max"); n.Input = []string{"X", ""} },
			[]string{`Max "add"`, "input 1 is empty"}},
		{"contrib op without its weight", 13, func(n *onnxpb.NodeProto) {
			n.OpType, n.Domain = proto.String("FusedConv"), proto.String("com.microsoft")
			n.Input = []string{"X"}
		}, []string{`com.microsoft.FusedConv "add"`, "has 1 input,"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tinyProto()
			p.OpsetImport[0].Version = proto.Int64(tc.opset)
			tc.mutate(p.Graph.Node[0])
			m, err := graph.LoadBytes(marshal(t, p))
			if err == nil {
				t.Fatalf("Load accepted the model: %s", m.Format())
			}
			var se *graph.SchemaError
			if !errors.As(err, &se) {
				t.Errorf("not a SchemaError: %T %v", err, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "graph: node ") {
				t.Errorf("error %q lacks the package prefix", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

// TestSchemaOpsetDependent: Reshape took its shape as an attribute before
// opset 5, and an optional trailing input may be omitted.
func TestSchemaOpsetDependent(t *testing.T) {
	p := tinyProto()
	p.OpsetImport[0].Version = proto.Int64(4)
	p.Graph.Node[0].OpType = proto.String("Reshape")
	p.Graph.Node[0].Input = []string{"X"}
	if _, err := graph.LoadBytes(marshal(t, p)); err != nil {
		t.Errorf("Reshape with one input at opset 4: %v", err)
	}
	p = tinyProto()
	p.Graph.Node[0].OpType = proto.String("Conv")
	p.Graph.Node[0].Input = []string{"X", "W", ""}
	if _, err := graph.LoadBytes(marshal(t, p)); err != nil {
		t.Errorf("Conv with an omitted bias: %v", err)
	}
}

// TestVerifyReportsSchemaArity: a pass that leaves a node without a
// required input is caught by Verify too.
func TestVerifyReportsSchemaArity(t *testing.T) {
	m, err := graph.LoadBytes(marshal(t, tinyProto()))
	if err != nil {
		t.Fatal(err)
	}
	m.Graph.Nodes[0].Inputs = []string{"X"}
	err = m.Verify()
	if err == nil || !strings.Contains(err.Error(), `Add "add" has 1 input, Add (opset 13) takes exactly 2`) {
		t.Fatalf("Verify: %v", err)
	}
}

// TestSchemaAcceptsEveryConformanceModel keeps the schema table and Check
// conservative: every ONNX node conformance model and every shared model
// passes both.
func TestSchemaAcceptsEveryConformanceModel(t *testing.T) {
	files := testutil.AllModelFiles(t)
	if len(files) < 1000 {
		t.Fatalf("only %d models under ../shared/models", len(files))
	}
	for _, p := range files {
		m, err := graph.LoadWith(p, graph.LoadOptions{SkipExternal: true})
		var se *graph.SchemaError
		if errors.As(err, &se) {
			t.Errorf("%v", err)
			continue
		}
		if err == nil {
			if err := m.Check(); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
	}
}
