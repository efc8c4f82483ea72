package passes

import (
	"fmt"
	"math"

	"github.com/optictl/optictl/pkg/graph"
)

// constTensor returns the constant value of name in g: an initializer that
// is not also a graph input (those can be overridden by the caller), or the
// value of a Constant node with a "value" attribute. It returns nil
// otherwise.
func constTensor(g *graph.Graph, name string) *graph.Tensor {
	if name == "" {
		return nil
	}
	for _, t := range g.Initializers {
		if t.Name == name {
			if g.IsGraphInput(name) || t.Raw == nil && t.DType != graph.String {
				return nil
			}
			return t
		}
	}
	for _, n := range g.Nodes {
		if n.Is("Constant") && len(n.Outputs) == 1 && n.Outputs[0] == name {
			if t := n.AttrTensor("value"); t != nil && t.Raw != nil {
				return t
			}
			return nil
		}
	}
	return nil
}

// constIndex caches constTensor lookups for one pass over a graph.
type constIndex struct {
	g     *graph.Graph
	init  map[string]*graph.Tensor
	cnode map[string]*graph.Tensor
}

func newConstIndex(g *graph.Graph) *constIndex {
	ci := &constIndex{g: g, init: map[string]*graph.Tensor{}, cnode: map[string]*graph.Tensor{}}
	inputs := map[string]bool{}
	for _, v := range g.Inputs {
		inputs[v.Name] = true
	}
	for _, t := range g.Initializers {
		if !inputs[t.Name] && (t.Raw != nil || t.DType == graph.String) {
			ci.init[t.Name] = t
		}
	}
	for _, n := range g.Nodes {
		if n.Is("Constant") && len(n.Outputs) == 1 {
			if t := n.AttrTensor("value"); t != nil && t.Raw != nil {
				ci.cnode[n.Outputs[0]] = t
			}
		}
	}
	return ci
}

func (ci *constIndex) get(name string) *graph.Tensor {
	if name == "" {
		return nil
	}
	if t, ok := ci.init[name]; ok {
		return t
	}
	return ci.cnode[name]
}

// floatConst returns the float32 data of a constant float tensor, or nil.
func floatConst(t *graph.Tensor) []float32 {
	if t == nil || t.DType != graph.Float {
		return nil
	}
	f, err := t.Float32s()
	if err != nil || int64(len(f)) != t.Len() {
		return nil
	}
	return f
}

// intsConst returns the values of a constant integer tensor, or nil, false.
func intsConst(t *graph.Tensor) ([]int64, bool) {
	if t == nil || (t.DType != graph.Int64 && t.DType != graph.Int32) {
		return nil, false
	}
	v, err := t.AsInt64s()
	if err != nil {
		return nil, false
	}
	return v, true
}

// scalarFloat returns the single value of a constant float tensor with one
// element.
func scalarFloat(t *graph.Tensor) (float64, bool) {
	if t == nil || t.Len() != 1 || !t.DType.IsFloat() || t.Raw == nil {
		return 0, false
	}
	v, err := t.AsFloat64s()
	if err != nil || len(v) != 1 {
		return 0, false
	}
	return v[0], true
}

// addInitializer adds a new initializer with a fresh name based on base.
func addInitializer(g *graph.Graph, base string, t *graph.Tensor) string {
	name := g.UniqueName(base)
	t.Name = name
	g.Initializers = append(g.Initializers, t)
	return name
}

// renameUses makes every reader of old (including reads from inside
// subgraphs that do not define old themselves) read repl instead. Graph
// outputs are not touched.
func renameUses(g *graph.Graph, old, repl string) {
	for _, n := range g.Nodes {
		for i, in := range n.Inputs {
			if in == old {
				n.Inputs[i] = repl
			}
		}
		for _, sg := range n.Subgraphs() {
			renameInSubgraph(sg, old, repl)
		}
	}
}

func renameInSubgraph(g *graph.Graph, old, repl string) {
	// A subgraph that defines old itself shadows the outer name.
	for _, v := range g.Inputs {
		if v.Name == old {
			return
		}
	}
	for _, t := range g.Initializers {
		if t.Name == old {
			return
		}
	}
	for _, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o == old {
				return
			}
		}
	}
	renameUses(g, old, repl)
	for _, v := range g.Outputs {
		if v.Name == old {
			// A subgraph output that names an outer value directly: keep
			// the subgraph's output name by inserting nothing; renaming
			// the output is safe inside a subgraph only when the owner
			// reads outputs by position (If/Loop/Scan do).
			v.Name = repl
		}
	}
}

