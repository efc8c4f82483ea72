package numerics

import (
	"math"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics/half"
	"github.com/optictl/optictl/pkg/runtime"
)

func boolt(v ...byte) *runtime.Tensor {
	t := runtime.NewTensor(graph.Bool, []int64{int64(len(v))})
	copy(t.Raw, v)
	return t
}

func f16t(shape []int64, v ...float32) *runtime.Tensor {
	t := runtime.NewTensor(graph.Float16, shape)
	for i, x := range v {
		t.Uint16s()[i] = half.Float32ToFloat16(x)
	}
	return t
}

func TestCompare(t *testing.T) {
	nan := float32(math.NaN())
	cases := []struct {
		name      string
		got, ref  *runtime.Tensor
		pass      bool
		bad       int
		maxAbs    float64
		top1      float64 // -1: not class-like
		cosineMin float64
		problem   string
	}{
		{"equal", f32([]int64{2}, 1, 2), f32([]int64{2}, 1, 2), true, 0, 0, 1, 0.999999, ""},
		{"within rtol", f32([]int64{2}, 1000.5, 2), f32([]int64{2}, 1000, 2), true, 0, 0.5, 1, 0.99, ""},
		{"outside", f32([]int64{1, 3}, 0.1, 0.9, 0.0), f32([]int64{1, 3}, 0.1, 0.0, 0.9), false, 2, 0.9, 0, 0, ""},
		{"scalar within atol", f32([]int64{}, 1e-5), f32([]int64{}, 0), true, 0, 1e-5, -1, 0, ""},
		{"shape", f32([]int64{2}, 1, 2), f32([]int64{1, 2}, 1, 2), false, 0, 0, -1, 0, "shape"},
		{"nan both", f32([]int64{2}, nan, 1), f32([]int64{2}, nan, 1), true, 0, 0, 1, 0, ""},
		{"nan one", f32([]int64{2}, nan, 1), f32([]int64{2}, 0, 1), false, 1, math.Inf(1), 1, 0, ""},
		{"top1 agrees", f32([]int64{2, 2}, 0.6, 0.4, 0.1, 0.9), f32([]int64{2, 2}, 0.7, 0.3, 0.2, 0.8), false, 4, 0.1, 1, 0.9, ""},
		{"int", runtime.FromInt64([]int64{3}, []int64{1, 2, 3}), runtime.FromInt64([]int64{3}, []int64{1, 2, 4}), false, 1, 1, -1, 0.9, ""},
		{"int against float fails", runtime.FromInt64([]int64{1}, []int64{1}), f32([]int64{1}, 1), false, 0, 0, -1, 1, "dtype"},
		{"float16 against float32 fails, with metrics", f16t([]int64{2}, 1, 0.5), f32([]int64{2}, 1, 0.5), false, 0, 0, 1, 0.999, "dtype"},
		{"inf must match", f32([]int64{1}, float32(math.Inf(1))), f32([]int64{1}, 1e30), false, 1, math.Inf(1), -1, 0, ""},
		{"equal inf", f32([]int64{1}, float32(math.Inf(-1))), f32([]int64{1}, float32(math.Inf(-1))), true, 0, 0, -1, 0, ""},
		{"bool exact", boolt(1, 0), boolt(1, 1), false, 1, 1, -1, 0, ""},
	}
	tol := DefaultTolerance
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Compare("y", c.got, c.ref, tol)
			if r.Pass != c.pass || r.Bad != c.bad {
				t.Fatalf("pass %v bad %d, want %v %d (%+v)", r.Pass, r.Bad, c.pass, c.bad, r)
			}
			if math.Abs(r.MaxAbs-c.maxAbs) > 1e-6 && !(math.IsInf(c.maxAbs, 1) && math.IsInf(r.MaxAbs, 1)) {
				t.Fatalf("max abs %g, want %g", r.MaxAbs, c.maxAbs)
			}
			if c.top1 < 0 && r.Top1 != nil || c.top1 >= 0 && c.problem == "" && (r.Top1 == nil || *r.Top1 != c.top1) {
				t.Fatalf("top1 %v, want %v", r.Top1, c.top1)
			}
			if r.Cosine < c.cosineMin {
				t.Fatalf("cosine %g < %g", r.Cosine, c.cosineMin)
			}
			if c.problem != "" && !strings.Contains(r.Problem, c.problem) {
				t.Fatalf("problem %q lacks %q", r.Problem, c.problem)
			}
		})
	}
}

func TestCompareAllFirstFailure(t *testing.T) {
	a := []*runtime.Tensor{f32([]int64{1}, 1), f32([]int64{1}, 2), f32([]int64{1}, 3)}
	b := []*runtime.Tensor{f32([]int64{1}, 1), f32([]int64{1}, 5), f32([]int64{1}, 6)}
	r, err := CompareAll([]string{"a", "b", "c"}, a, b, DefaultTolerance)
	if err != nil {
		t.Fatal(err)
	}
	if r.Pass || r.FirstFailure != "b" {
		t.Fatalf("pass %v first %q", r.Pass, r.FirstFailure)
	}
	if _, err := CompareAll(nil, a, b[:2], DefaultTolerance); err == nil {
		t.Fatal("length mismatch accepted")
	}
}
