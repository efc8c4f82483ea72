package prune

import (
	"fmt"
	"math"
	"sort"

	"github.com/optictl/optictl/pkg/graph"
)

// Structured channel pruning.
//
// Before: Y = Conv(X, W[C,...], B[C]); Z = Relu(BN(Y)); V = Conv(Z, W2[D,C,...])
// After:  the same ops with W[C',...], B[C'], BN's four parameters [C'] and
//         W2[D,C',...], where C' keeps the channels of largest filter norm.
//
// Every value that carries pruned channels has a layout: the axis (counted
// from the end) and the list of channel segments along it, each segment a
// "space" (the output channels of one source layer). Concat joins segments;
// binary elementwise ops tie spaces together (union-find). A space whose
// channels reach anything the analysis cannot follow is blocked, and with
// it its whole tie group.

type seg struct{ space, n int }

type layout struct {
	neg  int // channel axis counted from the end (-1 = last)
	rank int // -1 when unknown
	segs []seg
}

func (l *layout) size() int {
	s := 0
	for _, g := range l.segs {
		s += g.n
	}
	return s
}

// channelAxis reports whether the layout's axis is axis 1 of a known rank.
func (l *layout) channelAxis() bool { return l.rank >= 2 && l.neg == 1-l.rank }

type source struct {
	node   *graph.Node
	weight *graph.Tensor
	outDim int // weight dim holding the output channels
}

type space struct {
	n       int
	src     *source // nil for a pseudo space (untracked channels in a Concat)
	blocked string
}

type action struct {
	node  *graph.Node
	input int
	dim   int
	segs  []seg
}

type analyzer struct {
	m      *graph.Model
	g      *graph.Graph
	inits  map[string]*graph.Tensor
	vis    map[string]*graph.ValueInfo
	excl   map[string]bool
	spaces []*space
	parent []int
	lay    map[string]*layout
	acts   []action
	groups []action // depthwise Conv group attribute updates (input, dim unused)
}

func (a *analyzer) find(x int) int {
	for a.parent[x] != x {
		a.parent[x] = a.parent[a.parent[x]]
		x = a.parent[x]
	}
	return x
}

func (a *analyzer) union(x, y int) {
	x, y = a.find(x), a.find(y)
	if x != y {
		a.parent[y] = x
	}
}

func (a *analyzer) newSpace(n int, src *source, blocked string) int {
	a.spaces = append(a.spaces, &space{n: n, src: src, blocked: blocked})
	a.parent = append(a.parent, len(a.parent))
	return len(a.spaces) - 1
}

func (a *analyzer) block(l *layout, reason string) {
	if l == nil {
		return
	}
	for _, s := range l.segs {
		if a.spaces[s.space].blocked == "" {
			a.spaces[s.space].blocked = reason
		}
	}
}

func (a *analyzer) rank(name string) int {
	if v := a.vis[name]; v != nil && v.HasShape && v.IsTensor() {
		return len(v.Shape)
	}
	return -1
}

func (a *analyzer) constT(name string) *graph.Tensor { return constInit(a.inits, name) }

// sliceable reports whether t's bytes can be sliced along dim with n entries.
func sliceable(t *graph.Tensor, dim, n int) bool {
	if t == nil || t.DType == graph.String || !t.DType.Known() || t.DType.BitSize()%8 != 0 {
		return false
	}
	return dim >= 0 && dim < len(t.Dims) && t.Dims[dim] == int64(n) && t.Validate() == nil
}

// act records that input i of n (a constant) is sliced along dim by l's
// channels; it blocks l and reports false when that is impossible.
func (a *analyzer) act(n *graph.Node, i, dim int, l *layout, what string) bool {
	if i >= len(n.Inputs) || !sliceable(a.constT(n.Inputs[i]), dim, l.size()) {
		a.block(l, fmt.Sprintf("%s of %s is not a constant of %d channels", what, n, l.size()))
		return false
	}
	a.acts = append(a.acts, action{node: n, input: i, dim: dim, segs: l.segs})
	return true
}

