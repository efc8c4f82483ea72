package testmodels_test

import (
	"bytes"
	"context"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/distill"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/runtime/interp"
	"github.com/optictl/optictl/testmodels"
)

// expected describes each model as doc.go documents it.
var expected = map[string]struct {
	opset   int64
	inputs  map[string]string // name -> type string
	outputs map[string]string
	ops     []string // op types that must appear
}{
	"mlp": {13, map[string]string{"input": "float32[N,784]"}, map[string]string{"logits": "float32[N,10]"},
		[]string{"Gemm", "MatMul", "Add", "Relu"}},
	"cnn": {13, map[string]string{"input": "float32[N,3,32,32]"}, map[string]string{"logits": "float32[N,10]"},
		[]string{"Conv", "BatchNormalization", "Relu", "Add", "MaxPool", "GlobalAveragePool", "Flatten", "Gemm"}},
	"dwsep": {13, map[string]string{"input": "float32[N,16,32,32]"}, map[string]string{"output": "float32[N,32,32,32]"},
		[]string{"Conv", "BatchNormalization", "Relu"}},
	"transformer": {13, map[string]string{"input": "float32[N,16,64]"}, map[string]string{"output": "float32[N,16,64]"},
		[]string{"MatMul", "Add", "Reshape", "Transpose", "Softmax", "Div", "ReduceMean", "Sub", "Pow", "Sqrt", "Mul", "Erf"}},
	"transformer_ln17": {17, map[string]string{"input": "float32[N,16,64]"}, map[string]string{"output": "float32[N,16,64]"},
		[]string{"MatMul", "Reshape", "Transpose", "Softmax", "LayerNormalization", "Erf"}},
	"gru": {13, map[string]string{"input": "float32[8,N,16]"},
		map[string]string{"sequence": "float32[8,1,N,32]", "logits": "float32[N,4]"}, []string{"GRU", "Squeeze", "Gemm"}},
	"lstm": {13, map[string]string{"input": "float32[8,N,16]"},
		map[string]string{"hidden": "float32[1,N,32]", "cell": "float32[1,N,32]", "score": "float32[N,1]"}, []string{"LSTM", "Squeeze", "MatMul"}},
	"dbnet": {11, map[string]string{"x": "float32[N,3,p2o.DynamicDimension.0,p2o.DynamicDimension.1]"},
		map[string]string{"sigmoid_0.tmp_0": "float32[N,1,p2o.DynamicDimension.2,p2o.DynamicDimension.3]"},
		[]string{"Constant", "Conv", "BatchNormalization", "Add", "Clip", "Mul", "Div", "HardSigmoid", "GlobalAveragePool",
			"Relu", "Resize", "Concat", "ConvTranspose", "Sigmoid"}},
	"mnist_mlp": {13, map[string]string{"Input3": "float32[N,1,28,28]"}, map[string]string{"Plus214_Output_0": "float32[N,10]"},
		[]string{"Flatten", "Gemm", "Relu"}},
}

// sampleShape replaces the dims of an input or output type string as
// testmodels.InputShapes sets them for batch n: N -> n, dbnet's height and
// width (input, and the output's, which are the same) -> 64x96.
func sampleShape(typ string, n int) string {
	r := strings.NewReplacer("p2o.DynamicDimension.0", "64", "p2o.DynamicDimension.1", "96",
		"p2o.DynamicDimension.2", "64", "p2o.DynamicDimension.3", "96", "N", strconv.Itoa(n))
	return r.Replace(typ)
}

func TestAllListsEveryModel(t *testing.T) {
	names := testmodels.Names()
	var want []string
	for n := range expected {
		want = append(want, n)
	}
	sort.Strings(want)
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("Names() = %v, want %v", names, want)
	}
}

func TestModelsMatchTheirDescription(t *testing.T) {
	for name, ctor := range testmodels.All() {
		t.Run(name, func(t *testing.T) {
			exp := expected[name]
			m := ctor()
			if err := m.Verify(); err != nil {
				t.Fatal(err)
			}
			if got := m.Opset(""); got != exp.opset {
				t.Errorf("opset %d, want %d", got, exp.opset)
			}
			if len(m.Opsets) != 1 {
				t.Errorf("imports %v, want the default domain only", m.Opsets)
			}
			check := func(kind string, vis []*graph.ValueInfo, want map[string]string) {
				if len(vis) != len(want) {
					t.Errorf("%d %ss, want %d", len(vis), kind, len(want))
				}
				for _, v := range vis {
					if w, ok := want[v.Name]; !ok || v.TypeString() != w {
						t.Errorf("%s %s: %s, want %q", kind, v.Name, v.TypeString(), w)
					}
				}
			}
			check("input", m.Graph.Inputs, exp.inputs)
			check("output", m.Graph.Outputs, exp.outputs)
			ops := map[string]bool{}
			for _, n := range m.Graph.Nodes {
				ops[n.OpType] = true
			}
			for _, op := range exp.ops {
				if !ops[op] {
					t.Errorf("no %s node", op)
				}
			}
			if name == "transformer_ln17" && ops["ReduceMean"] {
				t.Error("the LayerNormalization variant still writes norms out")
			}
		})
	}
}

