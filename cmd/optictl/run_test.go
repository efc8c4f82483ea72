package main

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/compare"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tensorio"
)

// testGRUModel writes a one-node GRU model (X: float32[2,1,3] -> Y, Y_h)
// with seeded weights; different seeds give models that disagree.
func testGRUModel(t *testing.T, dir string, seed int64) string {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	w := make([]float32, 12*3)
	r := make([]float32, 12*4)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	for i := range r {
		r[i] = float32(rng.NormFloat64() * 0.5)
	}
	n := &graph.Node{OpType: "GRU", Inputs: []string{"X", "W", "R"}, Outputs: []string{"Y", "Y_h"}}
	n.SetAttr(graph.IntAttr("hidden_size", 4))
	g := &graph.Graph{
		Name:         "gru",
		Inputs:       []*graph.ValueInfo{{Name: "X", DType: graph.Float, Shape: graph.DimsOf(2, 1, 3), HasShape: true, HasType: true}},
		Outputs:      []*graph.ValueInfo{{Name: "Y", DType: graph.Float, HasType: true}, {Name: "Y_h", DType: graph.Float, HasType: true}},
		Initializers: []*graph.Tensor{graph.NewFloat32("W", []int64{1, 12, 3}, w), graph.NewFloat32("R", []int64{1, 12, 4}, r)},
		Nodes:        []*graph.Node{n},
	}
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 14}}, Graph: g}
	p := filepath.Join(dir, "gru"+string(rune('a'+seed))+".onnx")
	if err := m.Save(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func runExecute(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Execute(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestRunCommand(t *testing.T) {
	dir := t.TempDir()
	model := testGRUModel(t, dir, 1)
	x := runtime.NewTensor(graph.Float, []int64{2, 1, 3})
	for i := range x.Float32s() {
		x.Float32s()[i] = float32(i) / 6
	}
	xPath := filepath.Join(dir, "x.npy")
	if err := tensorio.SaveNPY(xPath, x); err != nil {
		t.Fatal(err)
	}
	xi := runtime.FromInt64([]int64{2, 1, 3}, make([]int64, 6))
	xiPath := filepath.Join(dir, "xi.npy")
	if err := tensorio.SaveNPY(xiPath, xi); err != nil {
		t.Fatal(err)
	}
	// The expected outputs on x, straight from the backend.
	m, err := graph.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	s, err := runtime.Open("interp", m, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := compare.RunOnce(t.Context(), s, []*runtime.Tensor{x})
	if err != nil {
		t.Fatal(err)
	}
	conf := testutil.ConformanceDir(t)
	cases := []struct {
		name    string
		args    []string
		code    int
		stdout  []string
		stderr  []string
		outFile string
	}{
		{"random", []string{"run", model}, 0, []string{"Y_h", "float32", "[1,1,4]", "random (seed 1)"}, nil, ""},
		{"input file", []string{"run", model, "--input", "X=" + xPath, "--json"}, 0, []string{`"source": "file"`}, nil, ""},
		{"positional file", []string{"run", model, "--input", xPath, "--json"}, 0, []string{`"source": "file"`}, nil, ""},
		{"out npy", []string{"run", model, "--input", "X=" + xPath, "--out", filepath.Join(dir, "o1")}, 0, []string{"wrote"}, nil, filepath.Join(dir, "o1", "Y_h.npy")},
		{"out pb", []string{"run", model, "--input", "X=" + xPath, "--out", filepath.Join(dir, "o2"), "--out-format", "pb"}, 0, nil, nil, filepath.Join(dir, "o2", "Y_h.pb")},
		{"data set", []string{"run", filepath.Join(conf, "test_gru_defaults", "model.onnx"), "--data", filepath.Join(conf, "test_gru_defaults")}, 0, []string{"test_data_set_0"}, nil, ""},
		{"wrong dtype", []string{"run", model, "--input", "X=" + xiPath}, 2, nil, []string{`"X"`, "float32", "int64"}, ""},
		{"fixed dim clash", []string{"run", model, "--shape", "X=2x1x5"}, 2, nil, []string{`"X"`, "fixes it to 3"}, ""},
		{"unknown shape input", []string{"run", model, "--shape", "Q=1"}, 2, nil, []string{`no input "Q"`}, ""},
		{"bad shape syntax", []string{"run", model, "--shape", "X"}, 2, nil, []string{"NAME=DIMS"}, ""},
		{"max memory", []string{"run", model, "--max-memory", "100"}, 1, nil, []string{"memory bound"}, ""},
		{"bad max memory", []string{"run", model, "--max-memory", "lots"}, 2, nil, []string{"--max-memory"}, ""},
		{"bad out format", []string{"run", model, "--out-format", "csv"}, 2, nil, []string{"npy or pb"}, ""},
		{"unknown backend", []string{"run", model, "--backend", "nosuch"}, 2, nil, []string{"nosuch"}, ""},
		{"device not on interp", []string{"run", model, "--device", "cuda"}, 2, nil, []string{"--device cuda needs --backend ort"}, ""},
		{"no model", []string{"run"}, 2, nil, nil, ""},
		{"missing model", []string{"run", filepath.Join(dir, "nope.onnx")}, 1, nil, []string{"nope.onnx"}, ""},
		{"missing input file", []string{"run", model, "--input", "X=" + filepath.Join(dir, "nope.npy")}, 2, nil, []string{"nope.npy"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := runExecute(c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, c.code, out, errs)
			}
			for _, w := range c.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range c.stderr {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
			if c.outFile != "" {
				ts, err := tensorio.LoadFile(c.outFile)
				if err != nil {
					t.Fatal(err)
				}
				if !ts[0].Tensor.Equal(want[1]) {
					t.Errorf("%s differs from the backend's Y_h", c.outFile)
				}
			}
		})
	}
	// JSON values match a direct run.
	code, out, errs := runExecute("run", model, "--input", "X="+xPath, "--json", "--first", "4")
	if code != 0 {
		t.Fatal(errs)
	}
	var rep runReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Outputs) != 2 || rep.Outputs[1].Name != "Y_h" {
		t.Fatalf("outputs %+v", rep.Outputs)
	}
	for i, v := range rep.Outputs[1].First {
		if float32(v) != want[1].Float32s()[i] {
			t.Fatalf("Y_h[%d] = %v, want %v", i, v, want[1].Float32s()[i])
		}
	}
	// Seeded random inputs are reproducible.
	_, a, _ := runExecute("run", model, "--json", "--seed", "5")
	_, b, _ := runExecute("run", model, "--json", "--seed", "5")
	_, c, _ := runExecute("run", model, "--json", "--seed", "6")
	if a != b || a == c {
		t.Fatal("--seed does not make runs reproducible and distinct")
	}
	_ = os.Remove
}

func TestRunUnsupportedOpsListedFirst(t *testing.T) {
	dir := t.TempDir()
	g := &graph.Graph{
		Name:    "bad",
		Inputs:  []*graph.ValueInfo{{Name: "x", DType: graph.Float, Shape: graph.DimsOf(1), HasShape: true, HasType: true}},
		Outputs: []*graph.ValueInfo{{Name: "z", DType: graph.Float}},
		Nodes: []*graph.Node{
			{OpType: "NoSuchOpA", Inputs: []string{"x"}, Outputs: []string{"y"}},
			{OpType: "NoSuchOpB", Domain: "com.example", Inputs: []string{"y"}, Outputs: []string{"z"}},
		},
	}
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 14}, {Domain: "com.example", Version: 1}}, Graph: g}
	p := filepath.Join(dir, "bad.onnx")
	if err := m.Save(p); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runExecute("run", p)
	if code == 0 || !strings.Contains(errs, "NoSuchOpA") || !strings.Contains(errs, "com.example.NoSuchOpB") {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
}