var unaryOps = map[string]bool{
	"Relu": true, "Sigmoid": true, "Tanh": true, "HardSigmoid": true, "LeakyRelu": true, "Elu": true,
	"Selu": true, "Celu": true, "HardSwish": true, "Softplus": true, "Softsign": true, "Abs": true,
	"Neg": true, "Exp": true, "Erf": true, "Identity": true, "Gelu": true, "Mish": true,
	"ThresholdedRelu": true, "Sqrt": true, "Reciprocal": true, "Floor": true, "Ceil": true,
	"Round": true, "Sign": true, "Sin": true, "Cos": true, "Log": true, "Clip": true, "Dropout": true,
}

var binaryOps = map[string]bool{"Add": true, "Sub": true, "Mul": true, "Div": true, "Max": true, "Min": true,
	"Sum": true, "Mean": true, "PRelu": true, "Pow": true}

var poolOps = map[string]bool{"MaxPool": true, "AveragePool": true, "LpPool": true,
	"GlobalAveragePool": true, "GlobalMaxPool": true, "GlobalLpPool": true}

func (a *analyzer) node(n *graph.Node) {
	in := make([]*layout, len(n.Inputs))
	has := false
	for i, name := range n.Inputs {
		if l := a.lay[name]; l != nil && name != "" {
			in[i], has = l, true
		}
	}
	for _, sg := range n.Subgraphs() {
		for name := range sg.OuterReads() {
			a.block(a.lay[name], fmt.Sprintf("read inside a subgraph of %s", n))
		}
	}
	blockAll := func(reason string) {
		for _, l := range in {
			a.block(l, reason)
		}
	}
	if len(n.Inputs) == 0 || len(n.Outputs) == 0 || n.Outputs[0] == "" {
		blockAll(fmt.Sprintf("%s has no inputs or no first output", n))
		return
	}
	if a.excl[n.Name] {
		blockAll(fmt.Sprintf("flows into excluded %s", n))
		return
	}
	if !n.IsDefaultDomain() {
		blockAll(fmt.Sprintf("flows into %s, which pruning does not follow", n))
		return
	}
	out0 := ""
	if len(n.Outputs) > 0 {
		out0 = n.Outputs[0]
	}
	extraOutputs := false
	for _, o := range n.Outputs[min(1, len(n.Outputs)):] {
		extraOutputs = extraOutputs || o != ""
	}
	switch op := n.OpType; {
	case op == "Conv":
		a.conv(n, in)
	case op == "Gemm":
		a.gemm(n, in)
	case op == "MatMul":
		a.matmul(n, in)
	case !has:
		return
	case op == "BatchNormalization":
		l := in[0]
		for _, x := range in[1:] {
			a.block(x, fmt.Sprintf("is a parameter of %s", n))
		}
		if l == nil {
			return
		}
		if !l.channelAxis() || extraOutputs || len(n.Inputs) != 5 {
			a.block(l, fmt.Sprintf("%s: channel axis or outputs not followed", n))
			return
		}
		for i := 1; i <= 4; i++ {
			if !a.act(n, i, 0, l, "parameter") {
				return
			}
		}
		a.lay[out0] = l
	case unaryOps[op] || poolOps[op]:
		l := in[0]
		for _, x := range in[1:] {
			a.block(x, fmt.Sprintf("is a parameter of %s", n))
		}
		if l == nil {
			return
		}
		if extraOutputs || (poolOps[op] && !l.channelAxis()) {
			a.block(l, fmt.Sprintf("%s: channel axis or outputs not followed", n))
			return
		}
		if op == "Clip" {
			for _, p := range n.Inputs[1:] {
				if p != "" && a.constT(p) == nil {
					a.block(l, fmt.Sprintf("%s has non-constant bounds", n))
					return
				}
			}
		}
		a.lay[out0] = &layout{neg: l.neg, rank: l.rank, segs: l.segs}
	case binaryOps[op]:
		a.binary(n, in)
	case op == "Concat":
		a.concat(n, in)
	case op == "Flatten":
		l := in[0]
		shape := a.vis[n.Inputs[0]]
		ok := l != nil && l.channelAxis() && n.AttrInt("axis", 1) == 1 && shape != nil && shape.HasShape && len(shape.Shape) >= 2
		if ok {
			for _, d := range shape.Shape[2:] {
				ok = ok && d.Size == 1
			}
		}
		if !ok {
			blockAll(fmt.Sprintf("%s does not keep channels on one axis", n))
			return
		}
		a.lay[out0] = &layout{neg: -1, rank: 2, segs: l.segs}
	case op == "Transpose":
		l := in[0]
		if l == nil || l.rank < 0 {
			blockAll(fmt.Sprintf("%s: rank unknown", n))
			return
		}
		perm := n.AttrInts("perm")
		if perm == nil {
			for i := l.rank - 1; i >= 0; i-- {
				perm = append(perm, int64(i))
			}
		}
		abs := int64(l.rank + l.neg)
		for j, p := range perm {
			if p == abs && len(perm) == l.rank {
				a.lay[out0] = &layout{neg: j - l.rank, rank: l.rank, segs: l.segs}
				return
			}
		}
		a.block(l, fmt.Sprintf("%s: bad perm", n))
	default:
		blockAll(fmt.Sprintf("flows into %s, which pruning does not follow", n))
	}
}

