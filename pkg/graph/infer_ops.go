package graph

import (
	"fmt"
	"math"
	"strconv"
)

// Per-op inference rules. A rule reads x.in(i) and sets x.out; it returns
// an error for an inconsistency it can prove (the outputs then stay
// unknown) and simply leaves outputs unset when it cannot tell.

type rule func(x *nctx) error

var rules map[string]rule

// msRules covers com.microsoft contrib ops that keep their first input's
// type and shape.
var msSameShape = map[string]bool{
	"Gelu": true, "FastGelu": true, "BiasGelu": true, "QuickGelu": true,
	"SkipLayerNormalization": true, "BiasAdd": true, "SkipSimplifiedLayerNormalization": true,
	"SimplifiedLayerNormalization": true, "RotaryEmbedding": true,
}

func lookupRule(n *Node) (rule, bool) {
	if n.IsDefaultDomain() {
		r, ok := rules[n.OpType]
		return r, ok
	}
	if n.Domain == NCHWcDomain {
		switch n.OpType {
		case "Conv":
			return ruleConv, true
		case "MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool":
			return rules[n.OpType], true
		case "ReorderInput":
			return ruleReorderInput, true
		case "ReorderOutput":
			return ruleReorderOutput, true
		}
		return nil, false
	}
	if n.Domain == "com.microsoft" {
		switch {
		case msSameShape[n.OpType]:
			return sameAsInput0, true
		case n.OpType == "Attention":
			return ruleMSAttention, true
		case n.OpType == "EmbedLayerNormalization":
			return ruleMSEmbedLayerNorm, true
		case n.OpType == "FusedConv": // Conv + activation: Conv's shapes
			return rules["Conv"], true
		case n.OpType == "FusedGemm":
			return rules["Gemm"], true
		}
	}
	return nil, false
}

func init() {
	rules = map[string]rule{
		"Constant":              ruleConstant,
		"Identity":              ruleIdentity,
		"Cast":                  ruleCast,
		"CastLike":              ruleCastLike,
		"Shape":                 ruleShape,
		"Size":                  ruleSize,
		"ConstantOfShape":       ruleConstantOfShape,
		"Conv":                  ruleConv,
		"ConvInteger":           ruleConv,
		"QLinearConv":           ruleConv,
		"ConvTranspose":         ruleConvTranspose,
		"MaxPool":               rulePool,
		"AveragePool":           rulePool,
		"LpPool":                rulePool,
		"GlobalAveragePool":     ruleGlobalPool,
		"GlobalMaxPool":         ruleGlobalPool,
		"GlobalLpPool":          ruleGlobalPool,
		"Gemm":                  ruleGemm,
		"MatMul":                ruleMatMul,
		"MatMulInteger":         ruleMatMul,
		"QLinearMatMul":         ruleMatMul,
		"Reshape":               ruleReshape,
		"Transpose":             ruleTranspose,
		"Concat":                ruleConcat,
		"Slice":                 ruleSlice,
		"Gather":                ruleGather,
		"GatherElements":        ruleGatherElements,
		"GatherND":              ruleGatherND,
		"Squeeze":               ruleSqueeze,
		"Unsqueeze":             ruleUnsqueeze,
		"Flatten":               ruleFlatten,
		"Expand":                ruleExpand,
		"Tile":                  ruleTile,
		"Pad":                   rulePad,
		"Split":                 ruleSplit,
		"LSTM":                  ruleRNN,
		"GRU":                   ruleRNN,
		"RNN":                   ruleRNN,
		"Resize":                ruleResize,
		"Upsample":              ruleResize,
		"ArgMax":                ruleArgMinMax,
		"ArgMin":                ruleArgMinMax,
		"TopK":                  ruleTopK,
		"BatchNormalization":    ruleBatchNorm,
		"LayerNormalization":    ruleLayerNorm,
		"QuantizeLinear":        ruleQuantize,
		"DequantizeLinear":      ruleDequantize,
		"DynamicQuantizeLinear": ruleDynQuant,
		"Range":                 ruleRange,
		"NonZero":               ruleNonZero,
		"Dropout":               ruleDropout,
		"Where":                 ruleBroadcast,
		"If":                    ruleIf,
		"Loop":                  ruleLoop,
		"Scan":                  ruleScan,
		"OneHot":                ruleOneHot,
		"DepthToSpace":          ruleDepthToSpace,
		"SpaceToDepth":          ruleDepthToSpace,
		"EyeLike":               ruleLikeWithDType,
		"RandomNormalLike":      ruleLikeWithDType,
		"RandomUniformLike":     ruleLikeWithDType,
		"Bernoulli":             ruleLikeWithDType,
		"RandomNormal":          ruleRandom,
		"RandomUniform":         ruleRandom,
		"NonMaxSuppression":     ruleNMS,
		"Compress":              ruleCompress,
		"Einsum":                ruleUnknownRank,
	}
	// Same type and shape as input 0.
	for _, op := range []string{
		"Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Neg", "Abs", "Erf", "LeakyRelu",
		"HardSigmoid", "HardSwish", "Clip", "Softmax", "LogSoftmax", "Hardmax", "Reciprocal",
		"Floor", "Ceil", "Round", "Gelu", "Elu", "Selu", "Softplus", "Softsign", "Sin", "Cos",
		"Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Sign",
		"ThresholdedRelu", "Celu", "Mish", "Shrink", "BitwiseNot", "LRN",
		"MeanVarianceNormalization", "CumSum", "LpNormalization", "InstanceNormalization",
		"GroupNormalization", "Trilu", "ReverseSequence", "ScatterElements", "ScatterND",
		"Scatter", "Not", "Swish", "RMSNormalization",
	} {
		rules[op] = sameAsInput0
	}
	for _, op := range []string{"IsNaN", "IsInf"} {
		rules[op] = ruleSameShapeBool
	}
	for _, op := range []string{
		"Add", "Sub", "Mul", "Div", "Pow", "Mod", "BitShift", "BitwiseAnd", "BitwiseOr",
		"BitwiseXor", "And", "Or", "Xor", "Equal", "Less", "Greater", "LessOrEqual",
		"GreaterOrEqual", "Max", "Min", "Sum", "Mean", "PRelu",
	} {
		rules[op] = ruleBroadcast
	}
	for _, op := range []string{
		"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
		"ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
	} {
		rules[op] = ruleReduce
	}
}

func sameAsInput0(x *nctx) error {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	v := x.set(0, a.dt, a.shape.Clone())
	if v != nil {
		v.hasShape = a.hasShape
		if a.other != nil {
			v.other = a.other
		}
	}
	if x.n.Is("Softmax") || x.n.Is("LogSoftmax") || x.n.Is("Hardmax") || x.n.Is("Identity") {
		return nil
	}
	if op, ok := intOps[x.n.OpType]; ok && x.n.IsDefaultDomain() {
		if c := constOf(a); c != nil && v != nil {
			v.c = elementwiseConst(a.dt, []*cval{c}, op, floatOps[x.n.OpType])
		}
	} else if op, ok := floatOps[x.n.OpType]; ok && x.n.IsDefaultDomain() {
		if c := constOf(a); c != nil && v != nil {
			v.c = elementwiseConst(a.dt, []*cval{c}, nil, op)
		}
	}
	return nil
}

func ruleIdentity(x *nctx) error {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	v := *a
	v.shape = a.shape.Clone()
	v.c = constOf(a)
	v.t = nil
	if len(x.out) > 0 {
		x.out[0] = &v
	}
	return nil
}

func ruleSameShapeBool(x *nctx) error {
	a := x.in(0)
	if a.typed {
		v := x.set(0, Bool, a.shape.Clone())
		v.hasShape = a.hasShape
	}
	return nil
}

func ruleUnknownRank(x *nctx) error {
	if a := x.in(0); a.typed {
		x.set(0, a.dt, nil)
	}
	return nil
}

func ruleConstant(x *nctx) error {
	n := x.n
	for _, a := range n.Attrs {
		switch a.Name {
		case "value":
			if a.T != nil {
				v := x.set(0, a.T.DType, ShapeOf(a.T.Dims))
				v.t = a.T
				return nil
			}
		case "value_float":
			v := x.set(0, Float, Shape{})
			v.c = &cval{dt: Float, dims: []int64{}, flts: []float64{float64(a.F)}}
			return nil
		case "value_floats":
			v := x.set(0, Float, DimsOf(int64(len(a.Floats))))
			c := &cval{dt: Float, dims: []int64{int64(len(a.Floats))}, flts: make([]float64, len(a.Floats))}
			for i, f := range a.Floats {
				c.flts[i] = float64(f)
			}
			v.c = c
			return nil
		case "value_int":
			v := x.set(0, Int64, Shape{})
			v.c = &cval{dt: Int64, dims: []int64{}, ints: []symInt{known(a.I)}}
			return nil
		case "value_ints":
			v := x.set(0, Int64, DimsOf(int64(len(a.Ints))))
			c := &cval{dt: Int64, dims: []int64{int64(len(a.Ints))}, ints: make([]symInt, len(a.Ints))}
			for i, k := range a.Ints {
				c.ints[i] = known(k)
			}
			v.c = c
			return nil
		case "value_string":
			x.set(0, String, Shape{})
			return nil
		case "value_strings":
			x.set(0, String, DimsOf(int64(len(a.Strings))))
			return nil
		case "sparse_value":
			if a.Sparse != nil {
				dims := a.Sparse.GetDims()
				dt := DType(0)
				if a.Sparse.GetValues() != nil {
					dt = DType(a.Sparse.GetValues().GetDataType())
				}
				if _, err := NumElements(dims); err == nil {
					x.set(0, dt, ShapeOf(dims))
				}
			}
			return nil
		}
	}
	return fmt.Errorf("constant has no value attribute")
}

func ruleCast(x *nctx) error {
	a := x.in(0)
	to := DType(x.n.AttrInt("to", 0))
	if !to.Known() {
		return fmt.Errorf("cast to unknown dtype %d", int32(to))
	}
	v := x.set(0, to, a.shape.Clone())
	v.hasShape = a.hasShape
	if c := constOf(a); c != nil {
		v.c = castConst(c, to)
	}
	return nil
}

func ruleCastLike(x *nctx) error {
	a, b := x.in(0), x.in(1)
	if !b.typed {
		return nil
	}
	v := x.set(0, b.dt, a.shape.Clone())
	v.hasShape = a.hasShape
	if c := constOf(a); c != nil {
		v.c = castConst(c, b.dt)
	}
	return nil
}

func ruleShape(x *nctx) error {
	a := x.in(0)
	r := a.rank()
	if r < 0 {
		x.setRank(0, Int64, 1)
		return nil
	}
	start := x.n.AttrInt("start", 0)
	end := x.n.AttrInt("end", int64(r))
	if start < 0 {
		start += int64(r)
	}
	if end < 0 {
		end += int64(r)
	}
	start = clamp64(start, 0, int64(r))
	end = clamp64(end, 0, int64(r))
	if end < start {
		end = start
	}
	sub := a.shape[start:end]
	v := x.set(0, Int64, DimsOf(int64(len(sub))))
	v.c = dimsToConst(sub)
	return nil
}

func ruleSize(x *nctx) error {
	a := x.in(0)
	v := x.set(0, Int64, Shape{})
	if a.hasShape {
		p := dimProd(a.shape)
		v.c = &cval{dt: Int64, dims: []int64{}, ints: []symInt{symOfDim(p)}}
	}
	return nil
}

// shapeOperand reads a 1-D shape tensor operand: its dims when the value is
// known (symbolic entries kept), or just the length when only that is known.
func shapeOperand(v *info) (dims Shape, length int) {
	if c := constOf(v); c != nil && len(c.dims) <= 1 {
		return symDims(c), c.n()
	}
	if v.hasShape && len(v.shape) == 1 && v.shape[0].Known() && v.shape[0].Size <= maxConstElems {
		return nil, int(v.shape[0].Size)
	}
	return nil, -1
}

func ruleConstantOfShape(x *nctx) error {
	dt := Float
	var fill *Tensor
	if t := x.n.AttrTensor("value"); t != nil {
		dt = t.DType
		fill = t
	}
	dims, length := shapeOperand(x.in(0))
	if dims == nil {
		x.setRank(0, dt, length)
		return nil
	}
	v := x.set(0, dt, dims)
	if st, ok := dims.Static(); ok && fill != nil && fill.Len() == 1 {
		if fc := constOf(&info{t: fill}); fc != nil {
			if c, ok := newCval(dt, st); ok {
				for i := 0; i < c.n(); i++ {
					if c.ints != nil {
						c.ints[i] = fc.at(0)
					} else {
						c.flts[i] = fc.fat(0)
					}
				}
				v.c = c
			}
		}
	} else if ok && fill == nil {
		if c, ok := newCval(dt, st); ok {
			v.c = c
		}
	}
	return nil
}

// spatialParams reads kernel window attributes for nsp spatial dims.
type windowAttrs struct {
	strides, dils, pads []int64
	autoPad             string
}

func readWindow(n *Node, nsp int) (windowAttrs, error) {
	w := windowAttrs{strides: n.AttrInts("strides"), dils: n.AttrInts("dilations"), pads: n.AttrInts("pads"), autoPad: n.AttrString("auto_pad", "NOTSET")}
	fill := func(v []int64, want int, def int64, name string) ([]int64, error) {
		if v == nil {
			v = make([]int64, want)
			for i := range v {
				v[i] = def
			}
			return v, nil
		}
		if len(v) != want {
			return nil, fmt.Errorf("%s has %d values, want %d", name, len(v), want)
		}
		return v, nil
	}
	var err error
	if w.strides, err = fill(w.strides, nsp, 1, "strides"); err != nil {
		return w, err
	}
	if w.dils, err = fill(w.dils, nsp, 1, "dilations"); err != nil {
		return w, err
	}
	if w.pads, err = fill(w.pads, 2*nsp, 0, "pads"); err != nil {
		return w, err
	}
	return w, nil
}

// convIO names the data, weight and output-zero-point inputs per conv op.
func convIO(op string) (xi, wi int, dt func(x *nctx) DType) {
	switch op {
	case "ConvInteger":
		return 0, 1, func(*nctx) DType { return Int32 }
	case "QLinearConv":
		return 0, 3, func(x *nctx) DType {
			if z := x.in(7); z.typed {
				return z.dt
			}
			return x.in(0).dt
		}
	}
	return 0, 1, func(x *nctx) DType { return x.in(0).dt }
}

func ruleConv(x *nctx) error {
	xi, wi, dtf := convIO(x.n.OpType)
	a, w := x.in(xi), x.in(wi)
	dt := dtf(x)
	if !a.typed {
		return nil
	}
	r := a.rank()
	if r < 0 && w.rank() >= 3 {
		r = w.rank()
	}
	if r < 3 {
		x.setRank(0, dt, r)
		return nil
	}
	out := make(Shape, r)
	for i := range out {
		out[i] = UnknownDim()
	}
	if a.hasShape {
		out[0] = a.shape[0]
	}
	if w.hasShape {
		if len(w.shape) != r {
			return fmt.Errorf("weight rank %d, input rank %d", len(w.shape), r)
		}
		out[1] = w.shape[0]
		if a.hasShape && a.shape[1].Known() && w.shape[1].Known() {
			g := x.n.AttrInt("group", 1)
			if g < 1 || w.shape[1].Size*g != a.shape[1].Size {
				return fmt.Errorf("input has %d channels, weight expects %d x group %d", a.shape[1].Size, w.shape[1].Size, g)
			}
		}
	}
	nsp := r - 2
	k := x.n.AttrInts("kernel_shape")
	if k == nil && w.hasShape {
		k = make([]int64, nsp)
		for i := range k {
			if !w.shape[2+i].Known() {
				x.set(0, dt, out)
				return nil
			}
			k[i] = w.shape[2+i].Size
		}
	}
	wa, err := readWindow(x.n, nsp)
	if err != nil {
		return err
	}
	if a.hasShape && len(k) == nsp {
		for i := 0; i < nsp; i++ {
			out[2+i] = windowOut(a.shape[2+i], k[i], wa.strides[i], wa.dils[i], wa.pads[i], wa.pads[i+nsp], wa.autoPad, false)
		}
	}
	x.set(0, dt, out)
	return nil
}

func ruleConvTranspose(x *nctx) error {
	a, w := x.in(0), x.in(1)
	if !a.typed {
		return nil
	}
	r := a.rank()
	if r < 3 {
		x.setRank(0, a.dt, r)
		return nil
	}
	nsp := r - 2
	out := make(Shape, r)
	for i := range out {
		out[i] = UnknownDim()
	}
	out[0] = a.shape[0]
	g := x.n.AttrInt("group", 1)
	if w.hasShape && len(w.shape) == r && g >= 1 && g <= MaxElements {
		out[1] = dimMul(w.shape[1], FixedDim(g))
	}
	k := x.n.AttrInts("kernel_shape")
	if k == nil && w.hasShape && len(w.shape) == r {
		k = make([]int64, nsp)
		for i := range k {
			k[i] = w.shape[2+i].Size
		}
	}
	wa, err := readWindow(x.n, nsp)
	if err != nil {
		return err
	}
	outPad := x.n.AttrInts("output_padding")
	if outPad == nil {
		outPad = make([]int64, nsp)
	}
	if os := x.n.AttrInts("output_shape"); os != nil {
		if len(os) == nsp {
			for i, v := range os {
				out[2+i] = FixedDim(v)
			}
		}
		x.set(0, a.dt, out)
		return nil
	}
	if len(k) != nsp || len(outPad) != nsp {
		x.set(0, a.dt, out)
		return nil
	}
	for i := 0; i < nsp; i++ {
		in := a.shape[2+i]
		if !in.Known() || k[i] < 1 || k[i] > MaxElements || wa.strides[i] < 1 || wa.strides[i] > MaxElements || wa.dils[i] < 1 || wa.dils[i] > MaxElements/k[i] || in.Size > MaxElements/wa.strides[i] {
			continue
		}
		var o int64
		if wa.autoPad == "SAME_UPPER" || wa.autoPad == "SAME_LOWER" {
			o = in.Size * wa.strides[i]
		} else {
			pads := wa.pads[i] + wa.pads[i+nsp]
			if wa.autoPad == "VALID" {
				pads = 0
			}
			o = wa.strides[i]*(in.Size-1) + outPad[i] + (k[i]-1)*wa.dils[i] + 1 - pads
		}
		if o >= 0 && o <= MaxElements {
			out[2+i] = FixedDim(o)
		}
	}
	x.set(0, a.dt, out)
	return nil
}

func rulePool(x *nctx) error {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	r := a.rank()
	if r < 3 {
		x.setRank(0, a.dt, r)
		if len(x.out) > 1 {
			x.setRank(1, Int64, r)
		}
		return nil
	}
	nsp := r - 2
	k := x.n.AttrInts("kernel_shape")
	if len(k) != nsp {
		return fmt.Errorf("kernel_shape has %d values for %d spatial dims", len(k), nsp)
	}
	wa, err := readWindow(x.n, nsp)
	if err != nil {
		return err
	}
	ceil := x.n.AttrInt("ceil_mode", 0) != 0
	out := make(Shape, r)
	out[0], out[1] = a.shape[0], a.shape[1]
	for i := 0; i < nsp; i++ {
		out[2+i] = windowOut(a.shape[2+i], k[i], wa.strides[i], wa.dils[i], wa.pads[i], wa.pads[i+nsp], wa.autoPad, ceil)
	}
	x.set(0, a.dt, out)
	if len(x.out) > 1 {
		x.set(1, Int64, out.Clone())
	}
	return nil
}

func ruleGlobalPool(x *nctx) error {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	r := a.rank()
	if r < 2 {
		x.setRank(0, a.dt, r)
		return nil
	}
	out := make(Shape, r)
	out[0], out[1] = a.shape[0], a.shape[1]
	for i := 2; i < r; i++ {
		out[i] = FixedDim(1)
	}
	x.set(0, a.dt, out)
	return nil
}

func ruleGemm(x *nctx) error {
	a, b := x.in(0), x.in(1)
	dt := a.dt
	if !a.typed {
		dt = b.dt
	}
	if dt == Undefined {
		return nil
	}
	out := Shape{UnknownDim(), UnknownDim()}
	var ka, kb Dim = UnknownDim(), UnknownDim()
	if a.hasShape {
		if len(a.shape) != 2 {
			return fmt.Errorf("input A has rank %d, want 2", len(a.shape))
		}
		if x.n.AttrInt("transA", 0) != 0 {
			out[0], ka = a.shape[1], a.shape[0]
		} else {
			out[0], ka = a.shape[0], a.shape[1]
		}
	}
	if b.hasShape {
		if len(b.shape) != 2 {
			return fmt.Errorf("input B has rank %d, want 2", len(b.shape))
		}
		if x.n.AttrInt("transB", 0) != 0 {
			out[1], kb = b.shape[0], b.shape[1]
		} else {
			out[1], kb = b.shape[1], b.shape[0]
		}
	}
	if _, err := mergeDim(ka, kb); err != nil {
		return fmt.Errorf("inner dims: %w", err)
	}
	x.set(0, dt, out)
	return nil
}

// matmulShape is numpy matmul's output shape.
func matmulShape(a, b Shape) (Shape, error) {
	if len(a) == 0 || len(b) == 0 {
		return nil, fmt.Errorf("matmul of a scalar")
	}
	aa, bb := a, b
	if len(a) == 1 {
		aa = Shape{FixedDim(1), a[0]}
	}
	if len(b) == 1 {
		bb = Shape{b[0], FixedDim(1)}
	}
	if _, err := mergeDim(aa[len(aa)-1], bb[len(bb)-2]); err != nil {
		return nil, fmt.Errorf("inner dims of %s and %s: %w", a, b, err)
	}
	batch, err := broadcastShapes(aa[:len(aa)-2], bb[:len(bb)-2])
	if err != nil {
		return nil, err
	}
	out := append(Shape{}, batch...)
	if len(a) > 1 {
		out = append(out, aa[len(aa)-2])
	}
	if len(b) > 1 {
		out = append(out, bb[len(bb)-1])
	}
	return out, nil
}

func ruleMatMul(x *nctx) error {
	ai, bi := 0, 1
	var dt DType
	switch x.n.OpType {
	case "MatMulInteger":
		dt = Int32
	case "QLinearMatMul":
		bi = 3
		dt = x.in(7).dt
	default:
		dt = x.in(0).dt
		if dt == Undefined {
			dt = x.in(1).dt
		}
	}
	if dt == Undefined {
		return nil
	}
	a, b := x.in(ai), x.in(bi)
	if !a.hasShape || !b.hasShape {
		x.set(0, dt, nil)
		return nil
	}
	out, err := matmulShape(a.shape, b.shape)
	if err != nil {
		return err
	}
	x.set(0, dt, out)
	return nil
}

func ruleBroadcast(x *nctx) error {
	op := x.n.OpType
	var dt DType
	first := 0
	if op == "Where" {
		first = 1
	}
	for i := first; i < len(x.n.Inputs); i++ {
		if a := x.in(i); a.typed {
			dt = a.dt
			break
		}
	}
	switch op {
	case "And", "Or", "Xor", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual":
		dt = Bool
	}
	if dt == Undefined {
		return nil
	}
	shapes := make([]Shape, 0, len(x.n.Inputs))
	consts := make([]*cval, 0, len(x.n.Inputs))
	allShapes := true
	for i := range x.n.Inputs {
		a := x.in(i)
		if !a.hasShape {
			allShapes = false
			break
		}
		shapes = append(shapes, a.shape)
		consts = append(consts, constOf(a))
	}
	if len(shapes) == 0 || !allShapes {
		x.set(0, dt, nil)
		return nil
	}
	out, err := broadcastShapes(shapes...)
	if err != nil {
		return err
	}
	v := x.set(0, dt, out)
	cop := op
	switch op {
	case "Sum":
		cop = "Add"
	case "LessOrEqual", "GreaterOrEqual", "Mean", "PRelu", "BitShift", "And", "Or", "Xor":
		cop = ""
	}
	if cop == "" {
		return nil
	}
	ok := len(consts) >= 1
	for _, c := range consts {
		if c == nil {
			ok = false
		}
	}
	if !ok {
		return nil
	}
	if len(consts) > 2 && op != "Where" {
		// Variadic Sum/Max/Min: fold pairwise.
		acc := consts[0]
		for _, c := range consts[1:] {
			acc = elementwiseConst(dt, []*cval{acc, c}, intOps[cop], floatOps[cop])
			if acc == nil {
				return nil
			}
		}
		v.c = acc
		return nil
	}
	if len(consts) == 1 {
		v.c = consts[0]
		return nil
	}
	v.c = elementwiseConst(dt, consts, intOps[cop], floatOps[cop])
	return nil
}

func ruleReshape(x *nctx) error {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	var req *cval
	length := -1
	if x.has(1) {
		req = constOf(x.in(1))
		if req == nil {
			_, length = shapeOperand(x.in(1))
		}
	} else if s := x.n.AttrInts("shape"); s != nil { // opset < 5
		req = &cval{dt: Int64, dims: []int64{int64(len(s))}, ints: make([]symInt, len(s))}
		for i, v := range s {
			req.ints[i] = known(v)
		}
	}
	if req == nil {
		x.setRank(0, a.dt, length)
		return nil
	}
	out, err := resolveReshape(a.shape, a.hasShape, req, x.n.AttrInt("allowzero", 0) != 0)
	if err != nil {
		return err
	}
	v := x.set(0, a.dt, out)
	if c := constOf(a); c != nil {
		if st, ok := out.Static(); ok {
			v.c = reshapeConst(c, st)
		}
	}
	return nil
}

func ruleTranspose(x *nctx) error {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	if !a.hasShape {
		x.set(0, a.dt, nil)
		return nil
	}
	r := len(a.shape)
	perm := x.n.AttrInts("perm")
	if perm == nil {
		for i := r - 1; i >= 0; i-- {
			perm = append(perm, int64(i))
		}
	}
	if len(perm) != r {
		return fmt.Errorf("perm %v for rank %d", perm, r)
	}
	out := make(Shape, r)
	seen := make([]bool, r)
	np := make([]int, r)
	for i, p := range perm {
		k, err := normAxis(p, r)
		if err != nil || seen[k] {
			return fmt.Errorf("bad perm %v", perm)
		}
		seen[k] = true
		np[i] = k
		out[i] = a.shape[k]
	}
	v := x.set(0, a.dt, out)
	if c := constOf(a); c != nil {
		v.c = transposeConst(c, np)
	}
	return nil
}

func ruleConcat(x *nctx) error {
	var dt DType
	r := -1
	for i := range x.n.Inputs {
		a := x.in(i)
		if a.typed && dt == Undefined {
			dt = a.dt
		}
		if a.hasShape {
			r = len(a.shape)
		}
	}
	if dt == Undefined {
		return nil
	}
	if r < 0 {
		x.set(0, dt, nil)
		return nil
	}
	axis, err := normAxis(x.n.AttrInt("axis", 0), r)
	if err != nil {
		return err
	}
	out := make(Shape, r)
	for i := range out {
		out[i] = UnknownDim()
	}
	out[axis] = FixedDim(0)
	consts := make([]*cval, 0, len(x.n.Inputs))
	for i := range x.n.Inputs {
		a := x.in(i)
		if !a.hasShape {
			out[axis] = UnknownDim()
			consts = append(consts, nil)
			continue
		}
		if len(a.shape) != r {
			return fmt.Errorf("input %d has rank %d, want %d", i, len(a.shape), r)
		}
		for k, d := range a.shape {
			if k == axis {
				out[axis] = dimAdd(out[axis], d)
				continue
			}
			m, err := mergeDim(out[k], d)
			if err != nil {
				return fmt.Errorf("input %d dim %d: %w", i, k, err)
			}
			out[k] = m
		}
		consts = append(consts, constOf(a))
	}
	v := x.set(0, dt, out)
	v.c = concatConst(consts, axis)
	return nil
}

// intsOperand reads integer values from input i (all known) or from the
// attribute attr when the input is absent. present reports whether either
// was given; ok whether the values are known.
func (x *nctx) intsOperand(i int, attr string) (vals []int64, present, ok bool) {
	if x.has(i) {
		c := constOf(x.in(i))
		if c == nil {
			return nil, true, false
		}
		v, ok := c.intsAll()
		return v, true, ok
	}
	if a := x.n.Attr(attr); a != nil && a.Type == AttrInts {
		return a.Ints, true, true
	}
	if a := x.n.Attr(attr); a != nil && a.Type == AttrInt {
		return []int64{a.I}, true, true
	}
	return nil, false, true
}

func ruleSlice(x *nctx) error {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	if !a.hasShape {
		x.set(0, a.dt, nil)
		return nil
	}
	r := len(a.shape)
	starts, _, ok1 := x.intsOperand(1, "starts")
	ends, _, ok2 := x.intsOperand(2, "ends")
	axes, hasAxes, ok3 := x.intsOperand(3, "axes")
	steps, hasSteps, ok4 := x.intsOperand(4, "steps")
	if !ok1 || !ok2 || !ok3 || !ok4 {
		x.setRank(0, a.dt, r)
		// Axes not sliced keep their dims when the axes are known.
		if ok3 && hasAxes && x.out[0] != nil {
			sliced := map[int]bool{}
			for _, ax := range axes {
				if k, err := normAxis(ax, r); err == nil {
					sliced[k] = true
				}
			}
			for i := 0; i < r; i++ {
				if !sliced[i] {
					x.out[0].shape[i] = a.shape[i]
				}
			}
		}
		return nil
	}
	if len(starts) != len(ends) {
		return fmt.Errorf("starts has %d values, ends %d", len(starts), len(ends))
	}
	if !hasAxes {
		axes = make([]int64, len(starts))
		for i := range axes {
			axes[i] = int64(i)
		}
	}
	if !hasSteps {
		steps = make([]int64, len(starts))
		for i := range steps {
			steps[i] = 1
		}
	}
	if len(axes) != len(starts) || len(steps) != len(starts) {
		return fmt.Errorf("starts, ends, axes and steps differ in length")
	}
	out := a.shape.Clone()
	seen := map[int]bool{}
	cst := make([]int64, r)
	cn := make([]int64, r)
	cstep := make([]int64, r)
	for k, d := range a.shape {
		cn[k], cstep[k] = d.Size, 1
	}
	for i, ax := range axes {
		k, err := normAxis(ax, r)
		if err != nil {
			return err
		}
		if seen[k] {
			return fmt.Errorf("axis %d sliced twice", ax)
		}
		seen[k] = true
		if steps[i] == 0 {
			return fmt.Errorf("step 0 on axis %d", ax)
		}
		d := a.shape[k]
		if !d.Known() {
			if starts[i] == 0 && steps[i] == 1 && ends[i] >= math.MaxInt32 {
				continue // whole axis
			}
			out[k] = UnknownDim()
			continue
		}
		n, st, _ := sliceLen(d.Size, starts[i], ends[i], steps[i])
		out[k] = FixedDim(n)
		cst[k], cn[k], cstep[k] = st, n, steps[i]
	}
	v := x.set(0, a.dt, out)
	if c := constOf(a); c != nil {
		v.c = sliceConst(c, cst, cn, cstep)
	}
	return nil
}

func ruleGather(x *nctx) error {
	a, idx := x.in(0), x.in(1)
	if !a.typed {
		return nil
	}
	if !a.hasShape || !idx.hasShape {
		x.set(0, a.dt, nil)
		return nil
	}
	r := len(a.shape)
	axis, err := normAxis(x.n.AttrInt("axis", 0), r)
	if err != nil {
		return err
	}
	out := append(append(append(Shape{}, a.shape[:axis]...), idx.shape...), a.shape[axis+1:]...)
	v := x.set(0, a.dt, out)
	if c, ic := constOf(a), constOf(idx); c != nil && ic != nil {
		v.c = gatherConst(c, ic, axis)
	}
	return nil
}

func ruleGatherElements(x *nctx) error {
	a, idx := x.in(0), x.in(1)
	if a.typed {
		v := x.set(0, a.dt, idx.shape.Clone())
		v.hasShape = idx.hasShape
	}
	return nil
}

func ruleGatherND(x *nctx) error {
	a, idx := x.in(0), x.in(1)
	if !a.typed {
		return nil
	}
	b := int(x.n.AttrInt("batch_dims", 0))
	if !a.hasShape || !idx.hasShape || len(idx.shape) < 1 || !idx.shape[len(idx.shape)-1].Known() {
		x.set(0, a.dt, nil)
		return nil
	}
	last := idx.shape[len(idx.shape)-1].Size
	if b < 0 || int64(b)+last > int64(len(a.shape)) {
		return fmt.Errorf("indices last dim %d with batch_dims %d for data rank %d", last, b, len(a.shape))
	}
	out := append(append(Shape{}, idx.shape[:len(idx.shape)-1]...), a.shape[int64(b)+last:]...)
	x.set(0, a.dt, out)
	return nil
}

func ruleSqueeze(x *nctx) error {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	axes, present, ok := x.intsOperand(1, "axes")
	if !a.hasShape || !ok {
		x.set(0, a.dt, nil)
		return nil
	}
	r := len(a.shape)
	drop := map[int]bool{}
	if present {
		ax, err := normAxes(axes, r)
		if err != nil {
			return err
		}
		for _, k := range ax {
			if a.shape[k].Known() && a.shape[k].Size != 1 {
				return fmt.Errorf("cannot squeeze axis %d of size %d", k, a.shape[k].Size)
			}
			drop[k] = true
		}
	} else {
		for k, d := range a.shape {
			if !d.Known() {
				x.set(0, a.dt, nil)
				return nil
			}
			if d.Size == 1 {
				drop[k] = true
			}
		}
	}
	out := Shape{}
	for k, d := range a.shape {
		if !drop[k] {
			out = append(out, d)
		}
	}
	v := x.set(0, a.dt, out)
	if c := constOf(a); c != nil {
		if st, ok := out.Static(); ok {
			v.c = reshapeConst(c, st)
		}
	}
	return nil
}

func ruleUnsqueeze(x *nctx) error {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	axes, present, ok := x.intsOperand(1, "axes")
	if !present {
		return fmt.Errorf("no axes")
	}
	if !a.hasShape || !ok {
		if a.hasShape && x.has(1) {
			if _, n := shapeOperand(x.in(1)); n >= 0 {
				x.setRank(0, a.dt, len(a.shape)+n)
				return nil
			}
		}
		x.set(0, a.dt, nil)
		return nil
	}
	r := len(a.shape) + len(axes)
	ax, err := normAxes(axes, r)
	if err != nil {
		return err
	}
	ins := map[int]bool{}
	for _, k := range ax {
		ins[k] = true
	}
	out := make(Shape, 0, r)
	j := 0
	for k := 0; k < r; k++ {
		if ins[k] {
			out = append(out, FixedDim(1))
		} else {
			out = append(out, a.shape[j])
			j++
		}
	}
	v := x.set(0, a.dt, out)
	if c := constOf(a); c != nil {
		if st, ok := out.Static(); ok {
			v.c = reshapeConst(c, st)
		}
	}
	return nil
}

func ruleFlatten(x *nctx) error {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	if !a.hasShape {
		x.setRank(0, a.dt, 2)
		return nil
	}
	r := len(a.shape)
	axis := x.n.AttrInt("axis", 1)
	if axis < 0 {
		axis += int64(r)
	}
	if axis < 0 || axis > int64(r) {
		return fmt.Errorf("axis %d for rank %d", x.n.AttrInt("axis", 1), r)
	}
	x.set(0, a.dt, Shape{dimProd(a.shape[:axis]), dimProd(a.shape[axis:])})
	return nil
}

func ruleExpand(x *nctx) error {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	dims, length := shapeOperand(x.in(1))
	if dims == nil || !a.hasShape {
		if length >= 0 && a.hasShape {
			x.setRank(0, a.dt, max(length, len(a.shape)))
			return nil
		}
		x.set(0, a.dt, nil)
		return nil
	}
	out, err := broadcastShapes(a.shape, dims)
	if err != nil {
		return err
	}
	x.set(0, a.dt, out)
	return nil
}

func ruleTile(x *nctx) error {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	if !a.hasShape {
		x.set(0, a.dt, nil)
		return nil
	}
	reps, _, ok := x.intsOperand(1, "")
	if !ok || reps == nil {
		x.setRank(0, a.dt, len(a.shape))
		return nil
	}
	if len(reps) != len(a.shape) {
		return fmt.Errorf("repeats has %d values for rank %d", len(reps), len(a.shape))
	}
	out := make(Shape, len(a.shape))
	for i, d := range a.shape {
		if reps[i] < 0 || reps[i] > MaxElements {
			return fmt.Errorf("repeat %d on axis %d", reps[i], i)
		}
		out[i] = dimMul(d, FixedDim(reps[i]))
	}
	x.set(0, a.dt, out)
	return nil
}

func rulePad(x *nctx) error {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	if !a.hasShape {
		x.set(0, a.dt, nil)
		return nil
	}
	r := len(a.shape)
	var pads []int64
	ok := true
	if x.has(1) {
		pads, _, ok = x.intsOperand(1, "")
	} else if p := x.n.AttrInts("pads"); p != nil {
		pads = p
	} else {
		pads = x.n.AttrInts("paddings")
	}
	if !ok {
		x.setRank(0, a.dt, r)
		return nil
	}
	axes := make([]int64, r)
	for i := range axes {
		axes[i] = int64(i)
	}
	if x.has(3) {
		ax, _, ok := x.intsOperand(3, "")
		if !ok {
			x.setRank(0, a.dt, r)
			return nil
		}
		axes = ax
	}
	if len(pads) != 2*len(axes) {
		return fmt.Errorf("%d pads for %d axes", len(pads), len(axes))
	}
	out := a.shape.Clone()
	for i, ax := range axes {
		k, err := normAxis(ax, r)
		if err != nil {
			return err
		}
		d := a.shape[k]
		pb, pe := pads[i], pads[i+len(axes)]
		if pb == 0 && pe == 0 {
			continue
		}
		if !d.Known() || pb < -MaxElements || pb > MaxElements || pe < -MaxElements || pe > MaxElements {
			out[k] = UnknownDim()
			continue
		}
		n := d.Size + pb + pe
		if n < 0 {
			return fmt.Errorf("pads %d,%d make axis %d negative", pb, pe, k)
		}
		out[k] = FixedDim(n)
	}
	x.set(0, a.dt, out)
	return nil
}

func ruleSplit(x *nctx) error {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	nout := len(x.n.Outputs)
	if !a.hasShape {
		for i := 0; i < nout; i++ {
			x.set(i, a.dt, nil)
		}
		return nil
	}
	r := len(a.shape)
	axis, err := normAxis(x.n.AttrInt("axis", 0), r)
	if err != nil {
		return err
	}
	sizes, present, ok := x.intsOperand(1, "split")
	d := a.shape[axis]
	set := func(i int, dim Dim) {
		s := a.shape.Clone()
		s[axis] = dim
		x.set(i, a.dt, s)
	}
	switch {
	case !ok:
		for i := 0; i < nout; i++ {
			set(i, UnknownDim())
		}
	case present:
		if len(sizes) != nout {
			return fmt.Errorf("split has %d sizes for %d outputs", len(sizes), nout)
		}
		var sum int64
		for i, s := range sizes {
			if s < 0 || s > MaxElements {
				return fmt.Errorf("split size %d", s)
			}
			sum += s
			set(i, FixedDim(s))
		}
		if d.Known() && sum != d.Size {
			return fmt.Errorf("split sizes sum to %d, axis has %d", sum, d.Size)
		}
	default:
		if nout == 0 {
			return nil
		}
		if !d.Known() {
			for i := 0; i < nout; i++ {
				set(i, UnknownDim())
			}
			return nil
		}
		chunk := (d.Size + int64(nout) - 1) / int64(nout)
		if x.n.Attr("num_outputs") == nil && d.Size%int64(nout) != 0 {
			return fmt.Errorf("axis of %d does not split evenly into %d", d.Size, nout)
		}
		left := d.Size
		for i := 0; i < nout; i++ {
			s := min(chunk, left)
			left -= s
			set(i, FixedDim(s))
		}
	}
	return nil
}

