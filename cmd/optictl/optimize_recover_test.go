package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/bench"
	"github.com/optictl/optictl/pkg/distill"
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
	// Every training setting away from its default, reported back.
	args := append(cloneArgs(base), "-o", out, "--recover", "distill", "--train", imgs, "--train-labels", labs, "--epochs", "2",
		"--train-batch", "16", "--lr", "2e-3", "--temperature", "2", "--alpha", "0.7", "--train-seed", "3",
		"--val", imgs, "--val-labels", labs, "--train-backend", "interp", "--max-accuracy-drop", "100", "--json")
	if code := Execute(args, &so, &se); code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, se.String(), so.String())
	}
	var r struct {
		Wrote   bool
		Recover *struct {
			Method         string
			Samples        int
			Loss           string
			TeacherBackend string `json:"teacher_backend"`
			ValSamples     int    `json:"val_samples"`
			Settings       recoverSettings
			ValBefore      *float64 `json:"val_top1_before"`
			Epochs         []struct {
				Loss    float64
				ValTop1 *float64 `json:"val_top1"`
			}
		}
	}
	if err := json.Unmarshal(so.Bytes(), &r); err != nil || !r.Wrote || r.Recover == nil || r.Recover.Method != "distill" || r.Recover.Samples != 128 || len(r.Recover.Epochs) != 2 {
		t.Fatalf("report (%v): %s", err, so.String())
	}
	rr := r.Recover
	if want := (recoverSettings{Epochs: 2, Batch: 16, LR: 2e-3, Temperature: 2, Alpha: 0.7, Seed: 3, Workers: 2, Standardize: true, Schedule: "cosine"}); rr.Settings != want {
		t.Errorf("settings %+v, want %+v", rr.Settings, want)
	}
	if rr.TeacherBackend != "interp" || rr.Loss != "0.7·KD(T=2, standardized) + 0.3·cross-entropy" || rr.ValSamples != 128 {
		t.Errorf("teacher on %q, loss %q, %d val samples", rr.TeacherBackend, rr.Loss, rr.ValSamples)
	}
	if rr.ValBefore == nil || rr.Epochs[0].ValTop1 == nil || rr.Epochs[1].ValTop1 == nil {
		t.Errorf("--val: no top-1 before training or per epoch: %s", so.String())
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
		{"train alone", []string{"--train", imgs}, 2, "--train is for --recover distill"},
		{"unknown method", []string{"--recover", "finetune", "--train", imgs}, 2, "want distill"},
		{"epochs alone", []string{"--epochs", "2"}, 2, "--epochs is for --recover distill"},
		{"lr alone", []string{"--lr", "0.01"}, 2, "--lr is for --recover distill"},
		{"temperature alone", []string{"--temperature", "2"}, 2, "--temperature is for --recover distill"},
		{"alpha alone", []string{"--alpha", "0.2"}, 2, "--alpha is for --recover distill"},
		{"batch alone", []string{"--train-batch", "8"}, 2, "--train-batch is for --recover distill"},
		{"seed alone", []string{"--train-seed", "2"}, 2, "--train-seed is for --recover distill"},
		{"limit alone", []string{"--train-limit", "8"}, 2, "--train-limit is for --recover distill"},
		{"val alone", []string{"--val", imgs, "--val-labels", labs}, 2, "--val is for --recover distill"},
		{"checkpoint alone", []string{"--checkpoint-dir", dir}, 2, "--checkpoint-dir is for --recover distill"},
		{"resume alone", []string{"--resume"}, 2, "--resume is for --recover distill"},
		{"backend alone", []string{"--train-backend", "ort"}, 2, "--train-backend is for --recover distill"},
		{"lr 0", []string{"--recover", "distill", "--train", imgs, "--lr", "0"}, 2, "--lr > 0"},
		{"lr NaN", []string{"--recover", "distill", "--train", imgs, "--lr", "NaN"}, 2, "--lr > 0"},
		{"temperature 0", []string{"--recover", "distill", "--train", imgs, "--temperature", "0"}, 2, "want auto or a number > 0"},
		{"workers over batch", []string{"--recover", "distill", "--train", imgs, "--train-batch", "4", "--train-workers", "5"}, 2, "--train-workers 5 must be in [1, --train-batch 4]"},
		{"bad schedule", []string{"--recover", "distill", "--train", imgs, "--lr-schedule", "step"}, 2, `--lr-schedule "step"`},
		{"workers alone", []string{"--train-workers", "3"}, 2, "--train-workers is for --recover distill"},
		{"alpha 1.5", []string{"--recover", "distill", "--train", imgs, "--train-labels", labs, "--alpha", "1.5"}, 2, "--alpha in [0,1]"},
		{"batch 0", []string{"--recover", "distill", "--train", imgs, "--train-batch", "0"}, 2, "--train-batch >= 1"},
		{"epochs 0", []string{"--recover", "distill", "--train", imgs, "--epochs", "0"}, 2, "--epochs >= 1"},
		{"limit -1", []string{"--recover", "distill", "--train", imgs, "--train-limit", "-1"}, 2, "--train-limit >= 0"},
		{"alpha without labels", []string{"--recover", "distill", "--train", imgs, "--alpha", "0.3"}, 2, "without labels"},
		{"val without labels", []string{"--recover", "distill", "--train", imgs, "--val", imgs}, 2, "go together"},
		{"resume without dir", []string{"--recover", "distill", "--train", imgs, "--resume"}, 2, "needs --checkpoint-dir"},
		{"resume, no checkpoint", []string{"--recover", "distill", "--train", imgs, "--resume", "--checkpoint-dir", filepath.Join(dir, "none")}, 2, "no checkpoint"},
		{"unknown backend", []string{"--recover", "distill", "--train", imgs, "--train-backend", "tpu"}, 2, "--train-backend"},
		{"O3 ort-cpu", []string{"-O3", "--target", "ort-cpu", "--recover", "distill", "--train", imgs}, 2, "-O3 --target ort-cpu"},
		{"fewer samples than a batch", []string{"--recover", "distill", "--train", imgs, "--train-limit", "8"}, 2, "fewer than one --train-batch of 32"},
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

// ortOrMissing skips (fails under CI) unless ONNX Runtime runs m.
func ortOrMissing(t *testing.T, m *graph.Model) {
	t.Helper()
	s, err := runtime.Open("ort", m, runtime.Options{Threads: 1})
	if err != nil {
		testutil.Missing(t, fmt.Sprintf("ONNX Runtime (%v)", err))
		return
	}
	s.Close()
}

// recoverJSON runs optimize args and decodes its --json report.
func recoverJSON(t *testing.T, args ...string) (*optimizeResult, string) {
	t.Helper()
	var so, se bytes.Buffer
	if code := Execute(append(args, "--json"), &so, &se); code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, se.String(), so.String())
	}
	var r optimizeResult
	if err := json.Unmarshal(so.Bytes(), &r); err != nil || !r.Wrote || r.Recover == nil {
		t.Fatalf("report (%v): %s", err, so.String())
	}
	return &r, so.String()
}

