package quant

import (
	"fmt"
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// StaticOptions configure Static.
type StaticOptions struct {
	// Calibrate is minmax (default), percentile or entropy.
	Calibrate string
	// Percentile for the percentile calibrator (default 99.999).
	Percentile float64
	// PerChannel gives weights one scale per output channel.
	PerChannel bool
	// Asymmetric quantizes activations to uint8 with a zero point; the
	// default is symmetric int8 (s8s8, what ORT advises on x86 CPUs).
	Asymmetric bool
	// FullRange stores weights in the full 8 bits ([-127, 127]). The
	// default is 7 bits ("reduce range"): ORT's int8 kernels on AVX2 CPUs
	// without VNNI saturate int16 pair sums with 8-bit weights, s8s8 as
	// well as u8s8 (measured on the test models: interp and ORT then
	// disagree by up to 8% of the output range; with 7 bits they agree
	// exactly). Use FullRange only on VNNI/AMX CPUs.
	FullRange bool
	// OpTypes restricts quantization to these op types (Conv, MatMul,
	// Gemm); empty means all three.
	OpTypes []string
	// ExcludeNodes are node names left in float.
	ExcludeNodes []string
	// Backend runs calibration (default "interp").
	Backend string
}

func (o *StaticOptions) defaults() error {
	if o.Calibrate == "" {
		o.Calibrate = MinMax
	}
	switch o.Calibrate {
	case MinMax, Percentile, Entropy:
	default:
		return fmt.Errorf("quant: unknown calibration method %q (want minmax, percentile or entropy)", o.Calibrate)
	}
	if o.Percentile == 0 {
		o.Percentile = 99.999
	}
	if o.Percentile <= 0 || o.Percentile > 100 || math.IsNaN(o.Percentile) {
		return fmt.Errorf("quant: percentile %g is not in (0, 100]", o.Percentile)
	}
	if o.Backend == "" {
		o.Backend = "interp"
	}
	for _, t := range o.OpTypes {
		switch t {
		case "Conv", "MatMul", "Gemm":
		default:
			return fmt.Errorf("quant: op type %q cannot be quantized (want Conv, MatMul or Gemm)", t)
		}
	}
	return nil
}

// opsetSafe lists ops whose meaning (for the attributes and inputs an
// older model can use) is the same from opset 7 to opset 13, so that a
// model made only of them may have its default opset raised to 13 (needed
// for per-channel DequantizeLinear).
var opsetSafe = map[string]bool{
	"Conv": true, "MaxPool": true, "AveragePool": true, "GlobalAveragePool": true, "GlobalMaxPool": true,
	"Relu": true, "LeakyRelu": true, "Sigmoid": true, "Tanh": true, "MatMul": true, "Gemm": true,
	"Add": true, "Sub": true, "Mul": true, "Div": true, "Reshape": true, "Flatten": true,
	"Identity": true, "Transpose": true, "Concat": true, "Sqrt": true, "Shape": true, "Gather": true,
}

// plan is one node to quantize.
type plan struct {
	n      *graph.Node
	acts   []int // input indexes that are activations to quantize
	weight int   // input index of the constant weight, -1 when none
}

// Static quantizes a float32 model into QDQ form calibrated on calib (each
// sample: the model's real inputs, in order). For each selected Conv,
// MatMul and Gemm with a constant float weight:
//
//	Before: Y = Conv(X, W, B)
//	After:  Y' = Conv(DQ(Q(X)), DQ(Wq), DQ(Bq)); Y = Y'; consumers read DQ(Q(Y))
//
// Activations get one QuantizeLinear/DequantizeLinear pair each (shared by
// all consumers), weights are int8 constants with a (per-channel) DQ, and
// biases int32 with scale x_scale*w_scale. The model passed in is not
// modified. Calibration data must be disjoint from evaluation data; that is
// the caller's duty.
func Static(m *graph.Model, calib [][]*runtime.Tensor, opts StaticOptions) (*graph.Model, *Report, error) {
	if m == nil || m.Graph == nil {
		return nil, nil, fmt.Errorf("quant: no model")
	}
	if err := opts.defaults(); err != nil {
		return nil, nil, err
	}
	if len(calib) == 0 {
		return nil, nil, fmt.Errorf("quant: static quantization needs at least one calibration sample")
	}
	out := m.Clone()
	g := out.Graph
	rep := &Report{Mode: "int8-static (" + opts.Calibrate + ")"}
	constantsToInits(g)
	commonChecks(g, rep)

	opset := out.Opset("")
	perChannel := opts.PerChannel
	if opset < 13 {
		trial := out.Clone()
		if err := upgradeTo13(trial, newNamer(trial.Graph)); err == nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("default opset raised from %d to 13 (QDQ needs 10, per-channel 13; Clip/Slice/Softmax rewritten to their opset-13 form)", opset))
			out = trial
			g = out.Graph
		} else if opset >= 10 {
			if perChannel {
				rep.Notes = append(rep.Notes, fmt.Sprintf("opset %d < 13 (%v): weights quantized per tensor, not per channel", opset, err))
			}
			perChannel = false
		} else {
			rep.Notes = append(rep.Notes, fmt.Sprintf("opset %d < 10 and cannot be raised: %v: nothing quantized", opset, err))
			rep.countOps(g)
			return out, rep, nil
		}
	}

	inits := g.InitializerMap()
	prod := g.Producers()
	var plans []plan
	actSet := map[string]bool{}
	var acts []string
	addAct := func(name string) {
		if !actSet[name] {
			actSet[name] = true
			acts = append(acts, name)
		}
	}
	for _, n := range g.Nodes {
		if !(n.Is("Conv") || n.Is("MatMul") || n.Is("Gemm")) {
			continue
		}
		if ok, why := selected(n, opts.OpTypes, opts.ExcludeNodes); !ok {
			rep.skip(n, "%s", why)
			continue
		}
		p, err := staticPlan(n, inits)
		if err != nil {
			rep.skip(n, "%v", err)
			continue
		}
		dequantized := false
		for _, i := range p.acts {
			if pn := prod[n.Inputs[i]]; pn != nil && pn.Is("DequantizeLinear") {
				dequantized = true
			}
		}
		if dequantized {
			rep.skip(n, "already reads DequantizeLinear output (quantized before)")
			continue
		}
		plans = append(plans, p)
		for _, i := range p.acts {
			addAct(n.Inputs[i])
		}
		if !feedsOnlyOutputs(g, n.Outputs[0]) {
			addAct(n.Outputs[0])
		}
	}
	if len(plans) == 0 {
		rep.countOps(g)
		return out, rep, nil
	}
	ranges, err := calibrate(m, acts, calib, opts)
	if err != nil {
		return nil, nil, err
	}
	qmax := 63.0
	if opts.FullRange {
		qmax = 127
	}
	nm := newNamer(g)
	// activation quantization parameters
	type qp struct {
		scale, zp string
		s         float64
	}
	aq := map[string]qp{}
	actDT := graph.Int8
	if opts.Asymmetric {
		actDT = graph.Uint8
	}
	for _, name := range sortedKeys(ranges) {
		r := ranges[name]
		s, zp := actParams(r[0], r[1], opts.Asymmetric)
		aq[name] = qp{
			scale: addInit(g, nm, name+"_scale", graph.Float, nil, f32Bytes([]float32{float32(s)})),
			zp:    addInit(g, nm, name+"_zero_point", actDT, nil, []byte{zp}),
			s:     s,
		}
	}
	var newNodes []*graph.Node
	dqOf := map[string]string{}
	for _, name := range acts {
		q, ok := aq[name]
		if !ok {
			continue
		}
		qn, dn := nm.name(name+"_QuantizeLinear"), nm.name(name+"_DequantizeLinear")
		qo, do := nm.name(name+"_quantized"), nm.name(name+"_dequantized")
		newNodes = append(newNodes,
			&graph.Node{Name: qn, OpType: "QuantizeLinear", Inputs: []string{name, q.scale, q.zp}, Outputs: []string{qo}},
			&graph.Node{Name: dn, OpType: "DequantizeLinear", Inputs: []string{qo, q.scale, q.zp}, Outputs: []string{do}})
		dqOf[name] = do
	}
	for _, p := range plans {
		n := p.n
		ok := true
		for _, i := range p.acts {
			if _, have := aq[n.Inputs[i]]; !have {
				ok = false
			}
		}
		if !ok {
			rep.skip(n, "an activation input is not float32 or was never observed in calibration")
			continue
		}
		if p.weight >= 0 {
			xs := aq[n.Inputs[0]].s
			if err := quantizeWeight(g, nm, n, p.weight, inits, perChannel, qmax, xs, &newNodes); err != nil {
				rep.skip(n, "%v", err)
				continue
			}
		}
		for _, i := range p.acts {
			n.Inputs[i] = dqOf[n.Inputs[i]]
		}
		rep.quantized(n)
	}
	// every other reader of a quantized activation reads its DQ too
	// (that is what lets ORT fuse DQ -> op -> Q); the Q itself and graph
	// outputs keep the float value.
	for _, n := range g.Nodes {
		if len(n.Subgraphs()) > 0 {
			continue
		}
		for i, in := range n.Inputs {
			if d, ok := dqOf[in]; ok {
				n.Inputs[i] = d
			}
		}
	}
	g.Nodes = append(g.Nodes, newNodes...)
	dropUnusedInits(g)
	if err := g.TopoSort(); err != nil {
		return nil, nil, fmt.Errorf("quant: static: %w", err)
	}
	if err := out.Verify(); err != nil {
		return nil, nil, fmt.Errorf("quant: static: the quantized model fails verification: %w", err)
	}
	rep.countOps(g)
	return out, rep, nil
}

