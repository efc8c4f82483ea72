package numerics

import (
	"math"
	"testing"

	"github.com/optictl/optictl/pkg/runtime"
)

func f32(shape []int64, v ...float32) *runtime.Tensor { return runtime.FromFloat32(shape, v) }

func TestAccuracyMeter(t *testing.T) {
	ref := []*runtime.Tensor{f32([]int64{2, 3}, 1, 2, 3, 3, 2, 1)}
	got := []*runtime.Tensor{f32([]int64{2, 3}, 1, 2, 4, 1, 2, 3)}
	var m AccuracyMeter
	if err := m.Add(ref, got, []int{2, 0}); err != nil {
		t.Fatal(err)
	}
	a := m.Result()
	// Hand-computed: argmax ref (2, 0), got (2, 2); diffs 0 0 1 2 0 2;
	// sum ref^2 = 28, sum got^2 = 35, dot = 27, sum err^2 = 9.
	checks := []struct {
		name string
		got  *float64
		want float64
	}{
		{"top1 agreement", a.Top1Agreement, 0.5},
		{"max abs error", a.MaxAbsError, 2},
		{"cosine", a.Cosine, 27 / math.Sqrt(28*35)},
		{"sqnr", a.SQNRdB, 10 * math.Log10(28.0/9)},
		{"top1 accuracy", a.Top1Accuracy, 0.5},
	}
	for _, c := range checks {
		if c.got == nil || !near(*c.got, c.want, 1e-12) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if a.Samples != 1 || a.Labelled != 2 {
		t.Errorf("samples %d labelled %d", a.Samples, a.Labelled)
	}

	var same AccuracyMeter
	for range 3 {
		if err := same.Add(ref, ref, nil); err != nil {
			t.Fatal(err)
		}
	}
	s := same.Result()
	if *s.Top1Agreement != 1 || *s.MaxAbsError != 0 || !near(*s.Cosine, 1, 1e-15) || s.SQNRdB != nil || s.Top1Accuracy != nil || s.Samples != 3 {
		t.Fatalf("identical outputs: %+v", s)
	}

	var nan AccuracyMeter
	if err := nan.Add([]*runtime.Tensor{f32([]int64{3}, 1, 2, 3)}, []*runtime.Tensor{f32([]int64{3}, 1, float32(math.NaN()), 3)}, nil); err != nil {
		t.Fatal(err)
	}
	if r := nan.Result(); r.NonFinite != 1 || *r.MaxAbsError != 0 || *r.Top1Agreement != 1 {
		t.Fatalf("NaN output: %+v", r)
	}

	var bad AccuracyMeter
	if err := bad.Add(ref, []*runtime.Tensor{f32([]int64{3}, 1, 2, 3)}, nil); err == nil {
		t.Fatal("shape mismatch not reported")
	}
	if err := bad.Add(ref, nil, nil); err == nil {
		t.Fatal("output count mismatch not reported")
	}
	if !(Accuracy{}).Empty() || a.Empty() {
		t.Fatal("Empty")
	}
}
func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }
