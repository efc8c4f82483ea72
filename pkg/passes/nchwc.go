package passes

// ONNX Runtime CPU, opt-in (Options.NCHWcBlock): the blocked NCHWc layout
// that ORT's own level-3 NchwcTransformer writes, so that a model run with
// ORT's graph optimizations off (or a session that skips them to start
// faster) still gets ORT's fastest CPU convolution kernels.
//
//   Before: Y = Conv(X, W, B); Z = Relu(Add(Y, S)); P = MaxPool(Z); out = F(P)
//   After:  Xc = nchwc.ReorderInput(X)
//           Zc = nchwc.Conv(Xc, Wb, Bp, Sc){activation="Relu"}  (S in NCHWc: Sc)
//           Pc = nchwc.MaxPool(Zc)
//           P  = nchwc.ReorderOutput(Pc){channels=C};  out = F(P)
//
// An NCHWc tensor keeps the logical shape [N, Cp, H, W] (Cp = C rounded up
// to the block size b, padding channels zero) with memory ordered
// [N][Cp/b][H][W][b]; filters are reordered to OIHWBiBo (an NCHWc input)
// or OIHWBo (depthwise, or a first conv reading a plain NCHW input with
// fewer than b channels) and biases zero-padded to Cp.
//
// Rewritten, in topological order: Conv and com.microsoft FusedConv with a
// constant float 4-D filter (and constant bias) whose channels fit the
// kernels (ORT's rules: group 1 with I < b, or I % 4 == 0 - any I when the
// input is already NCHWc, which ORT does not exploit; depthwise with
// M % 4 == 0; other groups with I and M/group multiples of b); MaxPool and
// AveragePool over C % b == 0 channels; and, when their inputs already are
// NCHWc: GlobalMaxPool/GlobalAveragePool, BatchNormalization (as a
// depthwise 1x1 conv), Add/Sum/Mul of equal shapes, channel Concat of
// b-aligned inputs, Resize/Upsample by integer factors (nearest-floor
// asymmetric or linear) as nchwc.Upsample, elementwise ops with a finite
// f(0) (Relu, Sigmoid, Tanh, Clip, LeakyRelu, HardSigmoid, HardSwish, Elu,
// Selu, Softplus, Softsign, Abs, Neg) and Add/Sub/Mul/Div by a finite
// scalar constant (not a division by the tensor), which leave only finite
// values in the padding channels that every blocked consumer ignores.
// An Add/Sum of a single-use activation-free NCHWc conv becomes that
// conv's Sum input, and an activation MLAS has after a single-use
// activation-free conv its activation. ORT's own transformer stops at
// most of these elementwise ops; keeping them blocked saves the reorder
// pairs around them. Every original tensor still read in plain layout (by
// another op, a subgraph or as a graph output) gets a ReorderOutput.
// Equal shapes are proven from inferred shapes, elementwise ops keeping
// their input's, and, for dims unknown on both sides (a named one stops
// being named once a strided conv divides it), by inferring again with
// the graph inputs' dynamic dims fixed to two sets of realistic, distinct
// sizes and to 1; a known dim never equals an unknown one (a broadcast
// [N,C,1,1] gate is not the [N,C,H,W] map it scales).
//
// Preconditions: --target ort-cpu, NCHWcBlock 8 or 16 (the block size of
// the CPU that will run the model: MLAS uses 8 with AVX2 and 16 with
// AVX-512F; the model records it in metadata "optictl.nchwc_block" and is
// wrong on a CPU of the other kind, so it is never on by default).

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// NCHWcDomain is ONNX Runtime's domain of the blocked-layout CPU ops.
const NCHWcDomain = graph.NCHWcDomain

// NCHWcMetadataKey records the block size in the model's metadata.
const NCHWcMetadataKey = runtime.NCHWcMetadataKey

var layoutNCHWc = &Pass{
	Name: "layout-nchwc",
	Doc: "Rewrite convolutions and their neighbours into ONNX Runtime's blocked NCHWc CPU layout (opt-in: --nchwc).\n" +
		"The result is specific to the CPU's SIMD width (block 8 for AVX2, 16 for AVX-512).",
	Level:   O3,
	Targets: []string{TargetORTCPU},
	Run:     runLayoutNCHWc,
}

// ncArg is an NCHWc tensor standing for an original (plain layout) one.
type ncArg struct {
	name     string      // the NCHWc tensor
	node     *graph.Node // its producer (a fusion target when it is an nchwc Conv)
	channels int64       // logical channels C
	uses     int         // readers of the original tensor (+1 for a graph output)
	// shape names an original tensor known to have this tensor's logical
	// shape (elementwise ops keep their input's), so that equal shapes
	// are seen even where shape inference lost track of dynamic dims.
	shape string
}

