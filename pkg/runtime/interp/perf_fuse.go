package interp

// Open-time Conv fusion (what ORT's level-1/2 graph transformers do, done
// here on the interp schedule only; the model itself is not changed).
//
// Before: Y = Conv(X, W[, B]) → BatchNormalization(Y, s, b, m, v) (inference)
//         → Add(·, c) (c a per-channel or scalar constant)
//         → one activation: Relu | LeakyRelu | Clip | HardSigmoid | Sigmoid |
//           Tanh | HardSwish | the HardSwish pattern x·Clip(x+a, lo, hi)/d
// After:  one Conv step with W' = W·s/√(v+ε), B' = (B−m)·s/√(v+ε)+b+c and the
//         activation applied to its output.
//
// Each stage is optional and they must come in that order. Preconditions:
// W, B and every parameter are float32 constants known when the Conv is
// compiled; X is not a constant; every intermediate value has exactly the
// consumers of the pattern (none in subgraphs) and is not a graph output;
// BN is in inference mode (training_mode 0, spatial 1, no extra outputs).
// When one fails, the chain stops there (the rest runs as separate steps).
// Folding BN into W changes rounding (as in ORT), within 1e-5 relative.
//
// The matching of BN, the per-channel Add, the activations and the
// written-out HardSwish is pkg/graph/pattern's (InferenceBN, PerChannel,
// Activation, MatchHardSwish), shared with pkg/passes; this file keeps the
// chain's order, the interp-only limits and the folding arithmetic.

import (
	"math"
	"strconv"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/pattern"
	"github.com/optictl/optictl/pkg/runtime"
)

// perfFuseOn enables the fusion; tests turn it off to compare with the
// unfused schedule.
var perfFuseOn = true

// perfFuser holds what the fusion needs about one graph.
type perfFuser struct {
	p         *Program
	g         *graph.Graph
	opset     func(string) int64
	constOf   map[int]*runtime.Tensor
	uses      map[string]int   // references by nodes (subgraphs counted), graph outputs
	consumers map[string][]int // direct consumer node indices
	producer  map[string]*graph.Node
	skip      map[*graph.Node]bool
	seq       int
	// view is what the shared matchers (pkg/graph/pattern) read; index
	// maps a node to its position in the graph.
	view  *pattern.View
	index map[*graph.Node]int
}

func newPerfFuser(p *Program, opset func(string) int64, constOf map[int]*runtime.Tensor) *perfFuser {
	f := &perfFuser{p: p, g: p.g, opset: opset, constOf: constOf, uses: map[string]int{},
		consumers: map[string][]int{}, skip: map[*graph.Node]bool{}, producer: map[string]*graph.Node{}}
	for i, n := range p.g.Nodes {
		for _, o := range n.Outputs {
			f.producer[o] = n
		}
		for _, in := range n.Inputs {
			if in != "" {
				f.uses[in]++
				f.consumers[in] = append(f.consumers[in], i)
			}
		}
		for _, sg := range n.Subgraphs() {
			_ = sg.Walk(func(s *graph.Graph) error {
				for _, sn := range s.Nodes {
					for _, in := range sn.Inputs {
						f.uses[in]++
					}
				}
				for _, o := range s.Outputs {
					f.uses[o.Name]++
				}
				return nil
			})
		}
	}
	for _, o := range p.g.Outputs {
		f.uses[o.Name] += 1 << 20
	}
	f.index = make(map[*graph.Node]int, len(p.g.Nodes))
	for i, n := range p.g.Nodes {
		f.index[n] = i
	}
	f.view = pattern.NewView(p.g, f.constTensor, opset)
	return f
}

// constTensor is the constant named name as the schedule knows it so far
// (initializers, folded values, Constant nodes not reached yet), or nil.
func (f *perfFuser) constTensor(name string) *graph.Tensor {
	var t *runtime.Tensor
	if s, ok := f.p.slots[name]; ok {
		t = f.constOf[s]
	} else if k := f.producer[name]; k != nil && k.Is("Constant") && len(k.Attrs) == 1 {
		return k.AttrTensor("value")
	}
	if t == nil || t.DType == graph.String {
		return nil
	}
	return &graph.Tensor{Name: name, DType: t.DType, Dims: t.Shape, Raw: t.Raw}
}

// constF32 returns the float32 constant named name, or nil.
func (f *perfFuser) constF32(name string) *runtime.Tensor {
	if name == "" {
		return nil
	}
	var t *runtime.Tensor
	if s, ok := f.p.slots[name]; ok {
		t = f.constOf[s]
	} else if k := f.producer[name]; k != nil && k.Is("Constant") && len(k.Attrs) == 1 {
		// A Constant node the schedule has not reached yet.
		if v := k.AttrTensor("value"); v != nil {
			t = runtime.FromGraphTensor(v)
		}
	}
	if t == nil || t.DType != graph.Float || len(t.Raw) != 4*t.Len() {
		return nil
	}
	return t
}

// only returns the single consumer of v (index > after), or -1.
func (f *perfFuser) only(v string, after int) int {
	if f.uses[v] != 1 || len(f.consumers[v]) != 1 {
		return -1
	}
	if k := f.consumers[v][0]; k > after {
		return k
	}
	return -1
}

// perfFused is the result of fusing a Conv chain.
type perfFused struct {
	node *graph.Node
	act  nnAct
}

// fuseConv tries to fuse the chain starting at node index idx (a Conv).
// It returns nil when nothing is fused.
func (f *perfFuser) fuseConv(idx int) *perfFused {
	n := f.g.Nodes[idx]
	if !perfFuseOn || len(n.Outputs) != 1 || len(n.Inputs) < 2 || len(n.Inputs) > 3 {
		return nil
	}
	switch {
	case n.Is("Conv"):
	case n.Domain == "com.microsoft" && n.OpType == "FusedConv" && n.AttrString("activation", "") == "":
	default:
		return nil
	}
	if s, ok := f.p.slots[n.Inputs[0]]; !ok || f.constOf[s] != nil {
		return nil // X unknown here, or constant (folded instead)
	}
	wt := f.constF32(n.Inputs[1])
	if wt == nil || len(wt.Shape) < 3 || wt.Shape[0] <= 0 {
		return nil
	}
	rank := len(wt.Shape)
	M := int(wt.Shape[0])
	per := wt.Len() / M
	var bias []float32
	if len(n.Inputs) == 3 && n.Inputs[2] != "" {
		bt := f.constF32(n.Inputs[2])
		if bt == nil || bt.Len() != M {
			return nil
		}
		bias = append([]float32(nil), bt.Float32s()...)
	}
	var w []float32 // a copy once BN scales it
	var act nnAct
	v := n.Outputs[0]
	last := idx
	var absorbed []*graph.Node
	stage := 0 // 0: BN allowed, 1: Add allowed, 2: activation allowed
	for stage < 3 {
		k := f.only(v, last)
		if k < 0 {
			if a, nodes, out, ok := f.hardSwishPattern(v, last, rank); ok {
				act, absorbed, v = a, append(absorbed, nodes...), out
			}
			break
		}
		m := f.g.Nodes[k]
		if !m.IsDefaultDomain() || len(m.Inputs) == 0 {
			break
		}
		ok := false
		switch {
		case m.OpType == "BatchNormalization" && stage == 0:
			if s, ok2 := f.foldBN(m, v, M); ok2 {
				if w == nil {
					w = append([]float32(nil), wt.Float32s()...)
				}
				if bias == nil {
					bias = make([]float32, M)
				}
				for ch := 0; ch < M; ch++ {
					a := s[0][ch]
					ws := w[ch*per : (ch+1)*per]
					for i := range ws {
						ws[i] = float32(float64(ws[i]) * a)
					}
					bias[ch] = float32(float64(bias[ch])*a + s[1][ch])
				}
				ok, stage = true, 1
			}
		case m.OpType == "Add" && stage <= 1 && len(m.Inputs) == 2:
			other := m.Inputs[1]
			if m.Inputs[0] != v {
				other = m.Inputs[0]
			}
			if other == v {
				break
			}
			if c := pattern.PerChannel(f.view.Const(other), int64(M), rank-2); c != nil {
				if bias == nil {
					bias = make([]float32, M)
				}
				for ch := range bias {
					bias[ch] += c[ch]
				}
				ok, stage = true, 2
			}
		default:
			if m.Inputs[0] != v || len(m.Outputs) != 1 {
				break
			}
			if a, good := f.activation(m); good {
				act, ok, stage = a, true, 3
			}
		}
		if !ok {
			if a, nodes, out, good := f.hardSwishPattern(v, last, rank); good && stage <= 2 {
				act, absorbed, v = a, append(absorbed, nodes...), out
			}
			break
		}
		absorbed = append(absorbed, m)
		v = m.Outputs[0]
		last = max(last, k)
	}
	if len(absorbed) == 0 {
		return nil
	}
	for _, a := range absorbed {
		f.skip[a] = true
	}
	fn := &graph.Node{Name: n.Name, OpType: n.OpType, Domain: n.Domain, Attrs: n.Attrs, Doc: n.Doc,
		Inputs: []string{n.Inputs[0], n.Inputs[1], ""}, Outputs: []string{v}}
	if w != nil {
		fn.Inputs[1] = f.addConst("W", runtime.FromFloat32(wt.Shape, w))
	}
	if bias != nil {
		fn.Inputs[2] = f.addConst("B", runtime.FromFloat32([]int64{int64(M)}, bias))
	}
	return &perfFused{node: fn, act: act}
}

