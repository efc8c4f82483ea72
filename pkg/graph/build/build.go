package build

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
)

// Builder accumulates one model's main graph.
type Builder struct {
	m     *graph.Model
	g     *graph.Graph
	names map[string]bool
	n     int
	err   error
}

// New starts a model whose main graph is called name, importing the default
// ONNX domain at the given opset. The IR version is the lowest that
// supports the opset (8 for opsets up to 18, 9 or 10 above).
func New(name string, opset int64) *Builder {
	ir := int64(8)
	switch {
	case opset >= 21:
		ir = 10
	case opset >= 19:
		ir = 9
	}
	g := &graph.Graph{Name: name}
	return &Builder{
		m:     &graph.Model{IRVersion: ir, ProducerName: "optictl", Opsets: []graph.OpsetImport{{Domain: "", Version: opset}}, Graph: g},
		g:     g,
		names: map[string]bool{},
	}
}

// Dims builds a shape from ints (fixed sizes), strings (symbolic sizes such
// as "N") and "?" (unknown size).
func Dims(dims ...any) graph.Shape {
	s := make(graph.Shape, 0, len(dims))
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
			s = append(s, graph.UnknownDim())
		}
	}
	return s
}

func (b *Builder) fail(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf("build: "+format, args...)
	}
}

func (b *Builder) claim(name, what string) {
	if name == "" {
		b.fail("%s with an empty name", what)
		return
	}
	if b.names[name] {
		b.fail("%s %q: name already used", what, name)
		return
	}
	b.names[name] = true
}

// Opset imports another domain (or changes the default domain's version).
func (b *Builder) Opset(domain string, version int64) *Builder {
	b.m.SetOpset(domain, version)
	return b
}

// Graph returns the graph being built, for edits the builder does not offer.
func (b *Builder) Graph() *graph.Graph { return b.g }

// Input declares a graph input and returns its name.
func (b *Builder) Input(name string, dt graph.DType, shape graph.Shape) string {
	b.claim(name, "input")
	b.g.Inputs = append(b.g.Inputs, &graph.ValueInfo{Name: name, DType: dt, HasType: true, Shape: shape, HasShape: shape != nil})
	return name
}

// Output declares value as a graph output of the given type; shape may be
// nil (rank unknown).
func (b *Builder) Output(value string, dt graph.DType, shape graph.Shape) {
	b.g.Outputs = append(b.g.Outputs, &graph.ValueInfo{Name: value, DType: dt, HasType: true, Shape: shape, HasShape: shape != nil})
}

// Initializer adds a constant tensor (its Name is the value name) and
// returns its name.
func (b *Builder) Initializer(t *graph.Tensor) string {
	b.claim(t.Name, "initializer")
	if err := t.Validate(); err != nil {
		b.fail("initializer: %w", err)
	}
	b.g.Initializers = append(b.g.Initializers, t)
	return t.Name
}

// Float32 adds a float32 initializer (data is copied).
func (b *Builder) Float32(name string, dims []int64, data []float32) string {
	return b.Initializer(graph.NewFloat32(name, dims, data))
}

// Int64 adds an int64 initializer (data is copied).
func (b *Builder) Int64(name string, dims []int64, data ...int64) string {
	return b.Initializer(graph.NewInt64(name, dims, data))
}

// Scalar adds a float32 scalar initializer.
func (b *Builder) Scalar(name string, v float32) string {
	return b.Float32(name, nil, []float32{v})
}

// Node adds a node with one output, named after the op, and returns the
// output's name.
func (b *Builder) Node(op string, inputs []string, attrs ...*graph.Attr) string {
	return b.NodeN(op, inputs, 1, attrs...)[0]
}

// NodeN adds a node with n outputs and returns their names.
func (b *Builder) NodeN(op string, inputs []string, n int, attrs ...*graph.Attr) []string {
	base := strings.ToLower(op) + "_" + strconv.Itoa(b.n)
	b.n++
	outs := make([]string, n)
	for i := range outs {
		outs[i] = base
		if n > 1 {
			outs[i] = base + "_" + strconv.Itoa(i)
		}
	}
	b.Op(op, base, inputs, outs, attrs...)
	return outs
}

// Op adds a node with explicit node and output names ("" outputs are
// omitted optional outputs) and returns it.
func (b *Builder) Op(op, name string, inputs, outputs []string, attrs ...*graph.Attr) *graph.Node {
	for _, o := range outputs {
		if o != "" {
			b.claim(o, op+" output")
		}
	}
	n := &graph.Node{Name: name, OpType: op, Inputs: append([]string{}, inputs...), Outputs: append([]string{}, outputs...), Attrs: attrs}
	b.g.Nodes = append(b.g.Nodes, n)
	return n
}

// Model returns the model after checking it with Verify.
func (b *Builder) Model() (*graph.Model, error) {
	if b.err != nil {
		return nil, b.err
	}
	if err := b.m.Verify(); err != nil {
		return nil, fmt.Errorf("build: model %q: %w", b.g.Name, err)
	}
	return b.m, nil
}
