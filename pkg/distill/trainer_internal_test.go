package distill

import (
	"math"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// convNet is Conv(1→3, 3x3) → Relu → MaxPool 2 → Flatten → Gemm(12→4):
// input [1,1,6,6], output [1,4].
func convNet() *graph.Model {
	w := make([]float32, 3*1*3*3)
	for i := range w {
		w[i] = float32(math.Sin(float64(i)*1.3)) * 0.4
	}
	fc := make([]float32, 12*4)
	for i := range fc {
		fc[i] = float32(math.Cos(float64(i)*0.7)) * 0.3
	}
	g := &graph.Graph{
		Name:    "conv",
		Inputs:  []*graph.ValueInfo{{Name: "x", DType: graph.Float, Shape: graph.DimsOf(1, 1, 6, 6), HasShape: true, HasType: true}},
		Outputs: []*graph.ValueInfo{{Name: "y", DType: graph.Float, Shape: graph.DimsOf(1, 4), HasShape: true, HasType: true}},
		Initializers: []*graph.Tensor{
			graph.NewFloat32("w", []int64{3, 1, 3, 3}, w),
			graph.NewFloat32("b", []int64{3}, []float32{0.1, -0.1, 0.05}),
			graph.NewFloat32("fc", []int64{12, 4}, fc),
			graph.NewFloat32("fb", []int64{4}, []float32{0, 0.1, -0.1, 0.2}),
		},
		Nodes: []*graph.Node{
			{Name: "conv", OpType: "Conv", Inputs: []string{"x", "w", "b"}, Outputs: []string{"c"}, Attrs: []*graph.Attr{graph.IntsAttr("kernel_shape", 3, 3)}},
			{Name: "relu", OpType: "Relu", Inputs: []string{"c"}, Outputs: []string{"r"}},
			{Name: "pool", OpType: "MaxPool", Inputs: []string{"r"}, Outputs: []string{"p"}, Attrs: []*graph.Attr{graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2)}},
			{Name: "flat", OpType: "Flatten", Inputs: []string{"p"}, Outputs: []string{"f"}},
			{Name: "fc", OpType: "Gemm", Inputs: []string{"f", "fc", "fb"}, Outputs: []string{"y"}},
		},
	}
	return &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Domain: "", Version: 13}}, Graph: g}
}

func convData(n int) (samples, teacher [][]*runtime.Tensor, labels []int) {
	for i := 0; i < n; i++ {
		x := make([]float32, 36)
		for j := range x {
			x[j] = float32(math.Sin(float64(i*36+j)*0.37)) * 2
		}
		y := make([]float32, 4)
		for j := range y {
			y[j] = float32(math.Cos(float64(i*4+j))) * 3
		}
		samples = append(samples, []*runtime.Tensor{runtime.FromFloat32([]int64{1, 1, 6, 6}, x)})
		teacher = append(teacher, []*runtime.Tensor{runtime.FromFloat32([]int64{1, 4}, y)})
		labels = append(labels, i%4)
	}
	return
}

// TestWorkersGiveTheBatchGradient checks that splitting a batch over
// parts (equal and unequal shares) yields the gradient and loss of the
// whole batch computed as one graph, for KD, KD + labels, MSE and cosine.
func TestWorkersGiveTheBatchGradient(t *testing.T) {
	samples, teacher, labels := convData(7)
	idx := []int{6, 0, 3, 5, 1, 2, 4}
	for _, tc := range []struct {
		name   string
		loss   string
		labels []int
	}{
		{"kd", LossKD, nil},
		{"kd+labels", LossKD, labels},
		{"mse", LossMSE, nil},
		{"cosine", LossCosine, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ref [][]float32
			var refLoss float64
			for _, workers := range []int{1, 2, 3} {
				o := Options{Epochs: 1, Batch: 7, LR: 1e-3, Temperature: 3, Alpha: 0.4, Workers: workers}
				tr, err := newTrainer(convNet(), o, lossesOf(tc.loss, o), true, tc.labels != nil)
				if err != nil {
					t.Fatal(err)
				}
				loss, err := tr.gradients(idx, samples, teacher, tc.labels)
				if err != nil {
					t.Fatal(err)
				}
				var grads [][]float32
				for _, p := range tr.master().Params {
					g, err := gradOf(p)
					if err != nil {
						t.Fatal(err)
					}
					grads = append(grads, append([]float32(nil), g...))
				}
				tr.close()
				if workers == 1 {
					ref, refLoss = grads, loss
					if !(loss > 0) {
						t.Fatalf("loss %g, want > 0", loss)
					}
					continue
				}
				if math.Abs(loss-refLoss) > 1e-5*math.Abs(refLoss)+1e-6 {
					t.Errorf("%d workers: loss %g, one graph %g", workers, loss, refLoss)
				}
				for i := range grads {
					for k := range grads[i] {
						if d := math.Abs(float64(grads[i][k] - ref[i][k])); d > 1e-5+1e-4*math.Abs(float64(ref[i][k])) {
							t.Fatalf("%d workers: gradient of %s[%d] = %g, one graph %g", workers, tr.master().Params[i].Name, k, grads[i][k], ref[i][k])
						}
					}
				}
			}
		})
	}
}

