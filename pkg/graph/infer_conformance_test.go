package graph_test

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
)

// TestInferConformance strips the declared output types of every ONNX node
// conformance model, infers them back and checks that whatever inference
// claims (dtype, rank, fixed dims) agrees with the declared types. It also
// requires inference to work out most outputs.
func TestInferConformance(t *testing.T) {
	root := testutil.ConformanceDir(t)
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var total, full, wrong int
	missed := map[string]int{}
	for _, e := range ents {
		p := filepath.Join(root, e.Name(), "model.onnx")
		m, err := graph.Load(p)
		if err != nil {
			continue // the round-trip test covers loading
		}
		want := make([]*graph.ValueInfo, len(m.Graph.Outputs))
		for i, v := range m.Graph.Outputs {
			want[i] = v.Clone()
			v.HasType, v.HasShape, v.DType, v.Shape = false, false, graph.Undefined, nil
		}
		m.Graph.ValueInfo = nil
		res, err := graph.InferShapes(m, graph.InferOptions{})
		if err != nil {
			t.Errorf("%s: %v", e.Name(), err)
			continue
		}
		for _, p := range res.Problems {
			if strings.Contains(p, "inference failed") { // a recovered panic in a rule
				t.Errorf("%s: %s", e.Name(), p)
			}
		}
		if _, err := graph.Cost(m); err != nil {
			t.Errorf("%s: cost: %v", e.Name(), err)
		}
		for i, v := range m.Graph.Outputs {
			w := want[i]
			if !w.HasType || !w.IsTensor() || !w.HasShape {
				continue
			}
			total++
			if !v.HasType {
				missed[e.Name()]++
				continue
			}
			bad := v.DType != w.DType
			if v.HasShape {
				if len(v.Shape) != len(w.Shape) {
					bad = true
				} else {
					for k, d := range v.Shape {
						if d.Known() && w.Shape[k].Known() && d.Size != w.Shape[k].Size {
							bad = true
						}
					}
				}
			}
			if bad {
				wrong++
				t.Errorf("%s: output %q inferred %s, declared %s", e.Name(), v.Name, v.TypeString(), w.TypeString())
				continue
			}
			if _, ok := v.Shape.Static(); ok && v.HasShape {
				if _, wok := w.Shape.Static(); wok {
					full++
				}
			} else {
				missed[e.Name()]++
			}
		}
	}
	var names []string
	for k := range missed {
		names = append(names, k)
	}
	sort.Strings(names)
	t.Logf("%d outputs: %d fully inferred, %d wrong; %d models with an output not fully inferred", total, full, wrong, len(names))
	if testing.Verbose() {
		t.Logf("not fully inferred: %v", names)
	}
	if total < 1000 || full*10 < total*6 {
		t.Errorf("inferred only %d of %d declared outputs fully", full, total)
	}
}