type nchwcRewriter struct {
	c        *Context
	g        *graph.Graph
	b        int64
	ci       *constIndex
	vi       map[string]*graph.ValueInfo     // inferred types and shapes of the original tensors
	probes   *[3]map[string]*graph.ValueInfo // the same with dynamic input dims fixed (probeDims 0, 1, 2; when an input has some)
	replaced map[string]bool                 // constants the rewrite stopped reading (filters, biases, BN parameters)
	cons     map[string][]*graph.Node
	nc       map[string]*ncArg
	order    []string          // original names in nc, in creation order
	reorders map[string]string // original input -> its ReorderInput output
	filters  map[string]string // filter name + "/" + format -> reordered initializer
	biases   map[string]string
	out      []*graph.Node
	changed  int
}

func runLayoutNCHWc(c *Context) (bool, error) {
	b := int64(0)
	if c.Options != nil {
		b = int64(c.Options.NCHWcBlock)
	}
	if b == 0 {
		return false, nil
	}
	if b != 8 && b != 16 {
		return false, fmt.Errorf("NCHWc block size %d: want 8 (AVX2) or 16 (AVX-512)", b)
	}
	if v, ok := metadata(c.Model, NCHWcMetadataKey); ok && v != strconv.FormatInt(b, 10) {
		return false, fmt.Errorf("the model already uses NCHWc block %s, not %d", v, b)
	}
	g := c.Graph()
	r := &nchwcRewriter{c: c, g: g, b: b, ci: newConstIndex(g), vi: inferredInfo(c.Model, -1), cons: g.Consumers(),
		nc: map[string]*ncArg{}, reorders: map[string]string{}, filters: map[string]string{}, biases: map[string]string{},
		replaced: map[string]bool{}}
	for _, v := range g.RealInputs() {
		for _, d := range v.Shape {
			if !d.Known() && r.probes == nil {
				r.probes = &[3]map[string]*graph.ValueInfo{inferredInfo(c.Model, 0), inferredInfo(c.Model, 1), inferredInfo(c.Model, 2)}
			}
		}
	}
	if err := g.TopoSort(); err != nil {
		return false, err
	}
	nodes := g.Nodes
	for _, n := range nodes {
		c.At(n)
		if !r.transform(n) {
			r.keep(n)
		}
	}
	if r.changed == 0 {
		return false, nil
	}
	r.finalize()
	g.Nodes = r.out
	if err := g.TopoSort(); err != nil {
		return false, fmt.Errorf("NCHWc rewrite left a cycle: %w", err)
	}
	// The constants the rewrite replaced (initializers or Constant nodes)
	// go when nothing else reads them.
	read := readNames(g.Nodes)
	gone := func(name string) bool {
		return r.replaced[name] && !read[name] && !g.IsGraphInput(name) && !g.IsGraphOutput(name)
	}
	g.Nodes = slices.DeleteFunc(g.Nodes, func(n *graph.Node) bool {
		return n.Is("Constant") && len(n.Outputs) == 1 && gone(n.Outputs[0])
	})
	g.Initializers = slices.DeleteFunc(g.Initializers, func(t *graph.Tensor) bool { return gone(t.Name) })
	if c.Model.Opset(NCHWcDomain) == 0 {
		c.Model.SetOpset(NCHWcDomain, 1)
	}
	setMetadata(c.Model, NCHWcMetadataKey, strconv.FormatInt(b, 10))
	c.Note("NCHWc block %d: %d nodes in blocked layout", b, r.changed)
	return true, nil
}

// keep appends n unchanged (its plain-layout inputs get ReorderOutputs in
// finalize when an NCHWc node produced them).
func (r *nchwcRewriter) keep(n *graph.Node) { r.out = append(r.out, n) }

// uses counts the readers of an original tensor (+1 for a graph output).
func (r *nchwcRewriter) uses(name string) int {
	u := 0
	for _, n := range r.cons[name] {
		k := 0
		for _, in := range n.Inputs {
			if in == name {
				k++
			}
		}
		u += max(k, 1) // 0: read inside one of n's subgraphs
	}
	if r.g.IsGraphOutput(name) {
		u++
	}
	return u
}

// produce makes n (already appended) write a fresh NCHWc tensor in place
// of its original output 0, recording the mapping.
func (r *nchwcRewriter) produce(n *graph.Node, channels int64) *ncArg {
	orig := n.Outputs[0]
	name := r.g.UniqueName(orig + "_nchwc")
	n.Outputs[0] = name
	a := &ncArg{name: name, node: n, channels: channels, uses: r.uses(orig), shape: orig}
	r.nc[orig] = a
	r.order = append(r.order, orig)
	r.changed++
	return a
}

// produceLike is produce for an op whose output has the shape of its
// NCHWc input in.
func (r *nchwcRewriter) produceLike(n *graph.Node, in *ncArg) {
	r.produce(n, in.channels).shape = in.shape
}

// alias records that the original tensor orig is now the NCHWc tensor of a
// (a node that absorbed orig's producer).
func (r *nchwcRewriter) alias(orig string, a *ncArg) {
	r.nc[orig] = &ncArg{name: a.name, node: a.node, channels: a.channels, uses: r.uses(orig), shape: a.shape}
	r.order = append(r.order, orig)
	r.changed++
}

// input returns the NCHWc form of a plain tensor with C channels, adding a
// (shared) ReorderInput when no NCHWc node produced it.
func (r *nchwcRewriter) input(name string) string {
	if a := r.nc[name]; a != nil {
		return a.name
	}
	if v, ok := r.reorders[name]; ok {
		return v
	}
	v := r.g.UniqueName(name + "_reorder")
	r.out = append(r.out, &graph.Node{Name: r.g.UniqueName("ReorderInput_" + name), OpType: "ReorderInput", Domain: NCHWcDomain,
		Inputs: []string{name}, Outputs: []string{v}})
	r.reorders[name] = v
	return v
}

// inferredInfo is what shape inference knows of m's tensors (on a clone):
// with the dynamic dims of the graph inputs as they are (probe < 0), or
// fixed by probeDims(probe); nil when inference fails at a probe.
func inferredInfo(m *graph.Model, probe int) map[string]*graph.ValueInfo {
	c := m.Clone()
	opts := graph.InferOptions{}
	if probe >= 0 {
		opts.Fixed = probeDims(c.Graph.RealInputs(), probe)
	}
	if _, err := graph.InferShapes(c, opts); err == nil {
		return c.Graph.ValueInfoMap()
	}
	if probe >= 0 {
		return nil
	}
	return m.Graph.ValueInfoMap()
}

// probeDims fixes the graph inputs' dynamic dims for shape probe 0 (all
// 1, the degenerate size where broadcasting differs), 1 or 2. In probes
// 1 and 2 each distinct dim (one symbolic name, or one unnamed dim) gets its own
// size, a multiple of 32 (detectors upsample by up to 32 and add the
// result to a finer map, so other sizes make the model itself invalid):
// 64, 96, 128, ... in probe 1 and 96, 160, 224, ... in probe 2. Sizes this
// large survive every stride, so a strided map never looks like a pooled
// [.., 1, 1] one, and distinct sizes keep height apart from width.
func probeDims(inputs []*graph.ValueInfo, probe int) map[string][]int64 {
	sizes := map[string]int64{}
	next := int64(0)
	size := func(key string) int64 {
		if s, ok := sizes[key]; ok {
			return s
		}
		next++
		s := 32 * (1 + next)
		if probe == 0 {
			s = 1
		}
		if probe == 2 {
			s = 32 * (1 + 2*next)
		}
		sizes[key] = s
		return s
	}
	fixed := map[string][]int64{}
	for _, v := range inputs {
		if !v.HasShape {
			continue
		}
		dims := make([]int64, len(v.Shape))
		for i, d := range v.Shape {
			dims[i] = d.Size
			if !d.Known() {
				key := "param:" + d.Param
				if d.Param == "" {
					key = fmt.Sprintf("dim:%s:%d", v.Name, i)
				}
				dims[i] = size(key)
			}
		}
		fixed[v.Name] = dims
	}
	return fixed
}

// shape4 is the 4-D float shape of an original tensor, or nil.
func (r *nchwcRewriter) shape4(name string) graph.Shape { return shape4Of(r.vi, name) }

func shape4Of(vi map[string]*graph.ValueInfo, name string) graph.Shape {
	v := vi[name]
	if v == nil || !v.HasType || v.DType != graph.Float || !v.HasShape || len(v.Shape) != 4 {
		return nil
	}
	return v.Shape
}

// channels is the channel count of a 4-D float tensor, or -1.
func (r *nchwcRewriter) channels(name string) int64 {
	if a := r.nc[name]; a != nil {
		return a.channels
	}
	if s := r.shape4(name); s != nil && s[1].Known() {
		return s[1].Size
	}
	return -1
}

// sameShape reports whether two original tensors provably have one shape.
func (r *nchwcRewriter) sameShape(a, b string) bool { return r.sameDimsAt(a, b, 0, 1, 2, 3) }