// feedsOnlyOutputs reports whether v is a graph output or read only by
// Identity nodes that write graph outputs: such a value is left in float
// (quantizing a model's logits only adds error).
func feedsOnlyOutputs(g *graph.Graph, v string) bool {
	if g.IsGraphOutput(v) {
		return true
	}
	readers := 0
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in != v {
				continue
			}
			readers++
			if !n.Is("Identity") || !g.IsGraphOutput(n.Outputs[0]) {
				return false
			}
		}
	}
	return readers > 0
}

// staticPlan decides which inputs of n are activations and which is the
// weight, or says why n cannot be quantized.
func staticPlan(n *graph.Node, inits map[string]*graph.Tensor) (plan, error) {
	p := plan{n: n, weight: -1}
	if len(n.Inputs) < 2 || len(n.Outputs) != 1 {
		return p, fmt.Errorf("unexpected arity")
	}
	if inits[n.Inputs[0]] != nil {
		return p, fmt.Errorf("first input is constant")
	}
	wt, _ := floatInit(inits, n.Inputs[1])
	switch {
	case n.Is("Conv"), n.Is("Gemm"):
		if wt == nil {
			return p, fmt.Errorf("weight %q is not a constant float32 initializer", n.Inputs[1])
		}
		if n.Is("Gemm") && n.AttrInt("transA", 0) != 0 {
			return p, fmt.Errorf("Gemm with transA=1")
		}
		if n.Is("Gemm") && len(wt.Dims) != 2 {
			return p, fmt.Errorf("Gemm weight of rank %d", len(wt.Dims))
		}
		p.acts, p.weight = []int{0}, 1
	case n.Is("MatMul"):
		if wt != nil {
			p.acts, p.weight = []int{0}, 1
		} else if inits[n.Inputs[1]] != nil {
			return p, fmt.Errorf("weight %q is a constant that is not float32", n.Inputs[1])
		} else {
			p.acts = []int{0, 1}
		}
	}
	return p, nil
}

