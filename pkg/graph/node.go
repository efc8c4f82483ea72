package graph

import (
	"fmt"

	"github.com/optictl/optictl/pkg/onnxpb"
)

// AttrType mirrors onnx.AttributeProto.AttributeType.
type AttrType int32

// Attribute kinds.
const (
	AttrUndefined     AttrType = 0
	AttrFloat         AttrType = 1
	AttrInt           AttrType = 2
	AttrString        AttrType = 3
	AttrTensor        AttrType = 4
	AttrGraph         AttrType = 5
	AttrFloats        AttrType = 6
	AttrInts          AttrType = 7
	AttrStrings       AttrType = 8
	AttrTensors       AttrType = 9
	AttrGraphs        AttrType = 10
	AttrSparseTensor  AttrType = 11
	AttrSparseTensors AttrType = 12
	AttrTypeProto     AttrType = 13
	AttrTypeProtos    AttrType = 14
)

func (a AttrType) String() string {
	n := onnxpb.AttributeProto_AttributeType(a).String()
	return n
}

// Attr is a node attribute. Exactly the field matching Type is meaningful.
// Sparse tensors and type protos are kept as protobuf values.
type Attr struct {
	Name        string
	Type        AttrType
	RefAttrName string // inside functions: refers to the caller's attribute
	Doc         string

	F       float32
	I       int64
	S       []byte
	T       *Tensor
	G       *Graph
	Floats  []float32
	Ints    []int64
	Strings [][]byte
	Tensors []*Tensor
	Graphs  []*Graph

	Sparse     *onnxpb.SparseTensorProto
	SparseList []*onnxpb.SparseTensorProto
	TP         *onnxpb.TypeProto
	TPs        []*onnxpb.TypeProto
	unknown    []byte
}

// Node is one operator application. Inputs and Outputs are value names; an
// empty name is an omitted optional input or output.
type Node struct {
	Name    string
	OpType  string
	Domain  string // "" and "ai.onnx" are the default domain
	Inputs  []string
	Outputs []string
	Attrs   []*Attr
	Doc     string

	unknown []byte
}

// IsDefaultDomain reports whether the node belongs to the default ONNX domain.
func (n *Node) IsDefaultDomain() bool { return n.Domain == "" || n.Domain == "ai.onnx" }

// Is reports whether the node is the given op of the default ONNX domain.
func (n *Node) Is(op string) bool { return n.OpType == op && n.IsDefaultDomain() }

// String names the node for messages: `Conv "conv1"`.
func (n *Node) String() string {
	op := n.OpType
	if !n.IsDefaultDomain() {
		op = n.Domain + "." + op
	}
	if n.Name == "" {
		if len(n.Outputs) > 0 {
			return fmt.Sprintf("%s (output %q)", op, n.Outputs[0])
		}
		return op
	}
	return fmt.Sprintf("%s %q", op, n.Name)
}

// Attr returns the named attribute or nil.
func (n *Node) Attr(name string) *Attr {
	for _, a := range n.Attrs {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// AttrInt returns an INT attribute or def when absent.
func (n *Node) AttrInt(name string, def int64) int64 {
	if a := n.Attr(name); a != nil && a.Type == AttrInt {
		return a.I
	}
	return def
}

// AttrFloat returns a FLOAT attribute or def when absent.
func (n *Node) AttrFloat(name string, def float32) float32 {
	if a := n.Attr(name); a != nil && a.Type == AttrFloat {
		return a.F
	}
	return def
}

// AttrString returns a STRING attribute or def when absent.
func (n *Node) AttrString(name string, def string) string {
	if a := n.Attr(name); a != nil && a.Type == AttrString {
		return string(a.S)
	}
	return def
}

// AttrInts returns an INTS attribute (nil when absent).
func (n *Node) AttrInts(name string) []int64 {
	if a := n.Attr(name); a != nil && a.Type == AttrInts {
		return a.Ints
	}
	return nil
}

// AttrFloats returns a FLOATS attribute (nil when absent).
func (n *Node) AttrFloats(name string) []float32 {
	if a := n.Attr(name); a != nil && a.Type == AttrFloats {
		return a.Floats
	}
	return nil
}

// AttrTensor returns a TENSOR attribute (nil when absent).
func (n *Node) AttrTensor(name string) *Tensor {
	if a := n.Attr(name); a != nil && a.Type == AttrTensor {
		return a.T
	}
	return nil
}

// AttrGraph returns a GRAPH attribute (nil when absent).
func (n *Node) AttrGraph(name string) *Graph {
	if a := n.Attr(name); a != nil && a.Type == AttrGraph {
		return a.G
	}
	return nil
}

// SetAttr replaces or adds an attribute.
func (n *Node) SetAttr(a *Attr) {
	for i, b := range n.Attrs {
		if b.Name == a.Name {
			n.Attrs[i] = a
			return
		}
	}
	n.Attrs = append(n.Attrs, a)
}

// DelAttr removes an attribute if present.
func (n *Node) DelAttr(name string) {
	for i, b := range n.Attrs {
		if b.Name == name {
			n.Attrs = append(n.Attrs[:i:i], n.Attrs[i+1:]...)
			return
		}
	}
}

// IntAttr, FloatAttr, IntsAttr, FloatsAttr, StringAttr, TensorAttr build attributes.
func IntAttr(name string, v int64) *Attr { return &Attr{Name: name, Type: AttrInt, I: v} }
func FloatAttr(name string, v float32) *Attr {
	return &Attr{Name: name, Type: AttrFloat, F: v}
}
func IntsAttr(name string, v ...int64) *Attr {
	return &Attr{Name: name, Type: AttrInts, Ints: append([]int64{}, v...)}
}
func FloatsAttr(name string, v ...float32) *Attr {
	return &Attr{Name: name, Type: AttrFloats, Floats: append([]float32{}, v...)}
}
func StringAttr(name, v string) *Attr { return &Attr{Name: name, Type: AttrString, S: []byte(v)} }
func TensorAttr(name string, t *Tensor) *Attr {
	return &Attr{Name: name, Type: AttrTensor, T: t}
}
func GraphAttr(name string, g *Graph) *Attr { return &Attr{Name: name, Type: AttrGraph, G: g} }

// Subgraphs returns the graphs held by the node's attributes.
func (n *Node) Subgraphs() []*Graph {
	var out []*Graph
	for _, a := range n.Attrs {
		if a.G != nil {
			out = append(out, a.G)
		}
		out = append(out, a.Graphs...)
	}
	return out
}
