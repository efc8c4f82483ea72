package passes

// Constant folding.
//   Before: Y = Op(C1, C2) with C1, C2 constants (initializers or Constant)
//   After:  Y is an initializer holding the value (a Constant node when Y is
//           a graph output)
// Preconditions: default domain; not a random op, not Constant itself, no
// subgraph attributes, at least one input; the interp backend evaluates it
// (ops it lacks are left, and counted in the pass notes); the result is at
// most Options.FoldMaxBytes (default 1 MiB) and, unless Options.FoldGrow,
// no larger than the constant inputs plus 64 KiB, so folding never bloats
// the file (Expand/Tile/ConstantOfShape of big shapes stay as they are).
//
// Shape folding.
//   Before: S = Shape(X) (or Size(X)) where X's shape is fully static
//           (declared, inferred, or fixed by --shape)
//   After:  S is an int64 initializer
// Preconditions: the static shape is known; Shape's start/end attributes
// are honoured.

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	_ "github.com/optictl/optictl/pkg/runtime/interp" // the folding evaluator
)

const (
	defaultFoldMaxBytes = 1 << 20
	foldSlack           = 64 << 10
)

var foldConstants = &Pass{
	Name:  "fold-constants",
	Doc:   "Evaluate nodes whose inputs are all constant (interp backend, size-capped).",
	Level: O1,
	Run: func(c *Context) (bool, error) {
		limit := int64(defaultFoldMaxBytes)
		grow := false
		if c.Options != nil {
			if c.Options.FoldMaxBytes > 0 {
				limit = c.Options.FoldMaxBytes
			}
			grow = c.Options.FoldGrow
		}
		g := c.Graph()
		ci := newConstIndex(g)
		skipped := map[string]int{}
		dead := map[*graph.Node]bool{}
		changed := false
		for _, n := range g.Nodes {
			if !foldable(n) {
				continue
			}
			c.At(n)
			var ins []*graph.Tensor
			var inBytes int64
			all := true
			for _, in := range n.Inputs {
				if in == "" {
					ins = append(ins, nil)
					continue
				}
				t := ci.get(in)
				if t == nil {
					all = false
					break
				}
				ins = append(ins, t)
				inBytes += t.Bytes()
			}
			if !all || len(ins) == 0 {
				continue
			}
			outs, err := evalNode(c.Model, n, ins, limit)
			if err != nil {
				skipped[foldReason(n, err)]++
				continue
			}
			var outBytes int64
			for _, t := range outs {
				if t != nil {
					outBytes += t.Bytes()
				}
			}
			if outBytes > limit || (!grow && outBytes > inBytes+foldSlack) {
				skipped[n.OpType+": result over the size cap"]++
				continue
			}
			t := outs[0]
			t.Name = n.Outputs[0]
			changed = true
			if g.IsGraphOutput(t.Name) {
				// Replace in place: keeps the output name and the order.
				*n = graph.Node{Name: n.Name, OpType: "Constant", Outputs: []string{t.Name},
					Attrs: []*graph.Attr{graph.TensorAttr("value", t)}}
				ci.cnode[t.Name] = t
				continue
			}
			g.Initializers = append(g.Initializers, t)
			ci.init[t.Name] = t
			dead[n] = true
		}
		g.RemoveNodes(dead)
		if len(skipped) > 0 {
			var keys []string
			for k := range skipped {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				c.Note("not folded: %s (x%d)", k, skipped[k])
			}
		}
		return changed, nil
	},
}

func foldable(n *graph.Node) bool {
	if !n.IsDefaultDomain() || randomOps[n.OpType] || len(n.Inputs) == 0 || len(n.Outputs) != 1 || n.Outputs[0] == "" || len(n.Subgraphs()) > 0 {
		return false
	}
	switch n.OpType {
	case "Constant", "If", "Loop", "Scan", "Print":
		return false
	}
	return true
}

func foldReason(n *graph.Node, err error) string {
	if errors.Is(err, runtime.ErrUnsupported) {
		return n.OpType + ": interp has no kernel"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return n.OpType + ": " + s
}

// evalNode runs one node on constant inputs through the interp backend.
func evalNode(m *graph.Model, n *graph.Node, ins []*graph.Tensor, limit int64) ([]*graph.Tensor, error) {
	g := &graph.Graph{Name: "fold"}
	nc := n.Clone()
	for i, t := range ins {
		if t == nil {
			continue
		}
		c := t.Clone()
		c.Name = fmt.Sprintf("in%d", i)
		nc.Inputs[i] = c.Name
		g.Initializers = append(g.Initializers, c)
	}
	for i, o := range nc.Outputs {
		if o != "" {
			nc.Outputs[i] = fmt.Sprintf("out%d", i)
			g.Outputs = append(g.Outputs, &graph.ValueInfo{Name: nc.Outputs[i]})
		}
	}
	g.Nodes = []*graph.Node{nc}
	fm := &graph.Model{IRVersion: m.IRVersion, Opsets: m.Opsets, Graph: g}
	s, err := runtime.Open("interp", fm, runtime.Options{Threads: 1, MaxMemory: 4*limit + 1<<20})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	res, err := runtime.RunNamed(context.Background(), s, nil)
	if err != nil {
		return nil, err
	}
	out := make([]*graph.Tensor, len(nc.Outputs))
	for i, o := range nc.Outputs {
		if o == "" {
			continue
		}
		t, ok := res[o]
		if !ok {
			return nil, fmt.Errorf("no value for output %d", i)
		}
		out[i] = t.ToGraphTensor(n.Outputs[i])
	}
	return out, nil
}

var foldShapes = &Pass{
	Name:  "fold-shapes",
	Doc:   "Replace Shape/Size of values with a static shape by constants (use --shape for dynamic inputs).",
	Level: O1,
	Run: func(c *Context) (bool, error) {
		g := c.Graph()
		shapes := staticShapes(c.Model)
		changed := false
		for _, n := range g.Nodes {
			if !(n.Is("Shape") || n.Is("Size")) || len(n.Inputs) != 1 || len(n.Outputs) != 1 {
				continue
			}
			c.At(n)
			ti := shapes[n.Inputs[0]]
			if !ti.ok {
				continue
			}
			var t *graph.Tensor
			if n.OpType == "Size" {
				k, err := graph.NumElements(ti.dims)
				if err != nil {
					continue
				}
				t = graph.NewInt64(n.Outputs[0], nil, []int64{k})
			} else {
				r := int64(len(ti.dims))
				start, end := n.AttrInt("start", 0), n.AttrInt("end", r)
				if start < 0 {
					start += r
				}
				if end < 0 {
					end += r
				}
				start, end = min(max(start, 0), r), min(max(end, 0), r)
				if end < start {
					end = start
				}
				d := ti.dims[start:end]
				t = graph.NewInt64(n.Outputs[0], []int64{int64(len(d))}, d)
			}
			*n = graph.Node{Name: n.Name, OpType: "Constant", Outputs: []string{n.Outputs[0]}, Attrs: []*graph.Attr{graph.TensorAttr("value", t)}}
			changed = true
		}
		return changed, nil
	},
}