// sameDimsAt is sameShape for the dims at idx only. Per dim, as shape
// inference works them out on the model as it is: equal sizes, or the same
// symbolic name, are equal; a known size and an unknown dim are not (the
// unknown one follows the input's dims, the known one does not: a
// [N,C,H/16,W/16] map and its [N,C,1,1] squeeze-excitation gate); two
// unknown dims (a dynamic batch, a named height a strided conv divided)
// are equal when they are equal in both realistic probes (probeDims 1 and
// 2) and, when the model accepts it, with every dynamic dim 1: there a
// detector's upsampled coarse map is 2 where the finer one is 1, and the
// original Add broadcasts where a blocked one could not.
func (r *nchwcRewriter) sameDimsAt(a, b string, idx ...int) bool {
	if na, nb := r.nc[a], r.nc[b]; na != nil && nb != nil {
		if na.shape == nb.shape {
			return true
		}
		a, b = na.shape, nb.shape
	}
	sa, sb := r.shape4(a), r.shape4(b)
	if sa == nil || sb == nil {
		return false
	}
	for _, i := range idx {
		da, db := sa[i], sb[i]
		switch {
		case da.Known() && db.Known():
			if da.Size != db.Size || da.Size <= 0 {
				return false
			}
		case da.Known() || db.Known():
			return false
		case da.Param != "" && da.Param == db.Param:
		default:
			if r.probes == nil {
				return false
			}
			for k, p := range r.probes {
				if k == 0 && p == nil {
					continue // the model does not accept dims of 1
				}
				if p == nil || !sameDims(shape4Of(p, a), shape4Of(p, b), []int{i}) {
					return false
				}
			}
		}
	}
	return true
}

func sameDims(sa, sb graph.Shape, idx []int) bool {
	if sa == nil || sb == nil {
		return false
	}
	for _, i := range idx {
		da, db := sa[i], sb[i]
		switch {
		case da.Known() && db.Known():
			if da.Size != db.Size || da.Size <= 0 {
				return false
			}
		case !da.Known() && !db.Known() && da.Param != "" && da.Param == db.Param:
		default:
			return false
		}
	}
	return true
}

func (r *nchwcRewriter) transform(n *graph.Node) bool {
	if len(n.Outputs) == 0 || len(n.Inputs) == 0 {
		return false
	}
	switch {
	case n.Is("Conv") || (n.Domain == "com.microsoft" && n.OpType == "FusedConv"):
		return r.conv(n)
	case n.Is("MaxPool") || n.Is("AveragePool"):
		return r.pool(n, false)
	case n.Is("GlobalMaxPool") || n.Is("GlobalAveragePool"):
		return r.pool(n, true)
	case n.Is("Add") || n.Is("Sum") || n.Is("Mul") || n.Is("Sub") || n.Is("Div"):
		return r.binary(n)
	case n.Is("Concat"):
		return r.concat(n)
	case n.IsDefaultDomain() && nchwcUnary[n.OpType]:
		return r.activation(n)
	case n.Is("BatchNormalization"):
		return r.batchNorm(n)
	case n.Is("Resize") || n.Is("Upsample"):
		return r.resize(n)
	}
	return false
}

// nchwcUnary are the elementwise ops that run on an NCHWc tensor as they
// are: f(0) is finite, so the padding channels they fill with f(0) stay
// harmless (every NCHWc consumer ignores them or multiplies them by zero
// weights, and ReorderOutput drops them). The first six can also become
// an NCHWc conv's activation.
var nchwcUnary = map[string]bool{
	"Relu": true, "Sigmoid": true, "Tanh": true, "LeakyRelu": true, "HardSigmoid": true, "Clip": true,
	"HardSwish": true, "Elu": true, "Selu": true, "Softplus": true, "Softsign": true, "Abs": true, "Neg": true,
}

func roundUp64(x, m int64) int64 { return (x + m - 1) / m * m }

