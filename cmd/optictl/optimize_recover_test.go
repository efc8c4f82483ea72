package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/bench"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/prune"
	"github.com/optictl/optictl/pkg/runtime"
)

// TestOptimizeRecoverDistill: --prune F --recover distill prunes uniformly,
// distills from the unpruned model on --train, then checks the budget:
// the result is closer to the teacher than the pruned model was; a budget
// it misses exits 3 and writes nothing; misuse is a usage error.
func TestOptimizeRecoverDistill(t *testing.T) {
	teacher := filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx")
	dir := t.TempDir()
	imgs, labs := writeIDX(t, dir, 128, 28, 128)
	base := []string{"optimize", teacher, "--backend", "interp", "--prune", "0.75", "--data", imgs}
	out := filepath.Join(dir, "rec.onnx")
	var so, se bytes.Buffer
	args := append(cloneArgs(base), "-o", out, "--recover", "distill", "--train", imgs, "--train-labels", labs, "--epochs", "2", "--max-accuracy-drop", "100", "--json")
	if code := Execute(args, &so, &se); code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, se.String(), so.String())
	}
	var r struct {
		Wrote   bool
		Recover *struct {
			Method  string
			Samples int
			Epochs  []struct{ Loss float64 }
		}
	}
	if err := json.Unmarshal(so.Bytes(), &r); err != nil || !r.Wrote || r.Recover == nil || r.Recover.Method != "distill" || r.Recover.Samples != 128 || len(r.Recover.Epochs) != 2 {
		t.Fatalf("report (%v): %s", err, so.String())
	}

	// The recovered model against the same uniform pruning untrained.
	tm, err := graph.Load(teacher)
	if err != nil {
		t.Fatal(err)
	}
	raw := tm.Clone()
	if _, err := prune.Prune(raw, prune.Options{Fraction: 0.75, Mode: prune.Structured}); err != nil {
		t.Fatal(err)
	}
	rec, err := graph.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	data, err := bench.LoadData(imgs, []runtime.IOInfo{{Name: tm.Graph.Inputs[0].Name, DType: 1, Shape: []int64{1, 1, 28, 28}}}, 64)
	if err != nil {
		t.Fatal(err)
	}
	samples := make([][]*runtime.Tensor, len(data))
	for i := range data {
		samples[i] = data[i]
	}
	fr, err := prune.Measure(tm, raw, samples, "interp")
	if err != nil {
		t.Fatal(err)
	}
	fd, err := prune.Measure(tm, rec, samples, "interp")
	if err != nil {
		t.Fatal(err)
	}
	if !(fd.Cosine > fr.Cosine) {
		t.Errorf("recovered cosine %.4f not above the untrained pruned model's %.4f", fd.Cosine, fr.Cosine)
	}

	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"budget missed", []string{"--recover", "distill", "--train", imgs, "--epochs", "1", "--min-metric", "cosine=0.999999"}, 3, "accuracy budget"},
		{"no prune", []string{"--prune", "0", "--recover", "distill", "--train", imgs}, 2, "needs --prune"},
		{"unstructured", []string{"--prune-mode", "unstructured", "--recover", "distill", "--train", imgs}, 2, "structured"},
		{"no train", []string{"--recover", "distill"}, 2, "needs --train"},
		{"train alone", []string{"--train", imgs}, 2, "are for --recover distill"},
		{"unknown method", []string{"--recover", "finetune", "--train", imgs}, 2, "want distill"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".onnx")
			var so, se bytes.Buffer
			code := Execute(append(append(cloneArgs(base), "-o", o), tc.args...), &so, &se)
			if code != tc.code || !strings.Contains(se.String(), tc.stderr) {
				t.Fatalf("exit %d (want %d): %s\n%s", code, tc.code, se.String(), so.String())
			}
			if _, err := os.Stat(o); err == nil {
				t.Error("a failed run wrote the model")
			}
		})
	}
}