// actParams turns a calibrated range into a scale and zero point.
func actParams(lo, hi float64, asym bool) (float64, byte) {
	if !asym {
		t := math.Max(math.Abs(lo), math.Abs(hi))
		s := t / 127
		if s == 0 || float32(s) == 0 {
			s = 1
		}
		return float64(float32(s)), 0
	}
	lo, hi = math.Min(lo, 0), math.Max(hi, 0)
	s := (hi - lo) / 255
	if s == 0 || float32(s) == 0 {
		s = 1
	}
	s = float64(float32(s))
	zp := math.Round(-lo / s)
	zp = math.Max(0, math.Min(255, zp))
	return s, byte(zp)
}

// quantizeWeight replaces n's weight (and bias) by int8 (int32) constants
// read through DequantizeLinear nodes appended to *nodes.
func quantizeWeight(g *graph.Graph, nm *namer, n *graph.Node, wi int, inits map[string]*graph.Tensor, perChannel bool, qmax, xs float64, nodes *[]*graph.Node) error {
	wt, w := floatInit(inits, n.Inputs[wi])
	dims := wt.Dims
	var rows, cols, axis int
	switch {
	case n.Is("Conv"):
		if len(dims) < 3 {
			return fmt.Errorf("Conv weight of rank %d", len(dims))
		}
		rows = int(dims[0])
		cols = len(w) / max(rows, 1)
		axis = 0
	case n.Is("Gemm"):
		rows, cols = int(dims[0]), int(dims[1])
		axis = 1
		if n.AttrInt("transB", 0) != 0 {
			axis = 0
		}
	default: // MatMul
		if len(dims) != 2 {
			perChannel = false
			rows, cols = 1, len(w)
		} else {
			rows, cols = int(dims[0]), int(dims[1])
		}
		axis = 1
	}
	alpha := float32(1)
	if n.Is("Gemm") {
		alpha = n.AttrFloat("alpha", 1)
	}
	qaxis := axis
	if !perChannel {
		qaxis = -1
	}
	q, ws := quantWeights(w, rows, cols, qaxis, qmax)
	if alpha != 1 {
		for i := range ws {
			ws[i] *= alpha
		}
	}
	// bias: Conv input 2, Gemm C when 1-D of the output width
	var bias []float32
	nOut := rows
	if axis == 1 {
		nOut = cols
	}
	if (n.Is("Conv") || n.Is("Gemm")) && len(n.Inputs) > 2 && n.Inputs[2] != "" {
		bt, bf := floatInit(inits, n.Inputs[2])
		beta := float32(1)
		if n.Is("Gemm") {
			beta = n.AttrFloat("beta", 1)
		}
		if bt != nil && len(bt.Dims) == 1 && int(bt.Dims[0]) == nOut {
			bias = make([]float32, len(bf))
			for i, v := range bf {
				bias[i] = beta * v
			}
		} else if n.Is("Gemm") && beta != 1 {
			return fmt.Errorf("Gemm C is not a constant vector and beta=%g", beta)
		}
	}
	sDims := []int64{int64(len(ws))}
	if len(ws) == 1 {
		sDims = nil
	}
	base := n.Inputs[wi]
	wq := addInit(g, nm, base+"_quantized", graph.Int8, dims, q)
	wsn := addInit(g, nm, base+"_scale", graph.Float, sDims, f32Bytes(ws))
	zp := addInit(g, nm, base+"_zero_point", graph.Int8, sDims, make([]byte, len(ws)))
	wdq := nm.name(base + "_dequantized")
	dq := &graph.Node{Name: nm.name(base + "_DequantizeLinear"), OpType: "DequantizeLinear", Inputs: []string{wq, wsn, zp}, Outputs: []string{wdq}}
	if len(ws) > 1 {
		dq.Attrs = []*graph.Attr{graph.IntAttr("axis", int64(axis))}
	}
	*nodes = append(*nodes, dq)
	n.Inputs[wi] = wdq
	if n.Is("Gemm") {
		n.DelAttr("alpha")
	}
	if bias != nil {
		bs := make([]float32, len(bias))
		bq := make([]int32, len(bias))
		for i, v := range bias {
			s := xs * float64(ws[min(i, len(ws)-1)])
			if s == 0 {
				s = 1
			}
			bs[i] = float32(s)
			x := math.RoundToEven(float64(v) / float64(bs[i]))
			x = math.Max(math.MinInt32, math.Min(math.MaxInt32, x))
			bq[i] = int32(x)
		}
		bname := n.Inputs[2]
		bqn := addInit(g, nm, bname+"_quantized", graph.Int32, []int64{int64(len(bias))}, i32Bytes(bq))
		bdq := nm.name(bname + "_dequantized")
		bdn := &graph.Node{Name: nm.name(bname + "_DequantizeLinear"), OpType: "DequantizeLinear", Outputs: []string{bdq}}
		if len(ws) > 1 {
			bsn := addInit(g, nm, bname+"_scale", graph.Float, []int64{int64(len(bias))}, f32Bytes(bs))
			bdn.Inputs = []string{bqn, bsn}
			bdn.Attrs = []*graph.Attr{graph.IntAttr("axis", 0)}
		} else {
			bdn.Inputs = []string{bqn, addInit(g, nm, bname+"_scale", graph.Float, nil, f32Bytes(bs[:1]))}
		}
		*nodes = append(*nodes, bdn)
		n.Inputs[2] = bdq
		if n.Is("Gemm") {
			n.DelAttr("beta")
		}
	}
	return nil
}
