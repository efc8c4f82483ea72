package quant

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/passes"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/testmodels"
)

// ppocrData returns the PaddleOCR classifier after the O2 passes,
// calibration inputs (the test image mirrored, three brightness shifts)
// and disjoint evaluation inputs (the test image itself and copies rolled
// sideways and shifted in brightness).
func ppocrData(tb testing.TB) (*graph.Model, [][]*runtime.Tensor, [][]*runtime.Tensor) {
	tb.Helper()
	dir := filepath.Join(testutil.ModelsDir(tb), "ppocr-cls")
	if _, err := os.Stat(dir); err != nil {
		testutil.Missing(tb, dir)
	}
	m0, err := graph.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		tb.Fatal(err)
	}
	m, _, err := passes.Optimize(m0, passes.Options{Level: passes.O2, Backend: "interp", Disable: int8KeepsHardSwish})
	if err != nil {
		tb.Fatal(err)
	}
	in, _, _, _, err := runtime.LoadTestDataSet(filepath.Join(dir, "test_data_set_0"))
	if err != nil {
		tb.Fatal(err)
	}
	shape := in[0].Shape
	w := int(shape[len(shape)-1])
	src := in[0].Float32s()
	variant := func(mirror bool, roll int, bright float32) []*runtime.Tensor {
		c := runtime.NewTensor(graph.Float, shape)
		f := c.Float32s()
		for j := range f {
			row, col := j/w, j%w
			sc := (col + roll) % w
			if mirror {
				sc = w - 1 - sc
			}
			f[j] = src[row*w+sc] + bright
		}
		return []*runtime.Tensor{c}
	}
	var calib, eval [][]*runtime.Tensor
	for _, b := range []float32{-0.2, 0, 0.2} {
		calib = append(calib, variant(true, 0, b))
	}
	eval = append(eval, in)
	for _, roll := range []int{8, 24, 48} {
		for _, b := range []float32{-0.1, 0.1} {
			eval = append(eval, variant(false, roll, b))
		}
	}
	return m, calib, eval
}

// TestInt8Agreement: every int8 variant Int8Variants offers meets the
// issue's 1% top-1 agreement budget against fp32 under accuracy control
// (Controlled), with int8 ops left, on the CNN, the transformer and the
// PaddleOCR classifier (evaluation inputs disjoint from calibration
// inputs).
func TestInt8Agreement(t *testing.T) {
	cases := []struct {
		name string
		data func(t *testing.T) (*graph.Model, [][]*runtime.Tensor, [][]*runtime.Tensor)
	}{
		{"cnn", func(t *testing.T) (*graph.Model, [][]*runtime.Tensor, [][]*runtime.Tensor) {
			m := cnnO2()
			return m, seeded(t, m, 8, 4, 1000), seeded(t, m, 8, 8, 7)
		}},
		{"transformer", func(t *testing.T) (*graph.Model, [][]*runtime.Tensor, [][]*runtime.Tensor) {
			m := testmodels.TransformerEncoder()
			return m, seeded(t, m, 8, 2, 1000), seeded(t, m, 16, 8, 7)
		}},
		{"ppocr-cls", func(t *testing.T) (*graph.Model, [][]*runtime.Tensor, [][]*runtime.Tensor) {
			return ppocrData(t)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, calib, eval := tc.data(t)
			// interp everywhere it is quick; ORT (where present) for the
			// larger ppocr-cls, whose interp agreement TestPPOCRStatic checks
			backend := "interp"
			if tc.name == "ppocr-cls" {
				if s, err := runtime.Open("ort", m, runtime.Options{Threads: 1}); err == nil {
					s.Close()
					backend = "ort"
				}
			}
			for _, v := range Int8Variants(m, calib, StaticOptions{PerChannel: true}, DynamicOptions{}) {
				q, rep, res, err := Controlled(m, v.Quantize, backend, eval, nil, 1)
				if err != nil {
					t.Fatalf("%s: %v", v.Name, err)
				}
				acc := res.Accuracy
				if !res.Met || rep.Int8Ops == 0 || acc.Cosine == nil || *acc.Cosine < 0.99 {
					t.Errorf("%s: met %v with %d int8 ops, drop %.2f points, cosine %v", v.Name, res.Met, rep.Int8Ops, res.Drop, deref(acc.Cosine))
					continue
				}
				if err := q.Verify(); err != nil {
					t.Fatal(err)
				}
				t.Logf("%s: drop %.2f points, %d int8 ops, left in float %v, cosine %.5f, SQNR %.1f dB", v.Name, res.Drop, rep.Int8Ops, rep.LeftInFloat, *acc.Cosine, deref(acc.SQNRdB))
			}
		})
	}
}