func ruleRNN(x *nctx) error {
	a, w, r := x.in(0), x.in(1), x.in(2)
	dt := a.dt
	if !a.typed {
		return nil
	}
	numDir := int64(1)
	if x.n.AttrString("direction", "forward") == "bidirectional" {
		numDir = 2
	}
	hidden := UnknownDim()
	if h := x.n.AttrInt("hidden_size", 0); h > 0 && h <= MaxElements {
		hidden = FixedDim(h)
	} else if r.hasShape && len(r.shape) == 3 {
		hidden = r.shape[2]
	} else if w.hasShape && len(w.shape) == 3 && w.shape[1].Known() {
		gates := map[string]int64{"LSTM": 4, "GRU": 3, "RNN": 1}[x.n.OpType]
		hidden = FixedDim(w.shape[1].Size / gates)
	}
	seq, batch := UnknownDim(), UnknownDim()
	layout := x.n.AttrInt("layout", 0)
	if a.hasShape {
		if len(a.shape) != 3 {
			return fmt.Errorf("input has rank %d, want 3", len(a.shape))
		}
		seq, batch = a.shape[0], a.shape[1]
		if layout != 0 {
			seq, batch = a.shape[1], a.shape[0]
		}
	}
	nd := FixedDim(numDir)
	if layout == 0 {
		x.set(0, dt, Shape{seq, nd, batch, hidden})
		for i := 1; i < len(x.out) && i < 3; i++ {
			x.set(i, dt, Shape{nd, batch, hidden})
		}
	} else {
		x.set(0, dt, Shape{batch, seq, nd, hidden})
		for i := 1; i < len(x.out) && i < 3; i++ {
			x.set(i, dt, Shape{batch, nd, hidden})
		}
	}
	return nil
}

func ruleResize(x *nctx) error {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	if !a.hasShape {
		x.set(0, a.dt, nil)
		return nil
	}
	r := len(a.shape)
	var scalesIn, sizesIn int = -1, -1
	switch {
	case x.n.OpType == "Upsample" || x.opset() == 10:
		scalesIn = 1
	default:
		scalesIn, sizesIn = 2, 3
	}
	axes := make([]int, r)
	for i := range axes {
		axes[i] = i
	}
	if ax := x.n.AttrInts("axes"); ax != nil {
		nax := make([]int, len(ax))
		for i, v := range ax {
			k, err := normAxis(v, r)
			if err != nil {
				return err
			}
			nax[i] = k
		}
		axes = nax
	}
	out := a.shape.Clone()
	if sizesIn > 0 && x.has(sizesIn) {
		c := constOf(x.in(sizesIn))
		if c != nil && c.n() > 0 {
			if c.n() != len(axes) {
				return fmt.Errorf("sizes has %d values for %d axes", c.n(), len(axes))
			}
			if p := x.n.AttrString("keep_aspect_ratio_policy", "stretch"); p != "stretch" {
				x.setRank(0, a.dt, r)
				return nil
			}
			for i, k := range axes {
				out[k] = c.at(i).dim()
			}
			x.set(0, a.dt, out)
			return nil
		}
		if c == nil {
			x.setRank(0, a.dt, r)
			return nil
		}
	}
	var scales []float64
	if scalesIn > 0 && x.has(scalesIn) {
		c := constOf(x.in(scalesIn))
		if c == nil {
			x.setRank(0, a.dt, r)
			return nil
		}
		f, ok := c.floatsAll()
		if !ok {
			x.setRank(0, a.dt, r)
			return nil
		}
		scales = f
	} else if f := x.n.AttrFloats("scales"); f != nil {
		for _, v := range f {
			scales = append(scales, float64(v))
		}
	}
	if len(scales) == 0 {
		x.setRank(0, a.dt, r)
		return nil
	}
	if len(scales) != len(axes) {
		return fmt.Errorf("scales has %d values for %d axes", len(scales), len(axes))
	}
	for i, k := range axes {
		d := a.shape[k]
		s := scales[i]
		if s == 1 {
			continue
		}
		if !d.Known() || s <= 0 || math.IsNaN(s) || math.IsInf(s, 0) {
			out[k] = UnknownDim()
			continue
		}
		v := math.Floor(float64(d.Size) * s)
		if v > float64(MaxElements) {
			out[k] = UnknownDim()
			continue
		}
		out[k] = FixedDim(int64(v))
	}
	x.set(0, a.dt, out)
	return nil
}

func ruleReduce(x *nctx) error {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	keep := x.n.AttrInt("keepdims", 1) != 0
	axes, present, ok := x.intsOperand(1, "axes")
	if !a.hasShape {
		x.set(0, a.dt, nil)
		return nil
	}
	r := len(a.shape)
	if !ok {
		if keep {
			x.setRank(0, a.dt, r)
		} else {
			x.set(0, a.dt, nil)
		}
		return nil
	}
	if !present || len(axes) == 0 {
		if x.n.AttrInt("noop_with_empty_axes", 0) != 0 {
			x.set(0, a.dt, a.shape.Clone())
			return nil
		}
		axes = make([]int64, r)
		for i := range axes {
			axes[i] = int64(i)
		}
	}
	ax, err := normAxes(axes, r)
	if err != nil {
		return err
	}
	red := map[int]bool{}
	for _, k := range ax {
		red[k] = true
	}
	out := Shape{}
	for k, d := range a.shape {
		switch {
		case !red[k]:
			out = append(out, d)
		case keep:
			out = append(out, FixedDim(1))
		}
	}
	v := x.set(0, a.dt, out)
	if x.n.OpType == "ReduceProd" || x.n.OpType == "ReduceSum" {
		if c := constOf(a); c != nil && r == 1 && len(ax) == 1 && c.ints != nil {
			acc := known(0)
			op := intOps["Add"]
			if x.n.OpType == "ReduceProd" {
				acc, op = known(1), intOps["Mul"]
			}
			for _, e := range c.ints {
				acc = op([]symInt{acc, e})
			}
			rc := &cval{dt: c.dt, dims: []int64{}, ints: []symInt{acc}}
			if keep {
				rc.dims = []int64{1}
			}
			v.c = rc
		}
	}
	return nil
}

func ruleArgMinMax(x *nctx) error {
	a := x.in(0)
	if !a.hasShape {
		x.set(0, Int64, nil)
		return nil
	}
	r := len(a.shape)
	axis, err := normAxis(x.n.AttrInt("axis", 0), r)
	if err != nil {
		return err
	}
	out := Shape{}
	for k, d := range a.shape {
		switch {
		case k != axis:
			out = append(out, d)
		case x.n.AttrInt("keepdims", 1) != 0:
			out = append(out, FixedDim(1))
		}
	}
	x.set(0, Int64, out)
	return nil
}

func ruleTopK(x *nctx) error {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	if !a.hasShape {
		x.set(0, a.dt, nil)
		x.set(1, Int64, nil)
		return nil
	}
	r := len(a.shape)
	axis, err := normAxis(x.n.AttrInt("axis", -1), r)
	if err != nil {
		return err
	}
	k := UnknownDim()
	if x.has(1) {
		if c := constOf(x.in(1)); c != nil && c.n() == 1 {
			k = c.at(0).dim()
		}
	} else if v := x.n.AttrInt("k", -1); v >= 0 {
		k = FixedDim(v)
	}
	out := a.shape.Clone()
	out[axis] = k
	x.set(0, a.dt, out)
	x.set(1, Int64, out.Clone())
	return nil
}

func ruleBatchNorm(x *nctx) error {
	if err := sameAsInput0(x); err != nil {
		return err
	}
	a := x.in(0)
	c := UnknownDim()
	if a.rank() >= 2 {
		c = a.shape[1]
	}
	dt := a.dt
	if s := x.in(1); s.typed {
		dt = s.dt
	}
	for i := 1; i < len(x.out); i++ {
		x.set(i, dt, Shape{c})
	}
	return nil
}

func ruleLayerNorm(x *nctx) error {
	if err := sameAsInput0(x); err != nil {
		return err
	}
	a := x.in(0)
	if len(x.out) < 2 {
		return nil
	}
	st := DType(x.n.AttrInt("stash_type", int64(Float)))
	if !a.hasShape {
		for i := 1; i < len(x.out); i++ {
			x.set(i, st, nil)
		}
		return nil
	}
	r := len(a.shape)
	axis, err := normAxis(x.n.AttrInt("axis", -1), r)
	if err != nil {
		return err
	}
	s := a.shape.Clone()
	for k := axis; k < r; k++ {
		s[k] = FixedDim(1)
	}
	for i := 1; i < len(x.out); i++ {
		x.set(i, st, s.Clone())
	}
	return nil
}

