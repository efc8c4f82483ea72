package graph

import (
	"fmt"
	"math"
	"sort"
)

// Cost model.
//
// MACs count multiply-accumulates of the ops built on them (Conv,
// ConvTranspose, Gemm, MatMul and their integer/QLinear forms, LSTM/GRU/RNN);
// for those FLOPs = 2*MACs (bias adds and activations inside the op are not
// counted). Other ops count FLOPs only: about one per output element for
// elementwise ops, a few per element for Softmax and normalizations, one
// per window element for pooling, one per input element for reductions.
// Data movement (Reshape, Transpose, Gather, Concat, Cast, ...) costs 0.
// Attention-like blocks written as plain ops are counted by their MatMuls.
// Subgraphs: an If counts its heavier branch; a Loop or Scan counts its body
// times the trip count when that is known (otherwise once, flagged unknown).

// DTypeParams is the initializer storage of one element type.
type DTypeParams struct {
	DType   string `json:"dtype"`
	Tensors int    `json:"tensors"`
	Params  int64  `json:"params"`
	Bytes   int64  `json:"bytes"`
}

// NodeCost is the cost of one node of the main graph.
type NodeCost struct {
	Index  int    `json:"index"`
	Name   string `json:"name"`
	OpType string `json:"op"`
	Domain string `json:"domain,omitempty"`
	MACs   int64  `json:"macs"`
	FLOPs  int64  `json:"flops"`
	// Known is false when a shape the count needs was unknown (or the op is
	// not modelled); MACs and FLOPs are then what could be counted.
	Known bool `json:"known"`
	// OutputBytes is the size of the node's outputs whose shapes are static.
	OutputBytes int64 `json:"output_bytes"`
}

// CostReport is what Cost works out for a model.
type CostReport struct {
	// Params and ParamBytes count initializer elements and bytes, all
	// graphs included; ByDType splits them per element type.
	Params     int64         `json:"params"`
	ParamBytes int64         `json:"param_bytes"`
	ByDType    []DTypeParams `json:"params_by_dtype"`
	// ConstantParams and ConstantBytes count the values of Constant nodes
	// (some exporters store weights there).
	ConstantParams int64 `json:"constant_params"`
	ConstantBytes  int64 `json:"constant_bytes"`

	MACs  int64      `json:"macs"`
	FLOPs int64      `json:"flops"`
	Nodes []NodeCost `json:"nodes"`
	// UnknownCost names the nodes whose cost could not be fully counted.
	UnknownCost []string `json:"unknown_cost,omitempty"`

	// ActivationBytes sums the sizes of the main graph's intermediate
	// values (node outputs other than Constant nodes). PeakActivationBytes
	// is the most memory that values live at the same time need for the
	// current node order (a value lives from its producer to its last
	// consumer; graph inputs from the start, graph outputs to the end;
	// initializers and Constant outputs are not counted); PeakNode is the
	// node at which it is reached.
	ActivationBytes     int64  `json:"activation_bytes"`
	PeakActivationBytes int64  `json:"peak_activation_bytes"`
	PeakNode            string `json:"peak_node,omitempty"`
	// UnknownSize lists values whose size is not static (not counted).
	UnknownSize []string `json:"unknown_size,omitempty"`
}

// Heaviest returns the n nodes with the most FLOPs (ties by order),
// leaving out nodes that cost nothing.
func (r *CostReport) Heaviest(n int) []NodeCost {
	var c []NodeCost
	for _, nc := range r.Nodes {
		if nc.FLOPs > 0 || nc.MACs > 0 {
			c = append(c, nc)
		}
	}
	sort.SliceStable(c, func(i, j int) bool { return c[i].FLOPs > c[j].FLOPs })
	if n < len(c) {
		c = c[:n]
	}
	return c
}

