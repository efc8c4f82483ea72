package graph

import (
	"fmt"

	"github.com/optictl/optictl/pkg/onnxpb"
)

// OpsetImport is one (domain, version) pair of ModelProto.opset_import.
type OpsetImport struct {
	Domain  string
	Version int64
}

// KV is a metadata key/value pair.
type KV struct{ Key, Value string }

// Model is a whole ONNX model.
type Model struct {
	IRVersion       int64
	Opsets          []OpsetImport
	ProducerName    string
	ProducerVersion string
	Domain          string
	ModelVersion    int64
	Doc             string
	Metadata        []KV
	Graph           *Graph
	// Functions are model-local functions, kept as protobuf (optictl does
	// not rewrite inside them).
	Functions []*onnxpb.FunctionProto

	// rest holds every ModelProto field the IR does not model
	// (training_info, fields newer than the proto, ...).
	rest *onnxpb.ModelProto
}

// Graph is a computation graph: the model's main graph or a subgraph.
type Graph struct {
	Name         string
	Doc          string
	Inputs       []*ValueInfo
	Outputs      []*ValueInfo
	ValueInfo    []*ValueInfo
	Initializers []*Tensor
	Nodes        []*Node

	// rest holds GraphProto fields the IR does not model
	// (sparse_initializer, quantization_annotation, unknown fields).
	rest *onnxpb.GraphProto
}

// Opset returns the imported version of a domain ("" and "ai.onnx" are the
// same), or 0 when not imported.
func (m *Model) Opset(domain string) int64 {
	if domain == "ai.onnx" {
		domain = ""
	}
	for _, o := range m.Opsets {
		d := o.Domain
		if d == "ai.onnx" {
			d = ""
		}
		if d == domain {
			return o.Version
		}
	}
	return 0
}

// SetOpset sets (or adds) the version imported for a domain.
func (m *Model) SetOpset(domain string, version int64) {
	for i, o := range m.Opsets {
		if o.Domain == domain || (domain == "" && o.Domain == "ai.onnx") {
			m.Opsets[i].Version = version
			return
		}
	}
	m.Opsets = append(m.Opsets, OpsetImport{Domain: domain, Version: version})
}

// Initializer returns the named initializer of this graph or nil.
func (g *Graph) Initializer(name string) *Tensor {
	for _, t := range g.Initializers {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// InitializerMap indexes initializers by name.
func (g *Graph) InitializerMap() map[string]*Tensor {
	m := make(map[string]*Tensor, len(g.Initializers))
	for _, t := range g.Initializers {
		m[t.Name] = t
	}
	return m
}

// Producers maps each value name produced by a node to that node.
func (g *Graph) Producers() map[string]*Node {
	m := make(map[string]*Node, len(g.Nodes))
	for _, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o != "" {
				m[o] = n
			}
		}
	}
	return m
}

// Consumers maps each value name to the nodes that read it (in node order,
// a node listed once per use). Reads from inside subgraphs count as reads by
// the node that owns the subgraph.
func (g *Graph) Consumers() map[string][]*Node {
	m := make(map[string][]*Node, len(g.Nodes))
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in != "" {
				m[in] = append(m[in], n)
			}
		}
		for _, sg := range n.Subgraphs() {
			for name := range sg.OuterReads() {
				m[name] = append(m[name], n)
			}
		}
	}
	return m
}

// OuterReads lists the names a graph (and its nested subgraphs) reads but
// does not define itself: its references to enclosing scopes.
func (g *Graph) OuterReads() map[string]bool {
	defined := map[string]bool{"": true}
	for _, v := range g.Inputs {
		defined[v.Name] = true
	}
	for _, t := range g.Initializers {
		defined[t.Name] = true
	}
	for _, n := range g.Nodes {
		for _, o := range n.Outputs {
			defined[o] = true
		}
	}
	out := map[string]bool{}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			if !defined[in] {
				out[in] = true
			}
		}
		for _, sg := range n.Subgraphs() {
			for name := range sg.OuterReads() {
				if !defined[name] {
					out[name] = true
				}
			}
		}
	}
	for _, v := range g.Outputs {
		if !defined[v.Name] {
			out[v.Name] = true
		}
	}
	return out
}

// IsGraphOutput reports whether name is one of the graph's outputs.
func (g *Graph) IsGraphOutput(name string) bool {
	for _, v := range g.Outputs {
		if v.Name == name {
			return true
		}
	}
	return false
}

// IsGraphInput reports whether name is one of the graph's inputs.
func (g *Graph) IsGraphInput(name string) bool {
	for _, v := range g.Inputs {
		if v.Name == name {
			return true
		}
	}
	return false
}

// RealInputs are the graph inputs that are not also initializers (old
// models list every weight as an input too; those are not fed by users).
func (g *Graph) RealInputs() []*ValueInfo {
	init := g.InitializerMap()
	var out []*ValueInfo
	for _, v := range g.Inputs {
		if _, ok := init[v.Name]; !ok {
			out = append(out, v)
		}
	}
	return out
}

// ValueInfoMap indexes every known ValueInfo (inputs, outputs, value_info)
// by name; outputs and inputs win over value_info entries.
func (g *Graph) ValueInfoMap() map[string]*ValueInfo {
	m := make(map[string]*ValueInfo, len(g.ValueInfo)+len(g.Inputs)+len(g.Outputs))
	for _, v := range g.ValueInfo {
		m[v.Name] = v
	}
	for _, v := range g.Outputs {
		m[v.Name] = v
	}
	for _, v := range g.Inputs {
		m[v.Name] = v
	}
	return m
}

// SetValueInfo records type information for an intermediate value,
// replacing an existing entry of the same name.
func (g *Graph) SetValueInfo(v *ValueInfo) {
	for i, e := range g.ValueInfo {
		if e.Name == v.Name {
			g.ValueInfo[i] = v
			return
		}
	}
	g.ValueInfo = append(g.ValueInfo, v)
}

// Walk calls fn for g and every nested subgraph, depth first.
func (g *Graph) Walk(fn func(*Graph) error) error {
	if err := fn(g); err != nil {
		return err
	}
	for _, n := range g.Nodes {
		for _, sg := range n.Subgraphs() {
			if err := sg.Walk(fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// RemoveNodes drops the given nodes (by identity) keeping order.
func (g *Graph) RemoveNodes(dead map[*Node]bool) {
	if len(dead) == 0 {
		return
	}
	out := g.Nodes[:0]
	for _, n := range g.Nodes {
		if !dead[n] {
			out = append(out, n)
		}
	}
	for i := len(out); i < len(g.Nodes); i++ {
		g.Nodes[i] = nil
	}
	g.Nodes = out
}

// UniqueName returns base, or base_N, that no value or node in g uses.
func (g *Graph) UniqueName(base string) string {
	used := map[string]bool{}
	_ = g.Walk(func(s *Graph) error {
		for _, v := range s.Inputs {
			used[v.Name] = true
		}
		for _, t := range s.Initializers {
			used[t.Name] = true
		}
		for _, n := range s.Nodes {
			used[n.Name] = true
			for _, o := range n.Outputs {
				used[o] = true
			}
		}
		return nil
	})
	if !used[base] {
		return base
	}
	for i := 1; ; i++ {
		c := fmt.Sprintf("%s_%d", base, i)
		if !used[c] {
			return c
		}
	}
}
