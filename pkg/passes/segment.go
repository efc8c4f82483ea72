package passes

// Segmented verification runs. A verification session holds the model's
// weights and whatever its backend derives from them (the interp backend
// packs every constant MatMul/Gemm/Conv weight at Open, a copy as large as
// the weights). Running a 100 MB model whole therefore costs another
// 100 MB. Instead, the checker cuts the main graph's node list (which
// Verify keeps topologically sorted) into consecutive segments reading at
// most verifySegmentBytes of initializers each, and runs them one after the
// other, each in its own short-lived session: the values crossing a cut
// are passed on as tensors. Every node computes the same function of the
// same inputs as in a whole run, so the outputs are the model's outputs;
// a model that does not split cleanly (a non-tensor value crossing a cut,
// a kernel that insists on a constant input) is run whole instead.

import (
	"context"
	"fmt"
	goruntime "runtime"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// verifySegmentBytes bounds the initializer bytes one segment reads (a
// variable so that tests can cut small models).
var verifySegmentBytes int64 = 16 << 20

// nodeReads lists the names a node reads: its inputs and what its
// subgraphs read from enclosing scopes.
func nodeReads(n *graph.Node) []string {
	var out []string
	for _, in := range n.Inputs {
		if in != "" {
			out = append(out, in)
		}
	}
	for _, sg := range n.Subgraphs() {
		for name := range sg.OuterReads() {
			out = append(out, name)
		}
	}
	return out
}

// splitSegments cuts g's nodes into consecutive runs reading at most limit
// bytes of initializers each (a single node may read more). It returns one
// segment when the whole graph's initializers fit.
func splitSegments(g *graph.Graph, limit int64) [][]*graph.Node {
	var total int64
	for _, t := range g.Initializers {
		total += t.Bytes()
	}
	if total <= limit || len(g.Nodes) < 2 {
		return [][]*graph.Node{g.Nodes}
	}
	inits := g.InitializerMap()
	var segs [][]*graph.Node
	var cur []*graph.Node
	var bytes int64
	seen := map[string]bool{}
	for _, n := range g.Nodes {
		var add int64
		var names []string
		for _, name := range nodeReads(n) {
			if t, ok := inits[name]; ok && !seen[name] {
				add += t.Bytes()
				names = append(names, name)
			}
		}
		if len(cur) > 0 && bytes+add > limit {
			segs = append(segs, cur)
			cur, bytes = nil, 0
			clear(seen)
			add, names = 0, names[:0]
			for _, name := range nodeReads(n) {
				if t, ok := inits[name]; ok && !seen[name] {
					add += t.Bytes()
					names = append(names, name)
					seen[name] = true
				}
			}
		} else {
			for _, name := range names {
				seen[name] = true
			}
		}
		cur = append(cur, n)
		bytes += add
	}
	if len(cur) > 0 {
		segs = append(segs, cur)
	}
	return segs
}

// runSegments runs m segment by segment on backend. in holds the graph's
// inputs; the result holds every graph output.
func runSegments(backend string, m *graph.Model, segs [][]*graph.Node, in map[string]*runtime.Tensor, opts runtime.Options) (map[string]*runtime.Tensor, error) {
	g := m.Graph
	inits := g.InitializerMap()
	vi := g.ValueInfoMap()
	reads := make([]map[string]bool, len(segs))
	for i, seg := range segs {
		reads[i] = map[string]bool{}
		for _, n := range seg {
			for _, name := range nodeReads(n) {
				reads[i][name] = true
			}
		}
	}
	// laterReads[i]: names read by segments after i, or graph outputs.
	laterReads := make([]map[string]bool, len(segs))
	acc := map[string]bool{}
	for _, v := range g.Outputs {
		acc[v.Name] = true
	}
	for i := len(segs) - 1; i >= 0; i-- {
		laterReads[i] = map[string]bool{}
		for k := range acc {
			laterReads[i][k] = true
		}
		for k := range reads[i] {
			acc[k] = true
		}
	}
	vals := make(map[string]*runtime.Tensor, len(in))
	for k, v := range in {
		vals[k] = v
	}
	for i, seg := range segs {
		produced := map[string]bool{}
		for _, n := range seg {
			for _, o := range n.Outputs {
				if o != "" {
					produced[o] = true
				}
			}
		}
		sg := &graph.Graph{Name: g.Name, Nodes: seg, ValueInfo: g.ValueInfo}
		feed := map[string]*runtime.Tensor{}
		for name := range reads[i] {
			if produced[name] {
				continue
			}
			if t, ok := inits[name]; ok {
				sg.Initializers = append(sg.Initializers, t)
				continue
			}
			t, ok := vals[name]
			if !ok {
				return nil, fmt.Errorf("passes: segment %d reads %q, which no earlier segment produced", i, name)
			}
			if t.DType == graph.Undefined {
				return nil, fmt.Errorf("passes: segment %d input %q is not a plain tensor", i, name)
			}
			feed[name] = t
			sg.Inputs = append(sg.Inputs, &graph.ValueInfo{Name: name, DType: t.DType, Shape: graph.ShapeOf(t.Shape), HasShape: true, HasType: true})
		}
		for _, n := range seg {
			for _, o := range n.Outputs {
				if o == "" || !laterReads[i][o] {
					continue
				}
				v := &graph.ValueInfo{Name: o}
				if x, ok := vi[o]; ok {
					v = x.Clone()
				}
				sg.Outputs = append(sg.Outputs, v)
			}
		}
		if len(sg.Outputs) == 0 {
			// Nothing it computes is used later, but a whole run would still
			// run (and could fail on) these nodes: run them too.
			last := seg[len(seg)-1]
			for _, o := range last.Outputs {
				if o != "" {
					sg.Outputs = append(sg.Outputs, &graph.ValueInfo{Name: o})
					break
				}
			}
		}
		sm := *m
		sm.Graph = sg
		s, err := runtime.Open(backend, &sm, opts)
		if err != nil {
			return nil, err
		}
		out, err := runtime.RunNamed(context.Background(), s, feed)
		s.Close()
		if err != nil {
			return nil, err
		}
		for k, v := range out {
			vals[k] = v
		}
		// Drop the values no later segment reads.
		for k := range vals {
			if !laterReads[i][k] {
				delete(vals, k)
			}
		}
		// The session (and the weights its backend derived) is garbage
		// now: collect it before the next segment allocates its own.
		goruntime.GC()
	}
	res := map[string]*runtime.Tensor{}
	for _, v := range g.Outputs {
		if t, ok := vals[v.Name]; ok {
			res[v.Name] = t
		} else if t, ok := inits[v.Name]; ok {
			res[v.Name] = runtime.FromGraphTensor(t).Clone()
		} else {
			return nil, fmt.Errorf("passes: graph output %q was not produced", v.Name)
		}
	}
	return res, nil
}
