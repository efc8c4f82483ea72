package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/runtime/ort"
)

// TestORTFlags: the ONNX Runtime session flags of run, compare, bench and
// serve reach the ort backend, and are usage errors where they could not
// take effect (another backend, a CPU device, bad values).
func TestORTFlags(t *testing.T) {
	if len(ort.Candidates("")) == 0 {
		testutil.Missing(t, "ONNX Runtime shared library (run `make setup`)")
		return
	}
	dir := t.TempDir()
	model := testModel(t, dir)
	cases := []struct {
		name string
		args []string
		code int
		want string // in stdout+stderr
	}{
		{"run ort-opt off", []string{"run", model, "--backend", "ort", "--ort-opt", "off"}, ExitOK, "on ort"},
		{"run ort-opt bad", []string{"run", model, "--backend", "ort", "--ort-opt", "max"}, ExitUsage, "--ort-opt \"max\""},
		{"run ort flag on interp", []string{"run", model, "--backend", "interp", "--ort-opt", "off"}, ExitUsage, "only apply to --backend ort"},
		{"run fallback on cpu", []string{"run", model, "--backend", "ort", "--fallback", "cpu"}, ExitUsage, "--fallback cpu needs --device cuda or tensorrt"},
		{"run fallback bad", []string{"run", model, "--backend", "ort", "--device", "cuda", "--fallback", "tpu"}, ExitUsage, "the only fallback is cpu"},
		{"run cuda falls back, reported", []string{"run", model, "--backend", "ort", "--device", "cuda", "--fallback", "cpu"}, ExitOK, "fallback from cuda"},
		{"run cuda without fallback", []string{"run", model, "--backend", "ort", "--device", "cuda"}, 1, "--fallback cpu"},
		{"run provider option on cpu", []string{"run", model, "--backend", "ort", "--provider-option", "trt_fp16_enable=1"}, ExitUsage, "needs --device cuda or tensorrt"},
		{"run provider option malformed", []string{"run", model, "--backend", "ort", "--device", "tensorrt", "--provider-option", "trt_fp16_enable"}, ExitUsage, "want key=value"},
		{"run device-id on cpu", []string{"run", model, "--backend", "ort", "--device-id", "1"}, ExitUsage, "--device-id needs"},
		{"run ort-lib missing file", []string{"run", model, "--backend", "ort", "--ort-lib", filepath.Join(dir, "nope.so")}, 1, "nope.so"},
		{"compare ort-opt basic", []string{"compare", model, "--backends", "interp,ort", "--ort-opt", "basic"}, ExitOK, "PASS"},
		{"compare ort flag without ort", []string{"compare", model, model, "--backends", "interp", "--ort-opt", "basic"}, ExitUsage, "only apply to --backend ort"},
		{"bench ort-opt off", []string{"bench", model, "--backend", "ort", "--ort-opt", "off", "--iterations", "20", "--rounds", "1", "--warmup", "1"}, ExitOK, "ort on cpu"},
		{"bench ort flag on interp", []string{"bench", model, "--backend", "interp", "--ort-opt", "off", "--iterations", "5"}, ExitUsage, "only apply to --backend ort"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var so, se bytes.Buffer
			code := Execute(tc.args, &so, &se)
			out := so.String() + se.String()
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s", code, tc.code, tc.want, out)
			}
		})
	}
}

// TestServeORTFlags: serve's device and ORT flags become its session
// options, or usage errors.
func TestServeORTFlags(t *testing.T) {
	cases := []struct {
		name string
		mod  func(o *serveOptions)
		bad  string
	}{
		{"defaults", func(o *serveOptions) {}, ""},
		{"ort-opt extended", func(o *serveOptions) { o.ort.opt = "extended" }, ""},
		{"cuda with fallback", func(o *serveOptions) { o.device, o.ort.fallback = "cuda", "cpu" }, ""},
		{"cuda on interp", func(o *serveOptions) { o.backend, o.device = "interp", "cuda" }, "needs --backend ort"},
		{"bad device", func(o *serveOptions) { o.device = "tpu" }, "want cpu, cuda or tensorrt"},
		{"bad ort-opt", func(o *serveOptions) { o.ort.opt = "max" }, "--ort-opt"},
		{"fallback on cpu", func(o *serveOptions) { o.ort.fallback = "cpu" }, "needs --device cuda or tensorrt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := serveOptions{backend: "ort", device: "cpu", threads: 1, instances: 1, maxBatch: 1, queueSize: 8, http: ":0", grpc: "off"}
			o.ort.opt = "all"
			tc.mod(&o)
			cfg, err := o.config([]string{"m=" + filepath.Join(t.TempDir(), "m.onnx")})
			if tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("got %v, want an error about %s", err, tc.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Session.OptLevel != o.ort.opt || cfg.Session.Fallback != o.ort.fallback || (o.device != "cpu" && cfg.Session.Device != o.device) {
				t.Fatalf("session options %+v from %+v", cfg.Session, o)
			}
		})
	}
}
