package compare

import (
	"math"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tensorio"
)

func f32(shape []int64, v ...float32) *runtime.Tensor { return runtime.FromFloat32(shape, v) }

func TestTensors(t *testing.T) {
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
		{"dtype", runtime.FromInt64([]int64{1}, []int64{1}), f32([]int64{1}, 1), true, 0, 0, -1, 1, "dtype"},
	}
	tol := DefaultTolerance
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Tensors("y", c.got, c.ref, tol)
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

func TestAllFirstFailure(t *testing.T) {
	a := []*runtime.Tensor{f32([]int64{1}, 1), f32([]int64{1}, 2), f32([]int64{1}, 3)}
	b := []*runtime.Tensor{f32([]int64{1}, 1), f32([]int64{1}, 5), f32([]int64{1}, 6)}
	r, err := All([]string{"a", "b", "c"}, a, b, DefaultTolerance)
	if err != nil {
		t.Fatal(err)
	}
	if r.Pass || r.FirstFailure != "b" {
		t.Fatalf("pass %v first %q", r.Pass, r.FirstFailure)
	}
	if _, err := All(nil, a, b[:2], DefaultTolerance); err == nil {
		t.Fatal("length mismatch accepted")
	}
}

func TestRandomAndBind(t *testing.T) {
	infos := []runtime.IOInfo{
		{Name: "x", DType: graph.Float, Shape: []int64{-1, 3}},
		{Name: "ids", DType: graph.Int64, Shape: []int64{2}},
		{Name: "m", DType: graph.Bool, Shape: []int64{}},
	}
	a, err := Random(infos, nil, RandomOptions{Seed: 7, Shapes: map[string][]int64{"x": {4, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Random(infos, nil, RandomOptions{Seed: 7, Shapes: map[string][]int64{"x": {4, 3}}})
	for i := range a {
		if !a[i].Tensor.Equal(b[i].Tensor) {
			t.Fatalf("seeded inputs differ: %s", a[i].Name)
		}
	}
	if runtime.ShapeString(a[0].Tensor.Shape) != "[4,3]" || a[1].Tensor.DType != graph.Int64 {
		t.Fatalf("random x is %v, ids %s", a[0].Tensor.Shape, a[1].Tensor.DType)
	}
	for _, v := range a[0].Tensor.Float32s() {
		if v < -1 || v >= 1 {
			t.Fatalf("value %v outside [-1,1)", v)
		}
	}
	if _, err := Random(infos, nil, RandomOptions{Shapes: map[string][]int64{"x": {4, 5}}}); err == nil || !strings.Contains(err.Error(), `input "x"`) {
		t.Fatalf("fixed-dim clash: %v", err)
	}
	bound, err := Bind(infos, a)
	if err != nil || len(bound) != 3 {
		t.Fatalf("Bind: %v", err)
	}
	// Wrong dtype names the input, expected and got.
	bad := append([]tensorio.Named{}, a...)
	bad[1] = tensorio.Named{Name: "ids", Tensor: runtime.FromInt32([]int64{2}, []int32{1, 2})}
	_, err = Bind(infos, bad)
	if err == nil || !strings.Contains(err.Error(), `"ids"`) || !strings.Contains(err.Error(), "int64") || !strings.Contains(err.Error(), "int32") {
		t.Fatalf("wrong dtype: %v", err)
	}
	bad[1] = tensorio.Named{Name: "ids", Tensor: runtime.FromInt64([]int64{3}, []int64{1, 2, 3})}
	if _, err = Bind(infos, bad); err == nil || !strings.Contains(err.Error(), "[2]") {
		t.Fatalf("wrong shape: %v", err)
	}
	if _, err := Bind(infos, append(a[:2:2], tensorio.Named{Name: "zz", Tensor: a[2].Tensor})); err == nil || !strings.Contains(err.Error(), `no input "zz"`) {
		t.Fatalf("unknown name: %v", err)
	}
	// Positional binding when no name matches.
	pos := []tensorio.Named{{Name: "input_0", Tensor: a[0].Tensor}, {Name: "input_1", Tensor: a[1].Tensor}, {Name: "input_2", Tensor: a[2].Tensor}}
	if _, err := Bind(infos, pos); err != nil {
		t.Fatalf("positional: %v", err)
	}
}

func TestSummarize(t *testing.T) {
	s := Summarize("y", f32([]int64{4}, 1, -3, float32(math.NaN()), 5), 2)
	if s.Min != -3 || s.Max != 5 || s.Mean != 1 || s.NaNs != 1 || len(s.First) != 2 {
		t.Fatalf("%+v", s)
	}
}

func TestUnsupportedOps(t *testing.T) {
	g := &graph.Graph{Nodes: []*graph.Node{{OpType: "Foo"}, {OpType: "Bar", Domain: "com.x"}, {OpType: "Foo"}}}
	m := &graph.Model{Graph: g}
	b := fakeBackend{}
	got := strings.Join(UnsupportedOps(b, m), ",")
	if got != "Foo,com.x.Bar" {
		t.Fatalf("got %q", got)
	}
}

type fakeBackend struct{}

func (fakeBackend) Name() string { return "fake" }
func (fakeBackend) Capabilities() runtime.Capabilities {
	return runtime.Capabilities{Supports: func(d, op string, _ int64) bool { return op == "Ok" }}
}
func (fakeBackend) Open(*graph.Model, runtime.Options) (runtime.Session, error) { return nil, nil }
