package passes

// Common subexpression elimination.
//   Before: A = Op(X, Y){attrs}; B = Op(X, Y){attrs}
//   After:  A = Op(X, Y){attrs}; readers of B read A
// Preconditions: default domain; not a random op; no subgraph attributes;
// same op, inputs, attributes and output count; when B is a graph output,
// A must not be one too (the producer of A is renamed to B instead).

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
)

var randomOps = map[string]bool{
	"RandomNormal": true, "RandomUniform": true, "RandomNormalLike": true,
	"RandomUniformLike": true, "Multinomial": true, "Bernoulli": true,
}

var cse = &Pass{
	Name:  "eliminate-common-subexpressions",
	Doc:   "Merge nodes that compute the same op on the same inputs with the same attributes.",
	Level: O1,
	Run: func(c *Context) (bool, error) {
		g := c.Graph()
		seen := map[string]*graph.Node{}
		dead := map[*graph.Node]bool{}
		for _, n := range g.Nodes {
			c.At(n)
			if !n.IsDefaultDomain() || randomOps[n.OpType] || len(n.Subgraphs()) > 0 {
				continue
			}
			k := nodeKey(n)
			first, ok := seen[k]
			if !ok {
				seen[k] = n
				continue
			}
			okAll := true
			for i, o := range n.Outputs {
				if o == "" {
					continue
				}
				if first.Outputs[i] == "" {
					okAll = false
					break
				}
				if g.IsGraphOutput(o) && g.IsGraphOutput(first.Outputs[i]) {
					okAll = false
					break
				}
			}
			if !okAll {
				continue
			}
			for i, o := range n.Outputs {
				if o != "" && !bypass(g, first.Outputs[i], o) {
					okAll = false
				}
			}
			if okAll {
				dead[n] = true
			}
		}
		g.RemoveNodes(dead)
		return len(dead) > 0, nil
	},
}

func nodeKey(n *graph.Node) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%d|%s|", n.OpType, len(n.Outputs), strings.Join(n.Inputs, "\x00"))
	attrs := append([]*graph.Attr(nil), n.Attrs...)
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].Name < attrs[j].Name })
	for _, a := range attrs {
		fmt.Fprintf(&b, "%s:%d:%s:%v:%d:%q:%v:%v:%q;", a.Name, a.Type, a.RefAttrName, a.F, a.I, a.S, a.Floats, a.Ints, a.Strings)
		if a.T != nil {
			b.WriteString(tensorKey(a.T))
		}
		for _, t := range a.Tensors {
			b.WriteString(tensorKey(t))
		}
	}
	return b.String()
}

func tensorKey(t *graph.Tensor) string {
	h := fnv.New128a()
	h.Write(t.Raw)
	for _, s := range t.Strings {
		h.Write(s)
		h.Write([]byte{0})
	}
	return fmt.Sprintf("T%d%v%x%d", t.DType, t.Dims, h.Sum(nil), len(t.Raw))
}