func (r *nchwcRewriter) conv(n *graph.Node) bool {
	if len(n.Outputs) != 1 || len(n.Inputs) < 2 || len(n.Inputs) > 3 {
		return false
	}
	w := r.ci.get(n.Inputs[1])
	if w == nil || w.DType != graph.Float || len(w.Dims) != 4 {
		return false
	}
	if len(n.AttrInts("kernel_shape")) > 2 || len(n.AttrInts("strides")) > 2 || len(n.AttrInts("pads")) > 4 {
		return false
	}
	if c := r.channels(n.Inputs[0]); c >= 0 && c != w.Dims[1]*n.AttrInt("group", 1) {
		return false
	}
	for _, d := range w.Dims {
		if d <= 0 {
			return false
		}
	}
	M, I, G := w.Dims[0], w.Dims[1], n.AttrInt("group", 1)
	b := r.b
	Mp := roundUp64(M, b)
	reorderInput, oihwbo := true, false
	Ip := I
	ncGroup := G
	switch {
	case G > 1:
		if M%4 != 0 {
			return false
		}
		if I == 1 && M == G {
			oihwbo, ncGroup = true, Mp
		} else if I%b != 0 || M%G != 0 || (M/G)%b != 0 {
			return false
		}
	case G == 1:
		blocked := r.nc[n.Inputs[0]] != nil
		switch {
		case I < b && !blocked:
			oihwbo, reorderInput = true, false
		case I%4 != 0 && !blocked:
			return false // ReorderInput needs whole groups of 4 channels
		default:
			// An NCHWc input is already padded to Ip: the filter's
			// padding input channels are zero, whatever I is.
			Ip = roundUp64(I, b)
		}
	default:
		return false
	}
	var bias *graph.Tensor
	if len(n.Inputs) == 3 && n.Inputs[2] != "" {
		bias = r.ci.get(n.Inputs[2])
		if bias == nil || bias.DType != graph.Float || len(bias.Dims) != 1 || bias.Dims[0] != M {
			return false
		}
	}
	if !reorderInput && r.nc[n.Inputs[0]] == nil && r.channels(n.Inputs[0]) != I {
		return false // a plain input we cannot check
	}
	wName, err := r.filter(n.Inputs[1], w, oihwbo, Mp, Ip)
	if err != nil {
		return false
	}
	in := n.Inputs[0]
	if reorderInput {
		in = r.input(in)
	}
	inputs := []string{in, wName}
	if bias != nil {
		bName := n.Inputs[2]
		if Mp != M {
			if bName, err = r.padBias(n.Inputs[2], bias, Mp); err != nil {
				return false
			}
		}
		inputs = append(inputs, bName)
	}
	r.replaced[n.Inputs[1]] = true
	if bias != nil {
		r.replaced[n.Inputs[2]] = true
	}
	n.Domain, n.OpType, n.Inputs = NCHWcDomain, "Conv", inputs
	if ncGroup != G {
		n.SetAttr(graph.IntAttr("group", ncGroup))
	}
	r.out = append(r.out, n)
	r.produce(n, M)
	return true
}

// filter returns the reordered filter initializer of W (shared between
// convs reading the same W in the same format).
func (r *nchwcRewriter) filter(name string, w *graph.Tensor, oihwbo bool, Mp, Ip int64) (string, error) {
	key := name + "/OIHWBiBo"
	if oihwbo {
		key = name + "/OIHWBo"
	}
	if v, ok := r.filters[key]; ok {
		return v, nil
	}
	src, err := w.Float32s()
	if err != nil {
		return "", err
	}
	M, I, KH, KW := w.Dims[0], w.Dims[1], w.Dims[2], w.Dims[3]
	if Mp*Ip*KH*KW > math.MaxInt32 {
		return "", fmt.Errorf("filter too large")
	}
	var dst []float32
	var dims []int64
	if oihwbo {
		dst = reorderOIHWBo(src, M, I, KH*KW, Mp, r.b)
		dims = []int64{Mp, I, KH, KW}
	} else {
		dst = reorderOIHWBiBo(src, M, I, KH*KW, Mp, Ip, r.b)
		dims = []int64{Mp, Ip, KH, KW}
	}
	v := r.g.UniqueName(name + "_nchwc")
	r.g.Initializers = append(r.g.Initializers, graph.NewFloat32(v, dims, dst))
	r.filters[key] = v
	return v, nil
}

// reorderOIHWBo lays W [M][I][K] out as [Mp/b][I][K][b] (zero past M).
func reorderOIHWBo(src []float32, M, I, K, Mp, b int64) []float32 {
	dst := make([]float32, Mp*I*K)
	d := 0
	for ob := int64(0); ob < Mp/b; ob++ {
		for i := int64(0); i < I; i++ {
			for k := int64(0); k < K; k++ {
				for bo := int64(0); bo < b; bo++ {
					if m := ob*b + bo; m < M {
						dst[d] = src[(m*I+i)*K+k]
					}
					d++
				}
			}
		}
	}
	return dst
}

