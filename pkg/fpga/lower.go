package fpga

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
)

// Lowering turns a QDQ int8 model into a Design: a host head (the input's
// QuantizeLinear), a pipeline of engines, and a host tail (the float ops
// after the last engine, e.g. a bias Add or a Softmax).
//
// Supported between QuantizeLinear/DequantizeLinear pairs:
//
//	Conv (group 1, square kernel, dilation 1, symmetric padding) -> SWG + MVAU
//	depthwise Conv (group = input channels = output channels)    -> SWG + VVAU
//	MatMul / Gemm with constant weights                          -> MVAU
//	AveragePool (stride = kernel, no pad), GlobalAveragePool     -> AvgPool
//	Add of a block input and its body's output (residual block)  -> Residual
//	  (the body's engines, a frame-deep bypass FIFO and an add that
//	  requantizes both to the output scale; Relu/Clip fold into it)
//	after either, up to the next QuantizeLinear: Add of a per-channel
//	constant, Mul by a positive constant, Relu, Clip, MaxPool with
//	stride = kernel (moved after the requantizer: all these are monotone),
//	QuantizeLinear+DequantizeLinear (a second rounding, done by a table),
//	Reshape/Flatten to a vector (wiring: the next layer's weights are
//	permuted to the stream order).
//
// Weights must be int8 with zero points 0 (per channel or per tensor);
// activations uint8 or int8 with any zero point (folded into the bias).

// LowerOptions configure lowering.
type LowerOptions struct {
	// Folding by node name; nodes not named get PE = SIMD = 1 unless
	// TargetCycles is set.
	Folding map[string]Fold
	// TargetCycles per frame: each layer is folded (SIMD first, then PE,
	// FINN's SetFolding) until it takes at most this many cycles.
	TargetCycles int
	// Shapes fixes dynamic input dims.
	Shapes map[string][]int64
}

// LayerInfo describes one lowered layer for reports.
type LayerInfo struct {
	Node    string `json:"node"`
	Op      string `json:"op"`
	Engine  string `json:"engine"`
	PE      int    `json:"pe"`
	SIMD    int    `json:"simd"`
	MH      int    `json:"mh,omitempty"`
	MW      int    `json:"mw,omitempty"`
	IFMCh   int    `json:"ifm_ch"`
	K       []int  `json:"k,omitempty"`
	OFM     []int  `json:"ofm,omitempty"`
	Stages  []int  `json:"-"` // indexes into the pipeline
	EstCyc  int    `json:"cycles_estimated"`
	FINNCyc int    `json:"cycles_finn"`

	// body: the stages of a layer inside a residual block (Stages is
	// then empty: the pipeline holds the block as one stage)
	body []Stage
}

// Design is a lowered model.
type Design struct {
	Source *graph.Model
	// Host head: the graph input and its quantization.
	Input      string
	InShape    []int64 // [1,C,H,W] or [1,K]
	InScale    float32
	InZero     int32
	InSigned   bool
	Pipeline   *Pipeline
	Layers     []LayerInfo
	TailValue  string  // the float value the pipeline's output dequantizes to
	TailShape  []int64 // its ONNX shape
	outSpatial bool    // pipeline output in (h, w, c) order
	outC       int
	// Dequantization of the pipeline output: raw accumulators times
	// OutScale[c], or (q - OutZero)·OutScale[0] when requantized.
	OutScale []float32
	OutBias  []float32 // raw outputs: the layer's own float bias, per channel
	OutZero  int32
	OutRaw   bool
	// Tail is the host model from TailValue to the graph outputs; nil
	// when TailValue is the only graph output.
	Tail *graph.Model
	// HostOps lists what runs on the host, for the report.
	HostOps []string
}

// layout of the stream between engines
type layout struct {
	spatial bool
	c, h, w int // spatial: channels, height, width (stream order h, w, c)
	n       int // vector length
	// flattenPerm maps a vector index (ONNX flatten order) to its stream
	// position, when the vector is a flattened spatial map.
	flattenFrom *layout
}

func (l layout) elems() int {
	if l.spatial {
		return l.c * l.h * l.w
	}
	return l.n
}

type qparams struct {
	scale  float32
	zero   int32
	signed bool
}

func (q qparams) lo() int32 {
	if q.signed {
		return -128
	}
	return 0
}
func (q qparams) hi() int32 {
	if q.signed {
		return 127
	}
	return 255
}

type lowerer struct {
	m     *graph.Model
	g     *graph.Graph
	inits map[string]*graph.Tensor
	prod  map[string]*graph.Node
	cons  map[string][]*graph.Node
	vi    map[string]*graph.ValueInfo
	opts  LowerOptions
	d     *Design
	bad   []string
}

// Lower lowers a QDQ model. Unsupported nodes are listed in the error.
func Lower(src *graph.Model, opts LowerOptions) (*Design, error) {
	m := src.Clone()
	if _, err := graph.InferShapes(m, graph.InferOptions{Fixed: opts.Shapes}); err != nil {
		return nil, fmt.Errorf("fpga: %w", err)
	}
	g := m.Graph
	l := &lowerer{m: m, g: g, inits: g.InitializerMap(), prod: g.Producers(), cons: g.Consumers(), vi: g.ValueInfoMap(), opts: opts,
		d: &Design{Source: src, Pipeline: &Pipeline{}}}
	for _, n := range g.Nodes {
		if n.Is("Constant") {
			if t := n.AttrTensor("value"); t != nil && len(n.Outputs) == 1 {
				c := t.Clone()
				c.Name = n.Outputs[0]
				l.inits[c.Name] = c
			}
		}
	}
	if err := l.run(); err != nil {
		return nil, err
	}
	return l.d, nil
}

func (l *lowerer) shape(v string) ([]int64, error) {
	if vi, ok := l.vi[v]; ok && vi.HasShape {
		if s, ok := vi.Shape.Static(); ok {
			return s, nil
		}
	}
	if t, ok := l.inits[v]; ok {
		return t.Dims, nil
	}
	return nil, fmt.Errorf("fpga: the shape of %q is not static (give --shape for dynamic inputs)", v)
}

func (l *lowerer) single(v string) (*graph.Node, error) {
	c := l.cons[v]
	if len(c) != 1 {
		return nil, fmt.Errorf("fpga: value %q has %d readers; only chains and residual blocks (a value read by an engine and by the Add that closes the block) are supported", v, len(c))
	}
	return c[0], nil
}

