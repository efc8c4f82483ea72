package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/build"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tensorio"
)

// partialRefs writes a 3-output model (relu_out, neg_out, abs_out of x) and
// a test_data_set whose only reference, output_0.pb, is named after the
// third output (as issue 12's 12-output detector had), holding abs(x) plus
// bump.
func partialRefs(t *testing.T, bump float32, refName string) (model, set string) {
	t.Helper()
	dir := t.TempDir()
	b := build.New("three", 13)
	x := b.Input("x", graph.Float, build.Dims(1, 4))
	for _, op := range []string{"Relu", "Neg", "Abs"} {
		out := strings.ToLower(op)
		b.Op(op, op, []string{x}, []string{out + "_out"})
		b.Output(out+"_out", graph.Float, build.Dims(1, 4))
	}
	m, err := b.Model()
	if err != nil {
		t.Fatal(err)
	}
	model = filepath.Join(dir, "model.onnx")
	if err := m.Save(model); err != nil {
		t.Fatal(err)
	}
	set = filepath.Join(dir, "test_data_set_0")
	if err := os.Mkdir(set, 0o755); err != nil {
		t.Fatal(err)
	}
	in := []float32{-1, 2, -3, 4}
	ref := make([]float32, 4)
	for i, v := range in {
		ref[i] = max(v, -v) + bump
	}
	if err := tensorio.SavePB(filepath.Join(set, "input_0.pb"), "x", runtime.FromFloat32([]int64{1, 4}, in)); err != nil {
		t.Fatal(err)
	}
	if err := tensorio.SavePB(filepath.Join(set, "output_0.pb"), refName, runtime.FromFloat32([]int64{1, 4}, ref)); err != nil {
		t.Fatal(err)
	}
	return model, set
}

// TestComparePartialReferences: a data set with references for only some
// outputs checks those (by TensorProto name, else by position) and lists
// the others as unchecked, instead of refusing the data set.
func TestComparePartialReferences(t *testing.T) {
	cases := []struct {
		name    string
		bump    float32
		refName string
		code    int
		stdout  []string
	}{
		{"named after the third output", 0, "abs_out", 0, []string{"abs_out", "not checked (no reference in the data set): relu_out, neg_out", "PASS"}},
		{"named, wrong values", 1, "abs_out", 3, []string{"FAIL"}},
		{"unnamed checks the first output", 0, "", 3, []string{"relu_out", "not checked (no reference in the data set): neg_out, abs_out"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			model, set := partialRefs(t, c.bump, c.refName)
			code, out, errs := runExecute("compare", model, "--backends", "interp", "--data", set)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, c.code, out, errs)
			}
			for _, w := range c.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
		})
	}
	model, set := partialRefs(t, 0, "abs_out")
	code, out, errs := runExecute("compare", model, "--backends", "interp", "--data", set, "--json")
	var rep compareReport
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
	r := rep.Rounds[0]
	if len(r.Result.Outputs) != 1 || r.Result.Outputs[0].Name != "abs_out" || strings.Join(r.Unchecked, ",") != "relu_out,neg_out" {
		t.Fatalf("round %+v", r)
	}
	// run reads the same data set (inputs) without refusing it.
	if code, out, errs := runExecute("run", model, "--data", set); code != 0 || !strings.Contains(out, "abs_out") {
		t.Fatalf("run: exit %d\n%s\n%s", code, out, errs)
	}
}
