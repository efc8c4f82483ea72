package distill_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/bench"
	"github.com/optictl/optictl/pkg/distill"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	_ "github.com/optictl/optictl/pkg/runtime/interp"
	_ "github.com/optictl/optictl/pkg/runtime/ort"
)

func mnistModel(t *testing.T) *graph.Model {
	t.Helper()
	m, err := graph.Load(filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mnistSamples(t *testing.T, m *graph.Model, n int) ([][]*runtime.Tensor, []int) {
	t.Helper()
	dir := testutil.MNISTDir(t)
	s, err := runtime.Open("interp", m, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data, err := bench.LoadData(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), s.Inputs(), n)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := bench.LoadLabels(filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]*runtime.Tensor, len(data))
	for i, d := range data {
		out[i] = d
	}
	return out, labels[:len(out)]
}

// interpOutputs runs m on interp, one sample at a time.
func interpOutputs(t *testing.T, m *graph.Model, samples [][]*runtime.Tensor) [][]float32 {
	t.Helper()
	return backendOutputs(t, "interp", m, samples)
}

func backendOutputs(t *testing.T, backend string, m *graph.Model, samples [][]*runtime.Tensor) [][]float32 {
	t.Helper()
	s, err := runtime.Open(backend, m, runtime.Options{Threads: 1})
	if err != nil {
		if backend == "ort" {
			testutil.Missing(t, "ONNX Runtime: "+err.Error())
		}
		t.Fatal(err)
	}
	defer s.Close()
	var out [][]float32
	for _, in := range samples {
		res, err := s.Run(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]float32(nil), res[0].Float32s()...))
	}
	return out
}

// gorgoniaOutputs runs m as a gorgonia graph with all samples as one batch.
func gorgoniaOutputs(t *testing.T, m *graph.Model, samples [][]*runtime.Tensor) [][]float32 {
	t.Helper()
	net, err := distill.Build(m, len(samples))
	if err != nil {
		t.Fatal(err)
	}
	var in []float32
	for _, s := range samples {
		in = append(in, s[0].Float32s()...)
	}
	res, err := net.Forward([][]float32{in})
	if err != nil {
		t.Fatal(err)
	}
	per := len(res[0]) / len(samples)
	out := make([][]float32, len(samples))
	for i := range out {
		out[i] = res[0][i*per : (i+1)*per]
	}
	return out
}

func assertClose(t *testing.T, what string, got, want [][]float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d samples, want %d", what, len(got), len(want))
	}
	for i := range got {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("%s: sample %d has %d values, want %d", what, i, len(got[i]), len(want[i]))
		}
		for j := range got[i] {
			if d := math.Abs(float64(got[i][j] - want[i][j])); d > 1e-3+1e-3*math.Abs(float64(want[i][j])) {
				t.Fatalf("%s: sample %d value %d: %g, want %g", what, i, j, got[i][j], want[i][j])
			}
		}
	}
}

// mlp is a Flatten → Gemm(transB) → Relu → Gemm MLP with a Constant bias
// and an initializer no node reads.
func mlp() *graph.Model {
	w1 := make([]float32, 6*12)
	for i := range w1 {
		w1[i] = float32(math.Sin(float64(i))) * 0.3
	}
	w2 := make([]float32, 6*3)
	for i := range w2 {
		w2[i] = float32(math.Cos(float64(i))) * 0.5
	}
	g := &graph.Graph{
		Name:    "mlp",
		Inputs:  []*graph.ValueInfo{{Name: "x", DType: graph.Float, Shape: graph.DimsOf(1, 3, 2, 2), HasShape: true, HasType: true}},
		Outputs: []*graph.ValueInfo{{Name: "y", DType: graph.Float, Shape: graph.DimsOf(1, 3), HasShape: true, HasType: true}},
		Initializers: []*graph.Tensor{
			graph.NewFloat32("w1", []int64{6, 12}, w1),
			graph.NewFloat32("b1", []int64{6}, []float32{0.1, -0.1, 0.2, 0, 0.05, -0.2}),
			graph.NewFloat32("w2", []int64{6, 3}, w2),
			// read by no node: not a parameter (gorgonia has no gradient for it)
			graph.NewFloat32("unused", []int64{2}, []float32{1, 2}),
		},
		Nodes: []*graph.Node{
			{Name: "flat", OpType: "Flatten", Inputs: []string{"x"}, Outputs: []string{"f"}},
			{Name: "fc1", OpType: "Gemm", Inputs: []string{"f", "w1", "b1"}, Outputs: []string{"h"}, Attrs: []*graph.Attr{graph.IntAttr("transB", 1)}},
			{Name: "relu", OpType: "Relu", Inputs: []string{"h"}, Outputs: []string{"r"}},
			{Name: "bias2", OpType: "Constant", Outputs: []string{"b2"}, Attrs: []*graph.Attr{graph.TensorAttr("value", graph.NewFloat32("", []int64{3}, []float32{0.3, 0, -0.3}))}},
			{Name: "fc2", OpType: "Gemm", Inputs: []string{"r", "w2", "b2"}, Outputs: []string{"y"}},
		},
	}
	return &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Domain: "", Version: 13}}, Graph: g}
}