// TestOptimizeRecoverTeacherBackend: without --train-backend the teacher
// runs on ONNX Runtime when it loads the model (optimize's --backend, the
// verification backend, defaults to interp and does not choose it);
// --train-backend interp forces interp; a model ORT does not load falls
// back to interp and the report says why.
func TestOptimizeRecoverTeacherBackend(t *testing.T) {
	teacher := filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx")
	tm, err := graph.Load(teacher)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	imgs, _ := writeIDX(t, dir, 32, 28, 32)
	base := []string{"optimize", teacher, "--prune", "0.5", "--recover", "distill", "--train", imgs, "--epochs", "1", "--train-batch", "16", "--max-accuracy-drop", "100"}

	t.Run("fallback", func(t *testing.T) {
		noORT := func(backend string, m *graph.Model) (runtime.Session, error) {
			if backend == "ort" {
				return nil, errors.New("no ORT here")
			}
			return openBackend(backend, m)
		}
		o := &optimizeOptions{Model: teacher, Level: "O2", Target: "generic", Prune: 0.5, PruneMode: prune.Structured, PruneNorm: "l1",
			recoverOptions: recoverOptions{Recover: "distill", Train: imgs, Epochs: 1, Batch: 16, LR: 1e-3, T: 4, Alpha: 0.5, Seed: 1}}
		var so, se bytes.Buffer
		_, _, res, err := pruneRecover(&globalOptions{Stdout: &so, Stderr: &se}, o, tm, noORT)
		if err != nil {
			t.Fatal(err)
		}
		if res.Backend != "interp" || !strings.Contains(res.BackendNote, "no ORT here") {
			t.Fatalf("teacher on %q, note %q", res.Backend, res.BackendNote)
		}
		printRecover(&so, res)
		if !strings.Contains(so.String(), "teacher on interp") || !strings.Contains(so.String(), "ONNX Runtime did not load the model (no ORT here)") {
			t.Errorf("report does not say why the teacher ran on interp:\n%s", so.String())
		}
	})
	t.Run("forced", func(t *testing.T) {
		r, _ := recoverJSON(t, append(cloneArgs(base), "-o", filepath.Join(dir, "interp.onnx"), "--train-backend", "interp")...)
		if r.Recover.Backend != "interp" || r.Recover.BackendNote != "" {
			t.Errorf("--train-backend interp: teacher on %q (%s)", r.Recover.Backend, r.Recover.BackendNote)
		}
	})
	t.Run("ort", func(t *testing.T) {
		ortOrMissing(t, tm)
		// --backend interp is the verification's and does not choose the
		// teacher's backend.
		r, text := recoverJSON(t, append(cloneArgs(base), "-o", filepath.Join(dir, "ort.onnx"), "--backend", "interp")...)
		if r.Recover.Backend != "ort" || r.Recover.BackendNote != "" {
			t.Errorf("ORT loads the model, yet the teacher ran on %q (%s): %s", r.Recover.Backend, r.Recover.BackendNote, text)
		}
	})
}