// bypass removes the value out (produced by a node that is being deleted)
// by making its readers read in instead. When out is a graph output, the
// producer of in is renamed to produce out instead, which is possible only
// when in is produced by a node of g, is not itself a graph input or output,
// and is not read inside any subgraph by name. It reports whether it could.
func bypass(g *graph.Graph, in, out string) bool {
	if in == out {
		return true
	}
	if !g.IsGraphOutput(out) {
		renameUses(g, out, in)
		return true
	}
	if g.IsGraphOutput(in) || g.IsGraphInput(in) {
		return false
	}
	var prod *graph.Node
	for _, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o == in {
				prod = n
			}
		}
	}
	if prod == nil {
		return false // an initializer: its name is visible to users of the file
	}
	for _, n := range g.Nodes {
		for _, sg := range n.Subgraphs() {
			if sg.OuterReads()[in] {
				return false
			}
		}
	}
	for i, o := range prod.Outputs {
		if o == in {
			prod.Outputs[i] = out
		}
	}
	// Readers of in now read out; the old reader of out is being deleted
	// by the caller, so it must not be renamed back.
	for _, n := range g.Nodes {
		for i, x := range n.Inputs {
			if x == in {
				n.Inputs[i] = out
			}
		}
	}
	return true
}

// removeDeadProducers deletes nodes no longer needed after a rewrite: it is
// the dead-node pass applied to g.
func removeDead(g *graph.Graph) int {
	removed := 0
	for {
		cons := g.Consumers()
		dead := map[*graph.Node]bool{}
		for _, n := range g.Nodes {
			if !removableIfUnused(n) {
				continue
			}
			used := false
			for _, o := range n.Outputs {
				if o != "" && (len(cons[o]) > 0 || g.IsGraphOutput(o)) {
					used = true
					break
				}
			}
			if !used {
				dead[n] = true
			}
		}
		if len(dead) == 0 {
			return removed
		}
		removed += len(dead)
		g.RemoveNodes(dead)
	}
}

// removableIfUnused is false for nodes with side effects or of unknown
// domains (custom ops may have effects optictl cannot see).
func removableIfUnused(n *graph.Node) bool {
	if !n.IsDefaultDomain() {
		return false
	}
	switch n.OpType {
	case "Print", "Loop", "Scan":
		// Loop/Scan bodies could in principle be pure, but a Loop with no
		// used outputs is rare; leaving it is safe.
		return false
	}
	return true
}

// singleUse reports whether value v is read exactly once (by one node, one
// input slot, not from a subgraph) and is not a graph output.
func singleUse(g *graph.Graph, cons map[string][]*graph.Node, v string) bool {
	if g.IsGraphOutput(v) {
		return false
	}
	c := cons[v]
	if len(c) != 1 {
		return false
	}
	k := 0
	for _, in := range c[0].Inputs {
		if in == v {
			k++
		}
	}
	return k == 1
}

// producerOf returns the node producing v (index by Producers).
func producerOf(prod map[string]*graph.Node, v string) *graph.Node {
	if v == "" {
		return nil
	}
	return prod[v]
}

// valueInfo returns what g knows about a value (shape and type), or nil.
func valueInfo(vi map[string]*graph.ValueInfo, name string) *graph.ValueInfo {
	v := vi[name]
	if v == nil || !v.HasType || !v.IsTensor() {
		return nil
	}
	return v
}

// staticShape returns the fixed dims of a value when fully known.
func staticShape(vi map[string]*graph.ValueInfo, name string) ([]int64, bool) {
	v := valueInfo(vi, name)
	if v == nil || !v.HasShape {
		return nil, false
	}
	return v.Shape.Static()
}

func float32Bytes(f []float32) []byte {
	t := graph.NewFloat32("", []int64{int64(len(f))}, f)
	return t.Raw
}

func allFinite(f []float32) bool {
	for _, v := range f {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return true
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func nodeErr(n *graph.Node, format string, args ...any) error {
	return fmt.Errorf("passes: node %s: %s", n, fmt.Sprintf(format, args...))
}