func ruleQuantize(x *nctx) error {
	a := x.in(0)
	dt := Uint8
	if z := x.in(2); x.has(2) && z.typed {
		dt = z.dt
	} else if o := x.n.AttrInt("output_dtype", 0); o != 0 {
		dt = DType(o)
	}
	v := x.set(0, dt, a.shape.Clone())
	v.hasShape = a.hasShape
	return nil
}

func ruleDequantize(x *nctx) error {
	a := x.in(0)
	dt := Float
	if o := x.n.AttrInt("output_dtype", 0); o != 0 {
		dt = DType(o)
	} else if s := x.in(1); s.typed {
		dt = s.dt
	}
	v := x.set(0, dt, a.shape.Clone())
	v.hasShape = a.hasShape
	return nil
}

func ruleDynQuant(x *nctx) error {
	a := x.in(0)
	v := x.set(0, Uint8, a.shape.Clone())
	v.hasShape = a.hasShape
	x.set(1, Float, Shape{})
	x.set(2, Uint8, Shape{})
	return nil
}

func ruleRange(x *nctx) error {
	s := x.in(0)
	dt := s.dt
	if dt == Undefined {
		dt = x.in(1).dt
	}
	if dt == Undefined {
		return nil
	}
	st, li, de := constOf(x.in(0)), constOf(x.in(1)), constOf(x.in(2))
	if st == nil || li == nil || de == nil || st.n() != 1 || li.n() != 1 || de.n() != 1 {
		x.setRank(0, dt, 1)
		return nil
	}
	a, b, d := st.fat(0), li.fat(0), de.fat(0)
	if math.IsNaN(a) || math.IsNaN(b) || math.IsNaN(d) || d == 0 {
		x.setRank(0, dt, 1)
		return nil
	}
	nf := math.Max(math.Ceil((b-a)/d), 0)
	if nf > float64(MaxElements) || math.IsNaN(nf) {
		return fmt.Errorf("range of %g elements", nf)
	}
	n := int64(nf)
	v := x.set(0, dt, DimsOf(n))
	if c, ok := newCval(dt, []int64{n}); ok {
		if c.ints != nil {
			ai, ok1 := st.intsAll()
			di, ok2 := de.intsAll()
			if ok1 && ok2 {
				for i := range c.ints {
					c.ints[i] = known(ai[0] + int64(i)*di[0])
				}
				v.c = c
			}
		} else {
			for i := range c.flts {
				c.flts[i] = a + float64(i)*d
			}
			v.c = c
		}
	}
	return nil
}

func ruleNonZero(x *nctx) error {
	a := x.in(0)
	r := a.rank()
	if r < 0 {
		x.setRank(0, Int64, 2)
		return nil
	}
	x.set(0, Int64, Shape{FixedDim(int64(r)), UnknownDim()})
	return nil
}

func ruleDropout(x *nctx) error {
	if err := sameAsInput0(x); err != nil {
		return err
	}
	a := x.in(0)
	if len(x.out) > 1 && a.typed {
		v := x.set(1, Bool, a.shape.Clone())
		v.hasShape = a.hasShape
	}
	return nil
}

func ruleOneHot(x *nctx) error {
	idx, vals := x.in(0), x.in(2)
	if !vals.typed {
		return nil
	}
	if !idx.hasShape {
		x.set(0, vals.dt, nil)
		return nil
	}
	r := len(idx.shape) + 1
	axis, err := normAxis(x.n.AttrInt("axis", -1), r)
	if err != nil {
		return err
	}
	depth := UnknownDim()
	if c := constOf(x.in(1)); c != nil && c.n() == 1 {
		if f := c.fat(0); !math.IsNaN(f) && f >= 0 && f <= float64(MaxElements) {
			depth = FixedDim(int64(f))
		}
	}
	out := append(append(append(Shape{}, idx.shape[:axis]...), depth), idx.shape[axis:]...)
	x.set(0, vals.dt, out)
	return nil
}

func ruleDepthToSpace(x *nctx) error {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	if a.rank() != 4 {
		x.setRank(0, a.dt, a.rank())
		return nil
	}
	b := x.n.AttrInt("blocksize", 0)
	if b < 1 || b > 1<<20 {
		return fmt.Errorf("blocksize %d", b)
	}
	s := a.shape
	out := Shape{s[0], UnknownDim(), UnknownDim(), UnknownDim()}
	if x.n.OpType == "DepthToSpace" {
		if s[1].Known() {
			out[1] = FixedDim(s[1].Size / (b * b))
		}
		out[2], out[3] = dimMul(s[2], FixedDim(b)), dimMul(s[3], FixedDim(b))
	} else {
		out[1] = dimMul(s[1], FixedDim(b*b))
		if s[2].Known() {
			out[2] = FixedDim(s[2].Size / b)
		}
		if s[3].Known() {
			out[3] = FixedDim(s[3].Size / b)
		}
	}
	x.set(0, a.dt, out)
	return nil
}

func ruleLikeWithDType(x *nctx) error {
	a := x.in(0)
	dt := a.dt
	if d := x.n.AttrInt("dtype", 0); d != 0 {
		dt = DType(d)
	}
	if dt == Undefined {
		return nil
	}
	v := x.set(0, dt, a.shape.Clone())
	v.hasShape = a.hasShape
	return nil
}

func ruleRandom(x *nctx) error {
	dt := DType(x.n.AttrInt("dtype", int64(Float)))
	s := x.n.AttrInts("shape")
	if _, err := NumElements(s); err != nil {
		return err
	}
	x.set(0, dt, ShapeOf(s))
	return nil
}

func ruleNMS(x *nctx) error {
	x.set(0, Int64, Shape{UnknownDim(), FixedDim(3)})
	return nil
}

func ruleCompress(x *nctx) error {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	if ax := x.n.Attr("axis"); ax != nil && a.hasShape {
		k, err := normAxis(ax.I, len(a.shape))
		if err != nil {
			return err
		}
		out := a.shape.Clone()
		out[k] = UnknownDim()
		x.set(0, a.dt, out)
		return nil
	}
	x.setRank(0, a.dt, 1)
	return nil
}

// mergeBranch unifies two infos that may both flow into one value (If
// branches, loop-carried state): equal dims stay, differing ones become
// unknown, differing ranks leave the rank unknown.
func mergeBranch(a, b *info) *info {
	switch {
	case a == nil || !a.typed:
		return b
	case b == nil || !b.typed:
		return a
	}
	if a.other != nil || b.other != nil {
		return a
	}
	out := &info{typed: true, dt: a.dt}
	if a.hasShape && b.hasShape && len(a.shape) == len(b.shape) {
		out.hasShape = true
		out.shape = make(Shape, len(a.shape))
		for i := range a.shape {
			da, db := a.shape[i], b.shape[i]
			if da.Size == db.Size && da.Param == db.Param {
				out.shape[i] = da
			} else {
				out.shape[i] = UnknownDim()
			}
		}
	}
	return out
}

func (x *nctx) subgraph(g *Graph, inputs []*info) []*info {
	if g == nil || x.depth >= maxSubgraphDepth {
		return nil
	}
	return x.inf.graph(g, x.s, inputs, x.depth+1)
}

func ruleIf(x *nctx) error {
	th := x.subgraph(x.n.AttrGraph("then_branch"), nil)
	el := x.subgraph(x.n.AttrGraph("else_branch"), nil)
	// A constant condition selects one branch.
	var pick []*info
	if c := constOf(x.in(0)); c != nil && c.n() == 1 {
		if e := c.at(0); e.ok {
			if e.v != 0 {
				pick = th
			} else {
				pick = el
			}
		}
	}
	for i := range x.out {
		var a, b *info
		if i < len(th) {
			a = th[i]
		}
		if i < len(el) {
			b = el[i]
		}
		if pick != nil {
			if i < len(pick) {
				x.out[i] = pick[i]
			}
			continue
		}
		x.out[i] = mergeBranch(a, b)
	}
	return nil
}

