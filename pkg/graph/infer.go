package graph

import (
	"fmt"
	"sort"
	"strings"

	"github.com/optictl/optictl/pkg/onnxpb"
)

// Shape and type inference.
//
// InferShapes walks every graph (subgraphs of If/Loop/Scan included) in
// topological order and works out each value's element type and shape from
// its producer. Symbolic dimensions ("N", "batch") are carried through where
// an op keeps them; a dimension it cannot tell is left unknown. A small
// constant propagation over integer shape tensors (Shape -> Gather ->
// Unsqueeze -> Concat -> Reshape and friends, symbolic entries included)
// lets Reshape, Expand, Tile, Slice, Resize and ConstantOfShape see their
// shape operands on real exported models. Constants are only computed for
// tensors of at most maxConstElems elements, so hostile shapes never make
// inference allocate much.

// maxConstElems bounds the size of any tensor whose values inference
// computes or reads (shape tensors are tiny; weights are never needed).
const maxConstElems = 1_000_000

// maxSubgraphDepth bounds recursion into nested subgraphs.
const maxSubgraphDepth = 64

// InferOptions tune InferShapes.
type InferOptions struct {
	// Fixed gives concrete shapes for graph inputs (the --shape flag): it
	// replaces symbolic or unknown dims. A shape that contradicts a static
	// dim or the rank of the declared input is an error.
	Fixed map[string][]int64
}

// InferResult summarizes what InferShapes learned.
type InferResult struct {
	// Values counts the node outputs (all graphs) given a type; Static
	// counts those whose shape is fully static.
	Values, Static int
	// Unknown lists node outputs whose type or rank could not be worked
	// out, as `value (Op "node")`, in graph order.
	Unknown []string
	// UnsupportedOps counts nodes, by op type ("domain.Op" outside the
	// default domain), that inference has no rule for.
	UnsupportedOps map[string]int
	// Problems lists inconsistencies found on the way (a broadcast of
	// incompatible dims, a declared value_info contradicting the inferred
	// shape, a cycle); the affected values are left unknown or as inferred.
	Problems []string
}

// info is what inference knows about one value.
type info struct {
	typed    bool
	dt       DType
	hasShape bool
	shape    Shape
	other    *onnxpb.TypeProto // non-tensor type, passed through as is
	c        *cval             // constant value when known (small tensors only)
	t        *Tensor           // constant source, converted to c on demand
}

func (v *info) rank() int {
	if v == nil || !v.hasShape {
		return -1
	}
	return len(v.shape)
}

func (v *info) static() ([]int64, bool) {
	if v == nil || !v.hasShape {
		return nil, false
	}
	return v.shape.Static()
}

// inferScope holds the values of one graph and reads through to enclosing graphs.
type inferScope struct {
	parent *inferScope
	vals   map[string]*info
}

func (s *inferScope) get(name string) *info {
	for c := s; c != nil; c = c.parent {
		if v, ok := c.vals[name]; ok {
			return v
		}
	}
	return nil
}

type inferer struct {
	m   *Model
	res *InferResult
}

// InferShapes fills g.ValueInfo of the model's graph (and of every
// subgraph) with the element type and shape of each intermediate value it
// can work out, and refines the declared graph outputs where inference knows
// more (a fixed size where the file had a symbolic or unknown one). Inputs
// named in opts.Fixed get those shapes. It fails only for a bad opts.Fixed
// or a model without a graph; an op it does not know leaves that op's outputs
// unknown (listed in the result).
func InferShapes(m *Model, opts InferOptions) (*InferResult, error) {
	if m == nil || m.Graph == nil {
		return nil, fmt.Errorf("graph: infer shapes: model has no graph")
	}
	if err := applyFixed(m.Graph, opts.Fixed); err != nil {
		return nil, err
	}
	inf := &inferer{m: m, res: &InferResult{UnsupportedOps: map[string]int{}}}
	inf.graph(m.Graph, nil, nil, 0)
	return inf.res, nil
}

