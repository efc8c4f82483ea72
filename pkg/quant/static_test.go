package quant

import (
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/passes"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/testmodels"
)

func TestStatic(t *testing.T) {
	cases := []struct {
		name      string
		model     func() *graph.Model
		batch     int
		opts      StaticOptions
		quantized int // nodes quantized (Conv/MatMul/Gemm and Add/Mul/pools)
		int8Ops   int // Conv/MatMul/Gemm among them
	}{
		{"mlp/minmax", testmodels.MLP, 16, StaticOptions{}, 3, 3},
		{"mlp/percentile-perchannel", testmodels.MLP, 16, StaticOptions{Calibrate: Percentile, PerChannel: true}, 3, 3},
		{"mlp/percentile-asym", testmodels.MLP, 16, StaticOptions{Calibrate: Percentile, Asymmetric: true}, 3, 3},
		{"mlp/entropy", testmodels.MLP, 16, StaticOptions{Calibrate: Entropy}, 3, 3},
		{"cnn/entropy-asym", testmodels.CNN, 4, StaticOptions{Calibrate: Entropy, Asymmetric: true}, 5, 5},
		{"mlp/ort-calibration", testmodels.MLP, 16, StaticOptions{Backend: "ort"}, 3, 3},
		{"mlp/full-range", testmodels.MLP, 16, StaticOptions{FullRange: true}, 3, 3},
		{"cnn/minmax-perchannel", testmodels.CNN, 4, StaticOptions{PerChannel: true}, 5, 5},
		{"cnn/percentile-reduce", testmodels.CNN, 4, StaticOptions{Calibrate: Percentile, PerChannel: true}, 5, 5},
		// BN folded first (as optimize does): the residual Add and the
		// GlobalAveragePool join the int8 region.
		{"cnn-o2/minmax-u8", cnnO2, 4, StaticOptions{PerChannel: true, Asymmetric: true}, 7, 5},
		{"cnn-o2/minmax-s8", cnnO2, 4, StaticOptions{PerChannel: true}, 7, 5},
		{"cnn-o2/weights-only", cnnO2, 4, StaticOptions{PerChannel: true, Asymmetric: true, OpTypes: []string{"Conv", "Gemm"}}, 5, 5},
		// the attention MatMuls (activation x activation) stay float: their
		// inputs come from float ops (bias Add, Reshape, Softmax)
		{"transformer/minmax-perchannel", testmodels.TransformerEncoder, 2, StaticOptions{PerChannel: true}, 6, 6},
		{"transformer/minmax-u8", testmodels.TransformerEncoder, 2, StaticOptions{PerChannel: true, Asymmetric: true}, 6, 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.model()
			if tc.opts.Backend == "ort" {
				open(t, "ort", m) // skips where ORT is missing
			}
			calib := seeded(t, m, 8, tc.batch, 1000) // disjoint seeds from evaluation
			q, rep, err := Static(m, calib, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Quantized) != tc.quantized || rep.Int8Ops != tc.int8Ops {
				t.Fatalf("quantized %d nodes (%d int8 ops), want %d (%d)\n%s", len(rep.Quantized), rep.Int8Ops, tc.quantized, tc.int8Ops, rep)
			}
			samples := seeded(t, m, 4, tc.batch, 7)
			ref := runSamples(t, open(t, "interp", m), samples)
			gotI := runSamples(t, open(t, "interp", q), samples)
			acc := accuracy(t, ref, gotI)
			if acc.Cosine == nil || *acc.Cosine < 0.99 {
				t.Errorf("interp cosine %v < 0.99", acc.Cosine)
			}
			// top-1 only for class vectors: the transformer's [N,T,D] has none
			class := !strings.HasPrefix(tc.name, "transformer")
			if class && (acc.Top1Agreement == nil || *acc.Top1Agreement < 0.9) || !class && acc.Top1Agreement != nil {
				t.Errorf("interp top-1 agreement %v (class output %v): want >= 0.9 for class vectors, none otherwise", deref(acc.Top1Agreement), class)
			}
			gotO := runSamples(t, open(t, "ort", q), samples)
			accO := accuracy(t, ref, gotO)
			if accO.Cosine == nil || *accO.Cosine < 0.99 {
				t.Errorf("ort cosine %v < 0.99", accO.Cosine)
			}
			d, lim := maxDiff(gotI, gotO), DefaultBackendATol*maxAbs(ref)
			if d > lim && !tc.opts.FullRange { // see StaticOptions.FullRange
				t.Errorf("interp and ort differ by %g > %g", d, lim)
			}
			t.Logf("cosine interp %.5f ort %.5f, top-1 %.3f, sqnr %.1f dB, |interp-ort| %.3g", *acc.Cosine, *accO.Cosine, deref(acc.Top1Agreement), deref(acc.SQNRdB), d)
		})
	}
}

// cnnO2 is the test CNN after the O2 graph passes (BatchNormalization
// folded into the convolutions).
func cnnO2() *graph.Model {
	m, _, err := passes.Optimize(testmodels.CNN(), passes.Options{Level: passes.O2, Backend: "interp", Disable: int8KeepsHardSwish})
	if err != nil {
		panic(err)
	}
	return m
}

func TestStaticErrors(t *testing.T) {
	m := testmodels.MLP()
	calib := [][]*runtime.Tensor{{runtime.FromFloat32([]int64{1, 784}, make([]float32, 784))}}
	for _, tc := range []struct {
		name  string
		calib [][]*runtime.Tensor
		opts  StaticOptions
	}{
		{"no samples", nil, StaticOptions{}},
		{"bad method", calib, StaticOptions{Calibrate: "median"}},
		{"bad percentile", calib, StaticOptions{Calibrate: Percentile, Percentile: 120}},
		{"bad op type", calib, StaticOptions{OpTypes: []string{"Relu"}}},
		{"wrong input shape", [][]*runtime.Tensor{{runtime.FromFloat32([]int64{1, 3}, make([]float32, 3))}}, StaticOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := Static(m, tc.calib, tc.opts); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// int8KeepsHardSwish is what `optictl optimize --quantize int8-*` disables
// in the graph passes before quantizing: hard swish stays written out, the
// form int8 runs as QLinearAdd + QLinearMul.
var int8KeepsHardSwish = []string{"fuse-hardswish"}
