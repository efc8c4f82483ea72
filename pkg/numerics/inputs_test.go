package numerics_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/build"
	"github.com/optictl/optictl/pkg/numerics"
)

func TestResolveShapes(t *testing.T) {
	img := numerics.Input{Name: "x", DType: graph.Float, Shape: []int64{-1, 3, -1, -1}, DimNames: []string{"N", "", "H", "W"}, Ranked: true}
	mask := numerics.Input{Name: "m", DType: graph.Bool, Shape: []int64{-1, -1, -1}, DimNames: []string{"N", "H", "W"}, Ranked: true}
	cases := []struct {
		name string
		ins  []numerics.Input
		dims numerics.Dims
		want string // fmt of the shapes, or "error: substring"
	}{
		{"all ones by default", []numerics.Input{img}, numerics.Dims{}, "[[1 3 1 1]]"},
		{"batch and spatial", []numerics.Input{img}, numerics.Dims{Batch: 2, Spatial: []int64{64, 96}}, "[[2 3 64 96]]"},
		{"data shapes win", []numerics.Input{img}, numerics.Dims{Shapes: map[string][]int64{"x": {4, 3, 48, 320}}, Batch: 2}, "[[4 3 48 320]]"},
		{"named dims follow the data", []numerics.Input{img, mask}, numerics.Dims{Shapes: map[string][]int64{"x": {1, 3, 48, 320}}, Spatial: []int64{64}}, "[[1 3 48 320] [1 48 320]]"},
		{"scalar", []numerics.Input{{Name: "sr", DType: graph.Int64, Shape: []int64{}, Ranked: true}}, numerics.Dims{Batch: 2}, "[[]]"},
		{"rank mismatch", []numerics.Input{img}, numerics.Dims{Shapes: map[string][]int64{"x": {1, 3}}}, "error: rank 2"},
		{"fixed dim mismatch", []numerics.Input{img}, numerics.Dims{Shapes: map[string][]int64{"x": {1, 4, 8, 8}}}, "error: fixes it to 3"},
		{"unknown rank", []numerics.Input{{Name: "u", DType: graph.Float}}, numerics.Dims{}, "error: --shape u=DIMS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := numerics.ResolveShapes(c.ins, c.dims)
			if strings.HasPrefix(c.want, "error: ") {
				if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(c.want, "error: ")) {
					t.Fatalf("err %v, want %s", err, c.want)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != c.want {
				t.Fatalf("got %v %v, want %s", got, err, c.want)
			}
		})
	}
}

func TestSeededRangePolicy(t *testing.T) {
	dts := []graph.DType{graph.Float, graph.Double, graph.Float16, graph.BFloat16, graph.Int8, graph.Uint8, graph.Int16, graph.Int32, graph.Int64, graph.Uint64, graph.Bool, graph.String}
	for _, dt := range dts {
		t.Run(dt.String(), func(t *testing.T) {
			in := []numerics.Input{{Name: "v", DType: dt, Shape: []int64{-1, 500}, Ranked: true}}
			o := numerics.SeedOptions{Seed: 3, Dims: numerics.Dims{Batch: 2}}
			a, err := numerics.Seeded(in, o)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(a[0].Shape) != "[2 500]" || a[0].DType != dt {
				t.Fatalf("got %s%v", a[0].DType, a[0].Shape)
			}
			b, _ := numerics.Seeded(in, o)
			if !a[0].Equal(b[0]) {
				t.Fatal("the same seed gave different data")
			}
			if dt == graph.String {
				for _, s := range a[0].Strings {
					if len(s) != 2 || s[0] != 's' {
						t.Fatalf("string %q outside s0..s9", s)
					}
				}
				return
			}
			v, err := a[0].AsFloat64()
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := 0.0, float64(numerics.SeedIntRange)
			switch {
			case dt.IsFloat():
				lo, hi = -1, 1
			case dt == graph.Bool:
				hi = 2
			}
			neg := false
			for _, x := range v {
				if x < lo || x > hi || (!dt.IsFloat() && x == hi) {
					t.Fatalf("value %g outside [%g, %g)", x, lo, hi)
				}
				neg = neg || x < 0
			}
			if dt.IsFloat() && !neg {
				t.Fatal("floats never negative: not in [-1, 1)")
			}
			c, _ := numerics.Seeded(in, numerics.SeedOptions{Seed: 4, Dims: o.Dims})
			if a[0].Equal(c[0]) {
				t.Fatal("another seed gave the same data")
			}
		})
	}
}