func (a *analyzer) conv(n *graph.Node, in []*layout) {
	for _, x := range in[min(1, len(in)):] {
		a.block(x, fmt.Sprintf("is a weight of %s", n))
	}
	if len(n.Inputs) < 2 {
		a.block(in[0], fmt.Sprintf("%s has no weight", n))
		return
	}
	w := a.constT(n.Inputs[1])
	group := n.AttrInt("group", 1)
	if l := in[0]; l != nil {
		c := int64(l.size())
		switch {
		case !l.channelAxis() || w == nil || len(w.Dims) < 3:
			a.block(l, fmt.Sprintf("%s has no constant weight or channels not on axis 1", n))
		case group == 1:
			a.act(n, 1, 1, l, "weight")
		case group == c && w.Dims[0] == c && w.Dims[1] == 1:
			// Depthwise: channels pass through to the output.
			if !a.act(n, 1, 0, l, "weight") {
				return
			}
			if len(n.Inputs) > 2 && n.Inputs[2] != "" && !a.act(n, 2, 0, l, "bias") {
				return
			}
			a.groups = append(a.groups, action{node: n, segs: l.segs})
			a.lay[n.Outputs[0]] = &layout{neg: l.neg, rank: l.rank, segs: l.segs}
			return
		default:
			a.block(l, fmt.Sprintf("%s is a grouped convolution (group %d)", n, group))
		}
	}
	// As a source of prunable output channels.
	if w == nil || group != 1 || len(w.Dims) < 3 || w.DType != graph.Float || w.Dims[0] < 2 || w.Validate() != nil {
		return
	}
	cout := int(w.Dims[0])
	if len(n.Inputs) > 2 && n.Inputs[2] != "" && !sliceable(a.constT(n.Inputs[2]), 0, cout) {
		return
	}
	s := a.newSpace(cout, &source{node: n, weight: w, outDim: 0}, "")
	l := &layout{neg: 1 - len(w.Dims), rank: len(w.Dims), segs: []seg{{s, cout}}}
	a.act(n, 1, 0, l, "weight")
	if len(n.Inputs) > 2 && n.Inputs[2] != "" {
		a.act(n, 2, 0, l, "bias")
	}
	a.lay[n.Outputs[0]] = l
}