func TestPartSizes(t *testing.T) {
	for _, tc := range []struct {
		batch, n int
		want     []int
	}{{32, 2, []int{16, 16}}, {7, 3, []int{3, 2, 2}}, {5, 1, []int{5}}, {4, 4, []int{1, 1, 1, 1}}} {
		got := partSizes(tc.batch, tc.n)
		if len(got) != len(tc.want) {
			t.Fatalf("partSizes(%d, %d) = %v, want %v", tc.batch, tc.n, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("partSizes(%d, %d) = %v, want %v", tc.batch, tc.n, got, tc.want)
			}
		}
	}
}

func TestCosineSchedule(t *testing.T) {
	tr := &trainer{o: Options{LR: 0.01, Schedule: ScheduleCosine}, total: 100}
	for _, tc := range []struct {
		it   int
		want float64
	}{{0, 0.01}, {50, 0.005}, {100, 0}, {25, 0.01 * 0.5 * (1 + math.Cos(math.Pi/4))}} {
		if got := tr.lr(tc.it); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("cosine lr at step %d of 100 = %g, want %g", tc.it, got, tc.want)
		}
	}
	tr.o.Schedule = ScheduleConstant
	if got := tr.lr(70); got != 0.01 {
		t.Errorf("constant lr at step 70 = %g, want 0.01", got)
	}
}

// TestLossGradients checks every loss's gradient against central finite
// differences of the loss on the conv net (one graph), and that the
// standardized KD target is the z-scored teacher.
func TestLossGradients(t *testing.T) {
	samples, teacher, labels := convData(6)
	idx := []int{0, 1, 2, 3, 4, 5}
	for _, tc := range []struct {
		name   string
		loss   string
		std    bool
		labels []int
	}{
		{"kd", LossKD, false, nil},
		{"kd standardized", LossKD, true, nil},
		{"kd standardized+labels", LossKD, true, labels},
		{"mse", LossMSE, false, nil},
		{"cosine", LossCosine, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Epochs: 1, Batch: 6, LR: 1e-3, Temperature: 2, Alpha: 0.6, Workers: 1, Standardize: tc.std}
			tr, err := newTrainer(convNet(), o, lossesOf(tc.loss, o), true, tc.labels != nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.close()
			p := tr.parts[0]
			eval := func() (float64, [][]float32) { return lossAndGrads(t, tr, idx, samples, teacher, tc.labels) }
			_, grads := eval()
			checked := 0
			for i, prm := range p.net.Params {
				w := prm.Node.Value().Data().([]float32)
				for _, k := range []int{0, len(w) / 2, len(w) - 1} {
					const h = 1e-3
					old := w[k]
					w[k] = old + h
					up, _ := eval()
					w[k] = old - h
					down, _ := eval()
					w[k] = old
					num := (up - down) / (2 * h)
					an := float64(grads[i][k])
					if math.Abs(num-an) > 2e-3+3e-2*math.Abs(an) {
						t.Errorf("d loss / d %s[%d]: analytic %g, finite differences %g", prm.Name, k, an, num)
					}
					checked++
				}
			}
			if checked < 10 {
				t.Fatalf("checked %d gradient entries", checked)
			}
		})
	}
	v := []float32{1, 2, 3, 6}
	zscoreInPlace(v)
	var mu, ss float64
	for _, x := range v {
		mu += float64(x)
	}
	for _, x := range v {
		ss += (float64(x) - mu/4) * (float64(x) - mu/4)
	}
	if math.Abs(mu) > 1e-5 || math.Abs(ss/4-1) > 1e-4 {
		t.Errorf("z-scored %v: mean %g, variance %g; want 0 and 1", v, mu/4, ss/4)
	}
}

// lossesOf is one output trained with kind at o's temperature (1 if
// unset), z-scored when o.Standardize (the test models have >= 3 classes).
func lossesOf(kind string, o Options) []OutputLoss {
	T := o.Temperature
	if T == 0 {
		T = 1
	}
	return []OutputLoss{{Output: "y", Kind: kind, Temperature: T, Standardized: kind == LossKD && o.Standardize}}
}

// lossAndGrads runs one forward and backward pass of tr (one part) on the
// samples idx and returns the loss and a copy of every parameter's
// gradient, leaving the gradients cleared and the machine reset.
func lossAndGrads(t *testing.T, tr *trainer, idx []int, samples, teacher [][]*runtime.Tensor, labels []int) (float64, [][]float32) {
	t.Helper()
	loss, err := tr.gradients(idx, samples, teacher, labels)
	if err != nil {
		t.Fatal(err)
	}
	p := tr.parts[0]
	var gs [][]float32
	for _, prm := range p.net.Params {
		g, err := gradOf(prm)
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, append([]float32(nil), g...))
		clear(g)
	}
	p.vm.Reset()
	return loss, gs
}
