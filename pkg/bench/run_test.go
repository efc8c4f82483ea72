package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tensorio"
)

func baseConfig(models ...string) Config {
	return Config{Models: models, Backend: "fake", Iterations: 6, Rounds: 3, Warmup: 2, Seed: 1, Resamples: 200}
}

func TestRunInterleavesRoundsAndExcludesWarmup(t *testing.T) {
	log := &callLog{}
	cfg := baseConfig("A", "B")
	cfg.Open = fakeOpener(map[string]fakeSession{"A": {fixed: -1}, "B": {fixed: -1}}, log, nil)
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The tail of the log is the point: warm-up (2 each), then 3 rounds of
	// 2 iterations, A before B in every round.
	want := strings.Split("A A B B A A B B A A B B A A B B", " ")
	got := log.calls[len(log.calls)-len(want):]
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("call order %v, want %v", got, want)
	}
	if len(rep.Results) != 2 {
		t.Fatalf("%d results", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Count != 6 {
			t.Fatalf("%s: %d timed runs, want 6 (warm-up excluded)", r.Variant, r.Count)
		}
		if r.Mode != "closed" || r.Batch != 1 || r.Concurrency != 1 {
			t.Fatalf("result %+v", r)
		}
	}
	if !rep.Results[0].Reference || rep.Results[1].Reference || rep.Reference != "A" {
		t.Fatalf("reference flags wrong: %+v", rep.Results)
	}
}

func TestRunSpeedupAndAccuracy(t *testing.T) {
	cfg := baseConfig("slow", "fast")
	cfg.Iterations = 30 // the CI needs enough samples to stay clear of a loaded machine's outliers
	cfg.Open = fakeOpener(map[string]fakeSession{
		"slow": {fixed: -1, sleep: 12 * time.Millisecond},
		"fast": {fixed: -1, sleep: time.Millisecond, bias: 0.5},
	}, nil, nil)
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ref, v := rep.Results[0], rep.Results[1]
	if ref.Speedup != 1 || ref.SpeedupSignificant {
		t.Fatalf("reference speedup %v significant %v", ref.Speedup, ref.SpeedupSignificant)
	}
	if v.Speedup < 3 || !v.SpeedupSignificant {
		t.Fatalf("12 ms vs 1 ms sessions: speedup %v significant %v (CIs %+v %+v)", v.Speedup, v.SpeedupSignificant, ref.P50CIms, v.P50CIms)
	}
	if ref.LatencyMS.Min < 12 || v.LatencyMS.Min < 1 {
		t.Fatalf("latencies below the sessions' sleeps: %+v %+v", ref.LatencyMS, v.LatencyMS)
	}
	if e := v.Accuracy.MaxAbsError; e == nil || !near(*e, 0.5, 1e-6) {
		t.Fatalf("max abs error %v, want 0.5 (the variant's bias)", e)
	}
	if a := v.Accuracy; a.Samples != 8 || a.Top1Agreement == nil || *a.Top1Agreement >= 1 || a.Cosine == nil || *a.Cosine >= 1 || a.SQNRdB == nil {
		t.Fatalf("variant accuracy %+v", a)
	}
	if a := ref.Accuracy; a.Top1Agreement == nil || *a.Top1Agreement != 1 || *a.MaxAbsError != 0 {
		t.Fatalf("reference accuracy %+v", a)
	}
	if ref.P50CIms.Lo > ref.LatencyMS.P50 || ref.P50CIms.Hi < ref.LatencyMS.P50 || ref.P50CIms.Level != 0.95 {
		t.Fatalf("p50 CI %+v does not hold p50 %v", ref.P50CIms, ref.LatencyMS.P50)
	}
}

func TestRunBatchAndConcurrency(t *testing.T) {
	opened := map[string]int{}
	cfg := baseConfig("m")
	cfg.Batches = []int{1, 4}
	cfg.Concurrency = []int{1, 3}
	cfg.Open = fakeOpener(map[string]fakeSession{"m": {fixed: -1}}, nil, opened)
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 4 {
		t.Fatalf("%d results, want 4 points", len(rep.Results))
	}
	if opened["m"] != 3 {
		t.Fatalf("%d sessions opened, want one per worker at the widest point (3)", opened["m"])
	}
	for _, r := range rep.Results {
		if r.ThroughputPerS <= 0 || !near(r.SamplesPerS, r.ThroughputPerS*float64(r.Batch), 1e-9*r.SamplesPerS) {
			t.Fatalf("batch %d: throughput %v samples/s %v", r.Batch, r.ThroughputPerS, r.SamplesPerS)
		}
	}

	cfg.Open = fakeOpener(map[string]fakeSession{"m": {fixed: 1}}, nil, nil)
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "fixed first dim of 1") {
		t.Fatalf("batch 4 on a fixed batch-1 model: %v", err)
	}
}

