package distill_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/distill"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

func TestChooseLoss(t *testing.T) {
	prob := [][]float32{{0, 0.5, 1, 0.2}}
	raw := [][]float32{{-1, 2, 0.5, 3}}
	for _, tc := range []struct {
		name    string
		shape   []int64
		teacher [][]float32
		want    string
	}{
		{"class scores", []int64{1, 10}, raw, distill.LossKD},
		{"class scores NCHW 1x1", []int64{1, 10, 1, 1}, raw, distill.LossKD},
		{"probability map", []int64{1, 1, 2, 2}, prob, distill.LossMSE},
		{"map out of [0,1]", []int64{1, 1, 2, 2}, raw, distill.LossCosine},
		{"embedding [N,1,1,D]", []int64{1, 1, 1, 96}, raw, distill.LossCosine},
		{"features [N,C,H,W]", []int64{1, 4, 2, 2}, raw, distill.LossCosine},
		{"one value", []int64{1, 1}, raw, distill.LossMSE},
	} {
		if got := distill.ChooseLoss(tc.shape, tc.teacher); got != tc.want {
			t.Errorf("%s %v: ChooseLoss = %s, want %s", tc.name, tc.shape, got, tc.want)
		}
	}
}

func TestParseLoss(t *testing.T) {
	for _, tc := range []struct {
		in      []string
		want    map[string]string
		wantErr string
	}{
		{nil, map[string]string{}, ""},
		{[]string{"cosine"}, map[string]string{"": "cosine"}, ""},
		{[]string{"emb=cosine,map=mse", "kd"}, map[string]string{"emb": "cosine", "map": "mse", "": "kd"}, ""},
		{[]string{"a=b=mse"}, map[string]string{"a=b": "mse"}, ""},
		{[]string{"huber"}, nil, `unknown loss "huber"`},
		{[]string{"=mse"}, nil, "empty output name"},
		{[]string{"y=mse", "y=kd"}, nil, "output y given twice"},
	} {
		got, err := distill.ParseLoss(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseLoss(%q): error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("ParseLoss(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("ParseLoss(%q)[%q] = %q, want %q", tc.in, k, got[k], v)
			}
		}
	}
}

// embedder is Flatten → Gemm(12→6) → Relu → Gemm(6→8) → Reshape [N,2,4]:
// an "embedding" output that is not class scores.
func embedder(scale float64) *graph.Model {
	w1 := make([]float32, 12*6)
	for i := range w1 {
		w1[i] = float32(math.Sin(float64(i)*0.9+scale)) * 0.4
	}
	w2 := make([]float32, 6*8)
	for i := range w2 {
		w2[i] = float32(math.Cos(float64(i)*1.1*scale)) * 0.5
	}
	g := &graph.Graph{
		Name:    "embedder",
		Inputs:  []*graph.ValueInfo{{Name: "x", DType: graph.Float, Shape: graph.DimsOf(1, 3, 2, 2), HasShape: true, HasType: true}},
		Outputs: []*graph.ValueInfo{{Name: "emb", DType: graph.Float, Shape: graph.DimsOf(1, 2, 4), HasShape: true, HasType: true}},
		Initializers: []*graph.Tensor{
			graph.NewFloat32("w1", []int64{12, 6}, w1),
			graph.NewFloat32("w2", []int64{6, 8}, w2),
			graph.NewInt64("shape", []int64{3}, []int64{-1, 2, 4}),
		},
		Nodes: []*graph.Node{
			{Name: "flat", OpType: "Flatten", Inputs: []string{"x"}, Outputs: []string{"f"}},
			{Name: "fc1", OpType: "Gemm", Inputs: []string{"f", "w1"}, Outputs: []string{"h"}},
			{Name: "relu", OpType: "Relu", Inputs: []string{"h"}, Outputs: []string{"r"}},
			{Name: "fc2", OpType: "Gemm", Inputs: []string{"r", "w2"}, Outputs: []string{"e"}},
			{Name: "reshape", OpType: "Reshape", Inputs: []string{"e", "shape"}, Outputs: []string{"emb"}},
		},
	}
	return &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Domain: "", Version: 13}}, Graph: g}
}

