package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/quant"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tensorio"
	"github.com/optictl/optictl/testmodels"
)

// TestQuantizeNothingIsAnError: a requested quantization that quantizes
// no node exits 1, says why and writes nothing.
func TestQuantizeNothingIsAnError(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "cnn.onnx")
	if err := testmodels.CNN().Save(src); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		// the CNN has no MatMul/Gemm left once its classifier is excluded
		{"dynamic-excluded", []string{"--quantize", "int8-dynamic", "--op-types", "MatMul"}, "nothing quantized by int8-dynamic"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name+".onnx")
			var so, se bytes.Buffer
			code := Execute(append([]string{"optimize", src, "-o", out, "--no-verify"}, tc.args...), &so, &se)
			if code != ExitError || !strings.Contains(se.String(), tc.want) || !strings.Contains(se.String(), "nothing was written") {
				t.Fatalf("exit %d, stderr %q (want %q)", code, se.String(), tc.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a model was written")
			}
		})
	}
}

// TestQuantizePPOCRConvertsOpset: the opset-9 Paddle export is quantized
// per channel after the version converter raised it to 13, and the report
// says so.
func TestQuantizePPOCRConvertsOpset(t *testing.T) {
	d := filepath.Join(testutil.ModelsDir(t), "ppocr-cls")
	if _, err := os.Stat(filepath.Join(d, "model.onnx")); err != nil {
		testutil.Missing(t, d)
		return
	}
	out := filepath.Join(t.TempDir(), "cls-int8.onnx")
	var so, se bytes.Buffer
	code := Execute([]string{"optimize", filepath.Join(d, "model.onnx"), "-o", out, "--quantize", "int8-static",
		"--calib", filepath.Join(d, "test_data_set_0"), "--shape", "x=1x3x48x192", "--json"}, &so, &se)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	if !strings.Contains(so.String(), "default opset converted from 9 to 13 by the version converter") {
		t.Errorf("the report does not say the opset was converted:\n%s", so.String())
	}
	var res struct {
		Quantize struct {
			Report struct {
				Int8Ops  int `json:"int8_ops"`
				FloatOps int `json:"float_ops"`
			} `json:"report"`
		} `json:"quantize"`
	}
	if err := json.Unmarshal(so.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if r := res.Quantize.Report; r.Int8Ops < 50 || r.FloatOps != 0 {
		t.Errorf("%d int8 / %d float compute ops, want every conv (>= 50) in int8", r.Int8Ops, r.FloatOps)
	}
}

// TestRecipeFlags: --quantize and --quant-target are looked up in
// pkg/quant's registries; what a recipe needs comes from its declaration.
func TestRecipeFlags(t *testing.T) {
	base := optimizeOptions{Calibrate: "minmax", Percentile: 99.999, CalibSamples: 100, PruneMode: "structured", MaxDrop: -1}
	tests := []struct {
		name string
		mod  func(o *optimizeOptions)
		bad  string
	}{
		{"unknown recipe lists the valid ones", func(o *optimizeOptions) { o.Quantize = "int4" }, "want one of fp16, int8-auto, int8-dynamic, int8-mixed, int8-static"},
		{"fpga target", func(o *optimizeOptions) { o.Quantize = "int8-static"; o.Calib = "c"; o.QuantTarget = "fpga" }, ""},
		{"unknown target lists the valid ones", func(o *optimizeOptions) { o.Quantize = "int8-static"; o.Calib = "c"; o.QuantTarget = "tpu" }, "want one of fpga, ort-cpu"},
		{"target without QDQ", func(o *optimizeOptions) { o.Quantize = "int8-dynamic"; o.QuantTarget = "fpga" }, "not used by --quantize int8-dynamic"},
		{"target without quantize", func(o *optimizeOptions) { o.QuantTarget = "fpga" }, "--quant-target needs --quantize"},
		{"calib not read", func(o *optimizeOptions) { o.Quantize = "fp16"; o.Calib = "c" }, "--calib is not used by --quantize fp16"},
		{"op types not read", func(o *optimizeOptions) { o.Quantize = "fp16"; o.OpTypes = []string{"Conv"} }, "--op-types is not used by --quantize fp16"},
		{"mixed needs calib", func(o *optimizeOptions) { o.Quantize = "int8-mixed" }, "needs --calib"},
		{"mixed with force", func(o *optimizeOptions) { o.Quantize = "int8-mixed"; o.Calib = "c"; o.Force = true }, ""},
		{"force without mixed", func(o *optimizeOptions) { o.Quantize = "int8-static"; o.Calib = "c"; o.Force = true }, "--force is only used by --quantize int8-mixed"},
		{"force without quantize", func(o *optimizeOptions) { o.Force = true }, "--force needs --quantize int8-mixed"},
		{"time budget for mixed", func(o *optimizeOptions) { o.Quantize = "int8-mixed"; o.Calib = "c"; o.TimeBudget = time.Minute }, ""},
		{"time budget for auto", func(o *optimizeOptions) { o.Quantize = "int8-auto"; o.Calib = "c"; o.TimeBudget = time.Minute }, ""},
		{"time budget not read", func(o *optimizeOptions) { o.Quantize = "int8-static"; o.Calib = "c"; o.TimeBudget = time.Minute }, "--time-budget is only used by"},
		{"negative time budget", func(o *optimizeOptions) { o.Quantize = "int8-auto"; o.Calib = "c"; o.TimeBudget = -time.Second }, "must not be negative"},
		{"time budget without quantize", func(o *optimizeOptions) { o.TimeBudget = time.Minute }, "--time-budget needs --quantize"},
		{"mixed untimed needs force", func(o *optimizeOptions) { o.Quantize = "int8-mixed"; o.Calib = "c"; o.NoVerify = true }, "add --force"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.mod(&o)
			err := o.checkQuantFlags()
			if tc.bad == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ee *exitError
			if err == nil || !strings.Contains(err.Error(), tc.bad) || !asExit(err, &ee) || ee.code != ExitUsage {
				t.Fatalf("got %v, want a usage error about %s", err, tc.bad)
			}
		})
	}
	// --quantize list prints the registries
	for _, args := range [][]string{{"optimize", "--quantize", "list"}, {"optimize", "--quantize", "list", "--json"}} {
		var so, se bytes.Buffer
		if code := Execute(args, &so, &se); code != ExitOK {
			t.Fatalf("%v: exit %d: %s", args, code, se.String())
		}
		for _, want := range []string{"int8-static", "int8-dynamic", "int8-auto", "fp16", "ort-cpu", "fpga"} {
			if !strings.Contains(so.String(), want) {
				t.Errorf("%v does not list %s:\n%s", args, want, so.String())
			}
		}
	}
}

