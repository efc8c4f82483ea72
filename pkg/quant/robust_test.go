package quant

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// TestSubgraphsAndQuantizedModels: models with If subgraphs and models that
// are already quantized come out runnable, with identical results where
// nothing could be quantized, and the report says what was left.
func TestSubgraphsAndQuantizedModels(t *testing.T) {
	dir := testutil.ModelsDir(t)
	silero := filepath.Join(dir, "silero-vad-v5")
	if _, err := os.Stat(silero); err != nil {
		testutil.Missing(t, silero)
	}
	m, err := graph.Load(filepath.Join(silero, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	in, _, _, _, err := runtime.LoadTestDataSet(filepath.Join(silero, "test_data_set_0"))
	if err != nil {
		t.Fatal(err)
	}
	samples := [][]*runtime.Tensor{in}
	ref := runSamples(t, open(t, "ort", m), samples)
	for _, tc := range []struct {
		name string
		run  func() (*graph.Model, *Report, error)
	}{
		{"dynamic", func() (*graph.Model, *Report, error) { return Dynamic(m, DynamicOptions{}) }},
		{"static", func() (*graph.Model, *Report, error) { return Static(m, samples, StaticOptions{}) }},
		{"fp16", func() (*graph.Model, *Report, error) { return FP16(m, FP16Options{KeepIO: true}) }},
	} {
		t.Run("silero/"+tc.name, func(t *testing.T) {
			q, rep, err := tc.run()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(rep.String(), "subgraphs") {
				t.Fatalf("report does not mention the subgraphs:\n%s", rep)
			}
			got := runSamples(t, open(t, "ort", q), samples)
			lim := 1e-5 // nothing quantizable outside the If: unchanged
			if tc.name == "fp16" {
				lim = 1e-2 // the main graph's float ops do run in float16
			}
			if d := maxDiff(ref, got); d > lim {
				t.Fatalf("outputs changed by %g", d)
			}
		})
	}
	// an already quantized model: quantizing it again keeps it working
	mn := filepath.Join(dir, "mnist", "model.onnx")
	fm, err := graph.Load(mn)
	if err != nil {
		t.Fatal(err)
	}
	calib := seeded(t, fm, 4, 1, 3)
	q1, _, err := Static(fm, calib, StaticOptions{PerChannel: true})
	if err != nil {
		t.Fatal(err)
	}
	eval := seeded(t, fm, 2, 1, 9)
	want := runSamples(t, open(t, "interp", q1), eval)
	for _, tc := range []struct {
		name string
		run  func() (*graph.Model, *Report, error)
	}{
		{"dynamic", func() (*graph.Model, *Report, error) { return Dynamic(q1, DynamicOptions{}) }},
		{"static", func() (*graph.Model, *Report, error) { return Static(q1, calib, StaticOptions{}) }},
	} {
		t.Run("requantize/"+tc.name, func(t *testing.T) {
			q2, rep, err := tc.run()
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Quantized) != 0 || !strings.Contains(rep.String(), "already contains") {
				t.Fatalf("re-quantized an int8 model:\n%s", rep)
			}
			got := runSamples(t, open(t, "interp", q2), eval)
			if d := maxDiff(want, got); d != 0 {
				t.Fatalf("outputs changed by %g", d)
			}
		})
	}
}
