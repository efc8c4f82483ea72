package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tensorio"
)

// TestOptimizePruneStructuredBudget: structured --prune with --calib picks
// per-layer ratios, reconstructs and reports held-out accuracy; a budget
// the result cannot meet exits 3 with the per-layer table and writes
// nothing.
func TestOptimizePruneStructuredBudget(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join("..", "..", "testmodels", "cnn.onnx")
	calib, data := filepath.Join(dir, "calib"), filepath.Join(dir, "data")
	r := rand.New(rand.NewSource(5))
	for k := 0; k < 10; k++ {
		v := make([]float32, 3*32*32)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		d := filepath.Join(calib, fmt.Sprintf("test_data_set_%d", k))
		if k >= 8 {
			d = filepath.Join(data, fmt.Sprintf("test_data_set_%d", k))
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := tensorio.SavePB(filepath.Join(d, "input_0.pb"), "input", runtime.FromFloat32([]int64{1, 3, 32, 32}, v)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name            string
		args            []string
		wantCode        int
		wantHeld, wantC int
	}{
		{"within budget", []string{"--prune-min-cosine", "0.95", "--prune-min-top1", "0.5"}, ExitOK, 2, 6},
		{"impossible budget", []string{"--prune-min-cosine", "0.999999"}, ExitFailed, 2, 6},
		{"data held out", []string{"--data", data, "--prune-min-cosine", "0.95", "--prune-min-top1", "0.5"}, ExitOK, 2, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".onnx")
			var so, se bytes.Buffer
			args := append([]string{"optimize", in, "-o", out, "--prune", "0.3", "--calib", calib, "--json"}, tc.args...)
			code := Execute(args, &so, &se)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d: %s\n%s", code, tc.wantCode, se.String(), so.String())
			}
			var res optimizeResult
			if err := json.Unmarshal(so.Bytes(), &res); err != nil {
				t.Fatalf("%v\n%s", err, so.String())
			}
			if res.Prune == nil || res.Prune.Accuracy == nil || len(res.Prune.Accuracy.Sensitivity) == 0 || res.Prune.Reconstruction == nil {
				t.Fatalf("no sensitivity table or reconstruction in %s", so.String())
			}
			acc := res.Prune.Accuracy
			if acc.Held != tc.wantHeld || acc.Calib != tc.wantC {
				t.Fatalf("held-out %d, calibration %d: want %d and %d", acc.Held, acc.Calib, tc.wantHeld, tc.wantC)
			}
			_, err := os.Stat(out)
			if tc.wantCode == ExitOK {
				if err != nil || res.Prune.ChannelsAfter >= res.Prune.ChannelsBefore {
					t.Fatalf("written: %v; channels %d -> %d", err, res.Prune.ChannelsBefore, res.Prune.ChannelsAfter)
				}
				return
			}
			if err == nil {
				t.Fatal("a model outside the budget was written")
			}
		})
	}
}

// TestOptimizePruneUnstructuredBudget: the budget applies to unstructured
// pruning too: zeroing 95% of the weights collapses the test CNN, which
// exits 3 and writes nothing; 20% is within the budget and written.
func TestOptimizePruneUnstructuredBudget(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join("..", "..", "testmodels", "cnn.onnx")
	for _, tc := range []struct {
		frac     string
		wantCode int
	}{
		{"0.95", ExitFailed},
		{"0.2", ExitOK},
	} {
		t.Run(tc.frac, func(t *testing.T) {
			out := filepath.Join(dir, tc.frac+".onnx")
			var so, se bytes.Buffer
			code := Execute([]string{"optimize", in, "-o", out, "--prune", tc.frac, "--prune-mode", "unstructured", "--json"}, &so, &se)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d: %s\n%s", code, tc.wantCode, se.String(), so.String())
			}
			var res optimizeResult
			if err := json.Unmarshal(so.Bytes(), &res); err != nil {
				t.Fatalf("%v\n%s", err, so.String())
			}
			if res.Prune == nil || res.Prune.Accuracy == nil || res.Prune.Accuracy.Held == 0 {
				t.Fatalf("no accuracy in %s", so.String())
			}
			if _, err := os.Stat(out); (err == nil) != (tc.wantCode == ExitOK) {
				t.Fatalf("written: %v, exit %d", err == nil, code)
			}
		})
	}
}
