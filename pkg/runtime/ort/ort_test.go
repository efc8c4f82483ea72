//go:build cgo

package ort

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tensorio"
)

// needLib skips (or under CI=true fails) when no ONNX Runtime is found.
func needLib(t testing.TB) {
	t.Helper()
	if len(Candidates("")) == 0 {
		testutil.Missing(t, "ONNX Runtime shared library (run `make setup`)")
	}
}

func loadModel(t testing.TB, path string) *graph.Model {
	t.Helper()
	m, err := graph.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func open(t testing.TB, m *graph.Model, opts runtime.Options) *Session {
	t.Helper()
	s, err := Open(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// closeEnough compares within |got-want| <= atol + rtol*|want|.
func closeEnough(t *testing.T, what string, got, want *runtime.Tensor, rtol, atol float64) {
	t.Helper()
	if got.DType != want.DType {
		t.Fatalf("%s: dtype %s, want %s", what, got.DType, want.DType)
	}
	if runtime.ShapeString(got.Shape) != runtime.ShapeString(want.Shape) {
		t.Fatalf("%s: shape %v, want %v", what, got.Shape, want.Shape)
	}
	if got.DType == graph.String {
		if !got.Equal(want) {
			t.Fatalf("%s: strings %q, want %q", what, got.Strings, want.Strings)
		}
		return
	}
	g, err := got.AsFloat64()
	if err != nil {
		t.Fatal(err)
	}
	w, err := want.AsFloat64()
	if err != nil {
		t.Fatal(err)
	}
	bad := 0
	for i := range w {
		if math.IsNaN(w[i]) && math.IsNaN(g[i]) {
			continue
		}
		if d := math.Abs(g[i] - w[i]); !(d <= atol+rtol*math.Abs(w[i])) {
			if bad < 5 {
				t.Errorf("%s[%d] = %g, want %g", what, i, g[i], w[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d of %d values out of tolerance", what, bad, len(w))
	}
}

// TestRealModels runs every shared model with reference data and compares
// ONNX Runtime's outputs with the references, twice (the second Run reuses
// the session's buffers).
func TestRealModels(t *testing.T) {
	needLib(t)
	dirs := testutil.RealModels(t)
	ran := 0
	for _, dir := range dirs {
		sets, err := tensorio.DataSets(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(sets) == 0 {
			continue
		}
		ran++
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := loadModel(t, filepath.Join(dir, "model.onnx"))
			s := open(t, m, runtime.Options{Threads: 1})
			var inNames, outNames []string
			for _, in := range s.Inputs() {
				inNames = append(inNames, in.Name)
			}
			for _, o := range s.Outputs() {
				outNames = append(outNames, o.Name)
			}
			for _, set := range sets {
				ds, err := tensorio.LoadDataSet(set, inNames, outNames)
				if err != nil {
					t.Fatal(err)
				}
				in := map[string]*runtime.Tensor{}
				for _, n := range ds.Inputs {
					in[n.Name] = n.Tensor
				}
				for round := 0; round < 2; round++ {
					got, err := runtime.RunNamed(context.Background(), s, in)
					if err != nil {
						t.Fatalf("%s: %v", set, err)
					}
					for _, o := range ds.Outputs {
						g, ok := got[o.Name]
						if !ok {
							t.Fatalf("%s: no output %q", set, o.Name)
						}
						closeEnough(t, filepath.Base(set)+"/"+o.Name, g, o.Tensor, 1e-3, 1e-4)
					}
				}
			}
		})
	}
	if ran < 5 {
		t.Fatalf("only %d shared models with test data found", ran)
	}
}

// TestScalarInput: silero-vad-v5's sr input is an int64 scalar, which
// onnxruntime_go only accepts through NewScalar.
func TestScalarInput(t *testing.T) {
	needLib(t)
	m := loadModel(t, filepath.Join(testutil.ModelsDir(t), "silero-vad-v5", "model.onnx"))
	s := open(t, m, runtime.Options{})
	found := false
	for _, in := range s.Inputs() {
		if in.Name == "sr" {
			found = true
			if in.Shape == nil || len(in.Shape) != 0 || in.DType != graph.Int64 {
				t.Fatalf("sr: %s%v, want int64 scalar", in.DType, in.Shape)
			}
		}
	}
	if !found {
		t.Fatal("silero-vad-v5 has no input sr")
	}
}

func edge(t *testing.T, name string) *graph.Model {
	return loadModel(t, filepath.Join(testutil.ModelsDir(t), "edge-cases", name))
}

func TestEdgeCases(t *testing.T) {
	needLib(t)
	ctx := context.Background()
	t.Run("float16-in-bfloat16-out", func(t *testing.T) {
		s := open(t, edge(t, "example_float16.onnx"), runtime.Options{})
		in := runtime.NewTensor(graph.Float16, []int64{1, 2, 2, 2})
		// float16 bits of 0..7
		for i, b := range []uint16{0x0000, 0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600, 0x4700} {
			binary.LittleEndian.PutUint16(in.Raw[2*i:], b)
		}
		for round := 0; round < 2; round++ {
			out, err := s.Run(ctx, []*runtime.Tensor{in})
			if err != nil {
				t.Fatal(err)
			}
			if out[0].DType != graph.BFloat16 || len(out[0].Raw) != 16 {
				t.Fatalf("output %s with %d bytes", out[0].DType, len(out[0].Raw))
			}
			for i := 0; i < 8; i++ {
				bits := uint32(binary.LittleEndian.Uint16(out[0].Raw[2*i:])) << 16
				if got := math.Float32frombits(bits); got != float32(3*i) {
					t.Fatalf("round %d: output[%d] = %g, want %d", round, i, got, 3*i)
				}
			}
		}
	})
	t.Run("strings", func(t *testing.T) {
		s, err := Open(edge(t, "example_strings.onnx"), runtime.Options{})
		if err != nil && strings.Contains(err.Error(), "Failed to construct locale") {
			// ONNX Runtime's StringNormalizer needs the locale (.ci/run makes it).
			testutil.Missing(t, "the en_US.UTF-8 locale (sed -i 's/^# *en_US.UTF-8/en_US.UTF-8/' /etc/locale.gen && locale-gen)")
		}
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		words := []string{"Green Beans", "Something Else"}
		in := &runtime.Tensor{DType: graph.String, Shape: []int64{2}, Strings: words}
		out, err := s.Run(ctx, []*runtime.Tensor{in})
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]*runtime.Tensor{}
		for i, o := range s.Outputs() {
			byName[o.Name] = out[i]
		}
		up, low := byName["output_upper"], byName["output_lower"]
		if up == nil || low == nil {
			t.Fatalf("outputs %+v", s.Outputs())
		}
		for i, w := range words {
			if up.Strings[i] != strings.ToUpper(w) || low.Strings[i] != strings.ToLower(w) {
				t.Fatalf("got %q / %q for %q", up.Strings[i], low.Strings[i], w)
			}
		}
	})
	t.Run("multitype", func(t *testing.T) {
		s := open(t, edge(t, "example_multitype.onnx"), runtime.Options{})
		a := runtime.NewTensor(graph.Uint8, []int64{1, 1, 1})
		a.Raw[0] = 200
		b := runtime.NewTensor(graph.Double, []int64{1, 2, 2})
		bv := []float64{0.25, 0.5, 1.5, 3}
		copy(b.Float64s(), bv)
		out, err := s.Run(ctx, []*runtime.Tensor{a, b})
		if err != nil {
			t.Fatal(err)
		}
		if out[0].DType != graph.Int16 || out[1].DType != graph.Int64 {
			t.Fatalf("output dtypes %s, %s", out[0].DType, out[1].DType)
		}
		for i, v := range bv {
			want := int16(v*200 - 512)
			if got := int16(binary.LittleEndian.Uint16(out[0].Raw[2*i:])); got != want {
				t.Fatalf("OutputA[%d] = %d, want %d", i, got, want)
			}
		}
		if got := out[1].Int64s()[0]; got != 200*1234 {
			t.Fatalf("OutputB = %d, want %d", got, 200*1234)
		}
	})
	t.Run("dynamic-axes", func(t *testing.T) {
		m := edge(t, "example_dynamic_axes.onnx")
		s := open(t, m, runtime.Options{})
		in := s.Inputs()[0]
		if in.Shape == nil || in.Shape[0] != -1 {
			t.Fatalf("input %s: shape %v, want a dynamic first dim", in.Name, in.Shape)
		}
		// Alternate batch sizes: output buffers must follow.
		for _, batch := range []int64{3, 1, 3, 5} {
			shape := append([]int64{batch}, in.Shape[1:]...)
			x := runtime.NewTensor(in.DType, shape)
			out, err := s.Run(ctx, []*runtime.Tensor{x})
			if err != nil {
				t.Fatalf("batch %d: %v", batch, err)
			}
			if out[0].Shape[0] != batch {
				t.Fatalf("batch %d: output shape %v", batch, out[0].Shape)
			}
		}
	})
	t.Run("zero-dim-output", func(t *testing.T) {
		m := edge(t, "example_0_dim_output.onnx")
		s := open(t, m, runtime.Options{})
		var in []*runtime.Tensor
		for _, info := range s.Inputs() {
			shape := make([]int64, len(info.Shape))
			for i, d := range info.Shape {
				shape[i] = max(d, 1)
			}
			in = append(in, runtime.NewTensor(info.DType, shape))
		}
		out, err := s.Run(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if n := out[0].Len(); n != 0 {
			t.Fatalf("output %v has %d elements, want 0", out[0].Shape, n)
		}
	})
}

func mnist(t testing.TB) *graph.Model {
	return loadModel(t, filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx"))
}

func TestOpenErrors(t *testing.T) {
	needLib(t)
	m := mnist(t)
	cases := []struct {
		name string
		opts runtime.Options
		want []string
	}{
		{"bad-opt-level", runtime.Options{OptLevel: "max"}, []string{`--ort-opt "max"`, "unknown optimization level", "off, basic, extended, all"}},
		{"bad-device", runtime.Options{Device: "tpu"}, []string{`unknown device "tpu"`, "cpu, cuda, tensorrt"}},
		{"bad-fallback", runtime.Options{Device: "cuda", Fallback: "gpu"}, []string{`unknown fallback "gpu"`}},
		{"cuda-without-gpu", runtime.Options{Device: "cuda"}, []string{"CUDA execution provider unavailable", "--fallback cpu"}},
		{"tensorrt-without-gpu", runtime.Options{Device: "tensorrt"}, []string{"TensorRT execution provider unavailable"}},
		{"provider-options-on-cpu", runtime.Options{ProviderOptions: map[string]string{"trt_fp16_enable": "1"}}, []string{"trt_fp16_enable", "--device cuda or tensorrt"}},
		{"max-memory", runtime.Options{MaxMemory: 1000}, []string{"over the memory bound of 1000 bytes"}},
		{"shape-unknown-input", runtime.Options{Shapes: map[string][]int64{"nope": {1}}}, []string{`"nope", which is not a model input`}},
		{"shape-contradicts", runtime.Options{Shapes: map[string][]int64{"Input3": {2, 1, 28, 28}}}, []string{`input "Input3"`, "contradicts"}},
		{"shape-rank", runtime.Options{Shapes: map[string][]int64{"Input3": {1, 28, 28}}}, []string{`input "Input3"`, "rank 3"}},
		{"negative-threads", runtime.Options{Threads: -2}, []string{"threads must be >= 0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(m, c.opts)
			if err == nil {
				s.Close()
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestNCHWcBlockGuard: a model optimize wrote for another CPU's NCHWc
// block size is refused with what to do; one for this CPU opens.
func TestNCHWcBlockGuard(t *testing.T) {
	needLib(t)
	host := runtime.HostNCHWcBlock()
	other := map[int]string{0: "8", 8: "16", 16: "8"}[host]
	for _, tc := range []struct {
		value string
		ok    bool
	}{{other, false}, {"nonsense", false}, {strconv.Itoa(host), host != 0}} {
		t.Run(tc.value, func(t *testing.T) {
			m := mnist(t)
			m.Metadata = append(m.Metadata, graph.KV{Key: runtime.NCHWcMetadataKey, Value: tc.value})
			s, err := Open(m, runtime.Options{Threads: 1})
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				return
			}
			if err == nil {
				s.Close()
				t.Fatal("opened a model laid out for another NCHWc block size")
			}
			for _, w := range []string{"NCHWc block size " + tc.value, "wrong results", "--nchwc auto"} {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestFallback(t *testing.T) {
	needLib(t)
	for _, dev := range []string{"cuda", "tensorrt"} {
		s := open(t, mnist(t), runtime.Options{Device: dev, Fallback: "cpu"})
		if d := s.Device(); !strings.HasPrefix(d, "cpu (fallback from "+dev+": ") {
			t.Fatalf("Device() = %q", d)
		}
		x := runtime.NewTensor(graph.Float, []int64{1, 1, 28, 28})
		if _, err := s.Run(context.Background(), []*runtime.Tensor{x}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRunErrors(t *testing.T) {
	needLib(t)
	s := open(t, mnist(t), runtime.Options{})
	good := runtime.NewTensor(graph.Float, []int64{1, 1, 28, 28})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		in   []*runtime.Tensor
		want []string
	}{
		{"wrong-dtype", context.Background(), []*runtime.Tensor{runtime.NewTensor(graph.Double, []int64{1, 1, 28, 28})}, []string{`input "Input3"`, "float32", "float64"}},
		{"wrong-shape", context.Background(), []*runtime.Tensor{runtime.NewTensor(graph.Float, []int64{1, 1, 28, 27})}, []string{`input "Input3"`, "[1,1,28,28]"}},
		{"wrong-count", context.Background(), []*runtime.Tensor{good, good}, []string{"takes 1 inputs, got 2"}},
		{"short-data", context.Background(), []*runtime.Tensor{{DType: graph.Float, Shape: []int64{1, 1, 28, 28}, Raw: make([]byte, 12)}}, []string{`input "Input3"`, "12 bytes"}},
		{"cancelled", cancelled, []*runtime.Tensor{good}, []string{"context canceled"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Run(c.ctx, c.in)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// The session still works after errors.
	if _, err := s.Run(context.Background(), []*runtime.Tensor{good}); err != nil {
		t.Fatal(err)
	}
}

// TestOptLevelsAgree: every optimization level computes the same digits.
func TestOptLevelsAgree(t *testing.T) {
	needLib(t)
	dir := filepath.Join(testutil.ModelsDir(t), "mnist")
	ds, err := tensorio.LoadDataSet(filepath.Join(dir, "test_data_set_0"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := loadModel(t, filepath.Join(dir, "model.onnx"))
	for _, lvl := range OptLevels() {
		s := open(t, m, runtime.Options{OptLevel: lvl, Threads: 1})
		out, err := s.Run(context.Background(), []*runtime.Tensor{ds.Inputs[0].Tensor})
		if err != nil {
			t.Fatalf("%s: %v", lvl, err)
		}
		closeEnough(t, lvl, out[0], ds.Outputs[0].Tensor, 1e-3, 1e-4)
	}
}

// TestCancelDuringRun: a context that ends while ORT runs stops the call
// and the session runs again afterwards.
func TestCancelDuringRun(t *testing.T) {
	needLib(t)
	s := open(t, mnist(t), runtime.Options{Threads: 1})
	x := runtime.NewTensor(graph.Float, []int64{1, 1, 28, 28})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := s.Run(ctx, []*runtime.Tensor{x}); err != nil {
		t.Fatalf("live context: %v", err)
	}
	cancel()
	if _, err := s.Run(ctx, []*runtime.Tensor{x}); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("cancelled context: %v", err)
	}
	if _, err := s.Run(context.Background(), []*runtime.Tensor{x}); err != nil {
		t.Fatalf("after cancel: %v", err)
	}
}

// TestSteadyStateAllocs: once warm, a Run allocates almost nothing (the
// remaining allocations are onnxruntime_go's per-call C argument arrays).
func TestSteadyStateAllocs(t *testing.T) {
	needLib(t)
	s := open(t, mnist(t), runtime.Options{Threads: 1})
	x := runtime.NewTensor(graph.Float, []int64{1, 1, 28, 28})
	in := []*runtime.Tensor{x}
	var first []byte
	out, err := s.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	first = out[0].Raw
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := s.Run(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 4 {
		t.Fatalf("%.0f allocations per warm Run, want <= 4", allocs)
	}
	out, _ = s.Run(context.Background(), in)
	if &out[0].Raw[0] != &first[0] {
		t.Fatal("warm Run did not reuse its output buffer")
	}
}

func TestProbeRejectsNonLibrary(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "libonnxruntime.so")
	if err := os.WriteFile(bad, []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := probe(bad)
	if err == nil || !strings.Contains(err.Error(), "cannot load it") {
		t.Fatalf("probe(non-library) = %v", err)
	}
	// A real shared library that is not ONNX Runtime.
	for _, so := range []string{"/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1"} {
		if _, err := os.Stat(so); err == nil {
			_, err := probe(so)
			if err == nil || !strings.Contains(err.Error(), "not an ONNX Runtime library") {
				t.Fatalf("probe(%s) = %v", so, err)
			}
			break
		}
	}
}

// TestLibraryErrorsInFreshProcess checks the errors of the first load,
// which need a process where ONNX Runtime is not loaded yet.
func TestLibraryErrorsInFreshProcess(t *testing.T) {
	if mode := os.Getenv("OPTICTL_ORT_CHILD"); mode != "" {
		lib := os.Getenv("OPTICTL_ORT_CHILD_LIB")
		_, err := Open(&graph.Model{Graph: &graph.Graph{Outputs: []*graph.ValueInfo{{Name: "y", DType: graph.Float}}}}, runtime.Options{ORTLib: lib})
		if err == nil {
			t.Fatal("no error")
		}
		os.Stdout.WriteString("ERR: " + err.Error() + "\n")
		return
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	notLib := filepath.Join(dir, "libonnxruntime.so.1.24.1")
	if err := os.WriteFile(notLib, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, lib string
		want      []string
	}{
		{"missing", filepath.Join(dir, "nope.so"), []string{"nope.so", "--ort-lib", "no such file", "make setup", EnvLibraryPath}},
		{"not-a-library", notLib, []string{notLib, "cannot load it", "make setup"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestLibraryErrorsInFreshProcess$", "-test.v")
			cmd.Env = append(os.Environ(), "OPTICTL_ORT_CHILD=1", "OPTICTL_ORT_CHILD_LIB="+c.lib)
			out, _ := cmd.CombinedOutput()
			s := string(out)
			i := strings.Index(s, "ERR: ")
			if i < 0 {
				t.Fatalf("child printed no error:\n%s", s)
			}
			msg := s[i:]
			msg = msg[:strings.IndexByte(msg, '\n')]
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Fatalf("%s does not mention %q", msg, w)
				}
			}
		})
	}
}

func TestLoadedLibrary(t *testing.T) {
	needLib(t)
	open(t, mnist(t), runtime.Options{})
	path, ver, src := LoadedLibrary()
	if path == "" || src == "" || !versionOK(ver) || ver == "" {
		t.Fatalf("LoadedLibrary() = %q, %q, %q", path, ver, src)
	}
	// Asking for another library in the same process is refused.
	_, err := Open(mnist(t), runtime.Options{ORTLib: "/nonexistent/libonnxruntime.so"})
	if err == nil || !strings.Contains(err.Error(), "already loaded from") {
		t.Fatalf("second library: %v", err)
	}
}

func TestRegistered(t *testing.T) {
	b, err := runtime.Get("ort")
	if err != nil {
		t.Fatal(err)
	}
	c := b.Capabilities()
	if c.PureGo || !c.Reference || len(c.Devices) != 3 {
		t.Fatalf("capabilities %+v", c)
	}
	for _, q := range []struct {
		domain, op string
		opset      int64
		want       bool
	}{{"", "Relu", 13, true}, {"com.microsoft", "FusedConv", 1, true}, {"com.microsoft.nchwc", "Conv", 1, true}, {"com.example", "Custom", 1, false}} {
		if got := c.Supports(q.domain, q.op, q.opset); got != q.want {
			t.Errorf("Supports(%q, %q, %d) = %v, want %v", q.domain, q.op, q.opset, got, q.want)
		}
	}
	if _, ok := c.Option(runtime.OptionOptLevel); !ok {
		t.Errorf("no %s option", runtime.OptionOptLevel)
	}
}

func BenchmarkMNIST1Thread(b *testing.B) {
	needLib(b)
	s := open(b, mnist(b), runtime.Options{Threads: 1})
	x := runtime.NewTensor(graph.Float, []int64{1, 1, 28, 28})
	in := []*runtime.Tensor{x}
	ctx := context.Background()
	if _, err := s.Run(ctx, in); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Run(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

// halfModel: y = x + x (float16, dynamic batch), z = Cast(x) to float32,
// s = ReduceSum(z) as a declared float32 scalar.
func halfModel() *graph.Model {
	vi := func(name string, dt graph.DType, shape graph.Shape) *graph.ValueInfo {
		return &graph.ValueInfo{Name: name, DType: dt, Shape: shape, HasShape: true, HasType: true}
	}
	dyn := graph.Shape{graph.SymDim("N"), graph.FixedDim(2)}
	return &graph.Model{
		IRVersion: 8,
		Opsets:    []graph.OpsetImport{{Version: 13}},
		Graph: &graph.Graph{
			Name:   "half",
			Inputs: []*graph.ValueInfo{vi("x", graph.Float16, dyn)},
			Outputs: []*graph.ValueInfo{
				vi("y", graph.Float16, dyn),
				vi("z", graph.Float, dyn),
				vi("s", graph.Float, graph.Shape{}),
			},
			Nodes: []*graph.Node{
				{Name: "add", OpType: "Add", Inputs: []string{"x", "x"}, Outputs: []string{"y"}},
				{Name: "cast", OpType: "Cast", Inputs: []string{"x"}, Outputs: []string{"z"}, Attrs: []*graph.Attr{graph.IntAttr("to", int64(graph.Float))}},
				{Name: "sum", OpType: "ReduceSum", Inputs: []string{"z"}, Outputs: []string{"s"}, Attrs: []*graph.Attr{graph.IntAttr("keepdims", 0)}},
			},
		},
	}
}

// TestDynamicHalfAndScalarOutputs: float16 outputs of a dynamic shape are
// sized by shape inference (onnxruntime_go cannot return them itself), and a
// declared scalar output comes back as shape [].
func TestDynamicHalfAndScalarOutputs(t *testing.T) {
	needLib(t)
	s := open(t, halfModel(), runtime.Options{})
	ctx := context.Background()
	for _, n := range []int64{2, 3, 1, 3} {
		x := runtime.NewTensor(graph.Float16, []int64{n, 2})
		for i := range x.Uint16s() {
			x.Uint16s()[i] = 0x3c00 // 1.0
		}
		out, err := s.Run(ctx, []*runtime.Tensor{x})
		if err != nil {
			t.Fatalf("batch %d: %v", n, err)
		}
		y, z, sum := out[0], out[1], out[2]
		if y.DType != graph.Float16 || runtime.ShapeString(y.Shape) != runtime.ShapeString([]int64{n, 2}) {
			t.Fatalf("batch %d: y is %s%v", n, y.DType, y.Shape)
		}
		for i, b := range y.Uint16s() {
			if b != 0x4000 { // 2.0
				t.Fatalf("batch %d: y[%d] = %#04x, want 0x4000", n, i, b)
			}
		}
		if len(z.Float32s()) != int(2*n) || z.Float32s()[0] != 1 {
			t.Fatalf("batch %d: z = %v", n, z.Float32s())
		}
		if len(sum.Shape) != 0 || sum.Float32s()[0] != float32(2*n) {
			t.Fatalf("batch %d: s = %v%v, want scalar %d", n, sum.Shape, sum.Float32s(), 2*n)
		}
	}
}

// TestScalarInputChanges: a scalar input takes a new value on every Run
// (onnxruntime_go's Scalar.Set alone would leave ONNX Runtime the old one).
func TestScalarInputChanges(t *testing.T) {
	needLib(t)
	vi := func(name string, shape graph.Shape) *graph.ValueInfo {
		return &graph.ValueInfo{Name: name, DType: graph.Float, Shape: shape, HasShape: true, HasType: true}
	}
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 13}}, Graph: &graph.Graph{
		Name:    "scalar",
		Inputs:  []*graph.ValueInfo{vi("a", graph.Shape{}), vi("b", graph.DimsOf(2))},
		Outputs: []*graph.ValueInfo{vi("y", graph.DimsOf(2))},
		Nodes:   []*graph.Node{{Name: "add", OpType: "Add", Inputs: []string{"a", "b"}, Outputs: []string{"y"}}},
	}}
	s := open(t, m, runtime.Options{})
	b := runtime.FromFloat32([]int64{2}, []float32{10, 20})
	for _, a := range []float32{1, 2, 2, -5} {
		out, err := s.Run(context.Background(), []*runtime.Tensor{runtime.FromFloat32([]int64{}, []float32{a}), b})
		if err != nil {
			t.Fatal(err)
		}
		if y := out[0].Float32s(); y[0] != 10+a || y[1] != 20+a {
			t.Fatalf("a=%g: y = %v", a, y)
		}
	}
}