// TestOptimizeInt8Mixed runs --quantize int8-mixed on the test CNN: the
// output shows the per-layer profile (every layer, its timings and
// decision); without --force a model is written only when it measured
// at least as fast as float (else exit 3, nothing written), with --force
// it is always written. Speed itself is not asserted (benchmarks).
func TestOptimizeInt8Mixed(t *testing.T) {
	cnn := filepath.Join("..", "..", "testmodels", "cnn.onnx")
	m, err := graph.Load(cnn)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := runtime.Open("ort", m, runtime.Options{Threads: 1}); err != nil {
		if testutil.InCI() {
			t.Fatalf("ort: %v", err)
		}
		t.Skipf("ort: %v", err)
	} else {
		s.Close()
	}
	calib := filepath.Join(t.TempDir(), "calib")
	samples, err := quant.SeededSamples(m, 4, 100, numerics.Dims{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range samples {
		d := filepath.Join(calib, fmt.Sprintf("test_data_set_%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := tensorio.SavePB(filepath.Join(d, "input_0.pb"), "input", s[0]); err != nil {
			t.Fatal(err)
		}
	}
	for _, force := range []bool{false, true} {
		t.Run(fmt.Sprintf("force=%v", force), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "q.onnx")
			args := []string{"optimize", cnn, "-o", out, "--quantize", "int8-mixed", "--calib", calib}
			if force {
				args = append(args, "--force")
			}
			var so, se bytes.Buffer
			code := Execute(args, &so, &se)
			for _, want := range []string{"per-layer profile", "conv_0", "gemm_16", "whole-model timing"} {
				if !strings.Contains(so.String(), want) {
					t.Errorf("output lacks %q:\n%s%s", want, so.String(), se.String())
				}
			}
			// not a terminal: one progress line per step on stderr
			if !strings.Contains(se.String(), "quantize: profile Conv \"conv_0\"") || !strings.Contains(se.String(), "quantize: int8-mixed candidate plan") {
				t.Errorf("stderr lacks the progress lines:\n%s", se.String())
			}
			_, statErr := os.Stat(out)
			switch {
			case code == ExitOK:
				if statErr != nil {
					t.Fatalf("exit 0 but nothing written: %v", statErr)
				}
				if !force && strings.Contains(so.String(), "NOT faster") {
					t.Fatalf("written without --force while slower than float:\n%s", so.String())
				}
			case code == ExitFailed && !force:
				if statErr == nil {
					t.Fatal("exit 3 but a model was written")
				}
			default:
				t.Fatalf("exit %d: %s\n%s", code, se.String(), so.String())
			}
		})
	}
}
