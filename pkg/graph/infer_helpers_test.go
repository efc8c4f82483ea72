package graph_test

import (
	"fmt"

	"github.com/optictl/optictl/pkg/graph"
)

// tb builds small models for the inference and cost tests.
type tb struct {
	m *graph.Model
	g *graph.Graph
}

func newTB(opset int64) *tb {
	g := &graph.Graph{Name: "test"}
	return &tb{m: &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Domain: "", Version: opset}}, Graph: g}, g: g}
}

// shape turns ints and strings into dims: 3 -> fixed, "N" -> symbolic,
// "?" -> unknown.
func shape(dims ...any) graph.Shape {
	s := graph.Shape{}
	for _, d := range dims {
		switch v := d.(type) {
		case int:
			s = append(s, graph.FixedDim(int64(v)))
		case int64:
			s = append(s, graph.FixedDim(v))
		case string:
			if v == "?" {
				s = append(s, graph.UnknownDim())
			} else {
				s = append(s, graph.SymDim(v))
			}
		default:
			panic(fmt.Sprintf("bad dim %v", d))
		}
	}
	return s
}

func (b *tb) input(name string, dt graph.DType, dims ...any) *tb {
	b.g.Inputs = append(b.g.Inputs, &graph.ValueInfo{Name: name, DType: dt, HasType: true, HasShape: true, Shape: shape(dims...)})
	return b
}

func (b *tb) output(name string) *tb {
	b.g.Outputs = append(b.g.Outputs, &graph.ValueInfo{Name: name})
	return b
}

// weight adds a float32 initializer of zeros.
func (b *tb) weight(name string, dims ...int64) *tb {
	n, _ := graph.NumElements(dims)
	b.g.Initializers = append(b.g.Initializers, graph.NewFloat32(name, dims, make([]float32, n)))
	return b
}

func (b *tb) ints(name string, vals ...int64) *tb {
	b.g.Initializers = append(b.g.Initializers, graph.NewInt64(name, []int64{int64(len(vals))}, vals))
	return b
}

func (b *tb) floats(name string, vals ...float32) *tb {
	b.g.Initializers = append(b.g.Initializers, graph.NewFloat32(name, []int64{int64(len(vals))}, vals))
	return b
}

func (b *tb) init(t *graph.Tensor) *tb {
	b.g.Initializers = append(b.g.Initializers, t)
	return b
}

func (b *tb) node(op string, ins, outs []string, attrs ...*graph.Attr) *tb {
	b.g.Nodes = append(b.g.Nodes, &graph.Node{Name: op + fmt.Sprint(len(b.g.Nodes)), OpType: op, Inputs: ins, Outputs: outs, Attrs: attrs})
	return b
}

func (b *tb) domainNode(domain, op string, ins, outs []string) *tb {
	b.g.Nodes = append(b.g.Nodes, &graph.Node{Name: op, OpType: op, Domain: domain, Inputs: ins, Outputs: outs})
	return b
}

func in(s ...string) []string { return s }

// typeOf returns the inferred type string of a value ("?" when absent).
func typeOf(g *graph.Graph, name string) string {
	if v := g.ValueInfoMap()[name]; v != nil {
		return v.TypeString()
	}
	return "?"
}
