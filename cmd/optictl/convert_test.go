package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/opset"
)

// writeOpset11Softmax writes a model at opset 11 whose Softmax works on a
// non-last axis, and one whose BatchNormalization cannot be converted.
func writeConvertModels(t *testing.T, dir string) (good, bad string) {
	t.Helper()
	mk := func(nodes []*graph.Node, inits []*graph.Tensor, opsetV int64) *graph.Model {
		return &graph.Model{IRVersion: 6, Opsets: []graph.OpsetImport{{Version: opsetV}}, Graph: &graph.Graph{
			Name:         "g",
			Inputs:       []*graph.ValueInfo{{Name: "x", DType: graph.Float, HasType: true, HasShape: true, Shape: graph.DimsOf(1, 2, 3)}},
			Outputs:      []*graph.ValueInfo{{Name: "y", DType: graph.Float, HasType: true}},
			Initializers: inits,
			Nodes:        nodes,
		}}
	}
	good = filepath.Join(dir, "softmax11.onnx")
	if err := mk([]*graph.Node{{Name: "sm", OpType: "Softmax", Inputs: []string{"x"}, Outputs: []string{"y"}}}, nil, 11).Save(good); err != nil {
		t.Fatal(err)
	}
	w := graph.NewFloat32("w", []int64{2}, []float32{1, 2})
	bad = filepath.Join(dir, "bn7.onnx")
	bn := &graph.Node{Name: "bn", OpType: "BatchNormalization", Inputs: []string{"x", "w", "w", "w", "w"}, Outputs: []string{"y"}, Attrs: []*graph.Attr{graph.IntAttr("spatial", 0)}}
	if err := mk([]*graph.Node{bn}, []*graph.Tensor{w}, 7).Save(bad); err != nil {
		t.Fatal(err)
	}
	return good, bad
}

func TestConvertCommand(t *testing.T) {
	dir := t.TempDir()
	good, bad := writeConvertModels(t, dir)
	out := filepath.Join(dir, "out.onnx")
	cases := []struct {
		name    string
		args    []string
		code    int
		stdout  string
		stderr  string
		written bool
	}{
		{"converts", []string{"convert", good, "-o", out}, 0, "from opset 11 to 24", "", true},
		{"json", []string{"convert", good, "--opset", "13", "-o", out, "--json"}, 0, `"to": 13`, "", true},
		{"refusal", []string{"convert", bad, "-o", out}, 1, "", `BatchNormalization "bn" cannot be converted from opset 8 to 9: spatial=0`, false},
		{"too new", []string{"convert", good, "--opset", "99", "-o", out}, 2, "", "newest opset this converter knows", false},
		{"down", []string{"convert", good, "--opset", "9", "-o", out}, 2, "", "only raises", false},
		{"no out", []string{"convert", good}, 2, "", "needs -o", false},
		{"list", []string{"convert", "--list"}, 0, "Softmax", "", false},
		{"tolerance without data", []string{"convert", good, "-o", out, "--rtol", "0.1"}, 2, "", "give --data", false},
		{"unchecked says so", []string{"convert", good, "-o", out}, 0, "not checked numerically", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(out)
			var so, se bytes.Buffer
			code := Execute(tc.args, &so, &se)
			if code != tc.code || !strings.Contains(so.String(), tc.stdout) || !strings.Contains(se.String(), tc.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tc.code, so.String(), se.String())
			}
			_, err := os.Stat(out)
			if (err == nil) != tc.written {
				t.Fatalf("written=%v, want %v", err == nil, tc.written)
			}
			if tc.name == "json" {
				var r struct {
					From, To int64
					Changes  []opset.Change
				}
				if err := json.Unmarshal(so.Bytes(), &r); err != nil || r.From != 11 || len(r.Changes) != 1 || r.Changes[0].Op != "Softmax" {
					t.Errorf("report %+v (%v)", r, err)
				}
				m, err := graph.Load(out)
				if err != nil || m.Opset("") != 13 {
					t.Errorf("written model: %v", err)
				}
			}
		})
	}
}

// TestConvertCommandPPOCR converts the shared opset-9 Paddle export.
func TestConvertCommandPPOCR(t *testing.T) {
	src := filepath.Join(testutil.ModelsDir(t), "ppocr-cls", "model.onnx")
	if _, err := os.Stat(src); err != nil {
		testutil.Missing(t, src)
		return
	}
	out := filepath.Join(t.TempDir(), "cls24.onnx")
	var so, se bytes.Buffer
	data := filepath.Join(filepath.Dir(src), "test_data_set_0")
	if code := Execute([]string{"convert", src, "-o", out, "--data", data}, &so, &se); code != 0 {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	if !strings.Contains(so.String(), "from opset 9 to 24") || !strings.Contains(so.String(), "verification: outputs match the original on interp (1 sample(s)") {
		t.Errorf("report: %s", so.String())
	}
	var co, ce bytes.Buffer
	if code := Execute([]string{"compare", src, out, "--data", data}, &co, &ce); code != 0 {
		t.Errorf("compare exit %d: %s%s", code, co.String(), ce.String())
	}
}