// reorderOIHWBiBo lays W [M][I][K] out as [Mp/b][Ip/b][K][bi][bo] (zero
// past M and I).
func reorderOIHWBiBo(src []float32, M, I, K, Mp, Ip, b int64) []float32 {
	dst := make([]float32, Mp*Ip*K)
	d := 0
	for ob := int64(0); ob < Mp/b; ob++ {
		for ib := int64(0); ib < Ip/b; ib++ {
			for k := int64(0); k < K; k++ {
				for bi := int64(0); bi < b; bi++ {
					for bo := int64(0); bo < b; bo++ {
						m, i := ob*b+bo, ib*b+bi
						if m < M && i < I {
							dst[d] = src[(m*I+i)*K+k]
						}
						d++
					}
				}
			}
		}
	}
	return dst
}

func (r *nchwcRewriter) padBias(name string, t *graph.Tensor, Mp int64) (string, error) {
	if v, ok := r.biases[name]; ok {
		return v, nil
	}
	src, err := t.Float32s()
	if err != nil {
		return "", err
	}
	dst := make([]float32, Mp)
	copy(dst, src)
	v := r.g.UniqueName(name + "_nchwc")
	r.g.Initializers = append(r.g.Initializers, graph.NewFloat32(v, []int64{Mp}, dst))
	r.biases[name] = v
	return v, nil
}

// Attributes the NCHWc pooling ops accept (ORT's nchwc schemas).
var nchwcPoolAttrs = map[string]map[string]bool{
	"MaxPool":     {"auto_pad": true, "kernel_shape": true, "dilations": true, "strides": true, "pads": true, "ceil_mode": true},
	"AveragePool": {"auto_pad": true, "kernel_shape": true, "strides": true, "pads": true, "ceil_mode": true, "count_include_pad": true},
}

func (r *nchwcRewriter) pool(n *graph.Node, global bool) bool {
	if len(n.Outputs) != 1 || len(n.Inputs) != 1 {
		return false
	}
	C := r.channels(n.Inputs[0])
	if C <= 0 || C%r.b != 0 {
		return false
	}
	if global {
		if r.nc[n.Inputs[0]] == nil {
			return false // ORT converts global pools only inside NCHWc regions
		}
	} else {
		if len(n.AttrInts("kernel_shape")) != 2 {
			return false
		}
		if n.OpType == "AveragePool" && n.AttrInt("count_include_pad", 0) != 0 && n.AttrInt("ceil_mode", 0) != 0 {
			// ORT's blocked kernel divides a window that overhangs the end
			// padding by the whole kernel, ONNX by the taps it covers.
			return false
		}
		allowed := nchwcPoolAttrs[n.OpType]
		for _, a := range n.Attrs {
			if allowed[a.Name] {
				continue
			}
			// Defaults are dropped; anything else keeps the op as it is.
			switch {
			case a.Name == "storage_order" && n.AttrInt("storage_order", 0) == 0:
			case a.Name == "dilations" && allOnes(n.AttrInts("dilations")):
			default:
				return false
			}
		}
		for _, a := range []string{"storage_order"} {
			n.DelAttr(a)
		}
		if n.OpType == "AveragePool" {
			n.DelAttr("dilations")
		}
	}
	n.Inputs[0] = r.input(n.Inputs[0])
	n.Domain = NCHWcDomain
	r.out = append(r.out, n)
	r.produce(n, C)
	return true
}

func allOnes(v []int64) bool {
	for _, x := range v {
		if x != 1 {
			return false
		}
	}
	return true
}

func (r *nchwcRewriter) binary(n *graph.Node) bool {
	if len(n.Outputs) != 1 || len(n.Inputs) < 2 || (!n.Is("Sum") && len(n.Inputs) != 2) {
		return false
	}
	if len(n.Inputs) == 2 && !n.Is("Sum") {
		// An NCHWc tensor and a finite scalar constant (a non-zero one
		// as divisor): elementwise on the blocked data, padding finite.
		for k := 0; k < 2; k++ {
			a := r.nc[n.Inputs[k]]
			v, ok := scalarFloat(r.ci.get(n.Inputs[1-k]))
			if a == nil || !ok || math.IsInf(v, 0) || math.IsNaN(v) || (n.Is("Div") && (k == 1 || v == 0)) {
				continue
			}
			if t := r.ci.get(n.Inputs[1-k]); t.DType != graph.Float || len(t.Dims) > 4 {
				continue // a rank-5+ scalar would change the output rank
			}
			n.Inputs[k] = a.name
			r.out = append(r.out, n)
			r.produceLike(n, a)
			return true
		}
	}
	if n.Is("Sub") || n.Is("Div") {
		return false
	}
	var args []*ncArg
	for _, in := range n.Inputs {
		a := r.nc[in]
		if a == nil || (len(args) > 0 && (a.channels != args[0].channels || !r.sameShape(in, n.Inputs[0]))) {
			return false
		}
		args = append(args, a)
	}
	if !n.Is("Mul") && len(args) == 2 {
		for k, a := range args {
			cv := a.node
			if cv.Domain == NCHWcDomain && cv.OpType == "Conv" && a.uses == 1 && cv.Attr("activation") == nil &&
				len(cv.Inputs) < 4 && cv.Outputs[0] == a.name {
				for len(cv.Inputs) < 3 {
					cv.Inputs = append(cv.Inputs, "")
				}
				cv.Inputs = append(cv.Inputs, args[1-k].name)
				r.alias(n.Outputs[0], a)
				return true
			}
		}
	}
	for i, a := range args {
		n.Inputs[i] = a.name
	}
	r.out = append(r.out, n)
	r.produceLike(n, args[0])
	return true
}