func (l *lowerer) qparamsOf(n *graph.Node) (qparams, error) {
	if len(n.Inputs) < 2 {
		return qparams{}, fmt.Errorf("fpga: %s has no scale", n)
	}
	st, ok := l.inits[n.Inputs[1]]
	if !ok {
		return qparams{}, fmt.Errorf("fpga: %s: scale is not a constant", n)
	}
	sv, err := st.AsFloat64s()
	if err != nil || len(sv) != 1 {
		return qparams{}, fmt.Errorf("fpga: %s: activations need one scale per tensor", n)
	}
	q := qparams{scale: float32(sv[0])}
	if len(n.Inputs) > 2 && n.Inputs[2] != "" {
		zt, ok := l.inits[n.Inputs[2]]
		if !ok {
			return qparams{}, fmt.Errorf("fpga: %s: zero point is not a constant", n)
		}
		zv, err := zt.AsInt64s()
		if err != nil || len(zv) != 1 {
			return qparams{}, fmt.Errorf("fpga: %s: activations need one zero point per tensor", n)
		}
		q.zero = int32(zv[0])
		switch zt.DType {
		case graph.Int8:
			q.signed = true
		case graph.Uint8:
		default:
			return qparams{}, fmt.Errorf("fpga: %s: %s activations are not supported (uint8 or int8)", n, zt.DType)
		}
	}
	if !(q.scale > 0) {
		return qparams{}, fmt.Errorf("fpga: %s: scale %g is not positive", n, q.scale)
	}
	return q, nil
}

// weights reads a constant int8 weight through its DequantizeLinear:
// values, per-channel scales (len 1 or the axis size) and the axis.
func (l *lowerer) weights(v string, e *graph.Node) (*graph.Tensor, []int8, []float64, int, error) {
	dq := l.prod[v]
	if dq == nil || !dq.Is("DequantizeLinear") {
		return nil, nil, nil, 0, fmt.Errorf("fpga: %s: weight %q is not a DequantizeLinear of int8 constants", e, v)
	}
	wt, ok := l.inits[dq.Inputs[0]]
	if !ok || wt.DType != graph.Int8 {
		return nil, nil, nil, 0, fmt.Errorf("fpga: %s: weight %q is not an int8 constant", e, dq.Inputs[0])
	}
	st, ok := l.inits[dq.Inputs[1]]
	if !ok {
		return nil, nil, nil, 0, fmt.Errorf("fpga: %s: weight scale is not a constant", e)
	}
	sc, err := st.AsFloat64s()
	if err != nil {
		return nil, nil, nil, 0, fmt.Errorf("fpga: %s: %w", e, err)
	}
	if len(dq.Inputs) > 2 && dq.Inputs[2] != "" {
		zt, ok := l.inits[dq.Inputs[2]]
		if !ok {
			return nil, nil, nil, 0, fmt.Errorf("fpga: %s: weight zero point is not a constant", e)
		}
		zv, err := zt.AsInt64s()
		if err != nil {
			return nil, nil, nil, 0, fmt.Errorf("fpga: %s: %w", e, err)
		}
		for _, z := range zv {
			if z != 0 {
				return nil, nil, nil, 0, fmt.Errorf("fpga: %s: weights need zero points of 0 (symmetric), got %d", e, z)
			}
		}
	}
	w := make([]int8, len(wt.Raw))
	for i, b := range wt.Raw {
		w[i] = int8(b)
	}
	axis := int(dq.AttrInt("axis", 1))
	if axis < 0 {
		axis += len(wt.Dims)
	}
	return wt, w, sc, axis, nil
}

func (l *lowerer) run() error {
	real := l.g.RealInputs()
	if len(real) != 1 {
		return fmt.Errorf("fpga: the model has %d inputs; the FPGA flow takes one", len(real))
	}
	in := real[0].Name
	l.d.Input = in
	shp, err := l.shape(in)
	if err != nil {
		return err
	}
	l.d.InShape = shp
	var lay layout
	switch {
	case len(shp) == 4 && shp[0] == 1:
		lay = layout{spatial: true, c: int(shp[1]), h: int(shp[2]), w: int(shp[3])}
	case len(shp) == 2 && shp[0] == 1:
		lay = layout{n: int(shp[1])}
	default:
		return fmt.Errorf("fpga: input %q has shape %v; want [1,C,H,W] or [1,K] (batch 1)", in, shp)
	}
	q, err := l.single(in)
	if err != nil {
		return err
	}
	if !q.Is("QuantizeLinear") {
		return fmt.Errorf("fpga: input %q must feed a QuantizeLinear (a QDQ model: optimize --quantize int8-static --target fpga), not %s", in, q)
	}
	qp, err := l.qparamsOf(q)
	if err != nil {
		return err
	}
	l.d.InScale, l.d.InZero, l.d.InSigned = qp.scale, qp.zero, qp.signed
	l.d.HostOps = append(l.d.HostOps, fmt.Sprintf("%s (host: quantizes the input)", q))
	cur := q.Outputs[0]
	var open *resBlock
	for {
		dq, err := l.single(cur)
		if err != nil {
			return err
		}
		if !dq.Is("DequantizeLinear") {
			return fmt.Errorf("fpga: quantized value %q feeds %s; expected its DequantizeLinear", cur, dq)
		}
		var e *graph.Node
		if add, body := l.residualFork(dq.Outputs[0]); add != nil && open == nil {
			// a residual block starts: its body is lowered as usual,
			// then closed into one stage when the stream reaches the Add
			open = &resBlock{add: add, start: len(l.d.Pipeline.Stages), layer0: len(l.d.Layers), in: qp, lay: lay}
			e = body
		} else if add != nil {
			return fmt.Errorf("fpga: %s: nested residual blocks are not supported", add)
		} else {
			e, err = l.single(dq.Outputs[0])
			if err != nil {
				return err
			}
		}
		if open != nil && e == open.add {
			next, nqp, err := l.closeResidual(open, qp, lay)
			if err != nil {
				return err
			}
			open = nil
			cur, qp = next, nqp
			continue
		}
		next, nqp, nlay, done, err := l.engine(e, qp, lay)
		if err != nil {
			return err
		}
		if done {
			if open != nil {
				return fmt.Errorf("fpga: %s: the residual block's body ends before its Add", open.add)
			}
			break
		}
		cur, qp, lay = next, nqp, nlay
	}
	if len(l.bad) > 0 {
		return fmt.Errorf("fpga: unsupported: %s", strings.Join(l.bad, "; "))
	}
	// a FIFO after every layer but the last, a frame of its output deep
	// (capped at 1024 beats)
	p := l.d.Pipeline
	p.FIFOs = map[int]int{}
	for i, li := range l.d.Layers {
		if i == len(l.d.Layers)-1 || len(li.Stages) == 0 {
			continue
		}
		p.FIFOs[li.Stages[len(li.Stages)-1]] = fifoDepth(p.Stages[li.Stages[len(li.Stages)-1]])
	}
	return p.Check()
}

// chainOp is one float op after an engine, before the next quantized value.
type chainOp struct {
	kind string    // add, mul, relu, clip, q (QuantizeLinear+DequantizeLinear), pool, flatten
	per  []float32 // add/mul: per channel (len 1: scalar)
	lo   float32   // clip
	hi   float32
	q    qparams
	k    int // pool
	node *graph.Node
}

// engine lowers the compute node e (reading a dequantized value with
// params qp in layout lay) and the float chain after it.
func (l *lowerer) engine(e *graph.Node, qp qparams, lay layout) (string, qparams, layout, bool, error) {
	var (
		mh, mw int
		w      []int8 // [mh][mw] in stream order
		wsc    []float64
		bias   []float64 // float bias (from Conv B or Gemm C), per output
		stages []Stage
		info   LayerInfo
		outLay layout
		dw     bool     // depthwise Conv: a VVAU, described by mv
		pool   *AvgPool // average pool, described by mv (weights 1)
	)
	info.Node, info.Op = e.Name, e.OpType
	switch {
	case e.Is("Conv"):
		if !lay.spatial {
			return "", qparams{}, layout{}, false, fmt.Errorf("fpga: %s reads a vector", e)
		}
		wt, wv, sc, axis, err := l.weights(e.Inputs[1], e)
		if err != nil {
			return "", qparams{}, layout{}, false, err
		}
		if len(wt.Dims) != 4 || (len(sc) != 1 && axis != 0) {
			return "", qparams{}, layout{}, false, fmt.Errorf("fpga: %s: weight %v with scales on axis %d", e, wt.Dims, axis)
		}
		M, C, kh, kw := int(wt.Dims[0]), int(wt.Dims[1]), int(wt.Dims[2]), int(wt.Dims[3])
		if g := int(e.AttrInt("group", 1)); g != 1 {
			if g != lay.c || M != g || C != 1 {
				l.bad = append(l.bad, fmt.Sprintf("%s: group %d over %d channels into %d (of grouped convolutions only depthwise ones, group = input channels = output channels, are supported)", e, g, lay.c, M))
				return "", qparams{}, layout{}, false, fmt.Errorf("fpga: unsupported: %s", strings.Join(l.bad, "; "))
			}
			dw = true
			C = lay.c
		}
		if C != lay.c || kh != kw {
			return "", qparams{}, layout{}, false, fmt.Errorf("fpga: %s: %dx%d kernel over %d channels (input has %d); square kernels only", e, kh, kw, C, lay.c)
		}
		for _, d := range e.AttrInts("dilations") {
			if d != 1 {
				return "", qparams{}, layout{}, false, fmt.Errorf("fpga: %s: dilation %d (only 1)", e, d)
			}
		}
		st := e.AttrInts("strides")
		s := 1
		if len(st) > 0 {
			s = int(st[0])
			for _, x := range st {
				if int(x) != s {
					return "", qparams{}, layout{}, false, fmt.Errorf("fpga: %s: strides %v differ", e, st)
				}
			}
		}
		p := 0
		switch ap := e.AttrString("auto_pad", "NOTSET"); ap {
		case "NOTSET", "":
			pads := e.AttrInts("pads")
			if len(pads) > 0 {
				p = int(pads[0])
				for _, x := range pads {
					if int(x) != p {
						return "", qparams{}, layout{}, false, fmt.Errorf("fpga: %s: asymmetric pads %v", e, pads)
					}
				}
			}
		case "VALID":
		case "SAME_UPPER", "SAME_LOWER":
			if s != 1 || kh%2 == 0 {
				return "", qparams{}, layout{}, false, fmt.Errorf("fpga: %s: auto_pad %s with stride %d and kernel %d pads asymmetrically", e, ap, s, kh)
			}
			p = (kh - 1) / 2
		default:
			return "", qparams{}, layout{}, false, fmt.Errorf("fpga: %s: auto_pad %q", e, ap)
		}
		swg := &SWG{Name: e.Name + "_swg", C: C, H: lay.h, W: lay.w, K: kh, S: s, P: p, SIMD: 1, Pad: qp.zero, Signed: qp.signed, Depthwise: dw}
		mh, mw = M, kh*kw*C
		if dw {
			// one row of K·K taps per channel in (ky, kx) order: the
			// weights' own layout [C, 1, K, K]
			mw = kh * kw
			w = append([]int8(nil), wv...)
		} else {
			w = make([]int8, mh*mw)
		}
		for m := 0; m < M && !dw; m++ {
			for ky := 0; ky < kh; ky++ {
				for kx := 0; kx < kw; kx++ {
					for c := 0; c < C; c++ {
						w[m*mw+(ky*kw+kx)*C+c] = wv[((m*C+c)*kh+ky)*kw+kx]
					}
				}
			}
		}
		wsc = expand(sc, M)
		if len(e.Inputs) > 2 && e.Inputs[2] != "" {
			b, err := l.floatBias(e.Inputs[2], e, M)
			if err != nil {
				return "", qparams{}, layout{}, false, err
			}
			bias = b
		}
		outLay = layout{spatial: true, c: M, h: swg.OH(), w: swg.OW()}
		stages = append(stages, swg)
		info.Engine = "SWG+MVAU"
		if dw {
			info.Engine = "SWG+VVAU"
		}
		info.K = []int{kh, kw}
		info.OFM = []int{swg.OH(), swg.OW()}
		info.IFMCh = C
	case e.Is("MatMul"), e.Is("Gemm"):
		if lay.spatial {
			return "", qparams{}, layout{}, false, fmt.Errorf("fpga: %s reads a %dx%dx%d map; flatten it first", e, lay.c, lay.h, lay.w)
		}
		wt, wv, sc, axis, err := l.weights(e.Inputs[1], e)
		if err != nil {
			return "", qparams{}, layout{}, false, err
		}
		if len(wt.Dims) != 2 {
			return "", qparams{}, layout{}, false, fmt.Errorf("fpga: %s: weight of rank %d", e, len(wt.Dims))
		}
		K, N := int(wt.Dims[0]), int(wt.Dims[1])
		trans := e.Is("Gemm") && e.AttrInt("transB", 0) == 1
		if trans {
			K, N = N, K
		}
		if e.Is("Gemm") && (e.AttrInt("transA", 0) != 0 || e.AttrFloat("alpha", 1) != 1 || e.AttrFloat("beta", 1) != 1) {
			return "", qparams{}, layout{}, false, fmt.Errorf("fpga: %s: transA, alpha and beta must be defaults", e)
		}
		if K != lay.n {
			return "", qparams{}, layout{}, false, fmt.Errorf("fpga: %s: %d inputs, the stream carries %d", e, K, lay.n)
		}
		outAxis := 1
		if trans {
			outAxis = 0
		}
		if len(sc) != 1 && axis != outAxis {
			return "", qparams{}, layout{}, false, fmt.Errorf("fpga: %s: weight scales on axis %d, want per output (axis %d)", e, axis, outAxis)
		}
		mh, mw = N, K
		w = make([]int8, mh*mw)
		for n := 0; n < N; n++ {
			for k := 0; k < K; k++ {
				src := k*N + n
				if trans {
					src = n*K + k
				}
				w[n*mw+streamIndex(lay, k)] = wv[src]
			}
		}
		wsc = expand(sc, N)
		if e.Is("Gemm") && len(e.Inputs) > 2 && e.Inputs[2] != "" {
			b, err := l.floatBias(e.Inputs[2], e, N)
			if err != nil {
				return "", qparams{}, layout{}, false, err
			}
			bias = b
		}
		outLay = layout{n: N}
		info.Engine = "MVAU"
		info.IFMCh = K
	case e.Is("AveragePool"), e.Is("GlobalAveragePool"):
		if !lay.spatial {
			return "", qparams{}, layout{}, false, fmt.Errorf("fpga: %s pools a vector", e)
		}
		kh, kw := lay.h, lay.w
		if e.Is("AveragePool") {
			ks := e.AttrInts("kernel_shape")
			st := e.AttrInts("strides")
			if len(ks) != 2 || len(st) != 2 || st[0] != ks[0] || st[1] != ks[1] || e.AttrInt("ceil_mode", 0) != 0 {
				return "", qparams{}, layout{}, false, fmt.Errorf("fpga: %s: only 2-D average pools with stride = kernel and floor mode (kernel %v, strides %v)", e, ks, st)
			}
			for _, p := range e.AttrInts("pads") {
				if p != 0 {
					return "", qparams{}, layout{}, false, fmt.Errorf("fpga: %s: padded average pools are not supported", e)
				}
			}
			if ap := e.AttrString("auto_pad", "NOTSET"); ap != "NOTSET" && ap != "VALID" {
				return "", qparams{}, layout{}, false, fmt.Errorf("fpga: %s: auto_pad %s", e, ap)
			}
			kh, kw = int(ks[0]), int(ks[1])
		}
		pool = &AvgPool{Name: e.Name, C: lay.c, H: lay.h, W: lay.w, KH: kh, KW: kw, InSigned: qp.signed}
		if kh <= 0 || kw <= 0 || pool.OH() <= 0 || pool.OW() <= 0 {
			return "", qparams{}, layout{}, false, fmt.Errorf("fpga: %s: %dx%d window over a %dx%d map", e, kh, kw, lay.h, lay.w)
		}
		// described as a depthwise unit with weights 1 and scale 1/N:
		// the mean's 1/N goes into the requantizer's multiplier (exact,
		// see PoolRequant, unless float ops sit between the pool and its
		// QuantizeLinear)
		mh, mw = lay.c, kh*kw
		w = make([]int8, mh*mw)
		for i := range w {
			w[i] = 1
		}
		wsc = make([]float64, mh)
		for i := range wsc {
			wsc[i] = 1 / float64(mw)
		}
		outLay = layout{spatial: true, c: lay.c, h: pool.OH(), w: pool.OW()}
		info.Engine = "AvgPool"
		info.K = []int{kh, kw}
		info.OFM = []int{pool.OH(), pool.OW()}
		info.IFMCh = lay.c
	default:
		return "", qparams{}, layout{}, false, fmt.Errorf("fpga: unsupported: %s (supported engines: Conv, MatMul, Gemm, AveragePool, GlobalAveragePool)", e)
	}
	if pool != nil {
		if _, ok := l.opts.Folding[e.Name]; ok {
			return "", qparams{}, layout{}, false, fmt.Errorf("fpga: folding names %s, an average pool: pools take a pixel per cycle and have no PE/SIMD", e)
		}
	}

	mv := &MVAU{Name: e.Name, MH: mh, MW: mw, PE: 1, SIMD: 1, Weights: w, InSigned: qp.signed, Vectors: 1}
	if outLay.spatial {
		mv.Vectors = outLay.h * outLay.w
	}
	if pool != nil {
		mv.PE = mh // every channel per beat
	}
	// zero point of the input folded into the bias: Σ(x - z)w = Σxw - zΣw
	mv.Bias = make([]int64, mh)
	for c := 0; c < mh; c++ {
		var sw int64
		for _, x := range w[c*mw : (c+1)*mw] {
			sw += int64(x)
		}
		mv.Bias[c] = -int64(qp.zero) * sw
	}
	accScale := make([]float64, mh) // float value of one accumulator unit
	for c := range accScale {
		accScale[c] = float64(qp.scale) * wsc[c]
	}
	// the float chain after the engine
	ops, endQ, tailFrom, err := l.chain(e.Outputs[0], bias, outLay)
	if err != nil {
		return "", qparams{}, layout{}, false, err
	}
	nextLay := outLay
	var pools []*chainOp
	for i := range ops {
		switch ops[i].kind {
		case "pool":
			pools = append(pools, &ops[i])
		case "flatten":
			flat := nextLay
			if len(pools) > 0 { // the pools come before the flatten in the graph
				for _, p := range pools {
					flat.h, flat.w = flat.h/p.k, flat.w/p.k
				}
			}
			nextLay = layout{n: flat.elems(), flattenFrom: &flat}
		}
	}
	if endQ == nil {
		// last engine: raw accumulators, the rest on the host
		if len(pools) > 0 {
			return "", qparams{}, layout{}, false, fmt.Errorf("fpga: %s: a pool after the last quantized layer runs on the host (not supported yet)", e)
		}
		if err := l.setFolding(mv, stages, dw, pool != nil); err != nil {
			return "", qparams{}, layout{}, false, err
		}
		start := len(l.d.Pipeline.Stages)
		l.d.Pipeline.Stages = append(l.d.Pipeline.Stages, append(stages, engineStage(mv, dw, pool))...)
		info.Stages = span(start, len(l.d.Pipeline.Stages))
		l.d.OutRaw = true
		l.d.OutScale = make([]float32, mh)
		for c := range accScale {
			l.d.OutScale[c] = float32(accScale[c])
		}
		if bias != nil { // a Conv/Gemm bias: added on the host
			l.d.OutBias = make([]float32, mh)
			for c := range bias {
				l.d.OutBias[c] = float32(bias[c])
			}
		}
		l.d.TailValue = tailFrom
		l.d.outSpatial, l.d.outC = outLay.spatial, mh
		if err := l.buildTail(); err != nil {
			return "", qparams{}, layout{}, false, err
		}
		l.finishInfo(&info, mv, stages)
		return "", qparams{}, layout{}, true, nil
	}
	// requantization: a QuantizeLinear first in the chain is done by the
	// fixed-point requantizer; everything after it up to the last
	// QuantizeLinear by a per-channel table of its 256 inputs. Without
	// one first, the affine ops before the only QuantizeLinear fold into
	// the requantizer.
	mv.Requant = make([]Requant, mh)
	if len(ops) > 0 && ops[0].kind == "q" {
		if err := tableRequant(e, mv, ops[0].q, ops[1:], endQ, accScale, qp, pool); err != nil {
			return "", qparams{}, layout{}, false, err
		}
	} else {
		// no rounding before the boundary: fold the affine ops (bias
		// adds, positive scales) into the requantizer's multiplier and
		// offset, and a final Relu/Clip into its bounds
		r, err := affineRequant(e, ops, endQ.q, accScale, mv)
		if err != nil {
			return "", qparams{}, layout{}, false, err
		}
		mv.Requant = r
		if pool != nil && !hasAffine(ops) {
			if err := exactPool(e, mv, qp.scale, endQ.q.scale); err != nil {
				return "", qparams{}, layout{}, false, err
			}
		}
		mv.OutSigned = endQ.q.signed
	}
	if err := l.setFolding(mv, stages, dw, pool != nil); err != nil {
		return "", qparams{}, layout{}, false, err
	}
	stages = append(stages, engineStage(mv, dw, pool))
	poolLay := outLay
	for _, p := range pools {
		mp := &MaxPool{Name: p.node.Name, C: mh, H: poolLay.h, W: poolLay.w, K: p.k, Signed: mv.OutSigned}
		stages = append(stages, mp)
		poolLay.h, poolLay.w = mp.OH(), mp.OW()
		info.Engine += "+MaxPool"
	}
	if nextLay.spatial {
		nextLay = poolLay
	}
	start := len(l.d.Pipeline.Stages)
	l.d.Pipeline.Stages = append(l.d.Pipeline.Stages, stages...)
	info.Stages = span(start, len(l.d.Pipeline.Stages))
	l.finishInfo(&info, mv, stages[:len(stages)-len(pools)-1])
	return endQ.node.Outputs[0], endQ.q, nextLay, false, nil
}

// tableRequant sets mv's requantizers for a chain that starts with a
// QuantizeLinear (firstQ): the fixed-point requantizer rounds to firstQ,
// and everything after it up to the boundary QuantizeLinear endQ becomes
// a per-channel table of its 256 inputs (unless nothing but pools sits
// between two identical quantizations).
func tableRequant(e *graph.Node, mv *MVAU, firstQ qparams, rest []chainOp, endQ *chainOp, accScale []float64, qp qparams, pool *AvgPool) error {
	for c := range mv.Requant {
		m := float64(float32(accScale[c] / float64(firstQ.scale)))
		lo, hi := mv.AccRange(c)
		r, err := NewRequant(m, firstQ.zero, firstQ.lo(), firstQ.hi(), lo, hi)
		if err != nil {
			return fmt.Errorf("fpga: %s channel %d: %w", e, c, err)
		}
		mv.Requant[c] = r
	}
	if pool != nil {
		if err := exactPool(e, mv, qp.scale, firstQ.scale); err != nil {
			return err
		}
	}
	mv.OutSigned = firstQ.signed
	rest = append(append([]chainOp(nil), rest...), *endQ)
	if hasNonPool(rest[:len(rest)-1]) || endQ.q != firstQ {
		mv.LUT = make([][256]int32, len(mv.Requant))
		for c := range mv.LUT {
			for b := 0; b < 256; b++ {
				q1 := int32(byte(b))
				if firstQ.signed {
					q1 = int32(int8(byte(b)))
				}
				mv.LUT[c][b] = evalChain(q1, firstQ, rest, c)
			}
		}
		mv.OutSigned = endQ.q.signed
	}
	return nil
}

