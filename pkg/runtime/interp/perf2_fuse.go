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

import (
	"fmt"
	"math"

	"github.com/optictl/optictl/pkg/graph"
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
		case "Div", "Mul":
			m = f.perf2MatchGelu(i)
		case "ReduceMean":
			m = f.perf2MatchLN(i)
		case "MatMul":
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

// perf2Node returns node k when it is a default-domain op of that type with
// nin inputs and one output.
func (f *perfFuser) perf2Node(k int, op string, nin int) *graph.Node {
	if k < 0 {
		return nil
	}
	n := f.g.Nodes[k]
	if !n.Is(op) || len(n.Inputs) != nin || len(n.Outputs) != 1 || n.Outputs[0] == "" {
		return nil
	}
	return n
}

// perf2Other returns the operand of binary node n that is not v.
func perf2Other(n *graph.Node, v string) (string, bool) {
	switch {
	case n.Inputs[0] == v && n.Inputs[1] != v:
		return n.Inputs[1], true
	case n.Inputs[1] == v && n.Inputs[0] != v:
		return n.Inputs[0], true
	}
	return "", false
}

// perf2Scalar returns the value of a one-element float32 constant of rank
// ≤ 1 (so it never raises the rank of what it broadcasts against, beyond
// the rank-0 case checked at run time).
func (f *perfFuser) perf2Scalar(name string) (float32, bool) {
	return perfScalar(f.constF32(name), 1)
}

func perf2Near(v float32, want float64) bool {
	return math.Abs(float64(v)-want) <= 1e-6*math.Abs(want)
}

// perf2MatchGelu matches the GELU pattern whose Div (or Mul by 1/√2) is
// node i.
func (f *perfFuser) perf2MatchGelu(i int) *perf2Match {
	n := f.g.Nodes[i]
	if len(n.Inputs) != 2 || len(n.Outputs) != 1 || n.Outputs[0] == "" {
		return nil
	}
	x := n.Inputs[0]
	c, ok := f.perf2Scalar(n.Inputs[1])
	if n.OpType == "Mul" && !ok {
		x = n.Inputs[1]
		c, ok = f.perf2Scalar(n.Inputs[0])
	}
	if !ok || x == "" || f.constF32(x) != nil {
		return nil
	}
	if n.OpType == "Div" && !perf2Near(c, math.Sqrt2) || n.OpType == "Mul" && !perf2Near(c, 1/math.Sqrt2) {
		return nil
	}
	t := n.Outputs[0]
	ke := f.only(t, -1)
	erf := f.perf2Node(ke, "Erf", 1)
	if erf == nil {
		return nil
	}
	ka := f.only(erf.Outputs[0], -1)
	add := f.perf2Node(ka, "Add", 2)
	if add == nil {
		return nil
	}
	if o, ok := perf2Other(add, erf.Outputs[0]); !ok {
		return nil
	} else if one, ok := f.perf2Scalar(o); !ok || one != 1 {
		return nil
	}
	a := add.Outputs[0]
	km := f.only(a, -1)
	mul := f.perf2Node(km, "Mul", 2)
	if mul == nil {
		return nil
	}
	q, ok := perf2Other(mul, a)
	if !ok {
		return nil
	}
	m := &perf2Match{kind: "Gelu", x: x, nodes: []int{i, ke, ka, km}}
	isHalf := func(mn *graph.Node, v string) bool {
		o, ok := perf2Other(mn, v)
		if !ok {
			return false
		}
		h, ok := f.perf2Scalar(o)
		return ok && h == 0.5
	}
	if q == x {
		// y = Mul(Mul(x, a), 0.5)
		kh := f.only(mul.Outputs[0], -1)
		half := f.perf2Node(kh, "Mul", 2)
		if half == nil || !isHalf(half, mul.Outputs[0]) {
			return nil
		}
		m.nodes, m.y = append(m.nodes, kh), half.Outputs[0]
	} else {
		// y = Mul(Mul(x, 0.5), a): q's producer is Mul(x, 0.5) with mul as
		// its only consumer.
		if f.only(q, -1) != km {
			return nil
		}
		kh := f.perf2Index(f.producer[q])
		half := f.perf2Node(kh, "Mul", 2)
		if half == nil || !isHalf(half, x) {
			return nil
		}
		m.nodes, m.y = append(m.nodes, kh), mul.Outputs[0]
	}
	return m
}

// perf2ReduceAxis returns the single axis of a ReduceMean with
// keepdims=1, from its attribute or (opset ≥ 18) constant input.
func (f *perfFuser) perf2ReduceAxis(n *graph.Node) (int64, bool) {
	if len(n.Outputs) != 1 || n.Outputs[0] == "" || n.AttrInt("keepdims", 1) != 1 {
		return 0, false
	}
	var axes []int64
	if f.opset("") < 18 {
		if len(n.Inputs) != 1 {
			return 0, false
		}
		axes = n.AttrInts("axes")
	} else {
		if len(n.Inputs) != 2 || n.Inputs[1] == "" {
			return 0, false
		}
		var t *runtime.Tensor
		if s, ok := f.p.slots[n.Inputs[1]]; ok {
			t = f.constOf[s]
		} else if k := f.producer[n.Inputs[1]]; k != nil && k.Is("Constant") && len(k.Attrs) == 1 {
			if v := k.AttrTensor("value"); v != nil {
				t = runtime.FromGraphTensor(v)
			}
		}
		if t == nil || t.DType != graph.Int64 || t.Len() != 1 || len(t.Raw) != 8 {
			return 0, false
		}
		axes = t.Int64s()
	}
	if len(axes) != 1 {
		return 0, false
	}
	return axes[0], true
}

// perf2MatchLN matches the written-out LayerNormalization whose first
// ReduceMean is node i.
func (f *perfFuser) perf2MatchLN(i int) *perf2Match {
	r1 := f.g.Nodes[i]
	axis, ok := f.perf2ReduceAxis(r1)
	if !ok {
		return nil
	}
	x, mean := r1.Inputs[0], r1.Outputs[0]
	if x == "" || f.constF32(x) != nil {
		return nil
	}
	ks := f.only(mean, -1)
	sub := f.perf2Node(ks, "Sub", 2)
	if sub == nil || sub.Inputs[0] != x || sub.Inputs[1] != mean {
		return nil
	}
	d := sub.Outputs[0]
	// d feeds the square (once, or twice as Mul(d, d)) and the Div.
	if f.uses[d] != len(f.consumers[d]) {
		return nil
	}
	kq, kd := -1, -1
	for _, k := range f.consumers[d] {
		switch nn := f.g.Nodes[k]; {
		case nn.Is("Div") && kd < 0:
			kd = k
		case (nn.Is("Pow") || nn.Is("Mul")) && (kq < 0 || kq == k):
			kq = k
		default:
			return nil
		}
	}
	var sq *graph.Node
	if sq = f.perf2Node(kq, "Pow", 2); sq != nil {
		if e, ok := f.perf2Scalar(sq.Inputs[1]); !ok || e != 2 || sq.Inputs[0] != d {
			return nil
		}
	} else if sq = f.perf2Node(kq, "Mul", 2); sq == nil || sq.Inputs[0] != d || sq.Inputs[1] != d {
		return nil
	}
	if n := 1 + btoi(sq.Is("Mul")); len(f.consumers[d]) != n+1 {
		return nil
	}
	kr := f.only(sq.Outputs[0], -1)
	r2 := f.perf2Node(kr, "ReduceMean", len(r1.Inputs))
	if r2 == nil || r2.Inputs[0] != sq.Outputs[0] {
		return nil
	}
	if a2, ok := f.perf2ReduceAxis(r2); !ok || a2 != axis {
		return nil
	}
	ka := f.only(r2.Outputs[0], -1)
	add := f.perf2Node(ka, "Add", 2)
	if add == nil {
		return nil
	}
	o, ok := perf2Other(add, r2.Outputs[0])
	if !ok {
		return nil
	}
	eps, ok := f.perf2Scalar(o)
	if !ok {
		return nil
	}
	kt := f.only(add.Outputs[0], -1)
	sqrt := f.perf2Node(kt, "Sqrt", 1)
	if sqrt == nil {
		return nil
	}
	div := f.perf2Node(f.only(sqrt.Outputs[0], -1), "Div", 2)
	if div == nil || f.only(sqrt.Outputs[0], -1) != kd || div.Inputs[0] != d || div.Inputs[1] != sqrt.Outputs[0] {
		return nil
	}
	m := &perf2Match{kind: "LayerNorm", x: x, axis: axis, eps: eps, nodes: []int{i, ks, kq, kr, ka, kt, kd}}
	y := div.Outputs[0]
	vecConst := func(name string) bool {
		// gamma and beta are inputs of the fused step at i: defined before.
		t := f.constF32(name)
		if !f.perf2DefinedBefore(name, i) {
			return false
		}
		return t != nil && len(t.Shape) <= 1 && t.Len() >= 1
	}
	// Optional scale then shift.
	for _, op := range []string{"Mul", "Add"} {
		k := f.only(y, -1)
		nn := f.perf2Node(k, op, 2)
		if nn == nil {
			continue
		}
		o, ok := perf2Other(nn, y)
		if !ok || !vecConst(o) {
			continue
		}
		if op == "Mul" {
			m.gamma = o
		} else {
			m.beta = o
		}
		m.nodes = append(m.nodes, k)
		y = nn.Outputs[0]
	}
	m.y = y
	return m
}

// perf2Index returns the index of node n in the graph, or -1.
func (f *perfFuser) perf2Index(n *graph.Node) int {
	if n == nil {
		return -1
	}
	for k, nn := range f.g.Nodes {
		if nn == n {
			return k
		}
	}
	return -1
}

// perf2MatchMatMulAdd matches y = Add(MatMul(x, W), b) (either Add
// order) where W is a rank-2 float32 constant and b a float32 constant of
// rank ≤ 1 with 1 or N (W's columns) values: then the sum has exactly
// MatMul's shape (rank ≥ 1, last dimension N), and x must be float32 for
// MatMul to accept it, so the bias can be added in place.
func (f *perfFuser) perf2MatchMatMulAdd(i int) *perf2Match {
	mm := f.perf2Node(i, "MatMul", 2)
	if mm == nil || mm.Inputs[0] == "" || f.constF32(mm.Inputs[0]) != nil {
		return nil
	}
	w := f.constF32(mm.Inputs[1])
	if w == nil || len(w.Shape) != 2 || !f.perf2DefinedBefore(mm.Inputs[1], i) {
		return nil
	}
	ka := f.only(mm.Outputs[0], -1)
	add := f.perf2Node(ka, "Add", 2)
	if add == nil {
		return nil
	}
	o, ok := perf2Other(add, mm.Outputs[0])
	if !ok {
		return nil
	}
	b := f.constF32(o)
	if b == nil || len(b.Shape) > 1 || (b.Len() != 1 && int64(b.Len()) != w.Shape[1]) || !f.perf2DefinedBefore(o, i) {
		return nil
	}
	return &perf2Match{kind: "MatMulAdd", x: mm.Inputs[0], y: add.Outputs[0], w: mm.Inputs[1], bias: o, nodes: []int{i, ka}}
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

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
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