func (r *nchwcRewriter) concat(n *graph.Node) bool {
	if len(n.Outputs) != 1 || n.AttrInt("axis", 0) != 1 {
		return false
	}
	var total int64
	var names []string
	for _, in := range n.Inputs {
		a := r.nc[in]
		if a == nil || a.channels%r.b != 0 {
			return false
		}
		total += a.channels
		names = append(names, a.name)
	}
	n.Inputs = names
	r.out = append(r.out, n)
	r.produce(n, total)
	return true
}

func (r *nchwcRewriter) activation(n *graph.Node) bool {
	if len(n.Outputs) != 1 || len(n.Inputs) == 0 {
		return false
	}
	a := r.nc[n.Inputs[0]]
	if a == nil {
		return false
	}
	cv := a.node
	if cv.Domain == NCHWcDomain && cv.OpType == "Conv" && a.uses == 1 && cv.Attr("activation") == nil && cv.Outputs[0] == a.name &&
		setConvActivation(n, r.ci, cv) {
		for _, in := range n.Inputs[1:] { // Clip's bounds, now attributes
			r.replaced[in] = true
		}
		r.alias(n.Outputs[0], a)
		return true
	}
	for _, in := range n.Inputs[1:] { // Clip's bounds
		if in != "" && r.ci.get(in) == nil {
			return false
		}
	}
	n.Inputs[0] = a.name
	r.out = append(r.out, n)
	r.produceLike(n, a)
	return true
}

// batchNorm turns an inference BatchNormalization of an NCHWc tensor into a
// depthwise 1x1 NCHWc conv with the folded scale and bias.
func (r *nchwcRewriter) batchNorm(n *graph.Node) bool {
	if len(n.Outputs) != 1 || len(n.Inputs) != 5 || n.AttrInt("spatial", 1) != 1 || n.AttrInt("training_mode", 0) != 0 {
		return false
	}
	a := r.nc[n.Inputs[0]]
	if a == nil {
		return false
	}
	C := a.channels
	var p [4][]float32
	for i := range p {
		t := r.ci.get(n.Inputs[1+i])
		if t == nil || t.DType != graph.Float || len(t.Dims) != 1 || t.Dims[0] != C {
			return false
		}
		v, err := t.Float32s()
		if err != nil {
			return false
		}
		p[i] = v
	}
	for _, in := range n.Inputs[1:] {
		r.replaced[in] = true
	}
	eps := float64(n.AttrFloat("epsilon", 1e-5))
	Cp := roundUp64(C, r.b)
	scale, shift := make([]float32, Cp), make([]float32, Cp)
	for c := int64(0); c < C; c++ {
		s := float64(p[0][c]) / math.Sqrt(float64(p[3][c])+eps)
		scale[c] = float32(s)
		shift[c] = float32(float64(p[1][c]) - float64(p[2][c])*s)
	}
	w := r.g.UniqueName(n.Outputs[0] + "_bn_scale")
	bb := r.g.UniqueName(n.Outputs[0] + "_bn_shift")
	r.g.Initializers = append(r.g.Initializers, graph.NewFloat32(w, []int64{Cp, 1, 1, 1}, scale), graph.NewFloat32(bb, []int64{Cp}, shift))
	cv := &graph.Node{Name: r.g.UniqueName(n.Outputs[0] + "_bn_nchwc"), OpType: "Conv", Domain: NCHWcDomain,
		Inputs: []string{a.name, w, bb}, Outputs: []string{n.Outputs[0]}}
	cv.SetAttr(graph.IntAttr("group", Cp))
	cv.SetAttr(graph.IntsAttr("kernel_shape", 1, 1))
	r.out = append(r.out, cv)
	r.produceLike(cv, a)
	return true
}