func TestRunDevice(t *testing.T) {
	cases := []struct {
		name   string
		device string
		want   string
	}{
		{"backend refuses", "", "not available"},
		{"silent cpu fallback", "cpu", "refusing to report CPU numbers"},
		{"runs on the gpu", "cuda:0", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := baseConfig("m")
			cfg.Options.Device = "cuda"
			cfg.Open = fakeOpener(map[string]fakeSession{"m": {fixed: -1, device: c.device}}, nil, nil)
			rep, err := Run(context.Background(), cfg)
			if c.want == "" {
				if err != nil || rep.Device != "cuda" || rep.Models[0].Device != "cuda:0" {
					t.Fatalf("err %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestRunOpenLoop(t *testing.T) {
	cfg := baseConfig("A", "B")
	cfg.Load = Load{Rate: 2000, Arrival: "poisson"}
	cfg.Open = fakeOpener(map[string]fakeSession{"A": {fixed: -1}, "B": {fixed: -1}}, nil, nil)
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Mode != "open" || rep.Arrival != "poisson" || rep.Rate != 2000 {
		t.Fatalf("report %+v", rep)
	}
	for _, r := range rep.Results {
		if r.Mode != "open" || r.Count != 6 {
			t.Fatalf("result %+v", r)
		}
	}
}

func writeDataSets(t *testing.T, rows [][]float32) string {
	dir := t.TempDir()
	for i, r := range rows {
		d := filepath.Join(dir, fmt.Sprintf("test_data_set_%d", i))
		os.Mkdir(d, 0o755)
		if err := tensorio.SavePB(filepath.Join(d, "input_0.pb"), "x", runtime.FromFloat32([]int64{1, 4}, r)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestRunDataAndLabels(t *testing.T) {
	// Reference argmax 0, 1, 2 (all right); the variant adds 0.5 to column
	// 0, which flips the third sample to class 0.
	dir := writeDataSets(t, [][]float32{{0.9, 0.1, 0.2, 0.3}, {0.1, 0.9, 0.2, 0.3}, {0.2, 0.1, 0.6, 0.3}})
	labels := filepath.Join(t.TempDir(), "labels.txt")
	os.WriteFile(labels, []byte("0\n1\n2\n"), 0o644)
	cfg := baseConfig("ref", "var")
	cfg.Data, cfg.Labels = dir, labels
	cfg.Batches = []int{1, 2}
	cfg.Open = fakeOpener(map[string]fakeSession{"ref": {fixed: -1}, "var": {fixed: -1, bias: 0.5}}, nil, nil)
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ra, va := rep.Models[0].Accuracy, rep.Models[1].Accuracy
	if ra.Top1Accuracy == nil || *ra.Top1Accuracy != 1 || ra.Samples != 3 {
		t.Fatalf("reference accuracy %+v", ra)
	}
	if va.Top1Accuracy == nil || !near(*va.Top1Accuracy, 2.0/3, 1e-12) || !near(*va.Top1Agreement, 2.0/3, 1e-12) || va.Labelled != 3 {
		t.Fatalf("variant accuracy %+v", va)
	}
	g := Gates{MaxAccuracyDrop: 10, AccuracyDropSet: true}.Check(rep)
	if len(g) != 2 || g[0].Passed || !near(g[0].Measured, 100.0/3, 1e-9) {
		t.Fatalf("accuracy gate %+v", g)
	}
}

func TestRunErrors(t *testing.T) {
	open := fakeOpener(map[string]fakeSession{"m": {fixed: -1}}, nil, nil)
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no model", func(c *Config) { c.Models = nil }, "no model"},
		{"both budgets", func(c *Config) { c.Duration = time.Second }, "not both"},
		{"no budget", func(c *Config) { c.Iterations = 0 }, "iterations or a duration"},
		{"bad arrival", func(c *Config) { c.Load = Load{Rate: 1, Arrival: "burst"} }, "burst"},
		{"labels without data", func(c *Config) { c.Labels = "x" }, "--labels needs --data"},
		{"zero batch", func(c *Config) { c.Batches = []int{0} }, "batch 0"},
		{"unknown model", func(c *Config) { c.Models = []string{"nope"} }, "nope"},
		{"missing data", func(c *Config) { c.Data = "/no/such/dir" }, "--data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := baseConfig("m")
			cfg.Open = open
			c.mod(&cfg)
			if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestVariantNames(t *testing.T) {
	got := VariantNames([]string{"a/model.onnx", "b/model.onnx", "c/x.onnx", "c/x.onnx"})
	want := []string{"a/model.onnx", "b/model.onnx", "c/x.onnx", "c/x.onnx#4"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("VariantNames = %v, want %v", got, want)
		}
	}
}

func TestRunShapeWithBatches(t *testing.T) {
	var seen []map[string][]int64
	inner := fakeOpener(map[string]fakeSession{"m": {fixed: -1}}, nil, nil)
	cases := []struct {
		name       string
		batches    []int
		wantShapes bool
	}{{"batch 1 only: the backend gets --shape", []int{1}, true}, {"batched: inputs only", []int{1, 3}, false}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seen = nil
			cfg := baseConfig("m")
			cfg.Batches = c.batches
			cfg.Options.Shapes = map[string][]int64{"x": {1, 4}}
			cfg.Open = func(p string, o runtime.Options) (runtime.Session, error) {
				seen = append(seen, o.Shapes)
				return inner(p, o)
			}
			rep, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Results) != len(c.batches) {
				t.Fatalf("%d results", len(rep.Results))
			}
			if (seen[0] != nil) != c.wantShapes {
				t.Fatalf("backend shapes %v", seen[0])
			}
		})
	}
	// A --shape that contradicts a fixed dim is an error naming the input.
	cfg := baseConfig("m")
	cfg.Options.Shapes = map[string][]int64{"x": {1, 5}}
	cfg.Open = inner
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), `input "x"`) || !strings.Contains(err.Error(), "fixes it to 4") {
		t.Fatalf("error %v", err)
	}
}

func TestRunAbsurdBatch(t *testing.T) {
	dir := writeDataSets(t, [][]float32{{1, 2, 3, 4}})
	for _, data := range []string{"", dir} {
		cfg := baseConfig("m")
		cfg.Data = data
		cfg.Batches = []int{1 << 40}
		cfg.Open = fakeOpener(map[string]fakeSession{"m": {fixed: -1}}, nil, nil)
		if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "x") {
			t.Fatalf("data %q: error %v, want a clean error naming the input", data, err)
		}
	}
}
