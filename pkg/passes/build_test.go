package passes

import (
	"github.com/optictl/optictl/pkg/graph"
)

// builder makes small hand-written models for golden tests.
type builder struct {
	m *graph.Model
	g *graph.Graph
	k int
}

func newBuilder(opset int64) *builder {
	g := &graph.Graph{Name: "test"}
	return &builder{m: &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Domain: "", Version: opset}}, Graph: g}, g: g}
}

func (b *builder) input(name string, dt graph.DType, dims ...int64) string {
	b.g.Inputs = append(b.g.Inputs, &graph.ValueInfo{Name: name, DType: dt, Shape: graph.ShapeOf(dims), HasShape: true, HasType: true})
	return name
}

func (b *builder) output(name string, dt graph.DType, dims ...int64) {
	v := &graph.ValueInfo{Name: name, DType: dt, HasType: true}
	if dims != nil {
		v.Shape, v.HasShape = graph.ShapeOf(dims), true
	}
	b.g.Outputs = append(b.g.Outputs, v)
}

// floats adds a float32 initializer with deterministic values.
func (b *builder) floats(name string, dims []int64, gen func(i int) float32) string {
	n, _ := graph.NumElements(dims)
	v := make([]float32, n)
	for i := range v {
		v[i] = gen(i)
	}
	b.g.Initializers = append(b.g.Initializers, graph.NewFloat32(name, dims, v))
	return name
}

func (b *builder) ints(name string, v ...int64) string {
	b.g.Initializers = append(b.g.Initializers, graph.NewInt64(name, []int64{int64(len(v))}, v))
	return name
}

func (b *builder) scalar(name string, v float32) string {
	b.g.Initializers = append(b.g.Initializers, graph.NewFloat32(name, nil, []float32{v}))
	return name
}

func (b *builder) node(op string, ins []string, outs []string, attrs ...*graph.Attr) *graph.Node {
	b.k++
	n := &graph.Node{Name: op + "_" + itoa(b.k), OpType: op, Inputs: ins, Outputs: outs, Attrs: attrs}
	b.g.Nodes = append(b.g.Nodes, n)
	return n
}

func itoa(i int) string {
	s := ""
	if i == 0 {
		return "0"
	}
	for i > 0 {
		s = string(rune('0'+i%10)) + s
		i /= 10
	}
	return s
}

func wave(i int) float32  { return float32((i*37)%17)/17 - 0.4 }
func pos(i int) float32   { return 0.5 + float32((i*13)%7)/7 }
func small(i int) float32 { return float32((i*7)%5)/10 - 0.2 }