// resize turns a Resize/Upsample of an NCHWc tensor by integer spatial
// factors into nchwc.Upsample, in the modes its kernel has: nearest with
// floor rounding and asymmetric coordinates, or linear (asymmetric,
// align_corners or half_pixel).
func (r *nchwcRewriter) resize(n *graph.Node) bool {
	if len(n.Outputs) != 1 {
		return false
	}
	a := r.nc[n.Inputs[0]]
	if a == nil {
		return false
	}
	mode := n.AttrString("mode", "nearest")
	if mode != "nearest" && mode != "linear" {
		return false
	}
	ctm := "asymmetric"
	var scalesIn, sizesIn string
	switch {
	case n.Is("Upsample") || r.c.Model.Opset("") < 11:
		scalesIn = inputAt(n, 1)
		if n.Attr("scales") != nil {
			return false // Upsample-7's attribute form: rare, left alone
		}
	default:
		scalesIn, sizesIn = inputAt(n, 2), inputAt(n, 3)
		ctm = n.AttrString("coordinate_transformation_mode", "half_pixel")
		if mode == "nearest" && (ctm != "asymmetric" || n.AttrString("nearest_mode", "round_prefer_floor") != "floor") {
			return false
		}
		if mode == "linear" && ctm != "asymmetric" && ctm != "align_corners" && ctm != "half_pixel" {
			return false
		}
		if n.AttrInt("antialias", 0) != 0 || n.AttrInt("exclude_outside", 0) != 0 || n.Attr("axes") != nil ||
			n.Attr("keep_aspect_ratio_policy") != nil {
			return false
		}
	}
	scales := make([]int64, 4)
	if sizesIn != "" {
		t := r.ci.get(sizesIn)
		sh := r.shape4(n.Inputs[0])
		if t == nil || t.DType != graph.Int64 || len(t.Dims) != 1 || t.Dims[0] != 4 || sh == nil {
			return false
		}
		sizes, err := t.Int64s()
		if err != nil {
			return false
		}
		for i := range scales {
			if !sh[i].Known() || sh[i].Size <= 0 || sizes[i]%sh[i].Size != 0 {
				return false
			}
			scales[i] = sizes[i] / sh[i].Size
		}
	} else {
		t := r.ci.get(scalesIn)
		if t == nil || t.DType != graph.Float || len(t.Dims) != 1 || t.Dims[0] != 4 {
			return false
		}
		v, err := t.Float32s()
		if err != nil {
			return false
		}
		for i, f := range v {
			if f < 1 || f > 1<<16 || float32(int64(f)) != f {
				return false
			}
			scales[i] = int64(f)
		}
	}
	if scales[0] != 1 || scales[1] != 1 {
		return false
	}
	r.replaced[scalesIn], r.replaced[sizesIn] = true, true
	up := &graph.Node{Name: r.g.UniqueName(n.Outputs[0] + "_nchwc"), OpType: "Upsample", Domain: NCHWcDomain,
		Inputs: []string{a.name}, Outputs: []string{n.Outputs[0]}}
	up.SetAttr(graph.IntsAttr("scales", scales...))
	if mode == "linear" {
		up.SetAttr(graph.StringAttr("mode", mode))
		up.SetAttr(graph.StringAttr("coordinate_transformation_mode", ctm))
	}
	r.out = append(r.out, up)
	r.produce(up, a.channels)
	return true
}

// finalize gives every original tensor that is still read in plain layout
// (or is a graph output) a ReorderOutput from its NCHWc form.
func (r *nchwcRewriter) finalize() {
	read := readNames(r.out)
	for _, orig := range r.order {
		a := r.nc[orig]
		if !read[orig] && !r.g.IsGraphOutput(orig) {
			continue
		}
		ro := &graph.Node{Name: r.g.UniqueName("ReorderOutput_" + orig), OpType: "ReorderOutput", Domain: NCHWcDomain,
			Inputs: []string{a.name}, Outputs: []string{orig}}
		ro.SetAttr(graph.IntAttr("channels", a.channels))
		r.out = append(r.out, ro)
	}
}

// readNames is every tensor the nodes read, in their inputs or from inside
// their subgraphs.
func readNames(nodes []*graph.Node) map[string]bool {
	read := map[string]bool{}
	for _, n := range nodes {
		for _, in := range n.Inputs {
			read[in] = true
		}
		for _, sg := range n.Subgraphs() {
			for name := range sg.OuterReads() {
				read[name] = true
			}
		}
	}
	return read
}

func metadata(m *graph.Model, key string) (string, bool) {
	for _, kv := range m.Metadata {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

func setMetadata(m *graph.Model, key, value string) {
	for i, kv := range m.Metadata {
		if kv.Key == key {
			m.Metadata[i].Value = value
			return
		}
	}
	m.Metadata = append(m.Metadata, graph.KV{Key: key, Value: value})
}