// addConst adds a constant slot under a name no model value can have.
func (f *perfFuser) addConst(what string, t *runtime.Tensor) string {
	f.seq++
	name := "\x00interp.fused." + what + "." + strconv.Itoa(f.seq)
	s := f.p.newSlot(name)
	f.p.consts = append(f.p.consts, constSlot{s, t})
	f.constOf[s] = t
	return name
}

// foldBN returns the per-channel scale and shift of an inference
// BatchNormalization reading v (pattern.InferenceBN, with no extra outputs
// at all), or ok false.
func (f *perfFuser) foldBN(m *graph.Node, v string, M int) ([2][]float64, bool) {
	var r [2][]float64
	if len(m.Inputs) != 5 || m.Inputs[0] != v || len(m.Outputs) == 0 || m.Outputs[0] == "" {
		return r, false
	}
	for _, o := range m.Outputs[1:] {
		if o != "" {
			return r, false
		}
	}
	bn, why := pattern.InferenceBN(f.view, m, int64(M))
	if why != nil {
		return r, false
	}
	r[0], r[1] = make([]float64, M), make([]float64, M)
	for ch := 0; ch < M; ch++ {
		a := float64(bn.Scale[ch]) / math.Sqrt(float64(bn.Var[ch])+bn.Eps)
		r[0][ch] = a
		r[1][ch] = float64(bn.Bias[ch]) - float64(bn.Mean[ch])*a
	}
	return r, true
}

// activation maps a default-domain activation node (pattern.Activation) to
// an nnAct.
func (f *perfFuser) activation(m *graph.Node) (nnAct, bool) {
	a, why := pattern.Activation(f.view, m)
	if why != nil {
		return nnAct{}, false
	}
	switch a.Kind {
	case "Clip":
		lo, hi := clipF32(a.Clip)
		return nnAct{kind: "Clip", params: []float32{lo, hi}}, true
	case "LeakyRelu", "HardSigmoid":
		return nnAct{kind: a.Kind, params: a.Params}, true
	}
	return nnAct{kind: a.Kind}, true
}

// clipF32 returns Clip's bounds, ±Inf where a bound is absent.
func clipF32(b pattern.ClipBounds) (lo, hi float32) {
	lo, hi = float32(math.Inf(-1)), float32(math.Inf(1))
	if b.HasLo {
		lo = float32(b.Lo)
	}
	if b.HasHi {
		hi = float32(b.Hi)
	}
	return lo, hi
}

// hardSwishPattern matches v → Add(v, a) → Clip(lo, hi) → Mul(v, ·) →
// Div(·, d) (or Mul(·, d)) with pattern.MatchHardSwish, where v has
// exactly the Add and the Mul as readers; it returns the activation, the
// nodes and the final value.
func (f *perfFuser) hardSwishPattern(v string, after, rank int) (nnAct, []*graph.Node, string, bool) {
	cs := f.consumers[v]
	if f.uses[v] != 2 || len(cs) != 2 {
		return nnAct{}, nil, "", false
	}
	var add *graph.Node
	for _, k := range cs {
		if k <= after {
			return nnAct{}, nil, "", false
		}
		if n := f.g.Nodes[k]; n.Is("Add") {
			add = n
		}
	}
	if add == nil || len(add.Outputs) != 1 {
		return nnAct{}, nil, "", false
	}
	clip := f.view.Sole(add.Outputs[0])
	if clip == nil {
		return nnAct{}, nil, "", false
	}
	h, why := pattern.MatchHardSwish(f.view, clip)
	if why != nil || h.X != v || h.ScaleFirst || h.Add != add {
		return nnAct{}, nil, "", false
	}
	lo, hi := clipF32(h.Bounds)
	kind := "perfHardSwishMul"
	if h.Div {
		kind = "perfHardSwishDiv"
	}
	return nnAct{kind: kind, params: []float32{float32(h.A), lo, hi, float32(h.D)}}, h.Nodes(), h.Out(), true
}
