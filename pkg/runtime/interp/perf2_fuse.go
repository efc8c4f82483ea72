package interp

// Open-time fusion of GELU and LayerNormalization written out in plain ops
// (as PyTorch exports them and as testmodels' transformer spells them). The
// model itself is not changed: the pattern's nodes leave the interp
// schedule and one step computes the same values in float32.
//
// GELU  Before: t = Div(x, √2) (or Mul(x, 1/√2)); e = Erf(t); a = Add(e, 1);
//               then y = Mul(Mul(x, a), 0.5) or y = Mul(Mul(x, 0.5), a)
//               (commuted operands allowed)
//       After:  y = GELU(x) with the fast erf (perf2_erf.go).
// LN    Before: m = ReduceMean(x, axes=[k], keepdims=1); d = Sub(x, m);
//               s = Pow(d, 2) (or Mul(d, d)); v = ReduceMean(s, same axes);
//               r = Sqrt(Add(v, eps)); n = Div(d, r); [n = Mul(n, gamma)];
//               [y = Add(n, beta)]
//       After:  one step, row by row over the last axis, with the same
//               float32/float64 rounding sequence as the separate kernels.
//
// MatMul+bias  Before: y = Add(MatMul(x, W), b)  After: one step, MatMul's
//               kernel then b added in place (W rank-2 float32 constant,
//               b float32 constant of rank ≤ 1 with 1 or W's N values).
//
// Preconditions: every constant is a float32 initializer or Constant of
// rank ≤ 1 (√2, 1, 0.5, 2 and eps one element; gamma/beta one element or
// a vector); every intermediate value has exactly the pattern's consumers
// (none in subgraphs) and is not a graph output. Shapes are only known at
// run time: when x is not float32, or the axis is not the last one, or
// gamma/beta do not match x's last dimension, the fused step runs the
// original nodes (compiled at Open as a private fallback program), so
// broadcasting and error reporting are exactly those of the unfused graph.
//
// The matching is pkg/graph/pattern's (MatchGelu at the Erf, MatchLayerNorm
// at the Div, MatchMatMulAdd at the Add), shared with pkg/passes; this file
// adds the interp-only limits (GELU's constants to 1e-6, constants defined
// before the fused step) and builds the fused steps.

import (
	"fmt"
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/pattern"
	"github.com/optictl/optictl/pkg/runtime"
)

// perf2FuseOn enables these fusions (perfFuseOn must be on too); tests
// turn it off to compare with the unfused schedule.
var perf2FuseOn = true

// perf2Fused is a matched pattern: the fused node and its builder, placed
// at the position of the pattern's first node.
type perf2Fused struct {
	node  *graph.Node
	build Builder
}

// perf2Plan finds the patterns of the graph; the result maps the index of
// each pattern's first node to its fused step, and the other nodes of the
// pattern are marked skipped in f.
func perf2Plan(f *perfFuser) map[int]*perf2Fused {
	if !perfFuseOn || !perf2FuseOn || f.p.perf2NoFuse {
		return nil
	}
	var plan map[int]*perf2Fused
	claimed := map[int]bool{}
	for i, n := range f.g.Nodes {
		if !n.IsDefaultDomain() || claimed[i] || f.skip[n] {
			continue
		}
		var m *perf2Match
		switch n.OpType {
		case "Erf":
			m = f.perf2MatchGelu(i)
		case "Div":
			m = f.perf2MatchLN(i)
		case "Add":
			m = f.perf2MatchMatMulAdd(i)
		}
		if m == nil {
			continue
		}
		head, free := len(f.g.Nodes), true
		for _, k := range m.nodes {
			head = min(head, k)
			free = free && !claimed[k] && !f.skip[f.g.Nodes[k]]
		}
		if !free {
			continue
		}
		if plan == nil {
			plan = map[int]*perf2Fused{}
		}
		for _, k := range m.nodes {
			claimed[k] = true
			if k != head {
				f.skip[f.g.Nodes[k]] = true
			}
		}
		plan[head] = f.perf2Make(m, f.g.Nodes[head])
	}
	return plan
}

// perf2Match is one matched pattern.
type perf2Match struct {
	kind  string // "Gelu" or "LayerNorm"
	x, y  string
	nodes []int // indices in the graph, in graph order
	// LayerNorm
	axis        int64
	eps         float32
	gamma, beta string
	// MatMulAdd: y = x·w + bias
	w, bias string
}

// perf2Indices returns the graph positions of nodes.
func (f *perfFuser) perf2Indices(nodes []*graph.Node) []int {
	out := make([]int, len(nodes))
	for i, n := range nodes {
		out[i] = f.perf2Index(n)
	}
	return out
}

func perf2Near(v float32, want float64) bool {
	return math.Abs(float64(v)-want) <= 1e-6*math.Abs(want)
}

