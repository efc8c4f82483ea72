package fpga

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/bench"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/quant"
	"github.com/optictl/optictl/pkg/runtime"
	_ "github.com/optictl/optictl/pkg/runtime/interp"
)

func mnistInt8(t *testing.T) (*graph.Model, []bench.Sample) {
	t.Helper()
	path := filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx")
	if _, err := os.Stat(path); err != nil {
		testutil.Missing(t, path)
	}
	m, err := graph.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := testutil.MNISTDir(t)
	infos := []runtime.IOInfo{{Name: "Input3", DType: graph.Float, Shape: []int64{1, 1, 28, 28}}}
	calib, err := bench.LoadData(filepath.Join(dir, "train-images-idx3-ubyte.gz"), infos, 100)
	if err != nil {
		t.Fatal(err)
	}
	c := make([][]*runtime.Tensor, len(calib))
	for i := range calib {
		c[i] = calib[i]
	}
	q, _, err := quant.Static(m, c, quant.StaticOptions{Asymmetric: true, PerChannel: true})
	if err != nil {
		t.Fatal(err)
	}
	test, err := bench.LoadData(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), infos, 20)
	if err != nil {
		t.Fatal(err)
	}
	return q, test
}

// TestBackendModelAndRTLAgree: the registered backend runs the MNIST int8
// model with the Go model and, on a few images, with the Verilator
// simulation; both give the same outputs, and the session reports
// simulated timing.
func TestBackendModelAndRTLAgree(t *testing.T) {
	q, test := mnistInt8(t)
	s, err := runtime.Open("fpga", q, runtime.Options{ProviderOptions: map[string]string{"fpga_target_fps": "50000"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Inputs(); len(got) != 1 || got[0].Name != "Input3" {
		t.Fatalf("inputs %+v", got)
	}
	if _, err := s.Run(context.Background(), []*runtime.Tensor{runtime.NewTensor(graph.Float, []int64{1, 1, 14, 14})}); err == nil {
		t.Fatal("a wrong input shape was accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Run(ctx, test[0]); err == nil {
		t.Fatal("a cancelled context was ignored")
	}
	interval, _, note := s.(*Session).SimulatedTiming()
	if interval <= 0 || interval > 20*time.Microsecond {
		t.Fatalf("simulated interval %v (%s): the 50,000 FPS folding should give at most 20 µs", interval, note)
	}
	if _, err := exec.LookPath("verilator"); err != nil {
		testutil.Missing(t, "verilator")
	}
	r, err := runtime.Open("fpga", q, runtime.Options{ProviderOptions: map[string]string{"fpga_target_fps": "50000", "fpga_sim": "rtl"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := 0; i < 3; i++ {
		a, err := s.Run(context.Background(), test[i])
		if err != nil {
			t.Fatal(err)
		}
		av := append([]float32(nil), a[0].Float32s()...)
		b, err := r.Run(context.Background(), test[i])
		if err != nil {
			t.Fatal(err)
		}
		bv := b[0].Float32s()
		for k := range av {
			if av[k] != bv[k] {
				t.Fatalf("image %d output %d: Go model %g, RTL %g", i, k, av[k], bv[k])
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Run(context.Background(), test[0]); err == nil {
		t.Fatal("Run after Close succeeded")
	}
}

func TestBadOptionsAreRefused(t *testing.T) {
	for _, po := range []map[string]string{
		{"fpga_part": "nope"}, {"fpga_clock": "-1"}, {"fpga_sim": "gpu"}, {"bogus": "1"},
	} {
		if _, err := parseConfig(runtime.Options{ProviderOptions: po}); err == nil {
			t.Errorf("%v accepted", po)
		}
	}
}

// TestBenchReportsSimulatedDeviceTime: bench on the fpga backend reports
// the device's simulated latency and throughput (cycles at the clock),
// not only the host's wall time.
func TestBenchReportsSimulatedDeviceTime(t *testing.T) {
	q, _ := mnistInt8(t)
	path := filepath.Join(t.TempDir(), "mnist.int8.onnx")
	if err := q.Save(path); err != nil {
		t.Fatal(err)
	}
	rep, err := bench.Run(context.Background(), bench.Config{
		Models: []string{path}, Backend: "fpga", Iterations: 5, Warmup: 1, Rounds: 1,
		Options: runtime.Options{ProviderOptions: map[string]string{"fpga_target_fps": "50000", "fpga_clock": "100"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := rep.Results[0].Device
	if d == nil || !d.Simulated {
		t.Fatalf("no simulated device timing: %+v", rep.Results[0])
	}
	// 50,000 FPS folding: at most 2,000 cycles = 20 µs per frame at 100 MHz
	if d.IntervalMS <= 0 || d.IntervalMS > 0.02 || d.ThroughputPerS < 50000 {
		t.Fatalf("device timing %+v: want an interval of at most 20 µs", d)
	}
}