// engineStage is the stage that computes mv: the MVAU itself, or for a
// depthwise Conv the VVAU it describes (MH channels, rows of K·K taps).
func engineStage(mv *MVAU, dw bool, pool *AvgPool) Stage {
	if pool != nil {
		pool.Bias, pool.Requant, pool.LUT, pool.OutSigned = mv.Bias, mv.Requant, mv.LUT, mv.OutSigned
		return pool
	}
	if dw {
		return &VVAU{MVAU: *mv}
	}
	return mv
}

func (l *lowerer) finishInfo(info *LayerInfo, mv *MVAU, pre []Stage) {
	info.PE, info.SIMD, info.MH, info.MW = mv.PE, mv.SIMD, mv.MH, mv.MW
	info.FINNCyc = mv.EstCycles()
	info.EstCyc = mv.EstCycles()
	for _, s := range pre {
		if sw, ok := s.(*SWG); ok {
			// the window generator and the MVAU overlap; the slower sets the pace
			if c := sw.hp()*sw.wp() + sw.OH()*sw.OW()*(max(sw.Beats(), mv.CyclesPerVector())-1); c > info.EstCyc {
				info.EstCyc = c
			}
		}
	}
	for _, k := range info.Stages {
		if p, ok := l.d.Pipeline.Stages[k].(*AvgPool); ok {
			// a pixel per cycle, every channel per beat
			info.PE, info.SIMD = p.C, 1
			info.FINNCyc, info.EstCyc = p.EstCycles(), p.EstCycles()
		}
	}
	l.d.Layers = append(l.d.Layers, *info)
}

// exactPool replaces an average pool's requantizers (mv describes the
// pool: weights 1, scale 1/N) by PoolRequant's: the exact multiplier
// sx/(N·sy) where a fixed point reproduces it.
func exactPool(e *graph.Node, mv *MVAU, sx, sy float32) error {
	for c, r := range mv.Requant {
		lo, hi := mv.AccRange(c)
		nr, err := PoolRequant(sx, sy, mv.MW, r.Zero, r.Lo, r.Hi, lo, hi)
		if err != nil {
			return fmt.Errorf("fpga: %s channel %d: %w", e, c, err)
		}
		mv.Requant[c] = nr
	}
	return nil
}

func hasAffine(ops []chainOp) bool {
	for _, o := range ops {
		if o.kind == "add" || o.kind == "mul" {
			return true
		}
	}
	return false
}

// fifoDepth is the FIFO after a layer's last stage: a frame of its
// output deep, capped at 1024 beats.
func fifoDepth(last Stage) int {
	beats := last.OutFrame() / last.OutLanes()
	depth := 2
	for depth < beats && depth < 1024 {
		depth *= 2
	}
	return depth
}

// resBlock is a residual block being lowered: the Add that closes it,
// where its body's stages and layers start, and the block input's
// quantization and layout.
type resBlock struct {
	add           *graph.Node
	start, layer0 int
	in            qparams
	lay           layout
}

// isResidualAdd: n adds two dequantized streams (no constant input).
func (l *lowerer) isResidualAdd(n *graph.Node) bool {
	if !n.Is("Add") || len(n.Inputs) != 2 {
		return false
	}
	for _, in := range n.Inputs {
		if _, ok := l.inits[in]; ok {
			return false
		}
		if p := l.prod[in]; p == nil || !p.Is("DequantizeLinear") {
			return false
		}
	}
	return true
}

