package distill

import (
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/passes"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tensorio"
)

// ppocrCls loads the Paddle OCR direction classifier (opset 9: depthwise
// convs, BatchNormalization, hard-swish as Add/Clip/Mul/Div, SE blocks
// with GlobalAveragePool/HardSigmoid/Mul, Softmax) with its input fixed
// to the test data's 1×3×48×192 and its Shape→Cast→Slice→Concat reshape
// target folded to a constant, and the test data set.
func ppocrCls(t *testing.T) (*graph.Model, *tensorio.DataSet) {
	t.Helper()
	dir := filepath.Join(testutil.ModelsDir(t), "ppocr-cls")
	m, err := graph.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	ds, err := tensorio.LoadDataSet(filepath.Join(dir, "test_data_set_0"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	fm, _, err := passes.Optimize(m, passes.Options{
		Passes: []string{"fold-shapes", "fold-constants", "eliminate-dead-nodes", "eliminate-unused-initializers"},
		Shapes: map[string][]int64{m.Graph.RealInputs()[0].Name: ds.Inputs[0].Tensor.Shape},
	})
	if err != nil {
		t.Fatal(err)
	}
	return fm, ds
}

// TestPPOCRClsForwardAndKD builds the real exported ppocr-cls: its
// gorgonia forward pass equals interp and the reference output, and a few
// steps of pure KD from the teacher to the teacher with perturbed weights
// lower the loss.
func TestPPOCRClsForwardAndKD(t *testing.T) {
	start := time.Now()
	m, ds := ppocrCls(t)
	x := ds.Inputs[0].Tensor
	sess, err := runtime.Open("interp", m, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	// Samples: the test image and variations of it (mirrored, dimmed,
	// shifted).
	const n = 4
	in := x.Float32s()
	w := int(x.Shape[3])
	var samples, teacher [][]*runtime.Tensor
	for i := 0; i < n; i++ {
		v := make([]float32, len(in))
		for k := range v {
			switch i {
			case 0:
				v[k] = in[k]
			case 1:
				row, col := k/w, k%w
				v[k] = in[row*w+w-1-col]
			case 2:
				v[k] = in[k] * 0.6
			case 3:
				v[k] = in[(k+7)%len(in)]
			}
		}
		s := []*runtime.Tensor{runtime.FromFloat32(x.Shape, v)}
		res := interpRun(t, m, [][]*runtime.Tensor{s})
		samples = append(samples, s)
		teacher = append(teacher, res[0])
	}
	// Forward at batch 1 equals interp and the reference output.
	_, got := forwardBatch(t, m, samples[:1])
	want := ds.Outputs[0].Tensor.Float32s()
	var maxRel float64
	for j := range want {
		maxRel = max(maxRel, math.Abs(float64(got[0][j]-want[j]))/math.Abs(float64(want[j])))
	}
	t.Logf("forward at 1x3x48x192: gorgonia %v, reference %v, interp %v (max relative error vs reference %.2g)", got[0], want, teacher[0][0].Float32s(), maxRel)
	for j := range want {
		for _, ref := range [][]float32{want, teacher[0][0].Float32s()} {
			if d := math.Abs(float64(got[0][j] - ref[j])); d > 1e-3*math.Abs(float64(ref[j]))+1e-6 {
				t.Fatalf("value %d: gorgonia %g, reference %g", j, got[0][j], ref[j])
			}
		}
	}
	// The student: the teacher with its float Constant weights perturbed.
	student := m.Clone()
	for _, nd := range student.Graph.Nodes {
		tt := nd.AttrTensor("value")
		if !nd.Is("Constant") || tt == nil || tt.DType != graph.Float || len(tt.Dims) == 0 {
			continue
		}
		f, _ := tt.Float32s()
		g := make([]float32, len(f))
		for k := range f {
			g[k] = f[k] * (1 + 0.2*float32(math.Sin(float64(k)*1.3)))
		}
		nd.SetAttr(graph.TensorAttr("value", graph.NewFloat32("", tt.Dims, g)))
	}
	kind := ChooseLoss([]int64{1, 2}, [][]float32{teacher[0][0].Float32s()})
	o := Options{Epochs: 1, Batch: 2, LR: 3e-3, Temperature: 1, Workers: 1}
	prep := time.Now()
	tr, err := newTrainer(student, o, lossesOf(kind, o), true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	built := time.Now()
	idx := []int{0, 1, 2, 3}
	// loss is the mean loss over the 4 samples (gradients cleared).
	loss := func() float64 {
		var sum float64
		for _, b := range [][]int{idx[:2], idx[2:]} {
			l, err := tr.gradients(b, samples, teacher, nil)
			if err != nil {
				t.Fatal(err)
			}
			sum += l / 2
			for _, p := range tr.parts {
				for _, prm := range p.net.Params {
					g, err := gradOf(prm)
					if err != nil {
						t.Fatal(err)
					}
					clear(g)
				}
				p.vm.Reset()
			}
		}
		return sum
	}
	before := loss()
	stepStart := time.Now()
	for s := 0; s < 4; s++ {
		if _, err := tr.step(idx[(s%2)*2:(s%2)*2+2], samples, teacher, nil); err != nil {
			t.Fatal(err)
		}
	}
	stepTime := time.Since(stepStart) / 4
	after := loss()
	t.Logf("%s loss over 4 samples: %g before, %g after 4 steps (batch 2); load+fold+teacher+forward %v, trainer build %v, %v per step",
		kind, before, after, prep.Sub(start), built.Sub(prep), stepTime)
	if !(after < before) {
		t.Errorf("KD loss did not decrease: %g after 4 steps, %g before", after, before)
	}
	// The trained weights, written back into the Constant nodes, run on
	// interp like the gorgonia forward pass.
	trained := student.Clone()
	if err := tr.master().WriteBack(trained); err != nil {
		t.Fatal(err)
	}
	ref := interpRun(t, trained, samples[:2])
	_, fw := forwardBatch(t, trained, samples[:2])
	for i := range fw {
		for j, r := range ref[i][0].Float32s() {
			if d := math.Abs(float64(fw[i][j] - r)); d > 1e-3*math.Abs(float64(r))+1e-6 {
				t.Fatalf("written student, sample %d value %d: gorgonia %g, interp %g", i, j, fw[i][j], r)
			}
		}
	}
}
