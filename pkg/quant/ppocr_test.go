package quant

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/passes"
	"github.com/optictl/optictl/pkg/runtime"
)

// TestPPOCRStatic: the opset-9 PaddleOCR classifier is converted to opset
// 13 by the version converter (Clip-6 and Slice-1 rewritten), quantized after the graph passes, and
// agrees with fp32 on its test_data_set on both backends.
func TestPPOCRStatic(t *testing.T) {
	dir := filepath.Join(testutil.ModelsDir(t), "ppocr-cls")
	if _, err := os.Stat(dir); err != nil {
		testutil.Missing(t, dir)
	}
	m0, err := graph.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := passes.Optimize(m0, passes.Options{Level: passes.O2, Backend: "interp", Disable: int8KeepsHardSwish})
	if err != nil {
		t.Fatal(err)
	}
	in, _, _, _, err := runtime.LoadTestDataSet(filepath.Join(dir, "test_data_set_0"))
	if err != nil {
		t.Fatal(err)
	}
	// calibration: the test image mirrored left-right and shifted in
	// brightness (other inputs than the one evaluated, with an image's
	// statistics)
	shape := in[0].Shape
	w := int(shape[len(shape)-1])
	src := in[0].Float32s()
	var calib [][]*runtime.Tensor
	for _, bright := range []float32{-0.2, 0, 0.2} {
		c := runtime.NewTensor(graph.Float, shape)
		f := c.Float32s()
		for j := range f {
			row, col := j/w, j%w
			f[j] = src[row*w+w-1-col] + bright
		}
		calib = append(calib, []*runtime.Tensor{c})
	}
	q, rep, err := Static(m, calib, StaticOptions{PerChannel: true, Asymmetric: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Int8Ops < 50 || !strings.Contains(rep.String(), "opset converted from 9 to 13 by the version converter") {
		t.Fatalf("expected the Convs quantized after an opset upgrade:\n%s", rep)
	}
	samples := [][]*runtime.Tensor{in}
	ref := runSamples(t, open(t, "interp", m), samples)
	gotI := runSamples(t, open(t, "interp", q), samples)
	gotO := runSamples(t, open(t, "ort", q), samples)
	for name, got := range map[string][][]*runtime.Tensor{"interp": gotI, "ort": gotO} {
		acc := accuracy(t, ref, got)
		if acc.Top1Agreement == nil || *acc.Top1Agreement != 1 || acc.Cosine == nil || *acc.Cosine < 0.99 {
			t.Errorf("%s: top-1 %v cosine %v", name, deref(acc.Top1Agreement), deref(acc.Cosine))
		} else {
			t.Logf("%s: cosine %.5f", name, *acc.Cosine)
		}
	}
	if d, lim := maxDiff(gotI, gotO), DefaultBackendATol*maxAbs(ref); d > lim {
		t.Errorf("interp and ort differ by %g > %g", d, lim)
	}
}
