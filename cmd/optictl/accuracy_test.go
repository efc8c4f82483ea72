package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/quant"
	"github.com/optictl/optictl/pkg/tensorio"
	"github.com/optictl/optictl/testmodels"
)

// TestOptimizeDetectorBudget: int8-static on a Paddle-style opset-11 text
// detector (Sigmoid probability map [N,1,H,W], dynamic H/W) without
// --data: the metric is IoU@0.3 (no top-1 for a map), measured on
// calibration samples held out from calibration at the calibration's real
// size, and an impossible budget exits 3 with the table of what was tried
// and writes nothing.
func TestOptimizeDetectorBudget(t *testing.T) {
	dir := t.TempDir()
	m := testmodels.DBNet()
	src := filepath.Join(dir, "dbnet.onnx")
	if err := m.Save(src); err != nil {
		t.Fatal(err)
	}
	shapes := testmodels.InputShapes(m, 1) // x: 1x3x64x96
	calib := filepath.Join(dir, "calib")
	samples, err := quant.SeededSamples(m, 8, 100, numerics.Dims{Shapes: shapes}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range samples {
		d := filepath.Join(calib, fmt.Sprintf("test_data_set_%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := tensorio.SavePB(filepath.Join(d, "input_0.pb"), "x", s[0]); err != nil {
			t.Fatal(err)
		}
	}
	base := []string{"optimize", src, "--quantize", "int8-static", "--calib", calib, "--verify-each-pass=false", "--json"}

	t.Run("iou chosen", func(t *testing.T) {
		out := filepath.Join(dir, "int8.onnx")
		var so, se bytes.Buffer
		code := Execute(append(base, "-o", out), &so, &se)
		var res optimizeResult
		if err := json.Unmarshal(so.Bytes(), &res); err != nil {
			t.Fatalf("exit %d: %v\n%s\n%s", code, err, so.String(), se.String())
		}
		q := res.Quantize
		if q == nil || q.Control == nil || q.Accuracy == nil {
			t.Fatalf("exit %d: no accuracy control in the report:\n%s\n%s", code, so.String(), se.String())
		}
		if q.Control.Metric != "iou@0.3" || q.Accuracy.IoU == nil || q.Accuracy.IoUThreshold != 0.3 {
			t.Errorf("metric %q, IoU %v@%v; want iou@0.3 measured", q.Control.Metric, q.Accuracy.IoU, q.Accuracy.IoUThreshold)
		}
		if q.Accuracy.Top1Agreement != nil {
			t.Errorf("top-1 agreement %v reported for a [N,1,H,W] probability map", *q.Accuracy.Top1Agreement)
		}
		if want := "2 held-out calibration samples; calibrated on 6"; !strings.Contains(q.Checked, want) {
			t.Errorf("checked on %q, want %q", q.Checked, want)
		}
		if sh := q.Accuracy.OutputShape; len(sh) != 4 || sh[2] != 64 || sh[3] != 96 {
			t.Errorf("measured on output shape %v, want the calibration size 1x1x64x96", sh)
		}
		// the verdict decides whether anything was written
		_, statErr := os.Stat(out)
		switch {
		case q.Control.Met && (code != ExitOK || statErr != nil):
			t.Errorf("within the budget but exit %d, written: %v", code, statErr == nil)
		case !q.Control.Met && (code != ExitFailed || statErr == nil):
			t.Errorf("outside the budget but exit %d, written: %v", code, statErr == nil)
		}
		t.Logf("exit %d: %s %s (%s) after %d attempts, %d nodes in float; cosine %.4f",
			code, q.Control.Metric, q.Control.Verdict.ValueString(), q.Control.Verdict.Limit, len(q.Control.Tried), len(q.Report.LeftInFloat), *q.Accuracy.Cosine)
	})

	t.Run("impossible budget", func(t *testing.T) {
		out := filepath.Join(dir, "never.onnx")
		var so, se bytes.Buffer
		args := append(append([]string{}, base[:len(base)-1]...), "-o", out, "--min-metric", "iou=1.0")
		code := Execute(args, &so, &se)
		if code != ExitFailed {
			t.Fatalf("exit %d, want %d:\n%s\n%s", code, ExitFailed, so.String(), se.String())
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatal("a model outside the budget was written")
		}
		text := so.String()
		for _, want := range []string{"accuracy budget, what was tried", "VERDICT", "iou@0.3", ">= 1", "outside", "nothing was written"} {
			if !strings.Contains(text, want) {
				t.Errorf("report lacks %q:\n%s", want, text)
			}
		}
		if !strings.Contains(se.String(), "iou@0.3") {
			t.Errorf("error does not name the metric: %s", se.String())
		}
	})
}

// TestOptimizePruneBudget: the default budget applies to --prune too; a
// pruned model outside it is not written (exit 3, with the table), and
// --max-accuracy-drop moves the bound.
func TestOptimizePruneBudget(t *testing.T) {
	in := filepath.Join("..", "..", "testmodels", "cnn.onnx")
	tests := []struct {
		name  string
		extra []string
		code  int
		want  string
	}{
		// the pruner's own floor turned off and no reconstruction: the
		// optimize-wide budget still judges the pruned model (here a
		// cosine floor it cannot meet) and refuses to write it
		{"budget refuses", []string{"--prune-reconstruct=false", "--prune-min-cosine", "0.01", "--prune-min-top1", "0.01", "--metric", "cosine", "--min-metric", "cosine=0.99999"}, ExitFailed, "outside"},
		{"loosened", []string{"--prune-reconstruct=false", "--prune-min-cosine", "0.01", "--prune-min-top1", "0.01", "--max-accuracy-drop", "100"}, ExitOK, "within <= 100 points"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "p.onnx")
			var so, se bytes.Buffer
			code := Execute(append([]string{"optimize", in, "-o", out, "--prune", "0.5", "--verify-each-pass=false"}, tc.extra...), &so, &se)
			if code != tc.code || !strings.Contains(so.String(), tc.want) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s\n%s", code, tc.code, tc.want, so.String(), se.String())
			}
			_, err := os.Stat(out)
			if written := err == nil; written != (tc.code == ExitOK) {
				t.Fatalf("written %v with exit %d", written, code)
			}
		})
	}
}