func mlpSamples(n int) ([][]*runtime.Tensor, []int) {
	var out [][]*runtime.Tensor
	var labels []int
	for i := 0; i < n; i++ {
		x := make([]float32, 12)
		for j := range x {
			x[j] = float32(math.Sin(float64(i*12+j)*0.7)) * 2
		}
		out = append(out, []*runtime.Tensor{runtime.FromFloat32([]int64{1, 3, 2, 2}, x)})
		labels = append(labels, i%3)
	}
	return out, labels
}

func TestForwardMatchesInterp(t *testing.T) {
	mn := mnistModel(t)
	ms, _ := mnistSamples(t, mn, 4)
	ps, _ := mlpSamples(5)
	for _, tc := range []struct {
		name    string
		m       *graph.Model
		samples [][]*runtime.Tensor
	}{
		{"mnist-cnn", mn, ms},
		{"mlp-gemm-constant", mlp(), ps},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertClose(t, "gorgonia vs interp", gorgoniaOutputs(t, tc.m, tc.samples), interpOutputs(t, tc.m, tc.samples))
		})
	}
}

func train(t *testing.T, m *graph.Model, samples [][]*runtime.Tensor, labels []int, o distill.Options) (*graph.Model, *distill.Result) {
	t.Helper()
	teacher := m.Clone()
	s, err := runtime.Open("interp", teacher, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tout, err := distill.TeacherOutputs(context.Background(), s, samples)
	if err != nil {
		t.Fatal(err)
	}
	// A perturbed student, so there is something to learn.
	student := m.Clone()
	for i, in := range student.Graph.Initializers {
		if in.DType != graph.Float {
			continue
		}
		f, _ := in.Float32s()
		g := make([]float32, len(f))
		for k := range f {
			g[k] = f[k] * (1 + 0.3*float32(math.Sin(float64(k))))
		}
		student.Graph.Initializers[i] = graph.NewFloat32(in.Name, in.Dims, g)
	}
	res, err := distill.Train(context.Background(), student, samples, tout, labels, o)
	if err != nil {
		t.Fatal(err)
	}
	return student, res
}

func TestTrainWriteBackAndDeterminism(t *testing.T) {
	m := mnistModel(t)
	samples, labels := mnistSamples(t, m, 192)
	var log bytes.Buffer
	o := distill.Options{Epochs: 2, Batch: 32, LR: 1e-4, Temperature: 4, Alpha: 0.5, Seed: 7, Log: &log}
	a, res := train(t, m, samples, labels, o)
	if len(res.Epochs) != 2 || !(res.Epochs[1].Loss < res.Epochs[0].Loss) {
		t.Errorf("loss did not decrease over 2 epochs: %+v", res.Epochs)
	}
	if n := strings.Count(log.String(), "\n"); n != 2 || !strings.Contains(log.String(), "samples/s") {
		t.Errorf("log has %d lines, want one per epoch:\n%s", n, log.String())
	}
	// The written model, saved and loaded, runs on interp like the
	// gorgonia forward pass of the trained weights.
	path := filepath.Join(t.TempDir(), "student.onnx")
	if err := a.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := graph.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, "written model on interp vs gorgonia", interpOutputs(t, back, samples[:8]), gorgoniaOutputs(t, a, samples[:8]))
	// Same seed, same weights; another seed, other weights.
	b, _ := train(t, m, samples, labels, o)
	o.Seed = 8
	c, _ := train(t, m, samples, labels, o)
	same, other := true, true
	for i, in := range a.Graph.Initializers {
		if !bytes.Equal(in.Raw, b.Graph.Initializers[i].Raw) {
			same = false
		}
		if in.DType == graph.Float && !bytes.Equal(in.Raw, c.Graph.Initializers[i].Raw) {
			other = false
		}
	}
	if !same {
		t.Error("two runs with --seed 7 gave different weights")
	}
	if other {
		t.Error("seeds 7 and 8 gave the same weights (the seed is not used)")
	}
	// And on ONNX Runtime (last: it skips where ORT is missing, outside CI).
	assertClose(t, "written model on ort vs gorgonia", backendOutputs(t, "ort", back, samples[:8]), gorgoniaOutputs(t, a, samples[:8]))
}

