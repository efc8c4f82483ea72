package quant

import (
	"fmt"
	"math"
	"strings"

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
	// zero value is symmetric int8 (s8s8). On x86 CPUs uint8 is the fast
	// form: ORT's x86 CPU provider fuses QDQ into QLinear kernels only for
	// uint8 activations (measured: s8s8 models run 2-3x slower than fp32
	// there, uint8 ones as fast as ORT's int8 kernels allow). With 7-bit
	// weights (the default, see FullRange) u8*s8 does not saturate.
	Asymmetric bool
	// FullRange stores weights in the full 8 bits ([-127, 127]). The
	// default is 7 bits ("reduce range"): ORT's int8 kernels on AVX2 CPUs
	// without VNNI saturate int16 pair sums with 8-bit weights, s8s8 as
	// well as u8s8 (measured on the test models: interp and ORT then
	// disagree by up to 8% of the output range; with 7 bits they agree
	// exactly). Use FullRange only on VNNI/AMX CPUs.
	FullRange bool
	// OpTypes restricts quantization to these op types (Conv, MatMul,
	// Gemm, Add, Mul, GlobalAveragePool, AveragePool, Sigmoid, LeakyRelu);
	// empty means all of them.
	OpTypes []string
	// ExcludeNodes are node names left in float.
	ExcludeNodes []string
	// Backend runs calibration (default "interp").
	Backend string
	// Target shapes the QDQ placement (default DefaultTarget, "ort-cpu";
	// Targets lists them): which ops join the int8 region and where it
	// may end in float.
	Target string

	target *Target
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
	t, err := LookupTarget(o.Target)
	if err != nil {
		return err
	}
	o.target = t
	for _, t := range o.OpTypes {
		ok := false
		for _, q := range quantizableOps {
			ok = ok || t == q
		}
		if !ok {
			return fmt.Errorf("quant: op type %q cannot be quantized (want one of %s)", t, strings.Join(quantizableOps, ", "))
		}
	}
	return nil
}

// qkind is how a node takes part in the QDQ rewrite.
type qkind int

const (
	kindWeighted  qkind = iota + 1 // Conv, MatMul, Gemm with a constant float weight
	kindActMatMul                  // MatMul of two activations
	kindBinary                     // Add, Mul (QLinearAdd, QLinearMul in ORT)
	kindUnary                      // GlobalAveragePool, AveragePool, Sigmoid, LeakyRelu
)

// QuantizableOps lists the op types Static can put between DQ and Q
// (StaticOptions.OpTypes accepts these).
func QuantizableOps() []string { return append([]string(nil), quantizableOps...) }

// quantizableOps are the op types Static can put between DQ and Q.
var quantizableOps = []string{"Conv", "MatMul", "Gemm", "Add", "Mul", "GlobalAveragePool", "AveragePool", "Sigmoid", "LeakyRelu"}

// passThrough ops move values without changing them: their output gets
// the very quantization parameters of their input, which is what lets ORT
// drop the DQ/Q pair around them and run them on int8 data.
var passThrough = map[string]bool{"MaxPool": true, "Reshape": true, "Flatten": true, "Transpose": true, "Squeeze": true, "Unsqueeze": true}

// bridgeOps are cheap float ops whose output is quantized (with its own
// calibrated range) when a quantized op reads it, so that, for example,
// the Mul of a squeeze-excitation block (x * HardSigmoid(s)) runs in int8.
var bridgeOps = map[string]bool{"HardSigmoid": true, "Tanh": true, "HardSwish": true, "Relu": true, "Clip": true}

// plan is one node to quantize.
type plan struct {
	n      *graph.Node
	kind   qkind
	acts   []int // input indexes that are activations to quantize
	weight int   // input index of the constant weight, -1 when none
	consts []int // input indexes of scalar float constants (Add, Mul)
}

