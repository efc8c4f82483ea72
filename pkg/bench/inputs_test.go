package bench

import (
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
)

func TestSeededInputs(t *testing.T) {
	infos := []runtime.IOInfo{
		{Name: "img", DType: graph.Float, Shape: []int64{-1, 3, -1, 8}},
		{Name: "ids", DType: graph.Int64, Shape: []int64{2, -1}},
		{Name: "mask", DType: graph.Bool, Shape: []int64{-1}},
		{Name: "half", DType: graph.Float16, Shape: []int64{4}},
		{Name: "sr", DType: graph.Int64, Shape: []int64{}},
		{Name: "s", DType: graph.String, Shape: []int64{3}},
	}
	shapes := map[string][]int64{"ids": {2, 5}}
	a, err := seededInputs(infos, shapes, 3, 9, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int64{{3, 3, 1, 8}, {2, 5}, {3}, {4}, {}, {3}}
	for i, tt := range a {
		if tt.DType != infos[i].DType {
			t.Fatalf("%s: dtype %s", infos[i].Name, tt.DType)
		}
		if len(tt.Shape) != len(want[i]) {
			t.Fatalf("%s: shape %v, want %v", infos[i].Name, tt.Shape, want[i])
		}
		for k := range want[i] {
			if tt.Shape[k] != want[i][k] {
				t.Fatalf("%s: shape %v, want %v", infos[i].Name, tt.Shape, want[i])
			}
		}
		if err := tt.Check(); err != nil {
			t.Fatalf("%s: %v", infos[i].Name, err)
		}
	}
	for _, v := range a[0].Float32s() {
		if v < -1 || v >= 1 {
			t.Fatalf("float value %v outside [-1,1)", v)
		}
	}
	for _, v := range a[1].Int64s() {
		if v < 0 || v >= numerics.SeedIntRange {
			t.Fatalf("int value %v outside [0,%d)", v, numerics.SeedIntRange)
		}
	}
	for _, v := range a[2].Raw {
		if v > 1 {
			t.Fatalf("bool byte %d", v)
		}
	}
	for _, h := range a[3].Uint16s() {
		if h&0x7fff > 0x3c00 { // 0x3c00 is 1.0
			t.Fatalf("float16 bits %#x outside [-1,1)", h)
		}
	}
	b, _ := seededInputs(infos, shapes, 3, 9, 0)
	c, _ := seededInputs(infos, shapes, 3, 10, 0)
	for i := range a {
		if !a[i].Equal(b[i]) {
			t.Fatalf("%s: same seed, different data", infos[i].Name)
		}
	}
	if a[0].Equal(c[0]) {
		t.Fatal("different seeds gave the same floats")
	}
}

func TestSeededInputsErrors(t *testing.T) {
	cases := []struct {
		name   string
		info   runtime.IOInfo
		shapes map[string][]int64
		batch  int
		want   string
	}{
		{"rank mismatch", runtime.IOInfo{Name: "x", DType: graph.Float, Shape: []int64{-1, 3}}, map[string][]int64{"x": {1, 3, 4}}, 1, "rank"},
		{"fixed dim", runtime.IOInfo{Name: "x", DType: graph.Float, Shape: []int64{-1, 3}}, map[string][]int64{"x": {1, 4}}, 1, "fixes it to 3"},
		{"too big", runtime.IOInfo{Name: "x", DType: graph.Float, Shape: []int64{-1, 1 << 20, 1 << 10}}, nil, 4, "--max-memory"},
		{"overflow", runtime.IOInfo{Name: "x", DType: graph.Float, Shape: []int64{1 << 40, 1 << 40}}, nil, 1, "x"},
		{"bad batch", runtime.IOInfo{Name: "x", DType: graph.Float, Shape: []int64{-1}}, nil, 0, "batch"},
		{"dtype", runtime.IOInfo{Name: "x", DType: graph.Complex64, Shape: []int64{2}}, nil, 1, "complex64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := seededInputs([]runtime.IOInfo{c.info}, c.shapes, c.batch, 1, 0)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one mentioning %q", err, c.want)
			}
		})
	}
}

func TestStack(t *testing.T) {
	a := runtime.FromFloat32([]int64{1, 2}, []float32{1, 2})
	b := runtime.FromFloat32([]int64{1, 2}, []float32{3, 4})
	s, err := Stack("x", []*runtime.Tensor{a, b, a})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Shape) != 2 || s.Shape[0] != 3 || s.Shape[1] != 2 {
		t.Fatalf("shape %v", s.Shape)
	}
	got := s.Float32s()
	want := []float32{1, 2, 3, 4, 1, 2}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("data %v, want %v", got, want)
		}
	}
	bad := []struct {
		name string
		in   []*runtime.Tensor
	}{
		{"empty", nil},
		{"scalar", []*runtime.Tensor{runtime.FromFloat32(nil, []float32{1})}},
		{"dims differ", []*runtime.Tensor{a, runtime.FromFloat32([]int64{1, 3}, []float32{1, 2, 3})}},
		{"dtype differs", []*runtime.Tensor{a, runtime.FromInt64([]int64{1, 2}, []int64{1, 2})}},
	}
	for _, c := range bad {
		if _, err := Stack("x", c.in); err == nil || !strings.Contains(err.Error(), `"x"`) {
			t.Errorf("%s: error %v should name the input", c.name, err)
		}
	}
}