// residualFork: the dequantized value v is read by a residual Add and by
// the engine starting the block's body.
func (l *lowerer) residualFork(v string) (add, body *graph.Node) {
	rs := l.cons[v]
	if len(rs) != 2 {
		return nil, nil
	}
	for i := range rs {
		a, b := rs[i], rs[1-i]
		if l.isResidualAdd(a) && isEngine(b) && b.Inputs[0] == v {
			return a, b
		}
	}
	return nil, nil
}

// boundary: the dequantized value v starts the next engine (or a
// residual block, or is the body's output read by the block's Add).
func (l *lowerer) boundary(v string) bool {
	rs := l.cons[v]
	if len(rs) == 1 {
		return isEngine(rs[0]) && rs[0].Inputs[0] == v || l.isResidualAdd(rs[0])
	}
	add, _ := l.residualFork(v)
	return add != nil
}

// closeResidual turns the stages lowered since the block started into
// the body of a Residual stage whose add requantizes the block input
// (b.in) and the body output (bodyQ) to the quantization after the Add
// (a ReLU/Clip between them folds into the bounds).
func (l *lowerer) closeResidual(b *resBlock, bodyQ qparams, lay layout) (string, qparams, error) {
	add := b.add
	if !lay.spatial || !b.lay.spatial || lay != b.lay || len(l.d.Pipeline.Stages) == b.start {
		return "", qparams{}, fmt.Errorf("fpga: %s: the residual body maps %dx%dx%d to %dx%dx%d; the add needs the same shape", add, b.lay.c, b.lay.h, b.lay.w, lay.c, lay.h, lay.w)
	}
	ops, endQ, _, err := l.chain(add.Outputs[0], nil, lay)
	if err != nil {
		return "", qparams{}, err
	}
	if endQ == nil {
		return "", qparams{}, fmt.Errorf("fpga: %s: a residual Add must be quantized and read by a next engine (one after the last engine runs on the host, not supported)", add)
	}
	out := endQ.q
	lo, hi := out.lo(), out.hi()
	for _, o := range ops {
		switch o.kind {
		case "relu":
			lo = max(lo, quantize(0, out))
		case "clip":
			lo = max(lo, quantize(o.lo, out))
			hi = min(hi, quantize(o.hi, out))
		default:
			return "", qparams{}, fmt.Errorf("fpga: %s: only Relu/Clip may sit between a residual Add and its QuantizeLinear, not %s", add, o.node)
		}
	}
	ar, err := NewAddRequant(b.in.scale, bodyQ.scale, out.scale, b.in.zero, bodyQ.zero, out.zero, lo, hi, b.in.signed, bodyQ.signed)
	if err != nil {
		return "", qparams{}, fmt.Errorf("fpga: %s: %w", add, err)
	}
	body := &Pipeline{Stages: append([]Stage(nil), l.d.Pipeline.Stages[b.start:]...), FIFOs: map[int]int{}}
	l.d.Pipeline.Stages = l.d.Pipeline.Stages[:b.start]
	for i := b.layer0; i < len(l.d.Layers); i++ {
		li := &l.d.Layers[i]
		for _, k := range li.Stages {
			li.body = append(li.body, body.Stages[k-b.start])
		}
		if last := li.Stages[len(li.Stages)-1] - b.start; i < len(l.d.Layers)-1 {
			body.FIFOs[last] = fifoDepth(body.Stages[last]) // between the body's layers
		}
		li.Stages = nil
	}
	res := &Residual{Name: add.Name, C: lay.c, Body: body, Add: ar, OutSig: out.signed}
	for _, li := range l.d.Layers[b.layer0:] {
		res.BodyCycles = max(res.BodyCycles, li.EstCyc)
	}
	if err := res.Check(); err != nil {
		return "", qparams{}, err
	}
	l.d.Pipeline.Stages = append(l.d.Pipeline.Stages, res)
	l.d.Layers = append(l.d.Layers, LayerInfo{
		Node: add.Name, Op: add.OpType, Engine: "Residual(Add)", PE: lay.c, SIMD: 1, IFMCh: lay.c,
		OFM: []int{lay.h, lay.w}, Stages: []int{len(l.d.Pipeline.Stages) - 1},
		// FINN's AddStreams takes a pixel per cycle; the block with its
		// body (simulated as one) runs at the slower of the two
		FINNCyc: lay.h * lay.w, EstCyc: res.EstCycles(),
	})
	return endQ.node.Outputs[0], out, nil
}

// isEngine: n is lowered to an engine of its own (the node after a
// quantized boundary).
func isEngine(n *graph.Node) bool {
	return n.Is("Conv") || n.Is("MatMul") || n.Is("Gemm") || n.Is("AveragePool") || n.Is("GlobalAveragePool")
}

// affineRequant folds add/mul ops and a trailing relu/clip between the
// accumulator and the boundary QuantizeLinear into per-channel
// requantizers: q = clamp(rne((A·s·acc + B)/sy) + zy).
func affineRequant(e *graph.Node, ops []chainOp, out qparams, accScale []float64, mv *MVAU) ([]Requant, error) {
	mh := len(accScale)
	rs := make([]Requant, mh)
	for c := 0; c < mh; c++ {
		A, B := 1.0, 0.0
		lo, hi := out.lo(), out.hi()
		clamped := false
		for _, o := range ops {
			switch o.kind {
			case "add":
				if clamped {
					return nil, fmt.Errorf("fpga: %s: an Add after a Relu/Clip before the next QuantizeLinear is not supported", e)
				}
				B += float64(pick(o.per, c))
			case "mul":
				if clamped {
					return nil, fmt.Errorf("fpga: %s: a Mul after a Relu/Clip before the next QuantizeLinear is not supported", e)
				}
				k := float64(pick(o.per, c))
				A, B = A*k, B*k
			case "relu":
				clamped = true
				if z := quantize(0, out); z > lo {
					lo = z
				}
			case "clip":
				clamped = true
				if z := quantize(o.lo, out); z > lo {
					lo = z
				}
				if z := quantize(o.hi, out); z < hi {
					hi = z
				}
			case "pool", "flatten":
			default:
				return nil, fmt.Errorf("fpga: %s: %s before the first QuantizeLinear", e, o.kind)
			}
		}
		m := float64(float32(A * accScale[c] / float64(out.scale)))
		off := float64(float32(B / float64(out.scale)))
		alo, ahi := mv.AccRange(c)
		r, err := NewRequantOff(m, off, out.zero, lo, hi, alo, ahi)
		if err != nil {
			return nil, fmt.Errorf("fpga: %s channel %d: %w", e, c, err)
		}
		rs[c] = r
	}
	return rs, nil
}

func span(a, b int) []int {
	var s []int
	for i := a; i < b; i++ {
		s = append(s, i)
	}
	return s
}

func hasNonPool(ops []chainOp) bool {
	for _, o := range ops {
		if o.kind != "pool" && o.kind != "flatten" {
			return true
		}
	}
	return false
}

