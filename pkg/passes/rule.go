package passes

// Rewrite rules split matching from rewriting, as ONNX Runtime's
// RewriteRule (SatisfyCondition, then Apply): Match looks at one candidate
// node and returns what it matched, or a *pattern.Mismatch that says why
// not; Apply rewrites a match. runRule records every mismatch on the
// Context, so `optimize --explain PASS` can print, per candidate node, why
// the rewrite did not fire.

import (
	"fmt"
	"slices"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/pattern"
)

// rule is one rewrite of a pass.
type rule[M any] struct {
	// Anchors are the op types (default domain) of candidate nodes.
	Anchors []string
	// Match returns the match at n, or why n is not one.
	Match func(c *Context, v *pattern.View, n *graph.Node) (M, *pattern.Mismatch)
	// Apply rewrites m and returns the nodes to delete.
	Apply func(c *Context, v *pattern.View, m M) []*graph.Node
}

// newView returns a pattern view of c's main graph, with constants as
// passes see them (constTensor: initializers that are not graph inputs,
// Constant nodes).
func newView(c *Context) *pattern.View {
	g := c.Graph()
	ci := newConstIndex(g)
	v := pattern.NewView(g, nil, c.Model.Opset)
	v.ConstOf = func(name string) *graph.Tensor { return ci.get(name) }
	return v
}

// refresh re-indexes v after a rewrite (new initializers included).
func refresh(v *pattern.View) {
	ci := newConstIndex(v.G)
	v.ConstOf = func(name string) *graph.Tensor { return ci.get(name) }
	v.Refresh()
}

// runRule applies r at every candidate node, in graph order; the nodes a
// rewrite deletes leave the graph at once.
func runRule[M any](c *Context, r rule[M]) bool {
	g := c.Graph()
	v := newView(c)
	gone := map[*graph.Node]bool{}
	changed := false
	for _, n := range slices.Clone(g.Nodes) {
		if gone[n] || !n.IsDefaultDomain() || !slices.Contains(r.Anchors, n.OpType) {
			continue
		}
		c.At(n)
		m, why := r.Match(c, v, n)
		if why != nil {
			c.mismatch(why)
			continue
		}
		dead := r.Apply(c, v, m)
		changed = true
		if len(dead) > 0 {
			set := map[*graph.Node]bool{}
			for _, d := range dead {
				set[d], gone[d] = true, true
			}
			g.RemoveNodes(set)
		}
		refresh(v)
	}
	return changed
}

// explainers are the passes that record why a candidate did not match
// (their rewrites are rules, or call Context.Miss).
var explainers = []string{
	"fuse-pad-into-conv", "fuse-conv-batchnorm", "fuse-conv-mul", "fuse-conv-add", "fuse-matmul-add", "fuse-gemm-batchnorm",
	"fuse-layernorm", "fuse-gelu", "fuse-hardswish",
	"fuse-ort-conv-activation", "fuse-ort-gemm-activation", "fuse-ort-attention", "fuse-ort-skip-layernorm", "fuse-ort-bias-gelu",
}

// Explainers lists the passes that Options.Explain can explain.
func Explainers() []string { return slices.Clone(explainers) }

// checkExplainers refuses to explain a pass that records no reasons.
func checkExplainers(names []string) error {
	for _, d := range names {
		if !slices.Contains(explainers, d) {
			return fmt.Errorf("passes: pass %q does not record why it did not fire (passes that do: %s)", d, strings.Join(explainers, ", "))
		}
	}
	return nil
}

// Miss is a candidate node a pass looked at and did not rewrite.
type Miss struct {
	Node   string `json:"node"`
	Op     string `json:"op"`
	Reason string `json:"reason"`
}

func (m Miss) String() string { return fmt.Sprintf("%s (%s): %s", m.Node, m.Op, m.Reason) }

// Explaining reports whether the pass's mismatches are being recorded
// (Options.Explain names it).
func (c *Context) Explaining() bool { return c.explain }

// Miss records why candidate n was not rewritten (only when explaining).
func (c *Context) Miss(n *graph.Node, format string, args ...any) {
	if !c.explain {
		return
	}
	c.misses = append(c.misses, Miss{Node: pattern.NodeName(n), Op: n.OpType, Reason: fmt.Sprintf(format, args...)})
}

func (c *Context) mismatch(m *pattern.Mismatch) {
	if c.explain && m != nil {
		c.misses = append(c.misses, Miss{Node: pattern.NodeName(m.Node), Op: m.Node.OpType, Reason: m.Reason})
	}
}

// missf is a mismatch at n, for a pass's own preconditions.
func missf(n *graph.Node, format string, args ...any) *pattern.Mismatch {
	return &pattern.Mismatch{Node: n, Reason: fmt.Sprintf(format, args...)}
}
