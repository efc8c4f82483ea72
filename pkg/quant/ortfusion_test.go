//go:build cgo

package quant

import (
	"os"
	"path/filepath"
	"testing"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/passes"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/testmodels"
)

// ortOptimizedOps returns the op counts (domain-qualified outside the
// default domain) of the graph ONNX Runtime runs for m on its CPU provider
// with all graph optimizations: the graph it saves after optimizing.
func ortOptimizedOps(t *testing.T, m *graph.Model) map[string]int {
	t.Helper()
	open(t, "ort", m) // initializes ORT, or skips where it is missing
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	so, err := ortgo.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer so.Destroy()
	if err := so.SetGraphOptimizationLevel(ortgo.GraphOptimizationLevelEnableAll); err != nil {
		t.Fatal(err)
	}
	if err := so.SetIntraOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ort-optimized.onnx")
	if err := so.SetOptimizedModelFilePath(path); err != nil {
		t.Fatal(err)
	}
	var ins, outs []string
	for _, v := range m.Graph.Inputs {
		ins = append(ins, v.Name)
	}
	for _, v := range m.Graph.Outputs {
		outs = append(outs, v.Name)
	}
	s, err := ortgo.NewDynamicAdvancedSessionWithONNXData(data, ins, outs, so)
	if err != nil {
		t.Fatal(err)
	}
	s.Destroy()
	o, err := graph.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	c := map[string]int{}
	for _, n := range o.Graph.Nodes {
		k := n.OpType
		if !n.IsDefaultDomain() {
			k = n.Domain + ":" + k
		}
		c[k]++
	}
	return c
}

// TestStaticORTFusion checks that the QDQ placement is the one ONNX
// Runtime fuses: what ORT ends up running holds QLinear ops and no float
// Conv/Relu/Add/Mul/Div/Clip between DQ and Q, and the transformer keeps
// its float fusions (SkipLayerNormalization) next to the int8 MatMuls.
func TestStaticORTFusion(t *testing.T) {
	type want struct {
		min map[string]int // at least
		max map[string]int // at most
	}
	cases := []struct {
		name  string
		model func(t *testing.T) (*graph.Model, [][]*runtime.Tensor)
		opts  StaticOptions
		want  want
	}{
		{"cnn-o2/u8", func(t *testing.T) (*graph.Model, [][]*runtime.Tensor) {
			m := cnnO2()
			return m, seeded(t, m, 4, 1, 1000)
		}, StaticOptions{PerChannel: true, Asymmetric: true}, want{
			min: map[string]int{"com.microsoft:QLinearConv": 4, "com.microsoft:QLinearAdd": 1, "com.microsoft:QLinearGlobalAveragePool": 1, "com.microsoft:QGemm": 1},
			max: map[string]int{"QuantizeLinear": 1, "DequantizeLinear": 0, "Relu": 0, "Conv": 0, "Add": 0, "MaxPool": 0},
		}},
		{"transformer/u8", func(t *testing.T) (*graph.Model, [][]*runtime.Tensor) {
			m := testmodels.TransformerEncoder()
			return m, seeded(t, m, 4, 1, 1000)
		}, StaticOptions{PerChannel: true, Asymmetric: true}, want{
			min: map[string]int{"com.microsoft:MatMulIntegerToFloat": 6, "com.microsoft:SkipLayerNormalization": 2},
			max: map[string]int{"QuantizeLinear": 4, "DequantizeLinear": 0, "QLinearMatMul": 0},
		}},
		{"ppocr-cls/u8", func(t *testing.T) (*graph.Model, [][]*runtime.Tensor) {
			p := filepath.Join(testutil.ModelsDir(t), "ppocr-cls")
			if _, err := os.Stat(p); err != nil {
				testutil.Missing(t, p)
			}
			m0, err := graph.Load(filepath.Join(p, "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			// As optimize --quantize int8-* does: hard swish stays written
			// out, the form int8 runs as QLinearAdd + QLinearMul.
			m, _, err := passes.Optimize(m0, passes.Options{Level: passes.O2, Backend: "interp", Disable: int8KeepsHardSwish})
			if err != nil {
				t.Fatal(err)
			}
			in, _, _, _, err := runtime.LoadTestDataSet(filepath.Join(p, "test_data_set_0"))
			if err != nil {
				t.Fatal(err)
			}
			return m, [][]*runtime.Tensor{in}
		}, StaticOptions{PerChannel: true, Asymmetric: true}, want{
			// hard-swish x*Clip(x+3,0,6)/6 becomes QLinearAdd + QLinearMul
			// (Clip folded into the Q range, /6 into the DQ scale); only
			// the squeeze-excitation HardSigmoid stays float
			min: map[string]int{"com.microsoft:QLinearConv": 50, "com.microsoft:QLinearMul": 18, "com.microsoft:QLinearAdd": 18},
			max: map[string]int{"Conv": 0, "Clip": 0, "Div": 0, "Add": 0, "Mul": 0, "Relu": 0, "HardSigmoid": 9},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, calib := tc.model(t)
			q, _, err := Static(m, calib, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := ortOptimizedOps(t, q)
			for op, n := range tc.want.min {
				if got[op] < n {
					t.Errorf("%s: %d, want at least %d", op, got[op], n)
				}
			}
			for op, n := range tc.want.max {
				if got[op] > n {
					t.Errorf("%s: %d, want at most %d", op, got[op], n)
				}
			}
			if t.Failed() {
				t.Logf("ORT runs: %v", got)
			}
		})
	}
}
