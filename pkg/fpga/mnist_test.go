package fpga

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/bench"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/quant"
	"github.com/optictl/optictl/pkg/runtime"
	_ "github.com/optictl/optictl/pkg/runtime/interp"
	_ "github.com/optictl/optictl/pkg/runtime/ort"
)

var mnistOnce struct {
	sync.Once
	q      *graph.Model
	test   []bench.Sample
	labels []int
	err    error
}

// mnistQDQ quantizes the shared MNIST CNN (static int8, uint8
// activations, per-channel weights, calibrated on 200 training images)
// and loads n test images with labels.
func mnistQDQ(t *testing.T, n int) (*graph.Model, []bench.Sample, []int) {
	t.Helper()
	path := filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx")
	if _, err := os.Stat(path); err != nil {
		testutil.Missing(t, path)
	}
	dir := testutil.MNISTDir(t)
	mnistOnce.Do(func() {
		m, err := graph.Load(path)
		if err != nil {
			mnistOnce.err = err
			return
		}
		infos := []runtime.IOInfo{{Name: "Input3", DType: graph.Float, Shape: []int64{1, 1, 28, 28}}}
		calib, err := bench.LoadData(filepath.Join(dir, "train-images-idx3-ubyte.gz"), infos, 200)
		if err != nil {
			mnistOnce.err = err
			return
		}
		c := make([][]*runtime.Tensor, len(calib))
		for i := range calib {
			c[i] = calib[i]
		}
		mnistOnce.q, _, mnistOnce.err = quant.Static(m, c, quant.StaticOptions{Asymmetric: true, PerChannel: true})
		if mnistOnce.err != nil {
			return
		}
		mnistOnce.test, mnistOnce.err = bench.LoadData(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), infos, 10000)
		if mnistOnce.err != nil {
			return
		}
		mnistOnce.labels, mnistOnce.err = bench.LoadLabels(filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"))
	})
	if mnistOnce.err != nil {
		t.Fatal(mnistOnce.err)
	}
	if n > len(mnistOnce.test) {
		n = len(mnistOnce.test)
	}
	return mnistOnce.q, mnistOnce.test[:n], mnistOnce.labels[:n]
}

func argmax(v []float32) int {
	b := 0
	for i := range v {
		if v[i] > v[b] {
			b = i
		}
	}
	return b
}

// TestMNISTLoweredMatchesORT: the MNIST CNN's QDQ model lowered to
// engines; the Go hardware model against ONNX Runtime (or interp) running
// the same QDQ model on real test images (1,000; all 10,000 with
// OPTICTL_MNIST_FULL=1): top-1 equal within 0.1 point,
// and logits within a few accumulator LSBs.
func TestMNISTLoweredMatchesORT(t *testing.T) {
	n := 1000
	if os.Getenv("OPTICTL_MNIST_FULL") != "" {
		n = 10000 // the whole test set
	}
	q, test, labels := mnistQDQ(t, n)
	d, err := Lower(q, LowerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Layers) != 3 {
		t.Fatalf("%d layers lowered, want 3 (two convs, one dense): %+v", len(d.Layers), d.Layers)
	}
	ex, err := NewExecutor(d)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	backend := "ort"
	ref, err := runtime.Open("ort", q, runtime.Options{Threads: 1})
	if err != nil {
		testutil.Missing(t, "ONNX Runtime: "+err.Error())
	}
	defer ref.Close()
	var agree, fpgaOK, refOK int
	for i, s := range test {
		x := s[0].Float32s()
		got, err := ex.Run(context.Background(), x)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.Run(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		g, w := argmax(got[0].Float32s()), argmax(want[0].Float32s())
		if g == w {
			agree++
		}
		if g == labels[i] {
			fpgaOK++
		}
		if w == labels[i] {
			refOK++
		}
	}
	nf := float64(len(test))
	t.Logf("%d images: fpga top-1 %.2f%%, %s int8 %.2f%%, agreement %.2f%%", len(test), 100*float64(fpgaOK)/nf, backend, 100*float64(refOK)/nf, 100*float64(agree)/nf)
	if diff := float64(fpgaOK-refOK) / nf; diff < -0.001 || diff > 0.001 {
		t.Errorf("top-1 differs from %s int8 by %.2f points (limit 0.1)", backend, 100*diff)
	}
	if float64(agree)/nf < 0.995 {
		t.Errorf("top-1 agreement with %s only %.2f%%", backend, 100*float64(agree)/nf)
	}
}

// TestMNISTRTLOnRealImages: 1,000 MNIST test images through the Verilator
// simulation of the whole MNIST CNN equal the Go model of the hardware
// (the integer reference) bit for bit; the quantized activations feeding
// the dense layer equal ONNX Runtime's for >= 99.9% of elements and are
// never more than 1 LSB apart.
func TestMNISTRTLOnRealImages(t *testing.T) {
	needVerilator(t)
	n := 1000
	q, test, _ := mnistQDQ(t, n)
	d, err := Lower(q, LowerOptions{TargetCycles: 2000})
	if err != nil {
		t.Fatal(err)
	}
	frames := make([][]int32, len(test))
	for i, s := range test {
		if frames[i], err = d.QuantizeInput(s[0].Float32s()); err != nil {
			t.Fatal(err)
		}
	}
	res, err := d.Pipeline.Simulate(context.Background(), t.TempDir(), frames)
	if err != nil {
		t.Fatal(err)
	}
	per := len(res.Outputs) / len(frames)
	for i, f := range frames {
		want, err := d.Pipeline.Forward(f)
		if err != nil {
			t.Fatal(err)
		}
		for k, w := range want {
			if got := res.Outputs[i*per+k]; got != w {
				t.Fatalf("image %d output %d: RTL %d, Go model %d", i, k, got, w)
			}
		}
	}
	t.Logf("%d images bit-exact; II %d cycles, latency %d cycles", len(frames), res.II, res.Latency)

	// the dense layer's quantized input against ONNX Runtime's
	const probe = "Pooling160_Output_0_reshape0_quantized"
	m := q.Clone()
	m.Graph.Outputs = append(m.Graph.Outputs, &graph.ValueInfo{Name: probe, HasType: true, DType: graph.Uint8})
	ref, err := runtime.Open("ort", m, runtime.Options{Threads: 1})
	if err != nil {
		testutil.Missing(t, "ONNX Runtime: "+err.Error())
	}
	defer ref.Close()
	dense := len(d.Pipeline.Stages) - 1 // the last stage is the dense MVAU
	var same, total, worst int
	for i, f := range frames[:200] {
		x := f
		for _, st := range d.Pipeline.Stages[:dense] {
			if x, err = st.Forward(x); err != nil {
				t.Fatal(err)
			}
		}
		outs, err := ref.Run(context.Background(), test[i])
		if err != nil {
			t.Fatal(err)
		}
		r := outs[1].Raw // ONNX order: c*16 + h*4 + w; stream order (h*4+w)*16 + c
		for k := range r {
			c, hw := k/16, k%16
			diff := int(x[hw*16+c]) - int(r[k])
			if diff < 0 {
				diff = -diff
			}
			if diff == 0 {
				same++
			}
			if diff > worst {
				worst = diff
			}
			total++
		}
	}
	t.Logf("dense-layer input vs ONNX Runtime: %d of %d elements identical (%.3f%%), at most %d LSB apart", same, total, 100*float64(same)/float64(total), worst)
	if float64(same) < 0.999*float64(total) || worst > 1 {
		t.Errorf("%d of %d identical, worst %d LSB: want >= 99.9%% and <= 1 LSB", same, total, worst)
	}
}