func (a *analyzer) gemm(n *graph.Node, in []*layout) {
	for _, x := range in[min(1, len(in)):] {
		a.block(x, fmt.Sprintf("is a weight of %s", n))
	}
	if len(n.Inputs) < 2 {
		a.block(in[0], fmt.Sprintf("%s has no weight", n))
		return
	}
	b := a.constT(n.Inputs[1])
	transB := n.AttrInt("transB", 0)
	if l := in[0]; l != nil {
		if n.AttrInt("transA", 0) != 0 || l.neg != -1 || b == nil || len(b.Dims) != 2 {
			a.block(l, fmt.Sprintf("%s: channels do not map to weight rows", n))
		} else {
			a.act(n, 1, int(transB), l, "weight")
		}
	}
	if b == nil || len(b.Dims) != 2 || b.DType != graph.Float || b.Validate() != nil {
		return
	}
	od := 1 - int(transB)
	cout := int(b.Dims[od])
	if cout < 2 {
		return
	}
	var ct *graph.Tensor
	if len(n.Inputs) > 2 && n.Inputs[2] != "" {
		ct = a.constT(n.Inputs[2])
		if ct == nil {
			return
		}
		if len(ct.Dims) > 0 && ct.Dims[len(ct.Dims)-1] != 1 && !sliceable(ct, len(ct.Dims)-1, cout) {
			return
		}
	}
	s := a.newSpace(cout, &source{node: n, weight: b, outDim: od}, "")
	l := &layout{neg: -1, rank: 2, segs: []seg{{s, cout}}}
	a.act(n, 1, od, l, "weight")
	if ct != nil && len(ct.Dims) > 0 && ct.Dims[len(ct.Dims)-1] != 1 {
		a.act(n, 2, len(ct.Dims)-1, l, "bias")
	}
	a.lay[n.Outputs[0]] = l
}

func (a *analyzer) matmul(n *graph.Node, in []*layout) {
	if len(in) != 2 {
		for _, x := range in {
			a.block(x, fmt.Sprintf("%s is malformed", n))
		}
		return
	}
	a.block(in[1], fmt.Sprintf("is the right operand of %s", n))
	b := a.constT(n.Inputs[1])
	if l := in[0]; l != nil {
		if l.neg != -1 || b == nil || len(b.Dims) != 2 {
			a.block(l, fmt.Sprintf("%s: channels do not map to weight rows", n))
		} else {
			a.act(n, 1, 0, l, "weight")
		}
	}
	if b == nil || len(b.Dims) != 2 || b.DType != graph.Float || b.Dims[1] < 2 || b.Validate() != nil {
		return
	}
	cout := int(b.Dims[1])
	s := a.newSpace(cout, &source{node: n, weight: b, outDim: 1}, "")
	l := &layout{neg: -1, rank: a.rank(n.Outputs[0]), segs: []seg{{s, cout}}}
	a.act(n, 1, 1, l, "weight")
	a.lay[n.Outputs[0]] = l
}

func (a *analyzer) binary(n *graph.Node, in []*layout) {
	var ls []*layout
	for _, l := range in {
		if l != nil {
			ls = append(ls, l)
		}
	}
	blockAll := func(reason string) {
		for _, l := range ls {
			a.block(l, reason)
		}
	}
	first := ls[0]
	for i, name := range n.Inputs {
		switch {
		case in[i] != nil:
			l := in[i]
			if l.neg != first.neg || len(l.segs) != len(first.segs) {
				blockAll(fmt.Sprintf("%s joins channels on different axes or layouts", n))
				return
			}
			for j := range l.segs {
				if l.segs[j].n != first.segs[j].n {
					blockAll(fmt.Sprintf("%s joins channels with different segment layouts", n))
					return
				}
			}
		case name == "":
		case a.constT(name) != nil:
			t := a.constT(name)
			idx := len(t.Dims) + first.neg
			if idx >= 0 && t.Dims[idx] != 1 && !a.act(n, i, idx, first, "constant operand") {
				return
			}
		default:
			blockAll(fmt.Sprintf("%s input %d (%q) is not a tracked channel value (tie group cannot be followed)", n, i, name))
			return
		}
	}
	if len(n.Outputs) != 1 {
		blockAll(fmt.Sprintf("%s has extra outputs", n))
		return
	}
	for _, l := range ls[1:] {
		for j := range l.segs {
			a.union(first.segs[j].space, l.segs[j].space)
		}
	}
	a.lay[n.Outputs[0]] = &layout{neg: first.neg, rank: a.rank(n.Outputs[0]), segs: first.segs}
}