// evalChain computes, in float32 as ONNX Runtime does, the quantized
// output for q1 (the first QuantizeLinear's output) through the ops after
// it, for channel c.
func evalChain(q1 int32, first qparams, ops []chainOp, c int) int32 {
	v := float32(q1-first.zero) * first.scale
	last := first
	var q int32 = q1
	for _, o := range ops {
		switch o.kind {
		case "add":
			v += pick(o.per, c)
		case "mul":
			v *= pick(o.per, c)
		case "relu":
			if v < 0 {
				v = 0
			}
		case "clip":
			if v < o.lo {
				v = o.lo
			}
			if v > o.hi {
				v = o.hi
			}
		case "q":
			q = quantize(v, o.q)
			v = float32(q-o.q.zero) * o.q.scale
			last = o.q
		}
	}
	_ = last
	return q
}

func pick(v []float32, c int) float32 {
	if len(v) == 1 {
		return v[0]
	}
	return v[c]
}

// quantize is ONNX QuantizeLinear in float32: saturate(rne(x/s) + z).
func quantize(x float32, q qparams) int32 {
	r := math.RoundToEven(float64(x / q.scale))
	r += float64(q.zero)
	if r < float64(q.lo()) {
		r = float64(q.lo())
	}
	if r > float64(q.hi()) {
		r = float64(q.hi())
	}
	return int32(r)
}

func expand(sc []float64, n int) []float64 {
	if len(sc) == n {
		return sc
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = sc[0]
	}
	return out
}

// streamIndex maps an ONNX vector index to its stream position.
func streamIndex(lay layout, k int) int {
	f := lay.flattenFrom
	if f == nil {
		return k
	}
	hw := f.h * f.w
	c, r := k/hw, k%hw
	return r*f.c + c
}

func (l *lowerer) floatBias(v string, e *graph.Node, n int) ([]float64, error) {
	t, ok := l.inits[v]
	if !ok {
		// an int32 bias through its DequantizeLinear
		dq := l.prod[v]
		if dq == nil || !dq.Is("DequantizeLinear") {
			return nil, fmt.Errorf("fpga: %s: bias %q is not a constant", e, v)
		}
		qt, ok1 := l.inits[dq.Inputs[0]]
		st, ok2 := l.inits[dq.Inputs[1]]
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("fpga: %s: bias %q is not a constant", e, v)
		}
		q, err1 := qt.AsFloat64s()
		sc, err2 := st.AsFloat64s()
		if err1 != nil || err2 != nil || len(q) != n || (len(sc) != 1 && len(sc) != n) {
			return nil, fmt.Errorf("fpga: %s: bias of %d values for %d outputs", e, len(q), n)
		}
		b := make([]float64, n)
		for i := range b {
			b[i] = float64(float32(q[i]) * float32(sc[min(i, len(sc)-1)]))
		}
		return b, nil
	}
	b, err := t.AsFloat64s()
	if err != nil || len(b) != n {
		return nil, fmt.Errorf("fpga: %s: bias of %d values for %d outputs", e, len(b), n)
	}
	return b, nil
}

// chain follows the float ops after an engine's output up to the next
// QuantizeLinear whose output feeds a DequantizeLinear (returned as
// endQ), or to a node the flow does not support / a graph output (endQ
// nil: the engine is the last; tailFrom is where the host takes over).
func (l *lowerer) chain(v string, bias []float64, lay layout) (ops []chainOp, endQ *chainOp, tailFrom string, err error) {
	tailFrom = v
	if bias != nil {
		per := make([]float32, len(bias))
		for i, b := range bias {
			per[i] = float32(b)
		}
		ops = append(ops, chainOp{kind: "add", per: per})
	}
	channels := lay.c
	if !lay.spatial {
		channels = lay.n
	}
	cur := v
	for {
		if l.g.IsGraphOutput(cur) || len(l.cons[cur]) != 1 {
			return ops, nil, tailFrom, nil
		}
		n := l.cons[cur][0]
		switch {
		case n.Is("QuantizeLinear"):
			qp, err := l.qparamsOf(n)
			if err != nil {
				return nil, nil, "", err
			}
			op := chainOp{kind: "q", q: qp, node: n}
			cs := l.cons[n.Outputs[0]]
			if len(cs) != 1 || !cs[0].Is("DequantizeLinear") {
				return nil, nil, "", fmt.Errorf("fpga: %s output is not read by one DequantizeLinear", n)
			}
			dqOut := cs[0].Outputs[0]
			// Is the DequantizeLinear's reader the next engine? Then this
			// is the boundary.
			if l.boundary(dqOut) {
				return ops, &op, "", nil
			}
			ops = append(ops, op)
			cur = dqOut
		case n.Is("Add"), n.Is("Mul"):
			other := n.Inputs[1]
			if other == cur {
				other = n.Inputs[0]
			}
			per, ok := l.perChannel(other, channels)
			if !ok {
				return ops, nil, tailFrom, nil
			}
			if n.Is("Mul") {
				for _, x := range per {
					if !(x > 0) {
						return nil, nil, "", fmt.Errorf("fpga: %s: multiplier %g is not positive (the requantizer needs monotone ops)", n, x)
					}
				}
				ops = append(ops, chainOp{kind: "mul", per: per, node: n})
			} else {
				ops = append(ops, chainOp{kind: "add", per: per, node: n})
			}
			cur = n.Outputs[0]
		case n.Is("Relu"):
			ops = append(ops, chainOp{kind: "relu", node: n})
			cur = n.Outputs[0]
		case n.Is("Clip"):
			lo, hi := float32(math.Inf(-1)), float32(math.Inf(1))
			if len(n.Inputs) > 1 {
				if n.Inputs[1] != "" {
					t, ok := l.inits[n.Inputs[1]]
					if !ok {
						return ops, nil, tailFrom, nil
					}
					f, _ := t.AsFloat64s()
					lo = float32(f[0])
				}
				if len(n.Inputs) > 2 && n.Inputs[2] != "" {
					t, ok := l.inits[n.Inputs[2]]
					if !ok {
						return ops, nil, tailFrom, nil
					}
					f, _ := t.AsFloat64s()
					hi = float32(f[0])
				}
			} else {
				lo, hi = n.AttrFloat("min", lo), n.AttrFloat("max", hi)
			}
			ops = append(ops, chainOp{kind: "clip", lo: lo, hi: hi, node: n})
			cur = n.Outputs[0]
		case n.Is("MaxPool"):
			ks := n.AttrInts("kernel_shape")
			st := n.AttrInts("strides")
			if len(ks) != 2 || ks[0] != ks[1] || len(st) != 2 || st[0] != ks[0] || st[1] != ks[1] || n.AttrInt("ceil_mode", 0) != 0 || len(n.Outputs) > 1 {
				return nil, nil, "", fmt.Errorf("fpga: %s: only max pools with stride = kernel, square, no indices", n)
			}
			for _, p := range n.AttrInts("pads") {
				if p != 0 {
					return nil, nil, "", fmt.Errorf("fpga: %s: padded pools are not supported", n)
				}
			}
			if ap := n.AttrString("auto_pad", "NOTSET"); ap != "NOTSET" && ap != "VALID" {
				return nil, nil, "", fmt.Errorf("fpga: %s: auto_pad %s", n, ap)
			}
			if !lay.spatial {
				return nil, nil, "", fmt.Errorf("fpga: %s pools a vector", n)
			}
			ops = append(ops, chainOp{kind: "pool", k: int(ks[0]), node: n})
			cur = n.Outputs[0]
		case n.Is("Reshape"), n.Is("Flatten"):
			shp, err := l.shape(n.Outputs[0])
			if err != nil {
				return nil, nil, "", err
			}
			if len(shp) != 2 || shp[0] != 1 {
				return nil, nil, "", fmt.Errorf("fpga: %s reshapes to %v; only flattening to [1, N]", n, shp)
			}
			ops = append(ops, chainOp{kind: "flatten", node: n})
			cur = n.Outputs[0]
		default:
			return ops, nil, tailFrom, nil
		}
	}
}

