package compare

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tensorio"
)

func f32(shape []int64, v ...float32) *runtime.Tensor { return runtime.FromFloat32(shape, v) }

func TestBind(t *testing.T) {
	infos := []runtime.IOInfo{
		{Name: "x", DType: graph.Float, Shape: []int64{-1, 3}},
		{Name: "ids", DType: graph.Int64, Shape: []int64{2}},
		{Name: "m", DType: graph.Bool, Shape: []int64{}},
	}
	ts, err := numerics.Seeded(numerics.InputsFromInfos(infos), numerics.SeedOptions{Seed: 7, Dims: numerics.Dims{Shapes: map[string][]int64{"x": {4, 3}}}})
	if err != nil {
		t.Fatal(err)
	}
	a := make([]tensorio.Named, len(ts))
	for i, x := range ts {
		a[i] = tensorio.Named{Name: infos[i].Name, Tensor: x}
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

func TestMatchRefs(t *testing.T) {
	outs := []string{"maps", "boxes", "scores"}
	ref := func(names ...string) []tensorio.Named {
		r := make([]tensorio.Named, len(names))
		for i, n := range names {
			r[i] = tensorio.Named{Name: n, Tensor: f32([]int64{1}, 0)}
		}
		return r
	}
	cases := []struct {
		name      string
		refs      []tensorio.Named
		idx       string
		unchecked string
		err       string
	}{
		{"all by position", ref("maps", "boxes", "scores"), "[0 1 2]", "[]", ""},
		{"one named after a later output", ref("scores"), "[2]", "[maps boxes]", ""},
		{"unnamed first by position", ref("output_0"), "[0]", "[boxes scores]", ""},
		{"named out of order", ref("boxes", "maps"), "[1 0]", "[scores]", ""},
		{"two for one output", ref("x", "maps"), "", "", "both check output"},
		{"more refs than outputs", ref("a", "b", "c", "d"), "", "", "matches no model output"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			idx, un, err := MatchRefs(outs, c.refs)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || fmt.Sprint(idx) != c.idx || fmt.Sprint(un) != c.unchecked && !(len(un) == 0 && c.unchecked == "[]") {
				t.Fatalf("got %v %v %v, want %s %s", idx, un, err, c.idx, c.unchecked)
			}
		})
	}
}