// tie makes a value's quantization follow another's: a pass-through op
// (factor 1: same parameters, its own Q) or a Div/Mul by a positive
// constant folded into the scale (no node left: the DQ reads src's int8
// data with scale*factor).
type tie struct {
	src    string
	factor float64
	fold   *graph.Node // the Div/Mul removed by a scale fold
}

// qdqPlan is the placement: which nodes run in int8 and which values
// carry a Q/DQ pair.
type qdqPlan struct {
	plans []plan
	need  map[string]bool // values that get Q/DQ
	ties  map[string]tie
	order []string // needed values in topological order
}

// placeQDQ decides the QDQ placement for opts' Target. For ort-cpu (the
// default; fpga and other targets narrow it, see Target) it follows ONNX
// Runtime's QDQ fusion rules (CPU provider): Conv, MatMul, Gemm, Add, Mul,
// GlobalAveragePool, AveragePool, Sigmoid and LeakyRelu between DQ inputs
// and a Q output become QLinear ops; MatMul and Gemm without a Q after
// them become MatMulIntegerToFloat and QGemm with a float output (so
// their float consumers keep ORT's float fusions: bias+Gelu, skip+layer
// norm); Relu and Clip right after a quantized op are folded into that
// op's output Q (the output range starts at 0, so the Q clips for them
// and ORT removes them); pass-through ops share their input's parameters;
// Div or Mul by a positive constant is folded into the scale.
//
// Conv, MatMul and Gemm with constant weights are always quantized (when
// selected); the others only when all their activation inputs are
// already int8, so that quantizing them removes Q/DQ work instead of
// adding it.
func placeQDQ(g *graph.Graph, opts StaticOptions, skipOps map[*graph.Node]string, rep *Report) *qdqPlan {
	inits := g.InitializerMap()
	prod := g.Producers()
	cons := g.Consumers()
	p := &qdqPlan{need: map[string]bool{}, ties: map[string]tie{}}
	tg := opts.target
	if tg == nil {
		tg = targets[DefaultTarget]
	}
	avail := map[string]bool{} // values whose int8 form a quantized op can produce
	quant := map[*graph.Node]*plan{}
	fold := map[string]string{} // pre-activation value -> Relu/Clip output
	// values read from inside If/Loop/Scan bodies keep their float
	// producer (those bodies are not rewritten)
	outer := map[string]bool{}
	for _, n := range g.Nodes {
		for _, sg := range n.Subgraphs() {
			for v := range sg.OuterReads() {
				outer[v] = true
			}
		}
	}
	isConst := func(name string) bool { return inits[name] != nil }
	scalarConst := func(name string) (float64, bool) {
		t, f := floatInit(inits, name)
		if t == nil || len(f) != 1 {
			return 0, false
		}
		return float64(f[0]), true
	}
	allowed := func(n *graph.Node) bool {
		if why, bad := skipOps[n]; bad {
			rep.skip(n, "%s", why)
			return false
		}
		ok, why := selected(n, opts.OpTypes, opts.ExcludeNodes)
		if !ok && (n.Is("Conv") || n.Is("MatMul") || n.Is("Gemm")) {
			rep.skip(n, "%s", why)
		}
		return ok
	}
	onlyReader := func(v string, n *graph.Node) bool {
		c := cons[v]
		return len(c) == 1 && c[0] == n && !g.IsGraphOutput(v)
	}
	for _, n := range g.Nodes {
		if len(n.Subgraphs()) > 0 || len(n.Outputs) == 0 || !n.IsDefaultDomain() {
			continue
		}
		out := n.Outputs[0]
		switch {
		case n.Is("Conv") || n.Is("Gemm") || (n.Is("MatMul") && len(n.Inputs) == 2 && isConst(n.Inputs[1])):
			if !allowed(n) {
				continue
			}
			pl, err := staticPlan(n, inits)
			if err != nil {
				rep.skip(n, "%v", err)
				continue
			}
			if pn := prod[n.Inputs[0]]; pn != nil && pn.Is("DequantizeLinear") {
				rep.skip(n, "already reads DequantizeLinear output (quantized before)")
				continue
			}
			pl.kind = kindWeighted
			quant[n] = &pl
			p.plans = append(p.plans, pl)
			avail[out] = true
		case n.Is("MatMul"):
			if tg.region["MatMul"] && len(n.Inputs) == 2 && avail[n.Inputs[0]] && avail[n.Inputs[1]] && len(n.Outputs) == 1 && allowed(n) {
				pl := plan{n: n, kind: kindActMatMul, acts: []int{0, 1}, weight: -1}
				quant[n] = &pl
				p.plans = append(p.plans, pl)
				avail[out] = true
			}
		case tg.FoldScales && (n.Is("Div") || n.Is("Mul")) && len(n.Inputs) == 2 && len(n.Outputs) == 1 && !outer[out] && scaleFoldable(n, avail, scalarConst, g):
			c, _ := scalarConst(n.Inputs[1])
			f := c
			if n.Is("Div") {
				f = 1 / c
			}
			p.ties[out] = tie{src: n.Inputs[0], factor: f, fold: n}
			avail[out] = true
		case (n.Is("Add") || n.Is("Mul")) && tg.region[n.OpType]:
			if len(n.Inputs) != 2 || len(n.Outputs) != 1 {
				continue
			}
			pl := plan{n: n, kind: kindBinary, weight: -1}
			ok := true
			for i, in := range n.Inputs {
				switch {
				case avail[in]:
					pl.acts = append(pl.acts, i)
				case isConst(in):
					if _, sc := scalarConst(in); !sc {
						ok = false
					}
					pl.consts = append(pl.consts, i)
				default:
					ok = false
				}
			}
			if ok && len(pl.acts) > 0 && allowed(n) {
				quant[n] = &pl
				p.plans = append(p.plans, pl)
				avail[out] = true
			}
		case (n.Is("GlobalAveragePool") || n.Is("AveragePool") || n.Is("Sigmoid") || n.Is("LeakyRelu")) && tg.region[n.OpType]:
			if len(n.Inputs) == 1 && len(n.Outputs) == 1 && avail[n.Inputs[0]] && allowed(n) {
				pl := plan{n: n, kind: kindUnary, acts: []int{0}, weight: -1}
				quant[n] = &pl
				p.plans = append(p.plans, pl)
				avail[out] = true
			}
		case passThrough[n.OpType]:
			if len(n.Inputs) >= 1 && len(n.Outputs) == 1 && avail[n.Inputs[0]] {
				p.ties[out] = tie{src: n.Inputs[0], factor: 1}
				avail[out] = true
			}
		}
		// Relu/Clip right after a quantized op: fold into its Q.
		if tg.FoldActivations && (n.Is("Relu") || n.Is("Clip")) && len(n.Outputs) == 1 && reluLike(n, inits) {
			if pn := prod[n.Inputs[0]]; pn != nil && quant[pn] != nil && onlyReader(n.Inputs[0], n) {
				fold[n.Inputs[0]] = out
				avail[out] = true
				continue
			}
		}
		if bridgeOps[n.OpType] && len(n.Outputs) == 1 && len(n.Inputs) >= 1 && avail[n.Inputs[0]] {
			avail[out] = true
		}
	}
	// Which values need a Q/DQ pair: walk backwards so that ties pull
	// their sources in.
	for i := len(g.Nodes) - 1; i >= 0; i-- {
		n := g.Nodes[i]
		if len(n.Outputs) == 1 {
			if t, ok := p.ties[n.Outputs[0]]; ok && p.need[n.Outputs[0]] {
				p.need[t.src] = true
			}
		}
		pl := quant[n]
		if pl == nil {
			continue
		}
		for _, a := range pl.acts {
			p.need[n.Inputs[a]] = true
		}
		out := n.Outputs[0]
		switch pl.kind {
		case kindWeighted, kindActMatMul:
			// ort-cpu: Conv has no float-output int8 form in ORT;
			// MatMul/Gemm do (MatMulIntegerToFloat, QGemm).
			if tg.floatOut[n.OpType] {
				break
			}
			fallthrough
		default:
			if f, ok := fold[out]; ok {
				out = f
			}
			if !feedsOnlyOutputs(g, out) {
				p.need[out] = true
			}
		}
	}
	// A scale fold whose result is not needed stays a float op; a tie
	// whose source is never quantized is dropped.
	for v := range p.ties {
		if !p.need[v] {
			delete(p.ties, v)
		}
	}
	// order: graph inputs, then node outputs in topological order
	seen := map[string]bool{}
	add := func(v string) {
		if p.need[v] && !seen[v] {
			seen[v] = true
			p.order = append(p.order, v)
		}
	}
	for _, v := range g.Inputs {
		add(v.Name)
	}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			if prod[in] == nil && !isConst(in) {
				add(in)
			}
		}
		for _, o := range n.Outputs {
			add(o)
		}
	}
	return p
}