func (a *analyzer) concat(n *graph.Node, in []*layout) {
	r := a.rank(n.Outputs[0])
	axis := n.AttrInt("axis", 0)
	blockAll := func(reason string) {
		for _, l := range in {
			a.block(l, reason)
		}
	}
	if r < 1 || axis < -int64(r) || axis >= int64(r) {
		blockAll(fmt.Sprintf("%s: rank or axis unknown", n))
		return
	}
	if axis < 0 {
		axis += int64(r)
	}
	neg := int(axis) - r
	var segs []seg
	for i, name := range n.Inputs {
		l := in[i]
		if l != nil {
			if l.neg != neg {
				blockAll(fmt.Sprintf("%s concatenates along another axis than the channels", n))
				return
			}
			segs = append(segs, l.segs...)
			continue
		}
		v := a.vis[name]
		if v == nil || !v.HasShape || len(v.Shape) != r || v.Shape[axis].Size < 0 {
			blockAll(fmt.Sprintf("%s input %d has an unknown size", n, i))
			return
		}
		if v.Shape[axis].Size == 0 {
			continue
		}
		s := a.newSpace(int(v.Shape[axis].Size), nil, fmt.Sprintf("untracked channels in %s", n))
		segs = append(segs, seg{s, int(v.Shape[axis].Size)})
	}
	a.lay[n.Outputs[0]] = &layout{neg: neg, rank: r, segs: segs}
}

