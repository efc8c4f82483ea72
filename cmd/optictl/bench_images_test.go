package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
)

// TestBenchImageFolder: bench --data reads a folder of MNIST PNGs like the
// idx file they came from (same top-1 with the same labels); --pixel-*
// apply to it, and without --data they are a usage error.
func TestBenchImageFolder(t *testing.T) {
	model := filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx")
	flat, _ := writeMNISTPNGs(t, t.TempDir(), 64)
	labels := filepath.Join(testutil.MNISTDir(t), "t10k-labels-idx1-ubyte.gz")
	top1 := func(extra ...string) float64 {
		t.Helper()
		args := append([]string{model, "--backend", "interp", "--threads", "1", "--iterations", "4", "--warmup", "1",
			"--labels", labels, "--samples", "64", "--json", "-"}, extra...)
		code, stdout, stderr := benchRun(args...)
		if code != ExitOK {
			t.Fatalf("%v: exit %d: %s", extra, code, stderr)
		}
		var rep struct {
			Models []struct {
				Accuracy struct {
					Top1Accuracy *float64 `json:"top1_accuracy"`
					Labelled     int      `json:"labelled"`
				} `json:"accuracy"`
			} `json:"models"`
		}
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil || rep.Models[0].Accuracy.Top1Accuracy == nil || rep.Models[0].Accuracy.Labelled != 64 {
			t.Fatalf("report %s (%v)", stdout, err)
		}
		return *rep.Models[0].Accuracy.Top1Accuracy
	}
	idxTop1 := top1("--data", filepath.Join(testutil.MNISTDir(t), "t10k-images-idx3-ubyte.gz"))
	if got := top1("--data", flat); got != idxTop1 || got < 0.9 {
		t.Fatalf("top-1 on the PNG folder %.3f, on the idx file %.3f", got, idxTop1)
	}
	// Scaled to 0-1, the model (trained on 0-255) loses accuracy: the
	// flag is applied.
	if got := top1("--data", flat, "--pixel-scale", "0.00392156862745098"); got >= idxTop1 {
		t.Errorf("--pixel-scale 1/255 kept top-1 %.3f", got)
	}
	code, _, stderr := benchRun(model, "--backend", "interp", "--iterations", "2", "--pixel-mean", "1")
	if code != ExitUsage || !strings.Contains(stderr, "there is no --data") {
		t.Fatalf("--pixel-mean without --data: exit %d, %s", code, stderr)
	}
}
