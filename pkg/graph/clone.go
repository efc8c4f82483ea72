package graph

// Clone deep-copies the model's structure. Tensor bytes are shared, since
// they are immutable by convention (see the package doc), so cloning a
// model with 100 MB of weights is cheap.
func (m *Model) Clone() *Model {
	c := *m
	c.Opsets = append([]OpsetImport(nil), m.Opsets...)
	c.Metadata = append([]KV(nil), m.Metadata...)
	c.Functions = append(c.Functions[:0:0], m.Functions...)
	if m.Graph != nil {
		c.Graph = m.Graph.Clone()
	}
	return &c
}

// Clone deep-copies a graph (weights shared).
func (g *Graph) Clone() *Graph {
	c := *g
	c.Inputs = cloneVIs(g.Inputs)
	c.Outputs = cloneVIs(g.Outputs)
	c.ValueInfo = cloneVIs(g.ValueInfo)
	c.Initializers = make([]*Tensor, len(g.Initializers))
	for i, t := range g.Initializers {
		c.Initializers[i] = t.Clone()
	}
	c.Nodes = make([]*Node, len(g.Nodes))
	for i, n := range g.Nodes {
		c.Nodes[i] = n.Clone()
	}
	return &c
}

func cloneVIs(vs []*ValueInfo) []*ValueInfo {
	out := make([]*ValueInfo, len(vs))
	for i, v := range vs {
		out[i] = v.Clone()
	}
	return out
}

// Clone deep-copies a node, its attributes and subgraphs.
func (n *Node) Clone() *Node {
	c := *n
	c.Inputs = append([]string{}, n.Inputs...)
	c.Outputs = append([]string{}, n.Outputs...)
	c.Attrs = make([]*Attr, len(n.Attrs))
	for i, a := range n.Attrs {
		c.Attrs[i] = a.Clone()
	}
	return &c
}

// Clone deep-copies an attribute.
func (a *Attr) Clone() *Attr {
	c := *a
	c.Ints = append([]int64(nil), a.Ints...)
	c.Floats = append([]float32(nil), a.Floats...)
	if a.T != nil {
		c.T = a.T.Clone()
	}
	if a.G != nil {
		c.G = a.G.Clone()
	}
	if a.Tensors != nil {
		c.Tensors = make([]*Tensor, len(a.Tensors))
		for i, t := range a.Tensors {
			c.Tensors[i] = t.Clone()
		}
	}
	if a.Graphs != nil {
		c.Graphs = make([]*Graph, len(a.Graphs))
		for i, g := range a.Graphs {
			c.Graphs[i] = g.Clone()
		}
	}
	return &c
}