func meanCosine(a, b [][]float32) float64 {
	var s float64
	for i := range a {
		var dot, na, nb float64
		for j := range a[i] {
			dot += float64(a[i][j]) * float64(b[i][j])
			na += float64(a[i][j]) * float64(a[i][j])
			nb += float64(b[i][j]) * float64(b[i][j])
		}
		s += dot / math.Sqrt(na*nb)
	}
	return s / float64(len(a))
}

// TestCosineLossTrainsEmbeddings distills an embedding output: auto
// chooses the cosine loss, the reported loss is 1 - mean cosine, and
// training raises the student's cosine similarity to the teacher.
func TestCosineLossTrainsEmbeddings(t *testing.T) {
	samples, _ := mlpSamples(64)
	teacher := embedder(1)
	tout := backendTensors(t, teacher, samples)
	student := embedder(1.7)
	before := meanCosine(interpOutputs(t, student, samples), interpOutputs(t, teacher, samples))
	res, err := distill.Train(context.Background(), student, samples, tout, nil, distill.Options{Epochs: 30, Batch: 16, LR: 1e-2, Temperature: 1, Seed: 1, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Losses["emb"] != distill.LossCosine {
		t.Fatalf("losses %v, want cosine on emb", res.Losses)
	}
	after := meanCosine(interpOutputs(t, student, samples), interpOutputs(t, teacher, samples))
	if !(after > before+0.5) {
		t.Errorf("mean cosine to the teacher %.4f before, %.4f after 30 epochs: want a rise of at least 0.5", before, after)
	}
	last := res.Epochs[len(res.Epochs)-1].Loss
	if !(last < res.Epochs[0].Loss) || math.Abs(last-(1-after)) > 0.05 {
		t.Errorf("cosine loss per epoch %+v: want it decreasing, the last near 1 - mean cosine = %.4f", res.Epochs, 1-after)
	}
	// KD on a non-class output is refused, naming the output.
	_, err = distill.Train(context.Background(), embedder(1.7), samples, tout, nil, distill.Options{Epochs: 1, Batch: 16, LR: 1e-2, Temperature: 1, Loss: map[string]string{"emb": distill.LossKD}})
	if err == nil || !strings.Contains(err.Error(), `output "emb"`) {
		t.Errorf("KD on an embedding: error %v, want a refusal naming the output", err)
	}
}

func backendTensors(t *testing.T, m *graph.Model, samples [][]*runtime.Tensor) [][]*runtime.Tensor {
	t.Helper()
	s, err := runtime.Open("interp", m, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := distill.TeacherOutputs(context.Background(), s, samples)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPlanTemperatures: with Standardize, class outputs of 3 or more
// classes are z-scored at T 1; a 2-class output (whose z-scores are
// always ±1) keeps raw scores at the automatic temperature, half the
// median spread of the teacher's scores; an explicit temperature wins.
func TestPlanTemperatures(t *testing.T) {
	three := mlp()
	two := mlp()
	w2, _ := two.Graph.Initializers[2].Float32s()
	two.Graph.Initializers[2] = graph.NewFloat32("w2", []int64{6, 2}, w2[:12])
	two.Graph.Outputs[0].Shape = graph.DimsOf(1, 2)
	for _, n := range two.Graph.Nodes {
		if n.Name == "bias2" {
			n.SetAttr(graph.TensorAttr("value", graph.NewFloat32("", []int64{2}, []float32{0.3, 0})))
		}
	}
	teacherOut := func(vals ...[]float32) [][]*runtime.Tensor {
		var out [][]*runtime.Tensor
		for _, v := range vals {
			out = append(out, []*runtime.Tensor{runtime.FromFloat32([]int64{1, int64(len(v))}, v)})
		}
		return out
	}
	// per-sample standard deviations 10, 20, 30 (values ±sd): median 20 → T 10
	twoOut := teacherOut([]float32{10, -10}, []float32{20, -20}, []float32{-30, 30})
	threeOut := teacherOut([]float32{1, 2, 3}, []float32{3, 2, 1}, []float32{0, 0, 1})
	for _, tc := range []struct {
		name    string
		m       *graph.Model
		tout    [][]*runtime.Tensor
		o       distill.Options
		wantT   float64
		wantStd bool
	}{
		{"3 classes standardized", three, threeOut, distill.Options{Standardize: true}, 1, true},
		{"2 classes stay raw", two, twoOut, distill.Options{Standardize: true}, 10, false},
		{"raw auto", two, twoOut, distill.Options{}, 10, false},
		{"explicit T", three, threeOut, distill.Options{Standardize: true, Temperature: 4}, 4, true},
	} {
		plan, err := distill.Plan(tc.m, tc.tout, tc.o)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(plan) != 1 || plan[0].Kind != distill.LossKD || plan[0].Temperature != tc.wantT || plan[0].Standardized != tc.wantStd {
			t.Errorf("%s: plan %+v, want KD at T %g, standardized %v", tc.name, plan, tc.wantT, tc.wantStd)
		}
	}
}

// softmaxMLP is mlp() ending in a Softmax: its output "p" is
// probabilities, as exported classifiers often are.
func softmaxMLP() *graph.Model {
	m := mlp()
	m.Graph.Nodes = append(m.Graph.Nodes, &graph.Node{Name: "softmax", OpType: "Softmax", Inputs: []string{"y"}, Outputs: []string{"p"}, Attrs: []*graph.Attr{graph.IntAttr("axis", -1)}})
	m.Graph.Outputs[0].Name = "p"
	return m
}

func meanKL(p, q [][]float32) float64 {
	var s float64
	for i := range p {
		for j := range p[i] {
			if p[i][j] > 0 {
				s += float64(p[i][j]) * math.Log(float64(p[i][j])/math.Max(float64(q[i][j]), 1e-30))
			}
		}
	}
	return s / float64(len(p))
}

// TestKDThroughSoftmax: on a Softmax output KD reads the student's scores
// (the Softmax input) against the teacher's log-probabilities, without
// standardization, and training brings the student's probabilities to
// the teacher's.
func TestKDThroughSoftmax(t *testing.T) {
	samples, labels := mlpSamples(64)
	teacher := softmaxMLP()
	tout := backendTensors(t, teacher, samples)
	student := softmaxMLP()
	for i, in := range student.Graph.Initializers {
		if in.DType == graph.Float && in.Name != "unused" {
			f, _ := in.Float32s()
			g := make([]float32, len(f))
			for k := range f {
				g[k] = f[k] * (1 + 0.6*float32(math.Sin(float64(k)*2.1)))
			}
			student.Graph.Initializers[i] = graph.NewFloat32(in.Name, in.Dims, g)
		}
	}
	o := distill.Options{Epochs: 20, Batch: 16, LR: 1e-2, Seed: 1, Standardize: true}
	plan, err := distill.Plan(student, tout, o)
	if err != nil || len(plan) != 1 || !plan[0].FromProbabilities || plan[0].Kind != distill.LossKD || plan[0].Standardized {
		t.Fatalf("plan %+v (%v): want KD from probabilities, not standardized (probabilities keep their calibration)", plan, err)
	}
	ref := interpOutputs(t, teacher, samples)
	before := meanKL(ref, interpOutputs(t, student, samples))
	if _, err := distill.Train(context.Background(), student, samples, tout, nil, o); err != nil {
		t.Fatal(err)
	}
	after := meanKL(ref, interpOutputs(t, student, samples))
	if !(after < before/4) {
		t.Errorf("KL(teacher || student) %.5f before, %.5f after: want it cut by 4x", before, after)
	}
	// Labels only: cross-entropy on the Softmax's input, a finite,
	// decreasing loss.
	res, err := distill.Train(context.Background(), softmaxMLP(), samples, nil, labels, distill.Options{Epochs: 5, Batch: 16, LR: 1e-2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if first, last := res.Epochs[0].Loss, res.Epochs[4].Loss; !(last < first) || math.IsNaN(last) {
		t.Errorf("labels-only loss %g -> %g: want a finite decrease", first, last)
	}
}