func TestSeededMemoryBound(t *testing.T) {
	cases := []struct {
		name  string
		shape []int64
		max   int64
		want  string
	}{
		{"absurd declared dim", []int64{-1, 3, -1, 100000000}, 0, `seeded input "x" of shape [1,3,64,100000000] (float32) needs 71.53 GiB, over the 2 GiB bound`},
		{"over an explicit bound", []int64{1, 3, 64, 64}, 1000, "over the 1000 B bound of --max-memory"},
		{"overflow", []int64{1 << 40, 1 << 40}, -1, `seeded input "x"`},
		{"no bound", []int64{1, 3, 64, 64}, -1, ""},
		{"fits", []int64{1, 3, 64, 64}, 49152, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := []numerics.Input{{Name: "x", DType: graph.Float, Shape: c.shape, Ranked: true}}
			_, err := numerics.Seeded(in, numerics.SeedOptions{Dims: numerics.Dims{Spatial: []int64{64}}, MaxBytes: c.max})
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
		})
	}
}

// detector builds x[N,3,H,W] -> Conv stride 2 -> MaxPool stride 2 -> Conv
// stride 2 (total stride 8), with an optional fixed H.
func detector(t *testing.T, h any) *graph.Model {
	t.Helper()
	b := build.New("det", 13)
	x := b.Input("x", graph.Float, build.Dims("N", 3, h, "W"))
	w := b.Float32("w", []int64{4, 3, 3, 3}, make([]float32, 4*3*3*3))
	w2 := b.Float32("w2", []int64{4, 4, 3, 3}, make([]float32, 4*4*3*3))
	c := b.Node("Conv", []string{x, w}, graph.IntsAttr("strides", 2, 2), graph.IntsAttr("pads", 1, 1, 1, 1))
	p := b.Node("MaxPool", []string{c}, graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2))
	y := b.Node("Conv", []string{p, w2}, graph.IntsAttr("strides", 2, 2), graph.IntsAttr("pads", 1, 1, 1, 1))
	b.Output(y, graph.Float, nil)
	m, err := b.Model()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestVerifyDims(t *testing.T) {
	cases := []struct {
		name string
		m    *graph.Model
		max  int64
		want string
	}{
		{"stride 8, no hint", detector(t, "H"), 0, "[batch 1, other dynamic dims 64 batch 2, other dynamic dims 64x72]"},
		{"fixed H 100 is the hint", detector(t, 100), 0, "[batch 1, other dynamic dims 104 batch 2, other dynamic dims 104x112]"},
		{"memory shrinks the sets", detector(t, "H"), 64 * 3 * 4 * 64 * 64, "[batch 1, other dynamic dims 64]"},
		{"static model", func() *graph.Model {
			b := build.New("s", 13)
			x := b.Input("x", graph.Float, build.Dims(1, 4))
			b.Output(b.Node("Relu", []string{x}), graph.Float, nil)
			m, _ := b.Model()
			return m
		}(), 0, "[batch 1, other dynamic dims 1]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := numerics.VerifyDimsBounded(c.m, c.max)
			if fmt.Sprint(got) != c.want {
				t.Fatalf("got %v, want %s", got, c.want)
			}
		})
	}
	if s := numerics.TotalStride(detector(t, "H").Graph); s != 8 {
		t.Fatalf("TotalStride = %d, want 8", s)
	}
}
