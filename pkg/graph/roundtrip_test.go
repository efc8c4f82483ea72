package graph_test

import (
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/onnxpb"
)

// TestRoundTripSharedModels loads every shared model (conformance tests
// included), verifies it, saves it, reloads it and checks that the
// re-serialized protobuf is semantically equal to the original.
func TestRoundTripSharedModels(t *testing.T) {
	files := testutil.AllModelFiles(t)
	if len(files) < 1000 {
		t.Fatalf("found only %d models under ../shared/models", len(files))
	}
	dir := t.TempDir()
	for _, f := range files {
		m, err := graph.Load(f)
		if err != nil {
			t.Errorf("load %s: %v", f, err)
			continue
		}
		if err := m.Verify(); err != nil {
			t.Errorf("verify %s: %v", f, err)
			continue
		}
		out := filepath.Join(dir, "m.onnx")
		if err := m.Save(out); err != nil {
			t.Errorf("save %s: %v", f, err)
			continue
		}
		m2, err := graph.Load(out)
		if err != nil {
			t.Errorf("reload %s: %v", f, err)
			continue
		}
		if m.Format() != m2.Format() {
			t.Errorf("%s: text form differs after round trip", f)
		}
		a, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		b, err := m2.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		pa, pb := &onnxpb.ModelProto{}, &onnxpb.ModelProto{}
		if err := proto.Unmarshal(a, pa); err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(b, pb); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(pa, pb) {
			t.Errorf("%s: protobuf differs after round trip", f)
		}
	}
}