// perChannel reads a constant broadcast per channel (or a scalar).
func (l *lowerer) perChannel(v string, channels int) ([]float32, bool) {
	t, ok := l.inits[v]
	if !ok {
		return nil, false
	}
	f, err := t.AsFloat64s()
	if err != nil {
		return nil, false
	}
	n := 1
	for _, d := range t.Dims {
		n *= int(d)
	}
	if n != 1 && n != channels {
		return nil, false
	}
	// a per-channel constant must broadcast over the channel axis only:
	// [C], [C,1,1], [1,C,1,1] (spatial) or [1,N]/[N] (vectors)
	out := make([]float32, len(f))
	for i, x := range f {
		out[i] = float32(x)
	}
	return out, true
}

// setFolding applies the user's folding or the target-cycles search.
func (l *lowerer) setFolding(mv *MVAU, pre []Stage, dw, pool bool) error {
	if pool {
		return nil
	}
	var swg *SWG
	for _, s := range pre {
		if sw, ok := s.(*SWG); ok {
			swg = sw
		}
	}
	if f, ok := l.opts.Folding[mv.Name]; ok {
		mv.PE, mv.SIMD = f.PE, f.SIMD
		if dw {
			// the VVAU's rule names PE and SIMD as the user wrote them
			if err := (&VVAU{MVAU: *mv}).Check(); err != nil {
				return fmt.Errorf("fpga: folding of %s: %w", mv.Name, err)
			}
			swg.SIMD = f.PE * f.SIMD
		} else if swg != nil {
			swg.SIMD = f.SIMD
		}
		if swg != nil {
			if err := swg.Check(); err != nil {
				return fmt.Errorf("fpga: folding of %s: %w", mv.Name, err)
			}
		}
		if err := mv.Check(); err != nil {
			return fmt.Errorf("fpga: folding of %s: %w", mv.Name, err)
		}
		return nil
	}
	if l.opts.TargetCycles <= 0 {
		return nil
	}
	if dw {
		// FINN's order for a VVAU: channels in parallel first (PE through
		// the divisors of C), then taps (SIMD, with every channel)
		for _, p := range Divisors(mv.MH) {
			mv.PE, swg.SIMD = p, p
			if mv.EstCycles() <= l.opts.TargetCycles {
				return nil
			}
		}
		for _, s := range Divisors(mv.MW) {
			mv.SIMD, swg.SIMD = s, mv.PE*s
			if mv.EstCycles() <= l.opts.TargetCycles {
				return nil
			}
		}
		return nil
	}
	// SIMD through its valid values, then PE, until the layer meets the
	// target (FINN's SetFolding).
	simds := Divisors(mv.MW)
	if swg != nil {
		simds = append(Divisors(swg.C), swg.Window())
	}
	cycles := func() int {
		c := mv.EstCycles()
		if swg != nil {
			if s := swg.hp()*swg.wp() + swg.OH()*swg.OW()*(max(swg.Beats(), mv.CyclesPerVector())-1); s > c {
				c = s
			}
		}
		return c
	}
	for _, s := range simds {
		mv.SIMD = s
		if swg != nil {
			swg.SIMD = s
		}
		if cycles() <= l.opts.TargetCycles {
			return nil
		}
	}
	for _, p := range Divisors(mv.MH) {
		mv.PE = p
		if cycles() <= l.opts.TargetCycles {
			return nil
		}
	}
	return nil
}

// buildTail extracts the host model from TailValue to the outputs.
func (l *lowerer) buildTail() error {
	tv := l.d.TailValue
	shp, err := l.shape(tv)
	if err != nil {
		return err
	}
	l.d.TailShape = shp
	outs := l.g.Outputs
	if len(outs) == 1 && outs[0].Name == tv {
		return nil
	}
	// nodes downstream of tv
	reach := map[string]bool{tv: true}
	var nodes []*graph.Node
	for _, n := range l.g.Nodes {
		hit := false
		for _, in := range n.Inputs {
			if reach[in] {
				hit = true
			}
		}
		if !hit {
			continue
		}
		for _, in := range n.Inputs {
			if in != "" && !reach[in] {
				if _, ok := l.inits[in]; !ok {
					return fmt.Errorf("fpga: host tail node %s reads %q, computed before the accelerator's output", n, in)
				}
			}
		}
		nodes = append(nodes, n)
		for _, o := range n.Outputs {
			reach[o] = true
		}
	}
	for _, o := range outs {
		if !reach[o.Name] {
			return fmt.Errorf("fpga: output %q does not depend on the accelerator's output", o.Name)
		}
	}
	tail := l.m.Clone()
	tg := tail.Graph
	tg.Nodes = nil
	used := map[string]bool{}
	for _, n := range nodes {
		c := *n
		tg.Nodes = append(tg.Nodes, &c)
		for _, in := range n.Inputs {
			used[in] = true
		}
	}
	var inits []*graph.Tensor
	for _, t := range l.inits {
		if used[t.Name] {
			inits = append(inits, t)
		}
	}
	sort.Slice(inits, func(i, j int) bool { return inits[i].Name < inits[j].Name })
	tg.Initializers = inits
	tg.Inputs = []*graph.ValueInfo{{Name: tv, DType: graph.Float, Shape: graph.ShapeOf(shp), HasShape: true, HasType: true}}
	tg.ValueInfo = nil
	l.d.Tail = tail
	for _, n := range nodes {
		l.d.HostOps = append(l.d.HostOps, fmt.Sprintf("%s (host)", n))
	}
	return nil
}