// structured runs the analysis and surgery on m (a clone owned by Prune).
func structured(m *graph.Model, opts Options, rep *Report) error {
	g := m.Graph
	ac := m.Clone()
	if _, err := graph.InferShapes(ac, graph.InferOptions{}); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	a := &analyzer{m: m, g: g, inits: constMap(m), vis: ac.Graph.ValueInfoMap(), excl: exclusions(opts), lay: map[string]*layout{}}
	for _, n := range g.Nodes {
		a.node(n)
	}
	for _, o := range g.Outputs {
		a.block(a.lay[o.Name], fmt.Sprintf("reaches graph output %q", o.Name))
	}

	// Tie groups.
	type group struct {
		id      int
		members []int
		blocked string
		n       int
		score   []float64
		keep    []int // nil: keep all
	}
	groups := map[int]*group{}
	var order []*group
	for s := range a.spaces {
		r := a.find(s)
		gr := groups[r]
		if gr == nil {
			gr = &group{id: len(order) + 1, n: a.spaces[s].n}
			groups[r] = gr
			order = append(order, gr)
		}
		gr.members = append(gr.members, s)
		if b := a.spaces[s].blocked; b != "" && gr.blocked == "" {
			gr.blocked = b
		}
		if a.spaces[s].n != gr.n && gr.blocked == "" {
			gr.blocked = "tied layers disagree on the channel count"
		}
	}
	var cands []*group
	for _, gr := range order {
		var names []string
		for _, s := range gr.members {
			if src := a.spaces[s].src; src != nil {
				names = append(names, src.node.Name)
			}
		}
		if len(names) == 0 {
			continue
		}
		if gr.blocked != "" {
			rep.Skipped = append(rep.Skipped, Skip{Nodes: names, Reason: gr.blocked})
			continue
		}
		gr.score = make([]float64, gr.n)
		for _, s := range gr.members {
			src := a.spaces[s].src
			sc, err := channelNorms(src.weight, src.outDim, opts.Norm)
			if err != nil {
				return fmt.Errorf("prune: %s: %w", src.node, err)
			}
			for i, v := range sc {
				gr.score[i] += v / float64(len(gr.members))
			}
		}
		cands = append(cands, gr)
	}
	prunedOf := map[*group]map[int]bool{}
	if opts.Global {
		type ch struct {
			g     *group
			i     int
			score float64
		}
		var all []ch
		for _, gr := range cands {
			for i, v := range gr.score {
				all = append(all, ch{gr, i, v})
			}
		}
		sort.SliceStable(all, func(i, j int) bool { return all[i].score < all[j].score })
		k := roundCount(opts.Fraction, len(all))
		left := map[*group]int{}
		for _, gr := range cands {
			left[gr] = gr.n
			prunedOf[gr] = map[int]bool{}
		}
		for _, c := range all {
			if k == 0 {
				break
			}
			if left[c.g] > 1 {
				prunedOf[c.g][c.i] = true
				left[c.g]--
				k--
			}
		}
	} else {
		for _, gr := range cands {
			frac := opts.Fraction
			if opts.PerLayer != nil {
				frac = 0
				for _, s := range gr.members {
					if src := a.spaces[s].src; src != nil {
						if f, ok := opts.PerLayer[src.node.Name]; ok {
							frac = f
							break
						}
					}
				}
			}
			k := roundCount(frac, gr.n)
			if k >= gr.n {
				k = gr.n - 1
			}
			idx := make([]int, gr.n)
			for i := range idx {
				idx[i] = i
			}
			sort.SliceStable(idx, func(i, j int) bool { return gr.score[idx[i]] < gr.score[idx[j]] })
			prunedOf[gr] = map[int]bool{}
			for _, i := range idx[:k] {
				prunedOf[gr][i] = true
			}
		}
	}
	if m := opts.Multiple; m > 1 {
		for _, gr := range cands {
			if gr.n <= m { // rounding could only keep it whole
				continue
			}
			k := gr.n - len(prunedOf[gr])
			k = int(math.Round(float64(k)/float64(m))) * m
			k = max(m, min(k, gr.n))
			idx := make([]int, gr.n)
			for i := range idx {
				idx[i] = i
			}
			sort.SliceStable(idx, func(i, j int) bool { return gr.score[idx[i]] < gr.score[idx[j]] })
			prunedOf[gr] = map[int]bool{}
			for _, i := range idx[:gr.n-k] {
				prunedOf[gr][i] = true
			}
		}
	}
	keepOf := map[int][]int{} // space root -> kept channels, only when pruned
	for _, gr := range cands {
		p := prunedOf[gr]
		if len(p) > 0 {
			for i := 0; i < gr.n; i++ {
				if !p[i] {
					gr.keep = append(gr.keep, i)
				}
			}
			keepOf[a.find(gr.members[0])] = gr.keep
		}
		after := gr.n - len(p)
		rep.ChannelsBefore += gr.n * len(gr.members)
		rep.ChannelsAfter += after * len(gr.members)
		for _, s := range gr.members {
			src := a.spaces[s].src
			rep.Layers = append(rep.Layers, Layer{Node: src.node.Name, Op: src.node.OpType, Weight: src.node.Inputs[weightInput(src.node)],
				ChannelsBefore: gr.n, ChannelsAfter: after, Group: gr.id, Kept: gr.keep})
		}
	}
	keepIdx := func(segs []seg) ([]int, bool) {
		var out []int
		off, pruned := 0, false
		for _, s := range segs {
			if k, ok := keepOf[a.find(s.space)]; ok {
				pruned = true
				for _, i := range k {
					out = append(out, off+i)
				}
			} else {
				for i := 0; i < s.n; i++ {
					out = append(out, off+i)
				}
			}
			off += s.n
		}
		return out, pruned
	}

	// Surgery.
	uses := map[string]int{}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			uses[in]++
		}
		for _, sg := range n.Subgraphs() {
			for name := range sg.OuterReads() {
				uses[name]++
			}
		}
	}
	for _, o := range g.Outputs {
		uses[o.Name]++
	}
	nodeIdx := map[*graph.Node]int{}
	for i, n := range g.Nodes {
		nodeIdx[n] = i
	}
	for _, ac := range a.acts {
		keep, pruned := keepIdx(ac.segs)
		if !pruned {
			continue
		}
		if rep.sliced == nil {
			rep.sliced = map[[3]int][]int{}
		}
		rep.sliced[[3]int{nodeIdx[ac.node], ac.input, ac.dim}] = keep
		name := ac.node.Inputs[ac.input]
		t := getConst(g, name)
		if t == nil {
			return fmt.Errorf("prune: %s input %d: initializer %q vanished", ac.node, ac.input, name)
		}
		nt, err := sliceTensor(t, ac.dim, keep)
		if err != nil {
			return fmt.Errorf("prune: %s input %d: %w", ac.node, ac.input, err)
		}
		if uses[name] > 1 {
			nt.Name = g.UniqueName(name + ".pruned")
			uses[name]--
			uses[nt.Name] = 1
			ac.node.Inputs[ac.input] = nt.Name
			g.Initializers = append(g.Initializers, nt)
		} else {
			setConst(g, name, nt)
		}
	}
	for _, ac := range a.groups {
		if keep, pruned := keepIdx(ac.segs); pruned {
			ac.node.SetAttr(graph.IntAttr("group", int64(len(keep))))
		}
	}
	stale := map[string]bool{}
	for name, l := range a.lay {
		if _, pruned := keepIdx(l.segs); pruned {
			stale[name] = true
		}
	}
	syncWeightInputs(m)
	had := len(g.ValueInfo) > 0
	vi := g.ValueInfo[:0]
	for _, v := range g.ValueInfo {
		if !stale[v.Name] {
			vi = append(vi, v)
		}
	}
	g.ValueInfo = vi
	if had && len(stale) > 0 {
		if _, err := graph.InferShapes(m, graph.InferOptions{}); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
	}
	for i := range rep.Layers {
		for _, n := range g.Nodes {
			if n.Name == rep.Layers[i].Node && n.OpType == rep.Layers[i].Op {
				if t := getConst(g, n.Inputs[weightInput(n)]); t != nil {
					rep.Layers[i].Params = t.Len()
					rep.Layers[i].Weight = n.Inputs[weightInput(n)]
				}
				break
			}
		}
	}
	return nil
}

