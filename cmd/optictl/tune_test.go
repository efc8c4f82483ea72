package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/serve"
)

func TestTuneUsageErrors(t *testing.T) {
	model := filepath.Join("..", "..", "testmodels", "mlp.onnx")
	out := t.TempDir()
	cases := []struct {
		name string
		args []string
		msg  string
	}{
		{"no out", []string{"tune", model}, "-o OUTDIR"},
		{"two models", []string{"tune", model, model, "-o", out}, "one model"},
		{"bad recipe", []string{"tune", model, "-o", out, "--recipes", "O7"}, "--recipes"},
		{"bad backend", []string{"tune", model, "-o", out, "--backends", "tvm"}, "--backends"},
		{"bad require", []string{"tune", model, "-o", out, "--require", "latency>=1"}, "unknown field"},
		{"zero threads", []string{"tune", model, "-o", out, "--threads", "0"}, "positive"},
		{"labels without data", []string{"tune", model, "-o", out, "--labels", "l.txt"}, "--labels needs --data"},
		{"negative drop", []string{"tune", model, "-o", out, "--max-accuracy-drop", "-1"}, "must not be negative"},
		{"bad device", []string{"tune", model, "-o", out, "--devices", "tpu"}, "--devices"},
		{"bad remeasure", []string{"tune", model, "-o", out, "--remeasure-iterations", "-2"}, "--remeasure-iterations"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errs := runExecute(c.args...)
			if code != ExitUsage || !strings.Contains(errs, c.msg) {
				t.Fatalf("exit %d, stderr %q (want %d, %q)", code, errs, ExitUsage, c.msg)
			}
		})
	}
}

// TestTuneCommand runs tune on interp (pure Go) with tiny iteration
// counts: the JSON report has the documented fields, an unmeetable
// --require exits 3 after writing everything, and serve --config loads the
// serve.json it wrote.
func TestTuneCommand(t *testing.T) {
	model := filepath.Join("..", "..", "testmodels", "mlp.onnx")
	out := t.TempDir()
	js := filepath.Join(out, "report.json")
	code, stdout, errs := runExecute("tune", model, "-o", out, "--backends", "interp", "--recipes", "original,O2,fp16",
		"--short-iterations", "3", "--iterations", "4", "--rounds", "2", "--json", js, "--require", "speedup>=1000")
	if code != ExitFailed || !strings.Contains(errs, "--require unmet: speedup>=1000") {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	if !strings.Contains(stdout, "CANDIDATE") || !strings.Contains(stdout, "chosen:") || !strings.Contains(errs, "done  O2@interp") {
		t.Fatalf("stdout %s\nstderr %s", stdout, errs)
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Candidates []map[string]any `json:"candidates"`
		Baseline   string           `json:"baseline"`
		Chosen     string           `json:"chosen"`
		Require    []struct {
			Passed bool `json:"passed"`
		} `json:"requirements"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Candidates) != 3 || rep.Baseline != "original@interp" || rep.Chosen == "" || len(rep.Require) != 1 || rep.Require[0].Passed {
		t.Fatalf("report %s", b)
	}
	for _, k := range []string{"id", "recipe", "backend", "device", "threads", "batch", "p50_ms", "p99_ms", "throughput_per_s", "accuracy", "pareto", "path"} {
		if _, ok := rep.Candidates[0][k]; !ok {
			t.Errorf("candidate lacks %q", k)
		}
	}
	acc, _ := rep.Candidates[0]["accuracy"].(map[string]any)
	for _, k := range []string{"metric", "value", "drop"} {
		if _, ok := acc[k]; !ok {
			t.Errorf("accuracy lacks %q", k)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "frontier.svg")); err != nil {
		t.Error(err)
	}
	o := &serveOptions{backend: "interp", threads: 1, instances: 1, maxBatch: 1, queueSize: 16, version: "1", configFile: filepath.Join(out, "serve.json")}
	cfg, err := o.config(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Models) != 1 || len(cfg.Models[0].Variants) == 0 {
		t.Fatalf("models %+v", cfg.Models)
	}
	for _, v := range cfg.Models[0].Variants {
		if _, err := os.Stat(v.Path); err != nil {
			t.Errorf("variant %s: %v", v.Name, err)
		}
	}
	cfg.HTTPAddr, cfg.GRPCAddr = "127.0.0.1:0", "off"
	srv, err := serve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // load, then drain and stop at once
	if err := srv.Serve(ctx); err != nil {
		t.Fatal(err)
	}
	o.backend = "ort"
	if _, err := o.config(nil); err == nil || !strings.Contains(err.Error(), "measured on backend interp") {
		t.Fatalf("config on another backend: %v", err)
	}
	code, _, errs = runExecute("serve", "--config", filepath.Join(out, "nope.json"))
	if code != ExitUsage || !strings.Contains(errs, "--config") {
		t.Fatalf("missing config: exit %d, %s", code, errs)
	}
}
