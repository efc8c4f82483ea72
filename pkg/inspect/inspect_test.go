package inspect_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/inspect"
)

// sharedModels lists the real models and the light model-zoo ones.
func sharedModels(t *testing.T) []string {
	files := []string{}
	for _, d := range testutil.RealModels(t) {
		files = append(files, filepath.Join(d, "model.onnx"))
	}
	light, _ := filepath.Glob(filepath.Join(testutil.ModelsDir(t), "conformance", "onnx-1.22.0", "light", "*.onnx"))
	edge, _ := filepath.Glob(filepath.Join(testutil.ModelsDir(t), "edge-cases", "*.onnx"))
	files = append(append(files, light...), edge...)
	if len(files) < 20 {
		testutil.Missing(t, "the shared models")
	}
	return files
}

func TestInspectSharedModels(t *testing.T) {
	for _, f := range sharedModels(t) {
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			m, err := graph.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			r, err := inspect.Load(f, inspect.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if r.Nodes != len(m.Graph.Nodes) {
				t.Errorf("nodes %d, graph has %d", r.Nodes, len(m.Graph.Nodes))
			}
			sum := 0
			for _, c := range r.Ops {
				sum += c
			}
			if sum != r.NodesTotal || r.NodesTotal < r.Nodes {
				t.Errorf("ops sum to %d, nodes_total %d, nodes %d", sum, r.NodesTotal, r.Nodes)
			}
			if len(r.Inputs) != len(m.Graph.RealInputs()) || len(r.Outputs) != len(m.Graph.Outputs) {
				t.Errorf("%d inputs %d outputs", len(r.Inputs), len(r.Outputs))
			}
			var js, txt bytes.Buffer
			if err := r.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			var obj map[string]any
			if err := json.Unmarshal(js.Bytes(), &obj); err != nil {
				t.Fatalf("json: %v", err)
			}
			for _, k := range []string{"nodes", "initializers", "params", "flops", "ops", "inputs", "outputs", "peak_activation_bytes", "opsets", "ir_version", "producer", "custom_ops", "heaviest"} {
				if _, ok := obj[k]; !ok {
					t.Errorf("json lacks %q", k)
				}
			}
			if err := r.WriteText(&txt); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(txt.String(), "IR version") {
				t.Errorf("text report lacks the model table")
			}
		})
	}
}

func TestInspectFigures(t *testing.T) {
	root := testutil.ModelsDir(t)
	r, err := inspect.Load(filepath.Join(root, "mnist", "model.onnx"), inspect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// mnist: conv 1->8 k5 same on 28x28 and 8->16 k5 on 14x14, matmul 256x10.
	wantMACs := int64(8*28*28*25 + 16*14*14*200 + 256*10)
	if r.MACs != wantMACs || r.Params != 5998 || r.Initializers != 8 {
		t.Errorf("MACs %d params %d initializers %d, want %d, 5998, 8", r.MACs, r.Params, r.Initializers, wantMACs)
	}
	if len(r.Heaviest) == 0 || r.Heaviest[0].Name != "Convolution110" {
		t.Errorf("heaviest %+v", r.Heaviest)
	}

	// ppocr-cls has dynamic dims and its weights in Constant nodes: without
	// --shape the costs are computed at a stated representative shape
	// (they were 0), with it at that shape; a wrong --shape is an ErrShape
	// error.
	p := filepath.Join(root, "ppocr-cls", "model.onnx")
	r0, err := inspect.Load(p, inspect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r1, err := inspect.Load(p, inspect.Options{Shapes: map[string][]int64{"x": {1, 3, 48, 192}}})
	if err != nil {
		t.Fatal(err)
	}
	if r0.MACs == 0 || r1.MACs <= r0.MACs || len(r1.UnknownCost) != 0 || len(r0.UnknownCost) != 0 {
		t.Errorf("MACs at 1x3x64x64 %d, at 1x3x48x192 %d (unknown %v, %v)", r0.MACs, r1.MACs, r0.UnknownCost, r1.UnknownCost)
	}
	if fmt.Sprint(r0.CostShapes["x"]) != "[1 3 64 64]" || !strings.Contains(r0.CostShapeNote, "x=[1,3,64,64] (batch 1") || fmt.Sprint(r1.CostShapes["x"]) != "[1 3 48 192]" || !strings.Contains(r1.CostShapeNote, "(--shape)") {
		t.Errorf("cost shapes %v %q; %v %q", r0.CostShapes, r0.CostShapeNote, r1.CostShapes, r1.CostShapeNote)
	}
	if got := r1.Outputs[0].Shape; len(got) != 2 || got[0] != int64(1) || got[1] != int64(2) {
		t.Errorf("output shape %v", got)
	}
	if got := r0.Inputs[0].Shape; len(got) != 4 || got[1] != int64(3) {
		t.Errorf("symbolic input shape %v", got)
	} else if _, ok := got[0].(string); !ok {
		t.Errorf("symbolic dim %v is not a string", got[0])
	}
	if _, err := inspect.Load(p, inspect.Options{Shapes: map[string][]int64{"x": {1, 4, 48, 192}}}); !errors.Is(err, inspect.ErrShape) {
		t.Errorf("contradicting --shape: %v", err)
	}

	// Custom domains are flagged; ai.onnx.ml is noted.
	g, err := inspect.Load(filepath.Join(root, "tiny-gpt2-ortfused", "model.onnx"), inspect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range g.CustomOps {
		found = found || (c.Domain == "com.microsoft" && c.Op == "Attention" && c.Count == 5)
	}
	if !found {
		t.Errorf("custom ops %+v", g.CustomOps)
	}
	ml, err := inspect.Load(filepath.Join(root, "edge-cases", "sklearn_randomforest.onnx"), inspect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ml.Notes) == 0 || !strings.Contains(strings.Join(ml.Notes, "\n"), "ai.onnx.ml") {
		t.Errorf("notes %v", ml.Notes)
	}
}