// TestWeightsAreRealistic checks scales: He-initialised Conv/Gemm weights
// have a standard deviation near sqrt(2/fan_in), BatchNorm statistics are
// not the identity, and nothing is NaN or constant.
func TestWeightsAreRealistic(t *testing.T) {
	for name, ctor := range testmodels.All() {
		t.Run(name, func(t *testing.T) {
			m := ctor()
			ws := append([]*graph.Tensor(nil), m.Graph.Initializers...)
			for _, n := range m.Graph.Nodes {
				if t := n.AttrTensor("value"); n.Is("Constant") && t != nil {
					ws = append(ws, t)
				}
			}
			for _, w := range ws {
				if w.DType != graph.Float {
					continue
				}
				v, err := w.Float32s()
				if err != nil {
					t.Fatal(err)
				}
				var sum, sq float64
				for _, x := range v {
					if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
						t.Fatalf("%s holds %v", w.Name, x)
					}
					sum += float64(x)
					sq += float64(x) * float64(x)
				}
				n := float64(len(v))
				mean := sum / n
				std := math.Sqrt(sq/n - mean*mean)
				switch {
				case strings.HasSuffix(w.Name, ".var"):
					for _, x := range v {
						if x <= 0 {
							t.Errorf("%s: variance %v", w.Name, x)
						}
					}
					if std < 0.1 {
						t.Errorf("%s: variances are nearly constant (std %.3f)", w.Name, std)
					}
				case strings.HasSuffix(w.Name, ".mean"):
					if std < 0.02 {
						t.Errorf("%s: running means look trivial (std %.3f)", w.Name, std)
					}
				case strings.HasSuffix(w.Name, ".weight") && len(w.Dims) >= 2 && len(v) >= 256:
					fanIn := float64(len(v)) / float64(w.Dims[0])
					if (len(w.Dims) == 2 && strings.Contains(name, "transformer")) || (name == "mlp" && strings.HasPrefix(w.Name, "fc2")) {
						fanIn = float64(w.Dims[0]) // MatMul layout [in, out], Glorot
						fanOut := float64(w.Dims[1])
						if want := math.Sqrt(2 / (fanIn + fanOut)); math.Abs(std-want) > 0.15*want {
							t.Errorf("%s: std %.4f, Glorot wants %.4f", w.Name, std, want)
						}
						continue
					}
					if want := math.Sqrt(2 / fanIn); math.Abs(std-want) > 0.15*want {
						t.Errorf("%s: std %.4f, He wants %.4f", w.Name, std, want)
					}
				}
			}
		})
	}
}

// TestRoundTripAndDeterminism: every model survives Save/Load unchanged,
// two constructions give identical bytes, and the checked-in files are what
// the constructors produce (run `go generate ./testmodels` after changing
// them).
func TestRoundTripAndDeterminism(t *testing.T) {
	var total int64
	dir := t.TempDir()
	for _, name := range testmodels.Names() {
		t.Run(name, func(t *testing.T) {
			ctor := testmodels.All()[name]
			a, err := ctor().Marshal()
			if err != nil {
				t.Fatal(err)
			}
			b, err := ctor().Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Fatal("two constructions differ")
			}
			m := ctor()
			path := filepath.Join(dir, name+".onnx")
			if err := m.Save(path); err != nil {
				t.Fatal(err)
			}
			m2, err := graph.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := m2.Verify(); err != nil {
				t.Fatal(err)
			}
			if m.Format() != m2.Format() {
				t.Error("text form differs after Save/Load")
			}
			c, err := m2.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, c) {
				t.Error("bytes differ after Save/Load")
			}
			file, err := os.ReadFile(name + ".onnx")
			if err != nil {
				t.Fatalf("%v (run go generate ./testmodels)", err)
			}
			if !bytes.Equal(file, a) {
				t.Errorf("%s.onnx is stale: run go generate ./testmodels", name)
			}
			total += int64(len(file))
		})
	}
	if total > 2<<20 {
		t.Errorf("generated files total %d bytes, over 2 MB", total)
	}
	files, _ := filepath.Glob("*.onnx")
	if len(files) != len(testmodels.Names()) {
		t.Errorf("folder holds %d .onnx files, All() has %d models", len(files), len(testmodels.Names()))
	}
}

// TestShapesInfer checks that shape inference, with the batch fixed, works
// out every intermediate value and the documented output shapes.
func TestShapesInfer(t *testing.T) {
	for _, name := range testmodels.Names() {
		t.Run(name, func(t *testing.T) {
			m := testmodels.All()[name]()
			fixed := testmodels.InputShapes(m, 3)
			res, err := graph.InferShapes(m, graph.InferOptions{Fixed: fixed})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Unknown) > 0 || len(res.UnsupportedOps) > 0 {
				t.Errorf("unknown values %v, unsupported ops %v", res.Unknown, res.UnsupportedOps)
			}
			for _, out := range m.Graph.Outputs {
				want := sampleShape(expected[name].outputs[out.Name], 3)
				if out.TypeString() != want {
					t.Errorf("output %s inferred as %s, want %s", out.Name, out.TypeString(), want)
				}
			}
		})
	}
}

