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

import (
	"math"
	"strconv"

	"github.com/optictl/optictl/pkg/graph"
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
	return f
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

// perfScalar reports the value of a one-element float32 constant whose rank
// does not exceed rank.
func perfScalar(t *runtime.Tensor, rank int) (float32, bool) {
	if t == nil || t.Len() != 1 || len(t.Shape) > rank {
		return 0, false
	}
	return t.Float32s()[0], true
}

// perChannel returns c broadcast to M channels when c broadcasts against a
// (N, M, spatial...) tensor of rank rank only along the channel axis.
func perfPerChannel(c *runtime.Tensor, M, rank int) []float32 {
	if c == nil || len(c.Shape) > rank {
		return nil
	}
	d := c.Float32s()
	if len(d) == 1 {
		out := make([]float32, M)
		for i := range out {
			out[i] = d[0]
		}
		return out
	}
	// Channel axis 1 of the output is axis 1-(rank-len) of c.
	ax := 1 - (rank - len(c.Shape))
	if ax < 0 || c.Shape[ax] != int64(M) {
		return nil
	}
	for i, s := range c.Shape {
		if i != ax && s != 1 {
			return nil
		}
	}
	return append([]float32(nil), d...)
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
			if c := perfPerChannel(f.constF32(other), M, rank); c != nil {
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
// BatchNormalization reading v, or ok false.
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
	if m.AttrInt("training_mode", 0) != 0 || m.AttrInt("spatial", 1) != 1 {
		return r, false
	}
	var p [4][]float32
	for i := range p {
		t := f.constF32(m.Inputs[i+1])
		if t == nil || t.Len() != M {
			return r, false
		}
		p[i] = t.Float32s()
	}
	eps := float64(m.AttrFloat("epsilon", 1e-5))
	r[0], r[1] = make([]float64, M), make([]float64, M)
	for ch := 0; ch < M; ch++ {
		a := float64(p[0][ch]) / math.Sqrt(float64(p[3][ch])+eps)
		r[0][ch] = a
		r[1][ch] = float64(p[1][ch]) - float64(p[2][ch])*a
	}
	return r, true
}

// activation maps a default-domain activation node to an nnAct.
func (f *perfFuser) activation(m *graph.Node) (nnAct, bool) {
	switch m.OpType {
	case "Relu", "Sigmoid", "Tanh":
		if len(m.Inputs) != 1 {
			return nnAct{}, false
		}
		return nnAct{kind: m.OpType}, true
	case "LeakyRelu":
		return nnAct{kind: "LeakyRelu", params: []float32{m.AttrFloat("alpha", 0.01)}}, len(m.Inputs) == 1
	case "HardSigmoid":
		return nnAct{kind: "HardSigmoid", params: []float32{m.AttrFloat("alpha", 0.2), m.AttrFloat("beta", 0.5)}}, len(m.Inputs) == 1
	case "HardSwish":
		return nnAct{kind: "HardSwish"}, len(m.Inputs) == 1
	case "Clip":
		lo, hi, ok := f.clipBounds(m)
		return nnAct{kind: "Clip", params: []float32{lo, hi}}, ok
	}
	return nnAct{}, false
}

// clipBounds reads Clip's bounds (attributes before opset 11, optional
// constant inputs after).
func (f *perfFuser) clipBounds(m *graph.Node) (lo, hi float32, ok bool) {
	lo, hi = float32(math.Inf(-1)), float32(math.Inf(1))
	if f.opset("") < 11 {
		return m.AttrFloat("min", lo), m.AttrFloat("max", hi), len(m.Inputs) == 1
	}
	for i := 1; i < len(m.Inputs); i++ {
		if m.Inputs[i] == "" {
			continue
		}
		t := f.constF32(m.Inputs[i])
		if t == nil || t.Len() != 1 || len(t.Shape) > 0 && !(len(t.Shape) == 1 && t.Shape[0] == 1) {
			return lo, hi, false
		}
		if i == 1 {
			lo = t.Float32s()[0]
		} else {
			hi = t.Float32s()[0]
		}
	}
	return lo, hi, len(m.Inputs) <= 3
}

// hardSwishPattern matches v → Add(v, a) → Clip(lo, hi) → Mul(v, ·) →
// Div(·, d) (or Mul(·, 1/d)), where v has exactly the Add and the Mul as
// consumers; it returns the activation, the nodes and the final value.
func (f *perfFuser) hardSwishPattern(v string, after, rank int) (nnAct, []*graph.Node, string, bool) {
	cs := f.consumers[v]
	if f.uses[v] != 2 || len(cs) != 2 {
		return nnAct{}, nil, "", false
	}
	nodes := f.g.Nodes
	var add, mul *graph.Node
	for _, k := range cs {
		if k <= after {
			return nnAct{}, nil, "", false
		}
		m := nodes[k]
		if m.Is("Add") && len(m.Inputs) == 2 {
			add = m
		} else if m.Is("Mul") && len(m.Inputs) == 2 {
			mul = m
		}
	}
	if add == nil || mul == nil || len(add.Outputs) != 1 {
		return nnAct{}, nil, "", false
	}
	other := add.Inputs[1]
	if add.Inputs[0] != v {
		other = add.Inputs[0]
	}
	a, ok := perfScalar(f.constF32(other), rank)
	if !ok || other == v {
		return nnAct{}, nil, "", false
	}
	k := f.only(add.Outputs[0], after)
	if k < 0 || !nodes[k].Is("Clip") || nodes[k].Inputs[0] != add.Outputs[0] || len(nodes[k].Outputs) != 1 {
		return nnAct{}, nil, "", false
	}
	clip := nodes[k]
	lo, hi, ok := f.clipBounds(clip)
	if !ok {
		return nnAct{}, nil, "", false
	}
	k = f.only(clip.Outputs[0], after)
	if k < 0 || nodes[k] != mul || !(mul.Inputs[0] == v && mul.Inputs[1] == clip.Outputs[0] ||
		mul.Inputs[1] == v && mul.Inputs[0] == clip.Outputs[0]) || len(mul.Outputs) != 1 {
		return nnAct{}, nil, "", false
	}
	k = f.only(mul.Outputs[0], after)
	if k < 0 {
		return nnAct{}, nil, "", false
	}
	last := nodes[k]
	if len(last.Inputs) != 2 || len(last.Outputs) != 1 || last.Inputs[0] != mul.Outputs[0] {
		return nnAct{}, nil, "", false
	}
	d, ok := perfScalar(f.constF32(last.Inputs[1]), rank)
	if !ok {
		return nnAct{}, nil, "", false
	}
	kind := ""
	switch {
	case last.Is("Div"):
		kind = "perfHardSwishDiv"
	case last.Is("Mul"):
		kind = "perfHardSwishMul"
	default:
		return nnAct{}, nil, "", false
	}
	return nnAct{kind: kind, params: []float32{a, lo, hi, d}}, []*graph.Node{add, clip, mul, last}, last.Outputs[0], true
}