// scaleFoldable reports whether n is Div(x, c) or Mul(x, c) with x int8
// available and c a positive float scalar constant, whose result is not a
// graph output: such a node can be folded into the DQ scale of x.
func scaleFoldable(n *graph.Node, avail map[string]bool, scalarConst func(string) (float64, bool), g *graph.Graph) bool {
	if !avail[n.Inputs[0]] || g.IsGraphOutput(n.Outputs[0]) {
		return false
	}
	c, ok := scalarConst(n.Inputs[1])
	return ok && c > 0 && !math.IsInf(c, 0) && !math.IsNaN(c) && (n.Is("Mul") || c != 0)
}

// reluLike reports whether n is Relu, or a Clip whose lower bound is a
// constant >= 0 (so the output range starts at or above 0).
func reluLike(n *graph.Node, inits map[string]*graph.Tensor) bool {
	if n.Is("Relu") {
		return true
	}
	if len(n.Inputs) < 2 || n.Inputs[1] == "" {
		return false
	}
	t, f := floatInit(inits, n.Inputs[1])
	return t != nil && len(f) == 1 && f[0] >= 0
}

// Static quantizes a float32 model into QDQ form calibrated on calib (each
// sample: the model's real inputs, in order). For each selected Conv,
// MatMul and Gemm with a constant float weight:
//
//	Before: Y = Conv(X, W, B)
//	After:  Y' = Conv(DQ(Q(X)), DQ(Wq), DQ(Bq)); Y = Y'; consumers read DQ(Q(Y))
//
// and, where their inputs are already int8, Add, Mul, GlobalAveragePool,
// AveragePool, Sigmoid, LeakyRelu and MatMul of two activations likewise
// (see placeQDQ for the rules, which follow ONNX Runtime's QDQ fusions).
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
	rep := &Report{Mode: "int8-static (" + opts.Calibrate + ")", Target: opts.target.Name}
	if opts.target.Name != DefaultTarget {
		rep.Notes = append(rep.Notes, "QDQ placed for target "+opts.target.Name+": "+opts.target.Title())
	}
	constantsToInits(g)
	foldConstReshapes(g)
	commonChecks(g, rep)

	opset := out.Opset("")
	perChannel := opts.PerChannel
	if opset < 10 || opset < 13 && perChannel {
		why := "per-channel weights need 13"
		if opset < 10 {
			why = "QuantizeLinear needs 10, per-channel weights 13"
		}
		conv, note, err := raiseOpset(out, why)
		switch {
		case err == nil:
			rep.Notes = append(rep.Notes, note)
			out = conv
			g = out.Graph
		case opset >= 10:
			rep.Notes = append(rep.Notes, fmt.Sprintf("opset %d < 13 and the version converter refused (%v): weights quantized per tensor, not per channel", opset, err))
			perChannel = false
		default:
			rep.Notes = append(rep.Notes, fmt.Sprintf("opset %d < 10 (QuantizeLinear needs 10) and the version converter refused: %v: nothing quantized", opset, err))
			rep.countOps(g)
			return out, rep, nil
		}
	}

	// Place, calibrate, and re-place without the nodes whose activations
	// turned out not to be float32 (or never observed).
	skipOps := map[*graph.Node]string{}
	var pl *qdqPlan
	var ranges map[string][2]float64
	for attempt := 0; ; attempt++ {
		trialRep := &Report{}
		pl = placeQDQ(g, opts, skipOps, trialRep)
		if out.Opset("") < 12 {
			dropMaxPoolTies(g, pl)
		}
		var names []string
		for _, v := range pl.order {
			if _, tied := pl.ties[v]; !tied {
				names = append(names, v)
			}
		}
		if len(pl.plans) == 0 {
			rep.Skipped = append(rep.Skipped, trialRep.Skipped...)
			rep.countOps(g)
			return out, rep, nil
		}
		var err error
		if ranges, err = calibrate(m, names, calib, opts); err != nil {
			return nil, nil, err
		}
		missing := map[string]bool{}
		for _, v := range names {
			if _, ok := ranges[v]; !ok {
				missing[v] = true
			}
		}
		if len(missing) == 0 || attempt == 3 {
			rep.Skipped = append(rep.Skipped, trialRep.Skipped...)
			break
		}
		for _, p := range pl.plans {
			for _, v := range append(append([]string(nil), p.n.Inputs...), p.n.Outputs...) {
				if missing[v] {
					skipOps[p.n] = "an activation input is not float32 or was never observed in calibration"
				}
			}
		}
	}
	qmax := 63.0
	if opts.FullRange {
		qmax = 127
	}
	nm := newNamer(g)
	actDT := graph.Int8
	if opts.Asymmetric {
		actDT = graph.Uint8
	}
	type qp struct {
		scale, zp string // initializer names
		s         float64
		z         byte
		q         string // the int8 value
		dq        string // the dequantized value consumers read
	}
	aq := map[string]*qp{}
	var newNodes []*graph.Node
	removed := map[*graph.Node]bool{}
	for _, v := range pl.order {
		var p *qp
		if t, ok := pl.ties[v]; ok {
			src := aq[t.src]
			if src == nil {
				return nil, nil, fmt.Errorf("quant: static: internal error: %q is tied to unquantized %q", v, t.src)
			}
			p = &qp{scale: src.scale, zp: src.zp, s: src.s, z: src.z}
			if t.fold != nil {
				p.s = float64(float32(src.s * t.factor))
				p.scale = addInit(g, nm, v+"_scale", graph.Float, nil, f32Bytes([]float32{float32(p.s)}))
				p.q = src.q
				removed[t.fold] = true
			}
		} else {
			r, ok := ranges[v]
			if !ok {
				return nil, nil, fmt.Errorf("quant: static: internal error: no range for %q", v)
			}
			s, zp := actParams(r[0], r[1], opts.Asymmetric)
			p = &qp{s: s, z: zp,
				scale: addInit(g, nm, v+"_scale", graph.Float, nil, f32Bytes([]float32{float32(s)})),
				zp:    addInit(g, nm, v+"_zero_point", actDT, nil, []byte{zp})}
		}
		if p.q == "" {
			p.q = nm.name(v + "_quantized")
			newNodes = append(newNodes, &graph.Node{Name: nm.name(v + "_QuantizeLinear"), OpType: "QuantizeLinear",
				Inputs: []string{v, p.scale, p.zp}, Outputs: []string{p.q}})
		}
		p.dq = nm.name(v + "_dequantized")
		newNodes = append(newNodes, &graph.Node{Name: nm.name(v + "_DequantizeLinear"), OpType: "DequantizeLinear",
			Inputs: []string{p.q, p.scale, p.zp}, Outputs: []string{p.dq}})
		aq[v] = p
	}
	inits := g.InitializerMap()
	for _, pn := range pl.plans {
		n := pn.n
		if pn.weight >= 0 {
			xs := aq[n.Inputs[0]].s
			if err := quantizeWeight(g, nm, n, pn.weight, inits, perChannel, qmax, xs, &newNodes); err != nil {
				// the activation Q/DQ stay: a float op between them is
				// still correct, only not faster.
				rep.skip(n, "%v", err)
				continue
			}
		}
		for _, ci := range pn.consts {
			_, f := floatInit(inits, n.Inputs[ci])
			c := float64(f[0])
			s, zq, q := constParams(c, opts.Asymmetric)
			base := n.Inputs[ci]
			t := inits[base]
			qn := addInit(g, nm, base+"_quantized", actDT, t.Dims, []byte{q})
			sn := addInit(g, nm, base+"_scale", graph.Float, nil, f32Bytes([]float32{float32(s)}))
			zn := addInit(g, nm, base+"_zero_point", actDT, nil, []byte{zq})
			dq := nm.name(base + "_dequantized")
			newNodes = append(newNodes, &graph.Node{Name: nm.name(base + "_DequantizeLinear"), OpType: "DequantizeLinear",
				Inputs: []string{qn, sn, zn}, Outputs: []string{dq}})
			n.Inputs[ci] = dq
		}
		rep.quantized(n)
	}
	// Quantized ops read the DQ of their inputs. Float readers of a value
	// written by a quantized op (or a Relu/Clip or pass-through after one)
	// read the DQ too: ORT fuses DQ -> op -> Q only when the op's output
	// goes to the Q alone. Float readers of a value that a float op wrote
	// (a graph input, a layer norm) keep the float value: no DQ left to
	// run, and no rounding where none is needed.
	prod := g.Producers()
	inPlan := map[*graph.Node]bool{}
	for _, pn := range pl.plans {
		inPlan[pn.n] = true
	}
	floatSource := func(v string) bool {
		if _, tied := pl.ties[v]; tied {
			return false
		}
		pn := prod[v]
		if pn == nil {
			return true // graph input
		}
		if inPlan[pn] {
			return false
		}
		if pn.Is("Relu") || pn.Is("Clip") {
			if pp := prod[pn.Inputs[0]]; pp != nil && inPlan[pp] {
				return false
			}
		}
		return true
	}
	var keep []*graph.Node
	for _, n := range g.Nodes {
		if removed[n] {
			continue
		}
		keep = append(keep, n)
		if len(n.Subgraphs()) > 0 {
			continue
		}
		for i, in := range n.Inputs {
			if p, ok := aq[in]; ok && (inPlan[n] || !floatSource(in)) {
				n.Inputs[i] = p.dq
			}
		}
	}
	g.Nodes = append(keep, newNodes...)
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

// dropMaxPoolTies removes pass-through ties through MaxPool (int8 MaxPool
// needs opset 12): the MaxPool output is then calibrated on its own.
func dropMaxPoolTies(g *graph.Graph, p *qdqPlan) {
	prod := g.Producers()
	for v, t := range p.ties {
		if pn := prod[v]; pn != nil && pn.Is("MaxPool") && t.fold == nil {
			delete(p.ties, v)
		}
	}
}

// constParams quantizes a scalar constant exactly: its value is one end
// of the range.
func constParams(c float64, asym bool) (scale float64, zp, q byte) {
	a := math.Abs(c)
	if a == 0 || float32(a) == 0 {
		return 1, 0, 0
	}
	if !asym {
		s := float64(float32(a / 127))
		if c > 0 {
			return s, 0, 127
		}
		return s, 0, 0x81 // -127 as int8
	}
	s := float64(float32(a / 255))
	if c > 0 {
		return s, 0, 255
	}
	return s, 255, 0
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