// Cost computes parameter counts, per-node MACs and FLOPs and activation
// memory. When some node outputs of the main graph have no shape yet, it
// runs InferShapes on a copy of the model (m itself is not changed).
func Cost(m *Model) (*CostReport, error) {
	if m == nil || m.Graph == nil {
		return nil, fmt.Errorf("graph: cost: model has no graph")
	}
	if needsInference(m.Graph) {
		c := m.Clone()
		if _, err := InferShapes(c, InferOptions{}); err != nil {
			return nil, fmt.Errorf("graph: cost: %w", err)
		}
		m = c
	}
	r := &CostReport{}
	byDT := map[DType]*DTypeParams{}
	_ = m.Graph.Walk(func(g *Graph) error {
		for _, t := range g.Initializers {
			n := t.Len()
			b := t.Bytes()
			if b == 0 && t.DType != String {
				b = t.DType.ByteSize(n)
			}
			r.Params += n
			r.ParamBytes += b
			d := byDT[t.DType]
			if d == nil {
				d = &DTypeParams{DType: t.DType.String()}
				byDT[t.DType] = d
			}
			d.Tensors++
			d.Params += n
			d.Bytes += b
		}
		for _, n := range g.Nodes {
			if n.Is("Constant") {
				if t := n.AttrTensor("value"); t != nil {
					r.ConstantParams += t.Len()
					r.ConstantBytes += t.DType.ByteSize(t.Len())
				}
			}
		}
		return nil
	})
	for _, d := range byDT {
		r.ByDType = append(r.ByDType, *d)
	}
	sort.Slice(r.ByDType, func(i, j int) bool {
		if r.ByDType[i].Bytes != r.ByDType[j].Bytes {
			return r.ByDType[i].Bytes > r.ByDType[j].Bytes
		}
		return r.ByDType[i].DType < r.ByDType[j].DType
	})

	cm := newCostModel(m)
	vis := withInitializers(m.Graph, m.Graph.ValueInfoMap())
	for i, n := range m.Graph.Nodes {
		nc := NodeCost{Index: i, Name: n.Name, OpType: n.OpType, Domain: n.Domain}
		nc.MACs, nc.FLOPs, nc.Known = cm.node(m.Graph, vis, n, 0)
		for _, o := range n.Outputs {
			if b, ok := valueBytes(vis[o]); ok {
				nc.OutputBytes = satAdd(nc.OutputBytes, b)
			}
		}
		r.MACs = satAdd(r.MACs, nc.MACs)
		r.FLOPs = satAdd(r.FLOPs, nc.FLOPs)
		if !nc.Known {
			r.UnknownCost = append(r.UnknownCost, n.String())
		}
		r.Nodes = append(r.Nodes, nc)
	}
	activation(m.Graph, vis, r)
	return r, nil
}