// applyFixed checks and applies --shape overrides to the graph inputs.
func applyFixed(g *Graph, fixed map[string][]int64) error {
	names := make([]string, 0, len(fixed))
	for k := range fixed {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		dims := fixed[name]
		var in *ValueInfo
		for _, v := range g.Inputs {
			if v.Name == name {
				in = v
			}
		}
		if in == nil {
			var have []string
			for _, v := range g.RealInputs() {
				have = append(have, v.Name)
			}
			return fmt.Errorf("graph: --shape names input %q, which the model does not have (inputs: %s)", name, strings.Join(have, ", "))
		}
		if !in.IsTensor() {
			return fmt.Errorf("graph: --shape for input %q: it is not a tensor", name)
		}
		for _, d := range dims {
			if d < 0 {
				return fmt.Errorf("graph: --shape for input %q: negative dimension %d", name, d)
			}
		}
		if _, err := NumElements(dims); err != nil {
			return fmt.Errorf("graph: --shape for input %q: %w", name, err)
		}
		if in.HasShape {
			if len(in.Shape) != len(dims) {
				return fmt.Errorf("graph: --shape for input %q has rank %d, the model declares %s (rank %d)", name, len(dims), in.Shape, len(in.Shape))
			}
			for i, d := range in.Shape {
				if d.Known() && d.Size != dims[i] {
					return fmt.Errorf("graph: --shape for input %q: dim %d is %d, the model fixes it at %d (declared %s)", name, i, dims[i], d.Size, in.Shape)
				}
			}
		}
		sh := make(Shape, len(dims))
		for i, d := range dims {
			sh[i] = FixedDim(d)
			if in.HasShape {
				sh[i].Denotation = in.Shape[i].Denotation
			}
		}
		in.Shape = sh
		in.HasShape = true
		if !in.HasType {
			in.HasType = true
		}
	}
	return nil
}

func infoFromVI(v *ValueInfo) *info {
	if v == nil || !v.HasType {
		return &info{}
	}
	if !v.IsTensor() {
		return &info{typed: true, other: v.Other}
	}
	return &info{typed: v.DType != Undefined, dt: v.DType, hasShape: v.HasShape, shape: v.Shape.Clone()}
}

func infoFromTensor(t *Tensor) *info {
	return &info{typed: true, dt: t.DType, hasShape: true, shape: ShapeOf(t.Dims), t: t}
}

func (inf *inferer) problem(format string, args ...any) {
	if len(inf.res.Problems) < 1000 {
		inf.res.Problems = append(inf.res.Problems, fmt.Sprintf(format, args...))
	}
}

// graph infers one graph. inputs, when non-nil, gives the infos of the
// graph's inputs as the owning node sees them (subgraphs); they refine the
// declared ones. It returns the infos of the graph's outputs.
func (inf *inferer) graph(g *Graph, parent *inferScope, inputs []*info, depth int) []*info {
	s := &inferScope{parent: parent, vals: map[string]*info{}}
	declared := map[string]*ValueInfo{}
	for _, v := range g.ValueInfo {
		declared[v.Name] = v
	}
	for _, v := range g.Outputs {
		declared[v.Name] = v
	}
	constInit := parent == nil && inf.m.IRVersion < 4
	for i, v := range g.Inputs {
		vi := infoFromVI(v)
		if i < len(inputs) && inputs[i] != nil && inputs[i].typed {
			vi = mergeInfo(vi, inputs[i])
		}
		s.vals[v.Name] = vi
	}
	for _, t := range g.Initializers {
		vi := infoFromTensor(t)
		if g.IsGraphInput(t.Name) && !constInit {
			vi.t = nil // overridable default: shape known, value not
		}
		s.vals[t.Name] = vi
	}

	// Visit in a topological order without reordering g.Nodes; nodes on a
	// cycle are visited last, in file order, with whatever is known.
	order, cyclic := topoOrder(g)
	if cyclic > 0 {
		inf.problem("graph %q: %d nodes form a cycle", g.Name, cyclic)
	}
	for _, n := range order {
		inf.node(g, s, n, declared, depth)
	}

	// Write results back.
	idx := map[string]int{}
	for i, v := range g.ValueInfo {
		idx[v.Name] = i
	}
	isIO := map[string]bool{}
	for _, v := range g.Inputs {
		isIO[v.Name] = true
	}
	for _, v := range g.Outputs {
		isIO[v.Name] = true
	}
	for _, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o == "" || isIO[o] {
				continue
			}
			vi := s.vals[o]
			if vi == nil || !vi.typed || vi.other != nil {
				continue
			}
			if i, ok := idx[o]; ok {
				e := g.ValueInfo[i]
				e.HasType, e.DType, e.HasShape, e.Shape = true, vi.dt, vi.hasShape, vi.shape.Clone()
				if !vi.hasShape {
					e.Shape = nil
				}
				continue
			}
			e := &ValueInfo{Name: o, HasType: true, DType: vi.dt, HasShape: vi.hasShape}
			if vi.hasShape {
				e.Shape = vi.shape.Clone()
			}
			idx[o] = len(g.ValueInfo)
			g.ValueInfo = append(g.ValueInfo, e)
		}
	}
	outs := make([]*info, len(g.Outputs))
	for i, v := range g.Outputs {
		vi := s.get(v.Name)
		if vi == nil {
			vi = &info{}
		}
		outs[i] = mergeInfo(infoFromVI(v), vi)
		refineOutput(v, vi)
	}
	return outs
}