// TestPickTrainBackend: the choice and its failures.
func TestPickTrainBackend(t *testing.T) {
	opener := func(fail ...string) backendOpener {
		return func(backend string, m *graph.Model) (runtime.Session, error) {
			if slices.Contains(fail, backend) {
				return nil, fmt.Errorf("%s broken", backend)
			}
			return nil, nil
		}
	}
	cases := []struct {
		want      string
		fail      []string
		backend   string
		note, err string
	}{
		{"", nil, "ort", "", ""},
		{"", []string{"ort"}, "interp", "ort broken", ""},
		{"", []string{"ort", "interp"}, "", "", "neither ort (ort broken) nor interp (interp broken)"},
		{"interp", nil, "interp", "", ""},
		{"ort", []string{"ort"}, "", "", "--train-backend ort: ort broken"},
	}
	for _, tc := range cases {
		_, backend, note, err := pickTrainBackend(tc.want, nil, opener(tc.fail...))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("want %q, fail %v: error %v, want %q", tc.want, tc.fail, err, tc.err)
			}
			continue
		}
		if err != nil || backend != tc.backend || (tc.note == "") != (note == "") || !strings.Contains(note, tc.note) {
			t.Errorf("want %q, fail %v: %q, note %q, %v; want %q, note with %q", tc.want, tc.fail, backend, note, err, tc.backend, tc.note)
		}
	}
}

// TestOptimizeRecoverQuantize: -O3 (generic target) --prune --recover
// distill --quantize int8-static prunes, trains, then quantizes the
// trained model: both blocks are reported and the written model is the
// pruned one in QDQ form.
func TestOptimizeRecoverQuantize(t *testing.T) {
	teacher := filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx")
	dir := t.TempDir()
	imgs, labs := writeIDX(t, dir, 64, 28, 64)
	cdir := filepath.Join(dir, "calib")
	if err := os.Mkdir(cdir, 0o755); err != nil {
		t.Fatal(err)
	}
	calib, _ := writeIDX(t, cdir, 16, 28, 16)
	out := filepath.Join(dir, "q.onnx")
	r, text := recoverJSON(t, "optimize", teacher, "-o", out, "-O3", "--target", "generic", "--prune", "0.5", "--recover", "distill",
		"--train", imgs, "--train-labels", labs, "--epochs", "1", "--train-batch", "16", "--train-backend", "interp",
		"--quantize", "int8-static", "--calib", calib, "--data", imgs, "--max-accuracy-drop", "100")
	if r.Report.Level != "O3" || r.Quantize == nil || r.Quantize.Report == nil || len(r.Quantize.Report.Quantized) == 0 || r.Prune == nil || len(r.Prune.Layers) == 0 || len(r.Recover.Epochs) != 1 {
		t.Fatalf("want -O3, pruned, recovered and quantized: %s", text)
	}
	m, err := graph.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	q := 0
	for _, n := range m.Graph.Nodes {
		if n.Is("QuantizeLinear") {
			q++
		}
	}
	if q == 0 {
		t.Error("the written model has no QuantizeLinear")
	}
	// the first Conv keeps half of its 8 channels (its weight, or the
	// int8 weight its DequantizeLinear reads)
	prod := m.Graph.Producers()
	var w *graph.Tensor
	for _, n := range m.Graph.Nodes {
		if n.Name == "Convolution28" && len(n.Inputs) > 1 {
			if w = m.Graph.Initializer(n.Inputs[1]); w == nil {
				if dq := prod[n.Inputs[1]]; dq != nil && dq.Is("DequantizeLinear") {
					w = m.Graph.Initializer(dq.Inputs[0])
				}
			}
		}
	}
	if w == nil || len(w.Dims) != 4 || w.Dims[0] != 4 {
		t.Errorf("Convolution28's weight is %v, want 4 output channels (8 pruned by half)", w)
	}
}