// channelNorms is the per-element L1 (mean |w|) or L2 (RMS) norm of each
// slice of w along dim.
func channelNorms(w *graph.Tensor, dim int, norm string) ([]float64, error) {
	v, err := w.Float32s()
	if err != nil {
		return nil, err
	}
	if int64(len(v)) != w.Len() || dim < 0 || dim >= len(w.Dims) {
		return nil, fmt.Errorf("weight %q: bad shape %v", w.Name, w.Dims)
	}
	outer, d, inner := splitDims(w.Dims, dim)
	out := make([]float64, d)
	for o := 0; o < outer; o++ {
		for c := 0; c < d; c++ {
			base := (o*d + c) * inner
			for _, x := range v[base : base+inner] {
				if norm == "l2" {
					out[c] += float64(x) * float64(x)
				} else {
					out[c] += math.Abs(float64(x))
				}
			}
		}
	}
	per := float64(outer * inner)
	for c := range out {
		if norm == "l2" {
			out[c] = math.Sqrt(out[c] / per)
		} else {
			out[c] /= per
		}
	}
	return out, nil
}

func splitDims(dims []int64, dim int) (outer, d, inner int) {
	outer, inner = 1, 1
	for _, x := range dims[:dim] {
		outer *= int(x)
	}
	for _, x := range dims[dim+1:] {
		inner *= int(x)
	}
	return outer, int(dims[dim]), inner
}

// sliceTensor keeps the given indices of t along dim, in new bytes.
func sliceTensor(t *graph.Tensor, dim int, keep []int) (*graph.Tensor, error) {
	if dim < 0 || dim >= len(t.Dims) || !sliceable(t, dim, int(t.Dims[dim])) {
		return nil, fmt.Errorf("tensor %q (%s%v) cannot be sliced along dim %d", t.Name, t.DType, t.Dims, dim)
	}
	es := t.DType.BitSize() / 8
	outer, d, inner := splitDims(t.Dims, dim)
	inner *= es
	raw := make([]byte, 0, outer*len(keep)*inner)
	for o := 0; o < outer; o++ {
		for _, k := range keep {
			if k < 0 || k >= d {
				return nil, fmt.Errorf("tensor %q: channel %d out of range %d", t.Name, k, d)
			}
			base := (o*d + k) * inner
			raw = append(raw, t.Raw[base:base+inner]...)
		}
	}
	dims := append([]int64(nil), t.Dims...)
	dims[dim] = int64(len(keep))
	nt := graph.NewRaw(t.Name, t.DType, dims, raw)
	nt.Doc = t.Doc
	return nt, nil
}