// needsInference reports whether some node output of g has no shape.
func needsInference(g *Graph) bool {
	vis := g.ValueInfoMap()
	for _, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o == "" {
				continue
			}
			if v := vis[o]; v == nil || !v.HasType || (v.IsTensor() && !v.HasShape) {
				return true
			}
		}
	}
	return false
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func satMul(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

// numel is the element count of a value with a static shape.
func numel(v *ValueInfo) (int64, bool) {
	if v == nil || !v.HasType || !v.IsTensor() || !v.HasShape {
		return 0, false
	}
	d, ok := v.Shape.Static()
	if !ok {
		return 0, false
	}
	n, err := NumElements(d)
	return n, err == nil
}

// valueBytes is the storage of a value with a static shape.
func valueBytes(v *ValueInfo) (int64, bool) {
	n, ok := numel(v)
	if !ok {
		return 0, false
	}
	return v.DType.ByteSize(n), true
}

type costModel struct {
	m *Model
}

func newCostModel(m *Model) *costModel { return &costModel{m: m} }

// Per-element FLOPs of ops that are not multiply-accumulate based.
var flopsPerElem = map[string]int64{
	"Softmax": 5, "LogSoftmax": 5, "Hardmax": 2,
	"LayerNormalization": 8, "InstanceNormalization": 6, "GroupNormalization": 6,
	"BatchNormalization": 2, "MeanVarianceNormalization": 6, "LpNormalization": 3,
	"RMSNormalization": 5, "LRN": 5,
	"QuantizeLinear": 2, "DequantizeLinear": 2, "DynamicQuantizeLinear": 4,
	"Gelu": 8, "Mish": 4, "HardSwish": 3, "HardSigmoid": 2, "Swish": 2,
	"SkipLayerNormalization": 9, "EmbedLayerNormalization": 9, "FastGelu": 8, "BiasGelu": 9, "QuickGelu": 3,
}

// Ops that move or describe data and cost no arithmetic.
var zeroCost = map[string]bool{
	"Reshape": true, "Transpose": true, "Concat": true, "Slice": true, "Gather": true,
	"GatherElements": true, "GatherND": true, "Squeeze": true, "Unsqueeze": true,
	"Flatten": true, "Expand": true, "Tile": true, "Pad": true, "Split": true,
	"Identity": true, "Cast": true, "CastLike": true, "Shape": true, "Size": true,
	"Constant": true, "ConstantOfShape": true, "Dropout": true, "Range": true,
	"NonZero": true, "DepthToSpace": true, "SpaceToDepth": true, "ScatterElements": true,
	"ScatterND": true, "Scatter": true, "OneHot": true, "EyeLike": true, "Compress": true,
	"ReverseSequence": true, "Trilu": true,
}

// Elementwise ops: one FLOP per output element.
var elementwise = map[string]bool{}

func init() {
	for _, op := range []string{
		"Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean", "Where",
		"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Not",
		"BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot", "PRelu",
		"Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Neg", "Abs", "Erf", "LeakyRelu",
		"Clip", "Reciprocal", "Floor", "Ceil", "Round", "Elu", "Selu", "Softplus",
		"Softsign", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh",
		"Acosh", "Atanh", "Sign", "ThresholdedRelu", "Celu", "Shrink", "IsNaN", "IsInf",
		"CumSum", "BiasAdd", "RandomNormalLike", "RandomUniformLike", "Bernoulli",
	} {
		elementwise[op] = true
	}
}

// node returns the MACs and FLOPs of one node and whether they are complete.
func (cm *costModel) node(g *Graph, vis map[string]*ValueInfo, n *Node, depth int) (macs, flops int64, ok bool) {
	in := func(i int) *ValueInfo {
		if i < len(n.Inputs) && n.Inputs[i] != "" {
			return vis[n.Inputs[i]]
		}
		return nil
	}
	out := func(i int) *ValueInfo {
		if i < len(n.Outputs) && n.Outputs[i] != "" {
			return vis[n.Outputs[i]]
		}
		return nil
	}
	op := n.OpType
	ms := n.Domain == "com.microsoft"
	if n.Domain == NCHWcDomain {
		// Counted as the plain ops, over the padded channels.
		switch op {
		case "Conv", "MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool":
		default:
			return 0, 0, true // reorders: data movement only
		}
	} else if !n.IsDefaultDomain() && !ms {
		return 0, 0, false
	}
	mac := func(m int64, known bool) (int64, int64, bool) {
		return m, satMul(m, 2), known
	}
	switch {
	case op == "Conv" || op == "ConvInteger" || op == "QLinearConv" || (ms && op == "FusedConv"):
		wi := 1
		if op == "QLinearConv" {
			wi = 3
		}
		o, w := out(0), in(wi)
		on, ok1 := numel(o)
		wn, ok2 := numel(w)
		if !ok1 || !ok2 || len(w.Shape) < 1 || w.Shape[0].Size <= 0 {
			return 0, 0, false
		}
		return mac(satMul(on, wn/w.Shape[0].Size), true)
	case op == "ConvTranspose":
		x, w := in(0), in(1)
		xn, ok1 := numel(x)
		wn, ok2 := numel(w)
		if !ok1 || !ok2 || len(w.Shape) < 1 || w.Shape[0].Size <= 0 {
			return 0, 0, false
		}
		return mac(satMul(xn, wn/w.Shape[0].Size), true)
	case op == "Gemm":
		a := in(0)
		on, ok1 := numel(out(0))
		if !ok1 || a == nil || !a.HasShape || len(a.Shape) != 2 {
			return 0, 0, false
		}
		k := a.Shape[1]
		if n.AttrInt("transA", 0) != 0 {
			k = a.Shape[0]
		}
		if !k.Known() {
			return 0, 0, false
		}
		return mac(satMul(on, k.Size), true)
	case op == "MatMul" || op == "MatMulInteger" || op == "QLinearMatMul" || (ms && (op == "MatMulNBits" || op == "FusedMatMul")):
		a := in(0)
		on, ok1 := numel(out(0))
		if !ok1 || a == nil || !a.HasShape || len(a.Shape) < 1 {
			return 0, 0, false
		}
		k := a.Shape[len(a.Shape)-1]
		if ms && op == "FusedMatMul" && n.AttrInt("transA", 0) != 0 && len(a.Shape) >= 2 {
			k = a.Shape[len(a.Shape)-2]
		}
		if !k.Known() {
			return 0, 0, false
		}
		return mac(satMul(on, k.Size), true)
	case op == "LSTM" || op == "GRU" || op == "RNN":
		gates := map[string]int64{"LSTM": 4, "GRU": 3, "RNN": 1}[op]
		x, y := in(0), out(0)
		if x == nil || !x.HasShape || len(x.Shape) != 3 {
			return 0, 0, false
		}
		xs, ok1 := x.Shape.Static()
		if !ok1 {
			return 0, 0, false
		}
		seq, batch, inSize := xs[0], xs[1], xs[2]
		if n.AttrInt("layout", 0) != 0 {
			seq, batch = xs[1], xs[0]
		}
		hidden := n.AttrInt("hidden_size", 0)
		if hidden <= 0 {
			if r := in(2); r != nil && r.HasShape && len(r.Shape) == 3 && r.Shape[2].Known() {
				hidden = r.Shape[2].Size
			} else if y != nil && y.HasShape && len(y.Shape) == 4 && y.Shape[3].Known() {
				hidden = y.Shape[3].Size
			} else {
				return 0, 0, false
			}
		}
		dirs := int64(1)
		if n.AttrString("direction", "forward") == "bidirectional" {
			dirs = 2
		}
		perStep := satMul(satMul(satMul(gates, hidden), satAdd(inSize, hidden)), batch)
		return mac(satMul(satMul(perStep, seq), dirs), true)
	case ms && op == "Attention":
		// QKV projection plus scores and context per head.
		x, o := in(0), out(0)
		xn, ok1 := numel(x)
		w := in(1)
		wn, ok2 := numel(w)
		if !ok1 || !ok2 || x == nil || len(x.Shape) != 3 || o == nil || !o.HasShape || len(o.Shape) != 3 {
			return 0, 0, false
		}
		hidden := x.Shape[2].Size
		if hidden <= 0 {
			return 0, 0, false
		}
		proj := satMul(xn, wn/hidden)
		b, s, v := x.Shape[0].Size, x.Shape[1].Size, o.Shape[2].Size
		total := s
		if p := out(1); p != nil && p.HasShape && len(p.Shape) == 5 {
			total = p.Shape[3].Size
		}
		if b < 0 || s < 0 || v < 0 || total < 0 {
			return 0, 0, false
		}
		attn := satMul(satMul(satMul(b, s), total), satMul(v, 2))
		return mac(satAdd(proj, attn), true)
	case op == "If":
		var best, bestF int64
		all := true
		for _, sg := range n.Subgraphs() {
			m, f, ok := cm.graph(sg, vis, depth+1)
			all = all && ok
			if f > bestF || (f == bestF && m > best) {
				best, bestF = m, f
			}
		}
		return best, bestF, all
	case op == "Loop" || op == "Scan":
		body := n.AttrGraph("body")
		if body == nil {
			return 0, 0, false
		}
		m, f, ok := cm.graph(body, vis, depth+1)
		trip := int64(-1)
		if op == "Loop" && (len(n.Inputs) < 2 || n.Inputs[1] == "") {
			if t := constTensor(g, n.Inputs[0]); t != nil && t.Len() == 1 {
				if v, err := t.AsInt64s(); err == nil && len(v) == 1 && v[0] >= 0 {
					trip = v[0]
				}
			}
		}
		if op == "Scan" {
			ns := int(n.AttrInt("num_scan_inputs", 0))
			if ns >= 1 && ns <= len(n.Inputs) {
				x := in(len(n.Inputs) - ns)
				ax := int64(0)
				if a := n.AttrInts("scan_input_axes"); len(a) > 0 {
					ax = a[0]
				}
				if x != nil && x.HasShape {
					if k, err := normAxis(ax, len(x.Shape)); err == nil && x.Shape[k].Known() {
						trip = x.Shape[k].Size
					}
				}
			}
		}
		if trip < 0 {
			return m, f, false
		}
		return satMul(m, trip), satMul(f, trip), ok
	}
	if !n.IsDefaultDomain() {
		if f, ok := flopsPerElem[op]; ok {
			if on, ok := numel(out(0)); ok {
				return 0, satMul(on, f), true
			}
			return 0, 0, false
		}
		return 0, 0, false
	}
	switch {
	case zeroCost[op]:
		return 0, 0, true
	case elementwise[op]:
		on, ok := numel(out(0))
		if !ok {
			return 0, 0, false
		}
		return 0, on, true
	case flopsPerElem[op] > 0:
		on, ok := numel(out(0))
		if !ok {
			return 0, 0, false
		}
		return 0, satMul(on, flopsPerElem[op]), true
	case op == "MaxPool" || op == "AveragePool" || op == "LpPool":
		on, ok := numel(out(0))
		if !ok {
			return 0, 0, false
		}
		k := int64(1)
		for _, v := range n.AttrInts("kernel_shape") {
			if v > 0 {
				k = satMul(k, v)
			}
		}
		return 0, satMul(on, k), true
	case op == "GlobalAveragePool" || op == "GlobalMaxPool" || op == "GlobalLpPool" ||
		op == "ArgMax" || op == "ArgMin" || op == "TopK" || len(op) > 6 && op[:6] == "Reduce":
		xn, ok := numel(in(0))
		if !ok {
			return 0, 0, false
		}
		return 0, xn, true
	case op == "Resize" || op == "Upsample":
		on, ok := numel(out(0))
		if !ok {
			return 0, 0, false
		}
		switch n.AttrString("mode", "nearest") {
		case "nearest":
			return 0, 0, true
		case "cubic":
			return 0, satMul(on, 16), true
		}
		return 0, satMul(on, 4), true
	}
	return 0, 0, false
}

// graph sums the cost of a subgraph's nodes.
func (cm *costModel) graph(g *Graph, outer map[string]*ValueInfo, depth int) (macs, flops int64, ok bool) {
	if depth > maxSubgraphDepth {
		return 0, 0, false
	}
	vis := make(map[string]*ValueInfo, len(outer))
	for k, v := range outer {
		vis[k] = v
	}
	for k, v := range g.ValueInfoMap() {
		vis[k] = v
	}
	vis = withInitializers(g, vis)
	ok = true
	for _, n := range g.Nodes {
		m, f, k := cm.node(g, vis, n, depth)
		macs, flops = satAdd(macs, m), satAdd(flops, f)
		ok = ok && k
	}
	return macs, flops, ok
}

// withInitializers adds a ValueInfo for each initializer vis lacks.
func withInitializers(g *Graph, vis map[string]*ValueInfo) map[string]*ValueInfo {
	for _, t := range g.Initializers {
		if _, ok := vis[t.Name]; !ok {
			vis[t.Name] = &ValueInfo{Name: t.Name, HasType: true, DType: t.DType, HasShape: true, Shape: ShapeOf(t.Dims)}
		}
	}
	return vis
}

// constTensor returns the constant (initializer or Constant node) named name.
func constTensor(g *Graph, name string) *Tensor {
	if t := g.Initializer(name); t != nil {
		return t
	}
	for _, n := range g.Nodes {
		if n.Is("Constant") && len(n.Outputs) == 1 && n.Outputs[0] == name {
			return n.AttrTensor("value")
		}
	}
	return nil
}

// activation fills the activation-memory fields of r for the main graph.
func activation(g *Graph, vis map[string]*ValueInfo, r *CostReport) {
	nn := len(g.Nodes)
	last := map[string]int{}
	for i, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in != "" {
				last[in] = i
			}
		}
		for _, sg := range n.Subgraphs() {
			for name := range sg.OuterReads() {
				last[name] = i
			}
		}
	}
	for _, o := range g.Outputs {
		last[o.Name] = nn
	}
	diff := make([]int64, nn+2)
	add := func(name string, start int) {
		v := vis[name]
		b, ok := valueBytes(v)
		if !ok {
			r.UnknownSize = append(r.UnknownSize, name)
			return
		}
		end, used := last[name]
		if !used || end < start {
			end = start
		}
		if end >= nn {
			end = nn - 1
		}
		if start > end {
			return
		}
		diff[start] = satAdd(diff[start], b)
		diff[end+1] -= b
	}
	inits := g.InitializerMap()
	var inputBytes int64
	for _, v := range g.Inputs {
		if _, ok := inits[v.Name]; ok {
			continue
		}
		if nn == 0 {
			if b, ok := valueBytes(v); ok {
				inputBytes += b
			}
			continue
		}
		add(v.Name, 0)
	}
	seen := map[string]bool{}
	for i, n := range g.Nodes {
		if n.Is("Constant") {
			continue
		}
		for _, o := range n.Outputs {
			if o == "" || seen[o] {
				continue
			}
			seen[o] = true
			if b, ok := valueBytes(vis[o]); ok {
				r.ActivationBytes = satAdd(r.ActivationBytes, b)
			}
			add(o, i)
		}
	}
	r.PeakActivationBytes = inputBytes
	var cur int64
	for i := 0; i < nn; i++ {
		cur += diff[i]
		if cur > r.PeakActivationBytes {
			r.PeakActivationBytes = cur
			r.PeakNode = g.Nodes[i].String()
		}
	}
}
