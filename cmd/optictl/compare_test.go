package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
)

func TestCompareCommand(t *testing.T) {
	dir := t.TempDir()
	a := testGRUModel(t, dir, 1)
	b := testGRUModel(t, dir, 2)
	conf := testutil.ConformanceDir(t)
	lstm := filepath.Join(conf, "test_lstm_defaults")
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{"same model", []string{"compare", a, a}, 0, []string{"PASS", "Y_h"}, nil},
		{"different models", []string{"compare", a, b}, 3, []string{"FAIL"}, []string{`output "Y"`}},
		{"wide tolerance", []string{"compare", a, b, "--atol", "10"}, 0, []string{"PASS"}, nil},
		{"against references", []string{"compare", filepath.Join(lstm, "model.onnx"), "--data", lstm}, 0, []string{"reference", "PASS"}, nil},
		{"against references one backend", []string{"compare", filepath.Join(lstm, "model.onnx"), "--backends", "interp", "--data", filepath.Join(lstm, "test_data_set_0")}, 0, []string{"PASS"}, nil},
		{"references of another model", []string{"compare", filepath.Join(lstm, "model.onnx"), "--data", filepath.Join(conf, "test_lstm_with_peepholes")}, 2, nil, []string{"input"}},
		{"nothing to compare", []string{"compare", a, "--backends", "interp"}, 2, nil, []string{"reference"}},
		{"too many backends", []string{"compare", a, "--backends", "interp,interp,interp"}, 2, nil, nil},
		{"unknown backend", []string{"compare", a, "--backends", "interp,nosuch"}, 2, nil, []string{"nosuch"}},
		{"two models two backends", []string{"compare", a, b, "--backends", "interp,ort"}, 2, nil, nil},
		{"no args", []string{"compare"}, 2, nil, nil},
		{"negative atol", []string{"compare", a, a, "--atol", "-1"}, 2, nil, nil},
		{"data and input", []string{"compare", a, a, "--data", lstm, "--input", "x.npy"}, 2, nil, nil},
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
		})
	}
	code, out, _ := runExecute("compare", a, b, "--json")
	if code != 3 {
		t.Fatalf("exit %d", code)
	}
	var rep compareReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Pass || len(rep.Rounds) != 1 || rep.Rounds[0].Result.FirstFailure != "Y" || rep.Rounds[0].Result.Outputs[0].MaxAbs <= 0 {
		t.Fatalf("report %+v", rep)
	}
}

// TestCompareInterpORT runs one real model on both backends when ONNX
// Runtime's library can be found (the ort package's tests own the CI
// requirement that it is).
func TestCompareInterpORT(t *testing.T) {
	model := filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx")
	code, out, errs := runExecute("compare", model, "--backends", "interp,ort", "--threads", "1")
	if code != 0 && (strings.Contains(errs, "cgo") || strings.Contains(errs, "library") || strings.Contains(errs, "not found")) {
		t.Skipf("ort backend unavailable: %s", errs)
	}
	if code != 0 || !strings.Contains(out, "PASS") || !strings.Contains(out, "on ort vs") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
}