// perf2MatchGelu matches the GELU pattern around the Erf at node i
// (pattern.MatchGelu), with √2 or 1/√2 to 1e-6 relative: the fused step
// computes the exact GELU.
func (f *perfFuser) perf2MatchGelu(i int) *perf2Match {
	g, why := pattern.MatchGelu(f.view, f.g.Nodes[i])
	if why != nil {
		return nil
	}
	k := float32(g.K)
	if g.Scale.Is("Div") && !perf2Near(k, math.Sqrt2) || g.Scale.Is("Mul") && !perf2Near(k, 1/math.Sqrt2) {
		return nil
	}
	return &perf2Match{kind: "Gelu", x: g.X, y: g.Last().Outputs[0], nodes: f.perf2Indices(g.Nodes())}
}

// perf2MatchLN matches the written-out LayerNormalization whose Div is
// node i (pattern.MatchLayerNorm, any single axis, gamma and beta
// optional); gamma and beta must be defined before the pattern's first
// node, where the fused step runs.
func (f *perfFuser) perf2MatchLN(i int) *perf2Match {
	ln, why := pattern.MatchLayerNorm(f.view, f.g.Nodes[i])
	if why != nil {
		return nil
	}
	head := f.perf2Index(ln.Mean)
	if ln.Scale != nil && !f.perf2DefinedBefore(ln.Gamma, head) {
		ln.Scale, ln.Gamma, ln.Shift, ln.Beta = nil, "", nil, ""
	}
	if ln.Shift != nil && !f.perf2DefinedBefore(ln.Beta, head) {
		ln.Shift, ln.Beta = nil, ""
	}
	return &perf2Match{kind: "LayerNorm", x: ln.X, y: ln.Out(), axis: ln.Axis, eps: float32(ln.Eps),
		gamma: ln.Gamma, beta: ln.Beta, nodes: f.perf2Indices(ln.Nodes())}
}

// perf2Index returns the index of node n in the graph, or -1.
func (f *perfFuser) perf2Index(n *graph.Node) int {
	if k, ok := f.index[n]; ok && n != nil {
		return k
	}
	return -1
}

// perf2MatchMatMulAdd matches y = Add(MatMul(x, W), b) ending at the Add
// at node i (pattern.MatchMatMulAdd), where b is of rank <= 1 with 1 or N
// (W's columns) values: then the sum has exactly MatMul's shape (rank
// >= 1, last dimension N), and x must be float32 for MatMul to accept it,
// so the bias can be added in place. W and b must be defined before the
// MatMul, where the fused step runs.
func (f *perfFuser) perf2MatchMatMulAdd(i int) *perf2Match {
	m, why := pattern.MatchMatMulAdd(f.view, f.g.Nodes[i])
	if why != nil || m.X == "" || m.MatMul.Outputs[0] == "" {
		return nil
	}
	mi := f.perf2Index(m.MatMul)
	b := m.BT
	if !f.perf2DefinedBefore(m.W, mi) || len(b.Dims) > 1 || (b.Len() != 1 && b.Len() != m.WT.Dims[1]) || !f.perf2DefinedBefore(m.Bias, mi) {
		return nil
	}
	return &perf2Match{kind: "MatMulAdd", x: m.X, y: m.Add.Outputs[0], w: m.W, bias: m.Bias, nodes: []int{mi, i}}
}

// perf2DefinedBefore reports whether value name exists before node i runs
// (an initializer, or the output of an earlier node).
func (f *perfFuser) perf2DefinedBefore(name string, i int) bool {
	if _, ok := f.p.slots[name]; ok {
		return true
	}
	k := f.perf2Index(f.producer[name])
	return k >= 0 && k < i
}

// perf2MatMulAddBuild builds MatMul's own kernel for the fused step and
// adds the bias to its output in place.
func (f *perfFuser) perf2MatMulAddBuild(mm *graph.Node) Builder {
	opset := f.opset("")
	return func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		mmb, ok := lookup("", "MatMul")
		if !ok {
			return nil, fmt.Errorf("no MatMul kernel")
		}
		mbc := &BuildContext{Opset: opset, Threads: bc.Threads, prog: bc.prog, node: mm, model: bc.model,
			consts: []*runtime.Tensor{bc.Const(0), bc.Const(1)}}
		k, err := mmb(mm, mbc)
		if err != nil {
			return nil, err
		}
		return func(c *Call) error {
			if err := k(c); err != nil {
				return err
			}
			y, bt := c.outs[0], c.In[2]
			if y == nil || bt == nil || y.DType != graph.Float || bt.DType != graph.Float || len(y.Shape) == 0 {
				return fmt.Errorf("interp: %s: internal error: unexpected MatMul output for the fused bias", c.Node)
			}
			yv, b := y.Float32s(), bt.Float32s()
			N := int(y.Shape[len(y.Shape)-1])
			if len(b) != 1 && len(b) != N {
				return fmt.Errorf("interp: %s: internal error: bias of %d values for output %v", c.Node, len(b), y.Shape)
			}
			if len(b) == 1 || N == 0 {
				s := b[0]
				for i := range yv {
					yv[i] += s
				}
				return nil
			}
			b = b[:N]
			for r := 0; r+N <= len(yv); r += N {
				row := yv[r : r+N]
				for j, v := range b {
					row[j] += v
				}
			}
			return nil
		}, nil
	}
}