func TestTrainMLPPureKDWritesConstants(t *testing.T) {
	m := mlp()
	samples, _ := mlpSamples(64)
	before := interpOutputs(t, m, samples)
	student, res := train(t, m, samples, nil, distill.Options{Epochs: 3, Batch: 16, LR: 1e-2, Temperature: 2, Seed: 1})
	if !(res.Epochs[2].Loss < res.Epochs[0].Loss) {
		t.Errorf("KD loss did not decrease: %+v", res.Epochs)
	}
	var c *graph.Node
	for _, n := range student.Graph.Nodes {
		if n.Name == "bias2" {
			c = n
		}
	}
	if f, _ := c.AttrTensor("value").Float32s(); f[0] == 0.3 && f[2] == -0.3 {
		t.Error("the Constant bias was not trained or not written back")
	}
	after := interpOutputs(t, student, samples)
	assertClose(t, "written MLP on interp vs gorgonia", after, gorgoniaOutputs(t, student, samples))
	_ = before
}

func TestRefusals(t *testing.T) {
	m := mlp()
	samples, labels := mlpSamples(8)
	bn := mlp()
	bn.Graph.Nodes = append(bn.Graph.Nodes[:1], append([]*graph.Node{{Name: "bn", OpType: "BatchNormalization", Inputs: []string{"f", "s", "b", "m", "v"}, Outputs: []string{"f2"}, Attrs: []*graph.Attr{graph.IntAttr("training_mode", 1)}}}, bn.Graph.Nodes[1:]...)...)
	badShape := [][]*runtime.Tensor{{runtime.FromFloat32([]int64{1, 5}, make([]float32, 5))}}
	nanSamples, _ := mlpSamples(8)
	nanSamples[3] = []*runtime.Tensor{runtime.FromFloat32([]int64{1, 3, 2, 2}, []float32{float32(math.NaN()), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})}
	for _, tc := range []struct {
		name    string
		m       *graph.Model
		samples [][]*runtime.Tensor
		labels  []int
		o       distill.Options
		want    string
	}{
		{"batchnorm", bn, samples, nil, distill.Options{Epochs: 1, Batch: 4, LR: 1e-3, Temperature: 1}, "training_mode 1 is not supported"},
		{"labels count", m, samples, labels[:5], distill.Options{Epochs: 1, Batch: 4, LR: 1e-3, Temperature: 1, Alpha: 0.5}, "5 labels for 8"},
		{"label range", m, samples, []int{0, 1, 2, 0, 1, 2, 0, 9}, distill.Options{Epochs: 1, Batch: 4, LR: 1e-3, Temperature: 1, Alpha: 0.5}, "label 9 of sample 7"},
		{"sample shape", m, append(badShape, badShape...), nil, distill.Options{Epochs: 1, Batch: 2, LR: 1e-3, Temperature: 1}, "sample 0 input"},
		{"nan loss", m, nanSamples, nil, distill.Options{Epochs: 1, Batch: 8, LR: 1e-3, Temperature: 1}, "loss is NaN"},
		{"too few samples", m, samples, nil, distill.Options{Epochs: 1, Batch: 16, LR: 1e-3, Temperature: 1}, "fewer than one batch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tout := make([][]*runtime.Tensor, len(tc.samples))
			for i := range tout {
				tout[i] = []*runtime.Tensor{runtime.FromFloat32([]int64{1, 3}, []float32{1, 2, 3})}
			}
			orig, _ := tc.m.Marshal()
			_, err := distill.Train(context.Background(), tc.m, tc.samples, tout, tc.labels, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if tc.name == "batchnorm" && !errors.Is(err, distill.ErrUnsupported) {
				t.Errorf("error %v is not ErrUnsupported", err)
			}
			if now, _ := tc.m.Marshal(); !bytes.Equal(now, orig) {
				t.Error("a refused Train modified the student")
			}
		})
	}
}