// refineOutput fills in a declared graph output where inference knows more,
// keeping the declared symbolic names.
func refineOutput(v *ValueInfo, vi *info) {
	if !vi.typed || vi.other != nil || !v.IsTensor() {
		return
	}
	if !v.HasType || v.DType == Undefined {
		v.HasType, v.DType = true, vi.dt
	}
	if !vi.hasShape {
		return
	}
	if !v.HasShape {
		v.HasShape, v.Shape = true, vi.shape.Clone()
		return
	}
	if len(v.Shape) != len(vi.shape) {
		return
	}
	for i, d := range v.Shape {
		n := vi.shape[i]
		switch {
		case d.Known():
		case n.Known():
			v.Shape[i] = Dim{Size: n.Size, Denotation: d.Denotation}
		case d.Param == "" && n.Param != "":
			v.Shape[i] = Dim{Size: -1, Param: n.Param, Denotation: d.Denotation}
		}
	}
}

// mergeInfo combines a declared info with an inferred one: the inferred
// type wins, and each dim takes whichever side knows more.
func mergeInfo(decl, got *info) *info {
	if got == nil || !got.typed {
		if decl == nil {
			return &info{}
		}
		return decl
	}
	if decl == nil || !decl.typed || decl.other != nil || got.other != nil {
		return got
	}
	out := *got
	if !got.hasShape {
		out.hasShape, out.shape = decl.hasShape, decl.shape.Clone()
		return &out
	}
	if decl.hasShape && len(decl.shape) == len(got.shape) {
		out.shape = got.shape.Clone()
		for i, d := range got.shape {
			e := decl.shape[i]
			if !d.Known() && (e.Known() || (d.Param == "" && e.Param != "")) {
				out.shape[i] = e
			}
		}
	}
	return &out
}

// topoOrder returns g's nodes in a topological order (file order where
// valid) and how many nodes sit on or behind a cycle (appended at the end).
func topoOrder(g *Graph) ([]*Node, int) {
	prod := make(map[string]int, len(g.Nodes))
	for i, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o != "" {
				if _, dup := prod[o]; !dup {
					prod[o] = i
				}
			}
		}
	}
	indeg := make([]int, len(g.Nodes))
	users := make([][]int, len(g.Nodes))
	for i, n := range g.Nodes {
		seen := map[int]bool{}
		add := func(name string) {
			p, ok := prod[name]
			if !ok || seen[p] {
				return
			}
			seen[p] = true
			if p == i {
				indeg[i] += 1 << 30
				return
			}
			users[p] = append(users[p], i)
			indeg[i]++
		}
		for _, in := range n.Inputs {
			add(in)
		}
		for _, sg := range n.Subgraphs() {
			for name := range sg.OuterReads() {
				add(name)
			}
		}
	}
	ready := &intHeap{}
	for i := range g.Nodes {
		if indeg[i] == 0 {
			ready.push(i)
		}
	}
	done := make([]bool, len(g.Nodes))
	order := make([]*Node, 0, len(g.Nodes))
	for ready.len() > 0 {
		i := ready.pop()
		done[i] = true
		order = append(order, g.Nodes[i])
		for _, u := range users[i] {
			indeg[u]--
			if indeg[u] == 0 {
				ready.push(u)
			}
		}
	}
	stuck := 0
	for i, n := range g.Nodes {
		if !done[i] {
			order = append(order, n)
			stuck++
		}
	}
	return order, stuck
}