// TestModelsRun runs every model in the pure-Go interpreter on seeded
// inputs with batch 2: outputs must have the documented shapes, be finite,
// not be constant, and depend on the input.
func TestModelsRun(t *testing.T) {
	for _, name := range testmodels.Names() {
		t.Run(name, func(t *testing.T) {
			m := testmodels.All()[name]()
			s, err := interp.Open(m, runtime.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			run := func(seed int64) map[string]*runtime.Tensor {
				rng := rand.New(rand.NewSource(seed))
				in := map[string]*runtime.Tensor{}
				shapes := testmodels.InputShapes(m, 2)
				for _, v := range m.Graph.Inputs {
					dims := shapes[v.Name]
					n := 1
					for _, k := range dims {
						n *= int(k)
					}
					data := make([]float32, n)
					for i := range data {
						data[i] = float32(rng.NormFloat64())
					}
					in[v.Name] = runtime.FromFloat32(dims, data)
				}
				out, err := runtime.RunNamed(context.Background(), s, in)
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			a, b := run(1), run(2)
			for oname, want := range expected[name].outputs {
				o := a[oname]
				if o == nil {
					t.Fatalf("no output %s", oname)
				}
				if got := "float32" + runtime.ShapeString(o.Shape); got != sampleShape(want, 2) {
					t.Errorf("output %s: %s, want %s", oname, got, want)
				}
				v := o.Float32s()
				lo, hi := v[0], v[0]
				for _, x := range v {
					if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
						t.Fatalf("output %s holds %v", oname, x)
					}
					lo, hi = min(lo, x), max(hi, x)
				}
				if hi-lo < 1e-4 {
					t.Errorf("output %s is constant (%v)", oname, lo)
				}
				if bytes.Equal(o.Raw, b[oname].Raw) {
					t.Errorf("output %s does not depend on the input", oname)
				}
			}
		})
	}
}

// TestLayerNormVariantsAgree runs both transformer variants (same weights)
// on the same input: the written-out LayerNormalization must compute what
// the opset-17 op computes.
func TestLayerNormVariantsAgree(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	data := make([]float32, 2*16*64)
	for i := range data {
		data[i] = float32(rng.NormFloat64())
	}
	var outs [][]float32
	for _, m := range []*graph.Model{testmodels.TransformerEncoder(), testmodels.TransformerEncoderLN17()} {
		s, err := interp.Open(m, runtime.Options{})
		if err != nil {
			t.Fatal(err)
		}
		out, err := runtime.RunNamed(context.Background(), s, map[string]*runtime.Tensor{"input": runtime.FromFloat32([]int64{2, 16, 64}, data)})
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, out["output"].Float32s())
	}
	worst := 0.0
	for i := range outs[0] {
		worst = max(worst, math.Abs(float64(outs[0][i]-outs[1][i])))
	}
	if worst > 1e-4 {
		t.Errorf("variants differ by up to %g", worst)
	}
}

// TestMNISTMLPIsAStudent: mnist_mlp is a distill student for the shared
// MNIST CNN. distill builds every op of it, and on pixel values 0-255 (what
// the teacher takes) its logits stay at unit scale because the first Gemm
// scales its input by 1/255; on values 0-1 they shrink by that factor.
func TestMNISTMLPIsAStudent(t *testing.T) {
	m := testmodels.MNISTMLP()
	net, err := distill.Build(m, 4)
	if err != nil {
		t.Fatalf("distill cannot train it: %v", err)
	}
	if len(net.Params) != 4 {
		t.Errorf("%d trainable tensors, want 4 (two weights, two biases)", len(net.Params))
	}
	s, err := interp.Open(m, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rng := rand.New(rand.NewSource(3))
	pixels := make([]float32, 2*784)
	for i := range pixels {
		pixels[i] = float32(rng.Intn(256))
	}
	maxAbs := func(scale float32) float64 {
		x := make([]float32, len(pixels))
		for i, p := range pixels {
			x[i] = p * scale
		}
		out, err := runtime.RunNamed(context.Background(), s, map[string]*runtime.Tensor{"Input3": runtime.FromFloat32([]int64{2, 1, 28, 28}, x)})
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for _, v := range out["Plus214_Output_0"].Float32s() {
			worst = max(worst, math.Abs(float64(v)))
		}
		return worst
	}
	for _, tc := range []struct {
		name     string
		scale    float32
		min, max float64
	}{
		{"pixels 0-255", 1, 0.1, 10},
		{"pixels 0-1", 1.0 / 255, 0.1 / 255, 10.0 / 255},
	} {
		if got := maxAbs(tc.scale); got < tc.min || got > tc.max {
			t.Errorf("%s: largest |logit| %.4g, want in [%.4g, %.4g]", tc.name, got, tc.min, tc.max)
		}
	}
}
