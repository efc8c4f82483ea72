package bench

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/optictl/optictl/pkg/runtime/backends"
)

// TestSweepRowsPerTarget: a backend sweep measures each model on each
// target, names the rows MODEL@BACKEND, and lists (instead of failing on)
// a target whose backend cannot run the model.
func TestSweepRowsPerTarget(t *testing.T) {
	cnn := filepath.Join("..", "..", "testmodels", "cnn.onnx")
	mlp := filepath.Join("..", "..", "testmodels", "mlp.onnx")
	rep, err := Run(context.Background(), Config{
		Models:     []string{cnn, mlp},
		Targets:    []Target{{Backend: "interp", Device: "cpu"}, {Backend: "fpga", Device: "cpu"}},
		Iterations: 4, Warmup: 1, Rounds: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, r := range rep.Results {
		rows = append(rows, r.Variant)
		if r.Backend != "interp" || r.DeviceName != "cpu" {
			t.Errorf("row %s: backend %q device %q", r.Variant, r.Backend, r.DeviceName)
		}
	}
	if strings.Join(rows, " ") != "cnn.onnx@interp mlp.onnx@interp" {
		t.Fatalf("rows %v", rows)
	}
	// the float models are not QDQ: the fpga backend cannot lower them
	if len(rep.Skipped) != 2 || !strings.Contains(rep.Skipped[0], "cnn.onnx@fpga") {
		t.Fatalf("skipped %q", rep.Skipped)
	}
	if rep.Backend != "interp,fpga" {
		t.Errorf("report backend %q", rep.Backend)
	}
}