// opKey names an op for UnsupportedOps.
func opKey(n *Node) string {
	if n.IsDefaultDomain() {
		return n.OpType
	}
	return n.Domain + "." + n.OpType
}

func (inf *inferer) node(g *Graph, s *inferScope, n *Node, declared map[string]*ValueInfo, depth int) {
	x := &nctx{inf: inf, n: n, s: s, depth: depth, out: make([]*info, len(n.Outputs))}
	x.ins = make([]*info, len(n.Inputs))
	for i, name := range n.Inputs {
		if name == "" {
			continue
		}
		x.ins[i] = s.get(name)
	}
	rule, known := lookupRule(n)
	if known {
		func() {
			defer func() {
				if r := recover(); r != nil {
					// A rule must never take the whole inference down; the
					// outputs of this node stay unknown.
					inf.problem("%s: inference failed: %v", n, r)
					for i := range x.out {
						x.out[i] = nil
					}
				}
			}()
			if err := rule(x); err != nil {
				inf.problem("%s: %v", n, err)
				for i := range x.out {
					x.out[i] = nil
				}
			}
		}()
	} else {
		inf.res.UnsupportedOps[opKey(n)]++
	}
	for i, o := range n.Outputs {
		if o == "" {
			continue
		}
		got := x.out[i]
		var decl *info
		if d, ok := declared[o]; ok {
			decl = infoFromVI(d)
			if got != nil && got.typed && got.hasShape && decl.typed && decl.hasShape && got.other == nil && decl.other == nil {
				if conflict(decl.shape, got.shape) {
					inf.problem("value %q of %s: inferred %s, the model declares %s", o, n, got.shape, decl.shape)
				}
			}
		}
		v := mergeInfo(decl, got)
		if got != nil && got.c != nil {
			v.c = got.c
		}
		s.vals[o] = v
		switch {
		case !v.typed || (v.other == nil && !v.hasShape):
			inf.res.Unknown = append(inf.res.Unknown, fmt.Sprintf("%s (%s)", o, n))
		default:
			inf.res.Values++
			if _, ok := v.static(); ok {
				inf.res.Static++
			}
		}
	}
}

// conflict reports two known dims that disagree (or ranks that differ).
func conflict(a, b Shape) bool {
	if len(a) != len(b) {
		return true
	}
	for i := range a {
		if a[i].Known() && b[i].Known() && a[i].Size != b[i].Size {
			return true
		}
	}
	return false
}

// nctx is the view a rule has of one node.
type nctx struct {
	inf   *inferer
	n     *Node
	s     *inferScope
	ins   []*info
	out   []*info
	depth int
}

var unknownInfo = &info{}

// in returns input i's info, never nil (unknown when absent).
func (x *nctx) in(i int) *info {
	if i < len(x.ins) && x.ins[i] != nil {
		return x.ins[i]
	}
	return unknownInfo
}

// has reports whether optional input i is present.
func (x *nctx) has(i int) bool { return i < len(x.n.Inputs) && x.n.Inputs[i] != "" }

// set records output i as a tensor of dt with the given shape (nil shape:
// rank unknown).
func (x *nctx) set(i int, dt DType, shape Shape) *info {
	v := &info{typed: dt != Undefined, dt: dt, hasShape: shape != nil, shape: shape}
	if i < len(x.out) {
		x.out[i] = v
	}
	return v // a node without that output gets a throwaway info
}

// setRank records output i with a known rank but unknown dims.
func (x *nctx) setRank(i int, dt DType, rank int) {
	if rank < 0 {
		x.set(i, dt, nil)
		return
	}
	sh := make(Shape, rank)
	for k := range sh {
		sh[k] = UnknownDim()
	}
	x.set(i, dt, sh)
}

// opset is the default-domain opset the model imports.
func (x *nctx) opset() int64 {
	v := x.inf.m.Opset("")
	if v == 0 {
		v = 1
	}
	return v
}