func ruleLoop(x *nctx) error {
	body := x.n.AttrGraph("body")
	if body == nil {
		return fmt.Errorf("no body")
	}
	nstate := len(x.n.Inputs) - 2
	if nstate < 0 {
		nstate = 0
	}
	ins := []*info{{typed: true, dt: Int64, hasShape: true, shape: Shape{}}, {typed: true, dt: Bool, hasShape: true, shape: Shape{}}}
	for i := 0; i < nstate; i++ {
		v := *x.in(2 + i)
		v.c, v.t = nil, nil
		ins = append(ins, &v)
	}
	outs := x.subgraph(body, ins)
	trip := UnknownDim()
	if !x.has(1) {
		if c := constOf(x.in(0)); c != nil && c.n() == 1 {
			trip = c.at(0).dim()
		}
	}
	for i := range x.out {
		var b *info
		if i+1 < len(outs) {
			b = outs[i+1]
		}
		if i < nstate {
			x.out[i] = mergeBranch(x.in(2+i), b)
			continue
		}
		if b == nil || !b.typed {
			continue
		}
		if !b.hasShape {
			x.set(i, b.dt, nil)
			continue
		}
		x.set(i, b.dt, append(Shape{trip}, b.shape...))
	}
	return nil
}

func ruleScan(x *nctx) error {
	body := x.n.AttrGraph("body")
	if body == nil {
		return fmt.Errorf("no body")
	}
	if x.opset() < 9 {
		return nil // opset 8 Scan has a batch axis and sequence_lens; not modelled
	}
	nscan := int(x.n.AttrInt("num_scan_inputs", 0))
	nstate := len(x.n.Inputs) - nscan
	if nscan < 1 || nstate < 0 {
		return fmt.Errorf("num_scan_inputs %d with %d inputs", nscan, len(x.n.Inputs))
	}
	inAxes := x.n.AttrInts("scan_input_axes")
	outAxes := x.n.AttrInts("scan_output_axes")
	ins := make([]*info, 0, len(x.n.Inputs))
	for i := 0; i < nstate; i++ {
		v := *x.in(i)
		v.c, v.t = nil, nil
		ins = append(ins, &v)
	}
	seq := UnknownDim()
	for j := 0; j < nscan; j++ {
		a := x.in(nstate + j)
		v := &info{typed: a.typed, dt: a.dt}
		if a.hasShape && len(a.shape) >= 1 {
			ax := int64(0)
			if j < len(inAxes) {
				ax = inAxes[j]
			}
			k, err := normAxis(ax, len(a.shape))
			if err != nil {
				return err
			}
			if j == 0 {
				seq = a.shape[k]
			}
			v.hasShape = true
			v.shape = append(append(Shape{}, a.shape[:k]...), a.shape[k+1:]...)
		}
		ins = append(ins, v)
	}
	outs := x.subgraph(body, ins)
	for i := range x.out {
		var b *info
		if i < len(outs) {
			b = outs[i]
		}
		if i < nstate {
			x.out[i] = mergeBranch(x.in(i), b)
			continue
		}
		if b == nil || !b.typed {
			continue
		}
		if !b.hasShape {
			x.set(i, b.dt, nil)
			continue
		}
		ax := int64(0)
		if j := i - nstate; j < len(outAxes) {
			ax = outAxes[j]
		}
		k, err := normAxis(ax, len(b.shape)+1)
		if err != nil {
			return err
		}
		s := append(append(append(Shape{}, b.shape[:k]...), seq), b.shape[k:]...)
		x.set(i, b.dt, s)
	}
	return nil
}

// ruleMSAttention is com.microsoft.Attention: input [B,S,hidden], weights
// [hidden, q+k+v], optional past [2,B,heads,P,head]; output [B,S,v],
// present [2,B,heads,P+S,head].
func ruleMSAttention(x *nctx) error {
	a, w := x.in(0), x.in(1)
	if !a.typed {
		return nil
	}
	if a.rank() != 3 {
		x.set(0, a.dt, nil)
		return nil
	}
	b, sq := a.shape[0], a.shape[1]
	v := UnknownDim()
	if q := x.n.AttrInts("qkv_hidden_sizes"); len(q) == 3 && q[2] >= 0 && q[2] <= MaxElements {
		v = FixedDim(q[2])
	} else if w.rank() == 2 && w.shape[1].Known() {
		v = FixedDim(w.shape[1].Size / 3)
	}
	x.set(0, a.dt, Shape{b, sq, v})
	if len(x.out) > 1 {
		heads := x.n.AttrInt("num_heads", 0)
		hd := UnknownDim()
		if heads > 0 && v.Known() {
			hd = FixedDim(v.Size / heads)
		}
		total := UnknownDim()
		if p := x.in(4); x.has(4) && p.rank() == 5 {
			total = dimAdd(p.shape[3], sq)
		} else if !x.has(4) {
			total = sq
		}
		hdim := UnknownDim()
		if heads > 0 {
			hdim = FixedDim(heads)
		}
		x.set(1, a.dt, Shape{FixedDim(2), b, hdim, total, hd})
	}
	return nil
}

// ruleMSEmbedLayerNorm is com.microsoft.EmbedLayerNormalization:
// input_ids [B,S] and word_embedding [V,H] give output [B,S,H],
// mask_index [B] (int32) and embedding_sum [B,S,H].
func ruleMSEmbedLayerNorm(x *nctx) error {
	ids, we := x.in(0), x.in(2)
	if !we.typed {
		return nil
	}
	h := UnknownDim()
	if we.rank() == 2 {
		h = we.shape[1]
	}
	b, s := UnknownDim(), UnknownDim()
	if ids.rank() == 2 {
		b, s = ids.shape[0], ids.shape[1]
	}
	x.set(0, we.dt, Shape{b, s, h})
	if len(x.out) > 1 {
		x.set(1, Int32, Shape{b})
	}
	if len(x.out) > 2 {
		x.set(2, we.dt, Shape{b, s, h})
	}
	return nil
}

// NCHWcDomain is ONNX Runtime's domain of blocked-layout CPU ops; their
// NCHWc tensors have the logical shape [N, Cp, H, W], Cp the channels
// rounded up to the block size that NCHWcMetadataKey records.
const NCHWcDomain = "com.microsoft.nchwc"

// NCHWcMetadataKey is the model metadata key holding the NCHWc block size
// (written by optimize --nchwc).
const NCHWcMetadataKey = "optictl.nchwc_block"

// nchwcBlock is the model's recorded NCHWc block size, or 0.
func (x *nctx) nchwcBlock() int64 {
	for _, kv := range x.inf.m.Metadata {
		if kv.Key == NCHWcMetadataKey {
			if b, err := strconv.ParseInt(kv.Value, 10, 64); err == nil && (b == 8 || b == 16) {
				return b
			}
		}
	}
	return 0
}

// rank4Input returns input 0 when its 4-D shape is known; otherwise it
// records what is known of output 0 (type, rank 4) and returns nil.
func (x *nctx) rank4Input() *info {
	a := x.in(0)
	if !a.typed {
		return nil
	}
	if !a.hasShape || len(a.shape) != 4 {
		x.setRank(0, a.dt, 4)
		return nil
	}
	return a
}

// ruleReorderInput: NCHW (or NHWC with channels_last) -> [N, Cp, H, W].
func ruleReorderInput(x *nctx) error {
	a := x.rank4Input()
	if a == nil {
		return nil
	}
	n, c, h, w := a.shape[0], a.shape[1], a.shape[2], a.shape[3]
	if x.n.AttrInt("channels_last", 0) != 0 {
		c, h, w = a.shape[3], a.shape[1], a.shape[2]
	}
	cp := UnknownDim()
	if b := x.nchwcBlock(); b > 0 && c.Known() && c.Size <= math.MaxInt64-b {
		cp = Dim{Size: (c.Size + b - 1) / b * b}
	}
	x.set(0, a.dt, Shape{n, cp, h, w})
	return nil
}

// ruleReorderOutput: [N, Cp, H, W] -> [N, channels, H, W] (NHWC with
// channels_last).
func ruleReorderOutput(x *nctx) error {
	a := x.rank4Input()
	if a == nil {
		return nil
	}
	c := x.n.AttrInt("channels", -1)
	if c <= 0 {
		return fmt.Errorf("ReorderOutput needs a positive channels attribute")
	}
	out := Shape{a.shape[0], {Size: c}, a.shape[2], a.shape[3]}
	if x.n.AttrInt("channels_last", 0) != 0 {
		out = Shape{a.shape[0], a.shape[2], a.shape[3], {Size: c}}
	}
	x.set(0, a.dt, out)
	return nil
}