// TestOptimizeRecoverResume: --checkpoint-dir checkpoints each epoch;
// --resume with more --epochs continues (its first epoch is the first
// run's); a checkpoint of another pruning is refused.
func TestOptimizeRecoverResume(t *testing.T) {
	teacher := filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx")
	dir := t.TempDir()
	imgs, _ := writeIDX(t, dir, 32, 28, 32)
	ck := filepath.Join(dir, "ck")
	base := []string{"optimize", teacher, "--prune", "0.5", "--recover", "distill", "--train", imgs, "--train-batch", "16", "--lr-schedule", "constant",
		"--train-backend", "interp", "--checkpoint-dir", ck, "--max-accuracy-drop", "100"}
	r1, _ := recoverJSON(t, append(cloneArgs(base), "-o", filepath.Join(dir, "a.onnx"), "--epochs", "1")...)
	if _, err := os.Stat(filepath.Join(ck, distill.CheckpointFile)); err != nil {
		t.Fatalf("no checkpoint: %v", err)
	}
	r2, text := recoverJSON(t, append(cloneArgs(base), "-o", filepath.Join(dir, "b.onnx"), "--epochs", "2", "--resume")...)
	if !r2.Recover.Resumed || len(r2.Recover.Epochs) != 2 || r2.Recover.Epochs[0].Loss != r1.Recover.Epochs[0].Loss {
		t.Fatalf("resumed run: %s", text)
	}
	var so, se bytes.Buffer
	args := append(cloneArgs(base), "-o", filepath.Join(dir, "c.onnx"), "--epochs", "2", "--resume")
	args[3] = "0.25" // --prune
	if code := Execute(args, &so, &se); code != 2 || !strings.Contains(se.String(), `prune "0.5" (this run: "0.25")`) {
		t.Fatalf("resume from another pruning: exit %d: %s", code, se.String())
	}
}

// TestOptimizeRecoverFlagsMatchDistill: the training flags of optimize
// --recover distill have distill's defaults (same name, or distill's name
// with a train- prefix).
func TestOptimizeRecoverFlagsMatchDistill(t *testing.T) {
	g := &globalOptions{Stdout: io.Discard, Stderr: io.Discard}
	opt, dis := newOptimizeCmd(g).Flags(), newDistillCmd(g).Flags()
	pairs := map[string]string{"train-labels": "train-labels", "train-limit": "limit", "epochs": "epochs", "train-batch": "batch", "lr": "lr",
		"temperature": "temperature", "alpha": "alpha", "train-seed": "seed", "val": "val", "val-labels": "val-labels",
		"checkpoint-dir": "checkpoint-dir", "resume": "resume", "train-backend": "backend", "train-workers": "workers", "kd-standardize": "kd-standardize", "lr-schedule": "lr-schedule", "loss": "loss"}
	for _, name := range recoverFlagNames {
		of := opt.Lookup(name)
		if of == nil {
			t.Errorf("optimize has no --%s", name)
			continue
		}
		d, ok := pairs[name]
		if !ok {
			continue // --train: distill's is the same flag, required there
		}
		df := dis.Lookup(d)
		if df == nil || df.DefValue != of.DefValue || df.Value.Type() != of.Value.Type() {
			t.Errorf("optimize --%s (%s %q) differs from distill --%s (%v)", name, of.Value.Type(), of.DefValue, d, df)
		}
	}
}

// TestOptimizeRecoverForeignOps: passes that write com.microsoft fused ops
// (named with --passes, so the -O3 --target ort-cpu usage check does not
// see them) leave a model --recover distill refuses before training,
// naming the ops; nothing is written.
func TestOptimizeRecoverForeignOps(t *testing.T) {
	cnn := filepath.Join("..", "..", "testmodels", "cnn.onnx")
	out := filepath.Join(t.TempDir(), "out.onnx")
	var so, se bytes.Buffer
	code := Execute([]string{"optimize", cnn, "-o", out, "--target", "ort-cpu", "--passes", "fuse-conv-batchnorm,fuse-ort-conv-activation",
		"--prune", "0.5", "--recover", "distill", "--train", filepath.Join(t.TempDir(), "unread")}, &so, &se)
	if code != 2 || !strings.Contains(se.String(), "com.microsoft.FusedConv nodes, which can be neither pruned nor trained") {
		t.Fatalf("exit %d: %s\n%s", code, se.String(), so.String())
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("wrote the model")
	}
}