// perf2Make builds the fused node and its builder for m, placed at head.
func (f *perfFuser) perf2Make(m *perf2Match, head *graph.Node) *perf2Fused {
	nodes := make([]*graph.Node, 0, len(m.nodes))
	for k, n := range f.g.Nodes {
		for _, j := range m.nodes {
			if j == k {
				nodes = append(nodes, n)
			}
		}
	}
	fn := &graph.Node{Name: head.Name, OpType: m.kind, Domain: "interp.perf2", Inputs: []string{m.x}, Outputs: []string{m.y}}
	if m.kind == "MatMulAdd" {
		fn.Inputs = []string{m.x, m.w, m.bias}
		return &perf2Fused{node: fn, build: f.perf2MatMulAddBuild(head)}
	}
	if m.kind == "LayerNorm" {
		fn.Inputs = append(fn.Inputs, m.gamma, m.beta)
	}
	p := f.p
	producer := f.producer
	build := func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		fb, err := perf2Fallback(p, producer, nodes, m)
		if err != nil {
			return nil, err
		}
		if m.kind == "Gelu" {
			return perf2GeluKernel(fb), nil
		}
		return (&perf2LN{m: m, fb: fb}).run, nil
	}
	return &perf2Fused{node: fn, build: build}
}

// perf2Fallback compiles the pattern's own nodes as a program of p with
// one input (x) and one output (y), for the shapes and dtypes the fused
// step does not handle. Constant nodes the schedule has not reached yet
// come along.
func perf2Fallback(p *Program, producer map[string]*graph.Node, nodes []*graph.Node, m *perf2Match) (*Program, error) {
	var pre []*graph.Node
	seen := map[*graph.Node]bool{}
	for _, n := range nodes {
		for _, in := range n.Inputs {
			if in == "" || in == m.x {
				continue
			}
			if _, ok := p.slots[in]; ok {
				continue
			}
			if k := producer[in]; k != nil && k.Is("Constant") && !seen[k] {
				seen[k] = true
				pre = append(pre, k)
			}
		}
	}
	g := &graph.Graph{Name: "interp.perf2." + m.kind, Nodes: append(pre, nodes...),
		Inputs: []*graph.ValueInfo{{Name: m.x}}, Outputs: []*graph.ValueInfo{{Name: m.y}}}
	child := newProgram(p.model, g, p, p.shared)
	child.perf2NoFuse = true
	if err := child.compile(false); err != nil {
		return nil, err
	}
	return child, nil
}

// perf2RunFallback runs the unfused nodes and passes their result through.
func perf2RunFallback(c *Call, fb *Program) error {
	res, err := c.RunSubgraph(fb, c.In[:1])
	if err != nil {
		return err
	}
	c.SetOut(0, res[0])
	return nil
}

func perf2GeluKernel(fb *Program) Kernel {
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || x.DType != graph.Float || len(x.Shape) == 0 {
			// Rank 0: a [1] constant would broadcast the result to [1].
			return perf2RunFallback(c, fb)
		}
		y, err := c.Out(0, graph.Float, x.Shape)
		if err != nil {
			return err
		}
		src, dst := x.Float32s(), y.Float32s()
		if len(src) >= 1<<14 && c.Threads() > 1 {
			c.Parallel(len(src), func(lo, hi int) { perf2Gelu(dst[lo:hi], src[lo:hi]) })
		} else {
			perf2Gelu(dst, src)
		}
		return nil
	}
}

type perf2LN struct {
	m  *perf2Match
	fb *Program
}

func (l *perf2LN) run(c *Call) error {
	x := c.In[0]
	if x == nil || x.DType != graph.Float || len(x.Shape) == 0 {
		return perf2RunFallback(c, l.fb)
	}
	r := int64(len(x.Shape))
	H := int(x.Shape[r-1])
	ax := l.m.axis
	if ax < 0 {
		ax += r
	}
	var gamma, beta []float32
	if c.In[1] != nil {
		gamma = c.In[1].Float32s()
	}
	if c.In[2] != nil {
		beta = c.In[2].Float32s()
	}
	vecOK := func(v []float32, t *runtime.Tensor) bool {
		return t == nil || (t.DType == graph.Float && (len(v) == 1 || len(v) == H))
	}
	if ax != r-1 || H <= 0 || !vecOK(gamma, c.In[1]) || !vecOK(beta, c.In[2]) {
		return perf2RunFallback(c, l.fb)
	}
	y, err := c.Out(0, graph.Float, x.Shape)
	if err != nil {
		return err
	}
	xv, yv := x.Float32s(), y.Float32s()
	rows := len(xv) / H
	body := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			perf2LNRow(yv[i*H:(i+1)*H], xv[i*H:(i+1)*H], gamma, beta, l.m.eps)
		}
	}
	if rows*H >= 1<<15 && c.Threads() > 1 {
		c.Parallel(rows, body)
	} else {
		body(0, rows)
	}
	return nil
}
