package graph

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
)

// Format renders the model as deterministic text for golden tests and
// --dump-after: opsets, inputs, initializers (dtype, shape and a hash of
// the bytes, never the bytes), nodes with sorted attributes, outputs.
func (m *Model) Format() string {
	var b strings.Builder
	fmt.Fprintf(&b, "model ir=%d", m.IRVersion)
	ops := append([]OpsetImport(nil), m.Opsets...)
	sort.Slice(ops, func(i, j int) bool { return ops[i].Domain < ops[j].Domain })
	for _, o := range ops {
		d := o.Domain
		if d == "" {
			d = "ai.onnx"
		}
		fmt.Fprintf(&b, " %s:%d", d, o.Version)
	}
	b.WriteByte('\n')
	if m.Graph != nil {
		formatGraph(&b, m.Graph, "")
	}
	return b.String()
}

// Format renders one graph (see Model.Format).
func (g *Graph) Format() string {
	var b strings.Builder
	formatGraph(&b, g, "")
	return b.String()
}

func formatGraph(b *strings.Builder, g *Graph, ind string) {
	fmt.Fprintf(b, "%sgraph %q\n", ind, g.Name)
	for _, v := range g.Inputs {
		fmt.Fprintf(b, "%s  input %s: %s\n", ind, v.Name, v.TypeString())
	}
	for _, t := range g.Initializers {
		fmt.Fprintf(b, "%s  init %s: %s\n", ind, t.Name, tensorSummary(t))
	}
	for _, n := range g.Nodes {
		formatNode(b, n, ind+"  ")
	}
	for _, v := range g.Outputs {
		fmt.Fprintf(b, "%s  output %s: %s\n", ind, v.Name, v.TypeString())
	}
}

func formatNode(b *strings.Builder, n *Node, ind string) {
	op := n.OpType
	if !n.IsDefaultDomain() {
		op = n.Domain + "." + op
	}
	fmt.Fprintf(b, "%s%s", ind, op)
	if n.Name != "" {
		fmt.Fprintf(b, " %q", n.Name)
	}
	fmt.Fprintf(b, " (%s) -> (%s)", strings.Join(n.Inputs, ", "), strings.Join(n.Outputs, ", "))
	attrs := append([]*Attr(nil), n.Attrs...)
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].Name < attrs[j].Name })
	var subs []*Attr
	if len(attrs) > 0 {
		parts := make([]string, 0, len(attrs))
		for _, a := range attrs {
			parts = append(parts, a.Name+"="+attrValue(a))
			if a.G != nil || len(a.Graphs) > 0 {
				subs = append(subs, a)
			}
		}
		fmt.Fprintf(b, " {%s}", strings.Join(parts, ", "))
	}
	b.WriteByte('\n')
	for _, a := range subs {
		if a.G != nil {
			fmt.Fprintf(b, "%s  %s:\n", ind, a.Name)
			formatGraph(b, a.G, ind+"    ")
		}
		for i, g := range a.Graphs {
			fmt.Fprintf(b, "%s  %s[%d]:\n", ind, a.Name, i)
			formatGraph(b, g, ind+"    ")
		}
	}
}

func attrValue(a *Attr) string {
	if a.RefAttrName != "" {
		return "@" + a.RefAttrName
	}
	switch a.Type {
	case AttrFloat:
		return strconv.FormatFloat(float64(a.F), 'g', -1, 32)
	case AttrInt:
		return strconv.FormatInt(a.I, 10)
	case AttrString:
		return strconv.Quote(string(a.S))
	case AttrTensor:
		if a.T == nil {
			return "tensor(nil)"
		}
		return tensorSummary(a.T)
	case AttrGraph:
		return "graph"
	case AttrFloats:
		p := make([]string, len(a.Floats))
		for i, f := range a.Floats {
			p[i] = strconv.FormatFloat(float64(f), 'g', -1, 32)
		}
		return "[" + strings.Join(p, ",") + "]"
	case AttrInts:
		p := make([]string, len(a.Ints))
		for i, v := range a.Ints {
			p[i] = strconv.FormatInt(v, 10)
		}
		return "[" + strings.Join(p, ",") + "]"
	case AttrStrings:
		p := make([]string, len(a.Strings))
		for i, s := range a.Strings {
			p[i] = strconv.Quote(string(s))
		}
		return "[" + strings.Join(p, ",") + "]"
	case AttrTensors:
		p := make([]string, len(a.Tensors))
		for i, t := range a.Tensors {
			p[i] = tensorSummary(t)
		}
		return "[" + strings.Join(p, ",") + "]"
	case AttrGraphs:
		return fmt.Sprintf("graphs(%d)", len(a.Graphs))
	}
	return a.Type.String()
}

func tensorSummary(t *Tensor) string {
	dims := make([]string, len(t.Dims))
	for i, d := range t.Dims {
		dims[i] = strconv.FormatInt(d, 10)
	}
	s := fmt.Sprintf("%s[%s]", t.DType, strings.Join(dims, ","))
	n := t.Len()
	if n <= 8 && t.DType != String && t.Raw != nil {
		if v, err := t.AsFloat64s(); err == nil {
			p := make([]string, len(v))
			for i, x := range v {
				p[i] = strconv.FormatFloat(x, 'g', 6, 64)
			}
			return s + " {" + strings.Join(p, ",") + "}"
		}
	}
	h := fnv.New64a()
	h.Write(t.Raw)
	for _, str := range t.Strings {
		h.Write(str)
		h.Write([]byte{0})
	}
	return fmt.Sprintf("%s #%016x", s, h.Sum64())
}
