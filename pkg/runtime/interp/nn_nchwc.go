package interp

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unsafe"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// ONNX Runtime's blocked-layout CPU ops (domain com.microsoft.nchwc, version
// 1, float32), as its level-3 NchwcTransformer emits them and as
// optictl's own NCHWc pass does.
//
// Layouts (ORT/MLAS). b is the block size (8 on AVX2, 16 on AVX-512F).
//   - An NCHWc tensor has the logical shape [N, Cp, H, W], Cp = roundup(C, b);
//     in memory, for n, for each channel block cb, for each spatial position
//     p: b consecutive floats (channels cb*b .. cb*b+b-1 at p). Padding
//     channels are zero.
//   - Filter OIHWBiBo [Mp, Ip, KH, KW]: for ob, for ib, for kh, for kw, for
//     bi, for bo: W[ob*b+bo][ib*b+bi][kh][kw].
//   - Filter OIHWBo [Mp, I, KH, KW]: for ob, for i, for kh, for kw, for bo:
//     W[ob*b+bo][i][kh][kw].
//
// The block size comes from the model's metadata_props key
// "optictl.nchwc_block" ("8" or "16"); a model without it (one that ORT
// itself saved) gets the block size MLAS picks on this CPU.
//
// The kernels are written for exactness, not speed (they run in optimize's
// verification): Conv unblocks its input to NCHW, runs interp's own Conv
// kernel on a one-node program compiled at Open, and blocks the result
// again (scratch buffers live as long as the session); the other ops work
// on the blocked data directly.

const (
	nchwcDomain   = graph.NCHWcDomain
	nchwcBlockKey = graph.NCHWcMetadataKey
)

func init() {
	Register(nchwcDomain, "ReorderInput", nchwcBuildReorderInput)
	Register(nchwcDomain, "ReorderOutput", nchwcBuildReorderOutput)
	Register(nchwcDomain, "Conv", nchwcBuildConv)
	Register(nchwcDomain, "MaxPool", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return nchwcBuildPool(n, bc, "MaxPool") })
	Register(nchwcDomain, "AveragePool", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return nchwcBuildPool(n, bc, "AveragePool") })
	Register(nchwcDomain, "GlobalMaxPool", func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		return nchwcBuildGlobalPool(n, bc, nnPoolMax)
	})
	Register(nchwcDomain, "GlobalAveragePool", func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		return nchwcBuildGlobalPool(n, bc, nnPoolAvg)
	})
	Register(nchwcDomain, "Upsample", nchwcBuildUpsample)
}

// errNchwcNoBlock is returned when neither the model nor the CPU says which
// block size the model's NCHWc tensors use.
var errNchwcNoBlock = errors.New("model uses com.microsoft.nchwc ops; their block size is unknown on this CPU")

// nchwcCPUBlock is the block size MLAS uses on this CPU (a variable so that
// tests can play another CPU).
var nchwcCPUBlock = func() (int, error) {
	if b := runtime.HostNCHWcBlock(); b != 0 {
		return b, nil
	}
	return 0, errNchwcNoBlock
}

// nchwcBlockOf returns the model's NCHWc block size.
func nchwcBlockOf(m *graph.Model) (int, error) {
	if m != nil {
		for _, kv := range m.Metadata {
			if kv.Key != nchwcBlockKey {
				continue
			}
			switch kv.Value {
			case "8":
				return 8, nil
			case "16":
				return 16, nil
			}
			return 0, fmt.Errorf("metadata_props %s = %q: want 8 or 16", nchwcBlockKey, kv.Value)
		}
	}
	return nchwcCPUBlock()
}

// nchwcBlock is nchwcBlockOf for the model being built.
func (b *BuildContext) nchwcBlock() (int, error) { return nchwcBlockOf(b.model) }

func nchwcRoundUp(c, b int64) int64 { return (c + b - 1) / b * b }

// nchwcView points header h at data with the given shape (float32, no copy).
func nchwcView(h *runtime.Tensor, shape []int64, data []float32) *runtime.Tensor {
	h.DType = graph.Float
	h.Shape = append(h.Shape[:0], shape...)
	h.Raw = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(data))), 4*len(data))
	h.Strings = nil
	return h
}

// nchwcBlockNCHW writes NCHW data src [N, C, HW] as NCHWc dst [N, Cp, HW]
// (zero padding channels).
func nchwcBlockNCHW(dst, src []float32, N, C, Cp, HW, b int) {
	for n := 0; n < N; n++ {
		for cb := 0; cb < Cp/b; cb++ {
			d := dst[(n*Cp+cb*b)*HW : (n*Cp+cb*b+b)*HW]
			if cb*b+b <= C {
				// a full block: eight channels at a time
				for j := 0; j < b; j += 8 {
					c := (n*C + cb*b + j) * HW
					nchwcPack8(d[j:], src[c:c+8*HW], b, HW)
				}
				continue
			}
			for bi := 0; bi < b; bi++ {
				c := cb*b + bi
				if c >= C {
					for p := 0; p < HW; p++ {
						d[p*b+bi] = 0
					}
					continue
				}
				for p, v := range src[(n*C+c)*HW : (n*C+c+1)*HW] {
					d[p*b+bi] = v
				}
			}
		}
	}
}

// nchwcPack8 interleaves 8 rows of HW values (src, row after row) into d
// at stride b: d[p*b+i] = src[i*HW+p].
func nchwcPack8(d, src []float32, b, HW int) {
	if HW == 0 {
		return
	}
	r0, r1, r2, r3 := src[:HW], src[HW:2*HW], src[2*HW:3*HW], src[3*HW:4*HW]
	r4, r5, r6, r7 := src[4*HW:5*HW], src[5*HW:6*HW], src[6*HW:7*HW], src[7*HW:8*HW]
	d = d[:(HW-1)*b+8]
	for p := 0; p < HW; p++ {
		o := d[p*b : p*b+8 : p*b+8]
		o[0], o[1], o[2], o[3] = r0[p], r1[p], r2[p], r3[p]
		o[4], o[5], o[6], o[7] = r4[p], r5[p], r6[p], r7[p]
	}
}

// nchwcUnblockNCHW writes the first C channels of NCHWc src [N, Cp, HW] as
// NCHW dst [N, C, HW].
func nchwcUnblockNCHW(dst, src []float32, N, C, Cp, HW, b int) {
	for n := 0; n < N; n++ {
		for cb := 0; cb*b < C; cb++ {
			s := src[(n*Cp+cb*b)*HW : (n*Cp+cb*b+b)*HW]
			if cb*b+b <= C {
				for j := 0; j < b; j += 8 {
					c := (n*C + cb*b + j) * HW
					nchwcUnpack8(dst[c:c+8*HW], s[j:], b, HW)
				}
				continue
			}
			for c := cb * b; c < C; c++ {
				bi := c - cb*b
				d := dst[(n*C+c)*HW : (n*C+c+1)*HW]
				for p := range d {
					d[p] = s[p*b+bi]
				}
			}
		}
	}
}

// nchwcUnpack8 is the inverse of nchwcPack8: dst[i*HW+p] = s[p*b+i].
func nchwcUnpack8(dst, s []float32, b, HW int) {
	if HW == 0 {
		return
	}
	r0, r1, r2, r3 := dst[:HW], dst[HW:2*HW], dst[2*HW:3*HW], dst[3*HW:4*HW]
	r4, r5, r6, r7 := dst[4*HW:5*HW], dst[5*HW:6*HW], dst[6*HW:7*HW], dst[7*HW:8*HW]
	s = s[:(HW-1)*b+8]
	for p := 0; p < HW; p++ {
		v := s[p*b : p*b+8 : p*b+8]
		r0[p], r1[p], r2[p], r3[p] = v[0], v[1], v[2], v[3]
		r4[p], r5[p], r6[p], r7[p] = v[4], v[5], v[6], v[7]
	}
}

// nchwcBlockNHWC writes NHWC data src [N, HW, C] as NCHWc dst [N, Cp, HW].
func nchwcBlockNHWC(dst, src []float32, N, C, Cp, HW, b int) {
	for n := 0; n < N; n++ {
		for cb := 0; cb < Cp/b; cb++ {
			d := dst[(n*Cp+cb*b)*HW : (n*Cp+cb*b+b)*HW]
			for p := 0; p < HW; p++ {
				s := src[(n*HW+p)*C : (n*HW+p+1)*C]
				for bi := 0; bi < b; bi++ {
					if c := cb*b + bi; c < C {
						d[p*b+bi] = s[c]
					} else {
						d[p*b+bi] = 0
					}
				}
			}
		}
	}
}

// nchwcUnblockNHWC writes the first C channels of NCHWc src [N, Cp, HW] as
// NHWC dst [N, HW, C].
func nchwcUnblockNHWC(dst, src []float32, N, C, Cp, HW, b int) {
	for n := 0; n < N; n++ {
		for p := 0; p < HW; p++ {
			d := dst[(n*HW+p)*C : (n*HW+p+1)*C]
			for c := range d {
				cb, bi := c/b, c%b
				d[c] = src[((n*Cp+cb*b)*HW+p*b)+bi]
			}
		}
	}
}

// nchwcCheckBlocked checks that x is a float32 rank-4 NCHWc tensor.
func nchwcCheckBlocked(node *graph.Node, what string, x *runtime.Tensor, b int) error {
	if x == nil {
		return fmt.Errorf("interp: %s: %s is missing", node, what)
	}
	if x.DType != graph.Float {
		return fmt.Errorf("interp: %s: %s is %s, want float", node, what, x.DType)
	}
	if len(x.Shape) != 4 {
		return fmt.Errorf("interp: %s: %s%v must have rank 4 (NCHWc)", node, what, x.Shape)
	}
	if x.Shape[1]%int64(b) != 0 {
		return fmt.Errorf("interp: %s: %s%v: channels %d are not a multiple of the NCHWc block size %d", node, what, x.Shape, x.Shape[1], b)
	}
	if err := nnCheckSize(what, x.Shape); err != nil {
		return fmt.Errorf("interp: %s: %w", node, err)
	}
	return nil
}

// ---- ReorderInput / ReorderOutput ----

type nchwcReorder struct {
	b            int
	channelsLast bool
	channels     int64 // ReorderOutput
	shape        []int64
}

func nchwcBuildReorderInput(n *graph.Node, bc *BuildContext) (Kernel, error) {
	b, err := bc.nchwcBlock()
	if err != nil {
		return nil, err
	}
	r := &nchwcReorder{b: b, channelsLast: n.AttrInt("channels_last", 0) != 0}
	return r.runInput, nil
}

func (r *nchwcReorder) runInput(c *Call) error {
	x := c.In[0]
	if x == nil || x.DType != graph.Float || len(x.Shape) != 4 {
		return fmt.Errorf("interp: %s: X must be a float tensor of rank 4, got %v", c.Node, nchwcDesc(x))
	}
	N, C, H, W := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	if r.channelsLast {
		C, H, W = x.Shape[3], x.Shape[1], x.Shape[2]
	}
	if C%4 != 0 {
		return fmt.Errorf("interp: %s: X%v has %d channels, not a multiple of 4", c.Node, x.Shape, C)
	}
	Cp := nchwcRoundUp(C, int64(r.b))
	r.shape = append(r.shape[:0], N, Cp, H, W)
	if err := nnCheckSize("output", r.shape); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	y, err := c.Out(0, graph.Float, r.shape)
	if err != nil {
		return err
	}
	if r.channelsLast {
		nchwcBlockNHWC(y.Float32s(), x.Float32s(), int(N), int(C), int(Cp), int(H*W), r.b)
	} else {
		nchwcBlockNCHW(y.Float32s(), x.Float32s(), int(N), int(C), int(Cp), int(H*W), r.b)
	}
	return nil
}

func nchwcBuildReorderOutput(n *graph.Node, bc *BuildContext) (Kernel, error) {
	b, err := bc.nchwcBlock()
	if err != nil {
		return nil, err
	}
	a := n.Attr("channels")
	if a == nil || a.Type != graph.AttrInt {
		return nil, fmt.Errorf("attribute channels (int) is required")
	}
	if a.I <= 0 {
		return nil, fmt.Errorf("channels %d must be positive", a.I)
	}
	r := &nchwcReorder{b: b, channelsLast: n.AttrInt("channels_last", 0) != 0, channels: a.I}
	return r.runOutput, nil
}

func (r *nchwcReorder) runOutput(c *Call) error {
	x := c.In[0]
	if err := nchwcCheckBlocked(c.Node, "X", x, r.b); err != nil {
		return err
	}
	N, Cp, H, W := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	C := r.channels
	if C > Cp || Cp-C >= int64(r.b) {
		return fmt.Errorf("interp: %s: channels %d do not match X%v's %d block-aligned channels", c.Node, C, x.Shape, Cp)
	}
	if r.channelsLast {
		r.shape = append(r.shape[:0], N, H, W, C)
	} else {
		r.shape = append(r.shape[:0], N, C, H, W)
	}
	y, err := c.Out(0, graph.Float, r.shape)
	if err != nil {
		return err
	}
	if r.channelsLast {
		nchwcUnblockNHWC(y.Float32s(), x.Float32s(), int(N), int(C), int(Cp), int(H*W), r.b)
	} else {
		nchwcUnblockNCHW(y.Float32s(), x.Float32s(), int(N), int(C), int(Cp), int(H*W), r.b)
	}
	return nil
}

func nchwcDesc(t *runtime.Tensor) string {
	if t == nil {
		return "nothing"
	}
	return fmt.Sprintf("%s%v", t.DType, t.Shape)
}

// ---- one-node programs ----

// nchwcSubIn is one input of a one-node program: a graph input (konst nil)
// or a constant, or omitted (omit).
type nchwcSubIn struct {
	konst *runtime.Tensor
	omit  bool
}

// nchwcCompileOne compiles a program of one node (op of domain, with attrs)
// whose inputs are ins; the program's graph inputs are the non-constant,
// non-omitted ins in order, and its one output is the node's output 0.
func nchwcCompileOne(bc *BuildContext, outer *graph.Node, domain, op string, attrs []*graph.Attr, ins []nchwcSubIn) (*Program, error) {
	g := &graph.Graph{Name: "nchwc:" + outer.Name}
	node := &graph.Node{Name: outer.Name, OpType: op, Domain: domain, Attrs: attrs, Outputs: []string{"nchwc·y"}}
	for i, in := range ins {
		name := "nchwc·in" + strconv.Itoa(i)
		switch {
		case in.omit:
			name = ""
		case in.konst != nil:
			k := in.konst
			g.Initializers = append(g.Initializers, &graph.Tensor{Name: name, DType: k.DType, Dims: append([]int64(nil), k.Shape...), Raw: k.Raw})
		default:
			g.Inputs = append(g.Inputs, &graph.ValueInfo{Name: name, DType: graph.Float, HasType: true})
		}
		node.Inputs = append(node.Inputs, name)
	}
	g.Nodes = []*graph.Node{node}
	g.Outputs = []*graph.ValueInfo{{Name: "nchwc·y", DType: graph.Float, HasType: true}}
	p, err := bc.CompileSubgraph(g)
	if err != nil {
		return nil, fmt.Errorf("compiling its NCHW %s: %w", op, err)
	}
	return p, nil
}

// nchwcRunOne runs a one-node program and returns its output.
func nchwcRunOne(c *Call, p *Program, ins []*runtime.Tensor) (*runtime.Tensor, error) {
	res, err := c.RunSubgraph(p, ins)
	if err != nil {
		return nil, fmt.Errorf("interp: %s: NCHW computation: %w", c.Node, err)
	}
	if len(res) != 1 || res[0] == nil || res[0].DType != graph.Float || len(res[0].Shape) != 4 {
		return nil, fmt.Errorf("interp: %s: NCHW computation gave no rank-4 float result", c.Node)
	}
	return res[0], nil
}

// nchwcAttrs returns n's attributes named in keep.
func nchwcAttrs(n *graph.Node, keep ...string) []*graph.Attr {
	var out []*graph.Attr
	for _, name := range keep {
		if a := n.Attr(name); a != nil {
			out = append(out, a)
		}
	}
	return out
}

// ---- Conv ----

// Conv forms, told apart by W's shape and group.
const (
	nchwcConvBlocked   = 1 // X NCHWc, W OIHWBiBo
	nchwcConvDepthwise = 2 // X NCHWc, group == Mp == Cp, W OIHWBo [Mp,1,KH,KW]
	nchwcConvPlainIn   = 3 // X NCHW with C < b channels, group 1, W OIHWBo
)

type nchwcConv struct {
	b, group int
	act      nnAct
	// form is set at Open when W is constant (W is then unblocked once,
	// into a constant of prog); otherwise W is unblocked on every run.
	form    int
	wConst  bool
	bConst  bool
	hasBias bool
	prog    *Program
	ins     []*runtime.Tensor
	xh, wh  runtime.Tensor // headers over scratch
	xshape  []int64
}

func nchwcBuildConv(n *graph.Node, bc *BuildContext) (Kernel, error) {
	b, err := bc.nchwcBlock()
	if err != nil {
		return nil, err
	}
	cv := &nchwcConv{b: b, group: int(n.AttrInt("group", 1))}
	if cv.group <= 0 {
		return nil, fmt.Errorf("group %d must be positive", cv.group)
	}
	if cv.act, err = nnParseAct(n); err != nil {
		return nil, err
	}
	if _, err := nnParseWindow(n); err != nil {
		return nil, err
	}
	if bc.NumInputs() < 2 || !bc.HasInput(0) || !bc.HasInput(1) {
		return nil, fmt.Errorf("X and W are required")
	}
	if bc.NumInputs() > 4 {
		return nil, fmt.Errorf("takes at most 4 inputs (X, W, B, Sum), got %d", bc.NumInputs())
	}
	ins := []nchwcSubIn{{}, {}, {omit: true}}
	if w := bc.Const(1); w != nil {
		wp, form, err := cv.unblockWeights(w)
		if err != nil {
			return nil, err
		}
		cv.form, cv.wConst = form, true
		ins[1].konst = wp
	}
	if bc.HasInput(2) {
		cv.hasBias = true
		ins[2].omit = false
		if bt := bc.Const(2); bt != nil {
			if bt.DType != graph.Float {
				return nil, fmt.Errorf("B is %s, want float", bt.DType)
			}
			if w := bc.Const(1); w != nil && len(w.Shape) > 0 && int64(bt.Len()) != w.Shape[0] {
				return nil, fmt.Errorf("B%v must hold %d values (W%v's output channels)", bt.Shape, w.Shape[0], w.Shape)
			}
			ins[2].konst, cv.bConst = bt, true
		}
	}
	// The NCHW program computes conv + bias only; Sum and the activation
	// are applied here on the blocked result (act(conv + B + Sum)).
	attrs := nchwcAttrs(n, "auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")
	if cv.prog, err = nchwcCompileOne(bc, n, "com.microsoft", "FusedConv", attrs, ins); err != nil {
		return nil, err
	}
	return cv.run, nil
}

// nchwcConvForm tells the Conv form from W's shape and the group.
func nchwcConvForm(ws []int64, group, b int) (int, error) {
	if len(ws) != 4 {
		return 0, fmt.Errorf("W%v must have rank 4", ws)
	}
	Mp, K, B, G := ws[0], ws[1], int64(b), int64(group)
	for _, d := range ws {
		if d <= 0 {
			return 0, fmt.Errorf("W%v has an empty dimension", ws)
		}
	}
	if Mp%B != 0 {
		return 0, fmt.Errorf("W%v: %d output channels are not a multiple of the NCHWc block size %d", ws, Mp, b)
	}
	switch {
	case G > 1 && K == 1 && G == Mp:
		return nchwcConvDepthwise, nil
	case G == 1 && K < B:
		return nchwcConvPlainIn, nil
	case K%B == 0 && Mp%G == 0:
		return nchwcConvBlocked, nil
	}
	return 0, fmt.Errorf("W%v with group %d matches no NCHWc Conv form for block size %d", ws, group, b)
}

// unblockWeights returns W in plain OIHW order (same dims) and the form.
func (cv *nchwcConv) unblockWeights(w *runtime.Tensor) (*runtime.Tensor, int, error) {
	if w.DType != graph.Float {
		return nil, 0, fmt.Errorf("W is %s, want float", w.DType)
	}
	form, err := nchwcConvForm(w.Shape, cv.group, cv.b)
	if err != nil {
		return nil, 0, err
	}
	if err := nnCheckSize("W", w.Shape); err != nil {
		return nil, 0, err
	}
	wp := runtime.NewTensor(graph.Float, w.Shape)
	nchwcUnblockFilter(wp.Float32s(), w.Float32s(), w.Shape, form, cv.b)
	return wp, form, nil
}

// nchwcUnblockFilter writes the blocked filter src (dims ws, in the layout
// of form) as plain OIHW dst.
func nchwcUnblockFilter(dst, src []float32, ws []int64, form, b int) {
	Mp, I, KH, KW := int(ws[0]), int(ws[1]), int(ws[2]), int(ws[3])
	KK := KH * KW
	if form == nchwcConvBlocked {
		// for ob, ib, kh, kw, bi, bo
		s := 0
		for ob := 0; ob < Mp/b; ob++ {
			for ib := 0; ib < I/b; ib++ {
				for k := 0; k < KK; k++ {
					for bi := 0; bi < b; bi++ {
						for bo := 0; bo < b; bo++ {
							o, i := ob*b+bo, ib*b+bi
							dst[(o*I+i)*KK+k] = src[s]
							s++
						}
					}
				}
			}
		}
		return
	}
	// OIHWBo: for ob, i, kh, kw, bo
	s := 0
	for ob := 0; ob < Mp/b; ob++ {
		for i := 0; i < I; i++ {
			for k := 0; k < KK; k++ {
				for bo := 0; bo < b; bo++ {
					dst[((ob*b+bo)*I+i)*KK+k] = src[s]
					s++
				}
			}
		}
	}
}

func (cv *nchwcConv) run(c *Call) error {
	x, w := c.In[0], c.In[1]
	var bias, sum *runtime.Tensor
	if len(c.In) > 2 {
		bias = c.In[2]
	}
	if len(c.In) > 3 {
		sum = c.In[3]
	}
	if x == nil || w == nil {
		return fmt.Errorf("interp: %s: missing X or W", c.Node)
	}
	if x.DType != graph.Float || w.DType != graph.Float {
		return fmt.Errorf("interp: %s: X is %s and W is %s, want float", c.Node, x.DType, w.DType)
	}
	if len(x.Shape) != 4 || len(w.Shape) != 4 {
		return fmt.Errorf("interp: %s: X%v and W%v must have rank 4", c.Node, x.Shape, w.Shape)
	}
	form := cv.form
	if !cv.wConst {
		var err error
		if form, err = nchwcConvForm(w.Shape, cv.group, cv.b); err != nil {
			return fmt.Errorf("interp: %s: %w", c.Node, err)
		}
	}
	Mp, K, G := w.Shape[0], w.Shape[1], int64(cv.group)
	C := x.Shape[1]
	switch form {
	case nchwcConvBlocked:
		if C%int64(cv.b) != 0 || C != K*G {
			return fmt.Errorf("interp: %s: X%v does not match W%v with group %d (want NCHWc X with %d channels)", c.Node, x.Shape, w.Shape, G, K*G)
		}
	case nchwcConvDepthwise:
		if C != G {
			return fmt.Errorf("interp: %s: depthwise X%v does not match W%v with group %d (want %d channels)", c.Node, x.Shape, w.Shape, G, G)
		}
	case nchwcConvPlainIn:
		if C != K {
			return fmt.Errorf("interp: %s: NCHW X%v does not match W%v (want %d channels)", c.Node, x.Shape, w.Shape, K)
		}
	}
	if bias != nil && (bias.DType != graph.Float || int64(bias.Len()) != Mp) {
		return fmt.Errorf("interp: %s: B%v (%s) must hold %d floats", c.Node, bias.Shape, bias.DType, Mp)
	}
	if err := nnCheckSize("X", x.Shape); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	cv.ins = cv.ins[:0]
	if form == nchwcConvPlainIn {
		cv.ins = append(cv.ins, x)
	} else {
		N, H, W := x.Shape[0], x.Shape[2], x.Shape[3]
		xd := c.ScratchF32(0, x.Len())
		nchwcUnblockNCHW(xd, x.Float32s(), int(N), int(C), int(C), int(H*W), cv.b)
		cv.xshape = append(cv.xshape[:0], x.Shape...)
		cv.ins = append(cv.ins, nchwcView(&cv.xh, cv.xshape, xd))
	}
	if !cv.wConst {
		if err := nnCheckSize("W", w.Shape); err != nil {
			return fmt.Errorf("interp: %s: %w", c.Node, err)
		}
		wd := c.ScratchF32(1, w.Len())
		nchwcUnblockFilter(wd, w.Float32s(), w.Shape, form, cv.b)
		cv.ins = append(cv.ins, nchwcView(&cv.wh, w.Shape, wd))
	}
	if cv.hasBias && !cv.bConst {
		cv.ins = append(cv.ins, bias)
	}
	yp, err := nchwcRunOne(c, cv.prog, cv.ins)
	clear(cv.ins)
	if err != nil {
		return err
	}
	if yp.Shape[1] != Mp {
		return fmt.Errorf("interp: %s: NCHW Conv gave %v, want %d channels", c.Node, yp.Shape, Mp)
	}
	if sum != nil {
		if sum.DType != graph.Float || !nnSameShape(sum.Shape, yp.Shape) {
			return fmt.Errorf("interp: %s: Sum is %s, want the output's shape %v (float32)", c.Node, nchwcDesc(sum), yp.Shape)
		}
	}
	y, err := c.Out(0, graph.Float, yp.Shape)
	if err != nil {
		return err
	}
	N, HW := int(yp.Shape[0]), int(yp.Shape[2]*yp.Shape[3])
	yd := y.Float32s()
	nchwcBlockNCHW(yd, yp.Float32s(), N, int(Mp), int(Mp), HW, cv.b)
	if sum != nil {
		for i, v := range sum.Float32s() {
			yd[i] += v
		}
	}
	cv.act.apply(yd)
	return nil
}

// ---- MaxPool / AveragePool ----

// nchwcPool pools NCHWc data directly, one block of b channels at a time,
// with ONNX's window geometry (strides, pads, dilations, auto_pad,
// ceil_mode) and MLAS's divisors: the number of taps inside the input
// without count_include_pad, the whole kernel size (KH·KW) with it. The
// two definitions of count_include_pad differ from ONNX's only where a
// ceil_mode window hangs over the end padding; there ORT's NCHWc kernel,
// and so this one, still divides by KH·KW.
type nchwcPool struct {
	b          int
	kind       nnPoolKind
	win        nnWindow
	includePad bool
	geo        nnGeom
	shape      []int64
	// per-run arguments of work, set by run
	wx, wy []float32
	workFn func(lo, hi int)
}

func nchwcBuildPool(n *graph.Node, bc *BuildContext, op string) (Kernel, error) {
	b, err := bc.nchwcBlock()
	if err != nil {
		return nil, err
	}
	win, err := nnParseWindow(n)
	if err != nil {
		return nil, err
	}
	if len(win.kernel) != 2 {
		return nil, fmt.Errorf("kernel_shape %v must have 2 entries", win.kernel)
	}
	pl := &nchwcPool{b: b, kind: nnPoolMax, win: win}
	if op == "AveragePool" {
		pl.kind = nnPoolAvg
		pl.includePad = n.AttrInt("count_include_pad", 0) != 0
	}
	pl.workFn = pl.work
	return pl.run, nil
}

func (pl *nchwcPool) run(c *Call) error {
	x := c.In[0]
	if err := nchwcCheckBlocked(c.Node, "X", x, pl.b); err != nil {
		return err
	}
	if err := pl.win.geom(&pl.geo, x.Shape[2:], pl.win.kernel); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	pl.shape = nnShapeWith(pl.shape, x.Shape[:2], &pl.geo)
	if err := nnCheckSize("output", pl.shape); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	y, err := c.Out(0, graph.Float, pl.shape)
	if err != nil {
		return err
	}
	planes := int(x.Shape[0]) * int(x.Shape[1]) / pl.b
	pl.wx, pl.wy = x.Float32s(), y.Float32s()
	if c.Threads() <= 1 || y.Len()*pl.geo.kSize() < 1<<15 {
		pl.work(0, planes)
	} else {
		c.Parallel(planes, pl.workFn)
	}
	pl.wx, pl.wy = nil, nil
	return nil
}

// work pools blocks [lo, hi) (one block: b channels of one image).
func (pl *nchwcPool) work(lo, hi int) {
	g := &pl.geo
	b := pl.b
	H, W, OH, OW := g.in[0], g.in[1], g.out[0], g.out[1]
	kernelSize := float32(g.k[0] * g.k[1])
	var acc [16]float32
	for blk := lo; blk < hi; blk++ {
		x := pl.wx[blk*H*W*b : (blk+1)*H*W*b]
		y := pl.wy[blk*OH*OW*b : (blk+1)*OH*OW*b]
		for oh := 0; oh < OH; oh++ {
			for ow := 0; ow < OW; ow++ {
				a := acc[:b]
				if pl.kind == nnPoolMax {
					for i := range a {
						a[i] = float32(math.Inf(-1))
					}
				} else {
					clear(a)
				}
				n := 0
				khLo, khHi := nchwcTaps(oh*g.s[0]-g.pb[0], g.d[0], g.k[0], H)
				kwLo, kwHi := nchwcTaps(ow*g.s[1]-g.pb[1], g.d[1], g.k[1], W)
				for kh := khLo; kh < khHi; kh++ {
					ih := oh*g.s[0] - g.pb[0] + kh*g.d[0]
					for kw := kwLo; kw < kwHi; kw++ {
						iw := ow*g.s[1] - g.pb[1] + kw*g.d[1]
						n++
						v := x[(ih*W+iw)*b : (ih*W+iw+1)*b]
						if pl.kind == nnPoolMax {
							for i, e := range v {
								if e > a[i] { // NaN never wins, as in interp's MaxPool
									a[i] = e
								}
							}
						} else {
							for i, e := range v {
								a[i] += e
							}
						}
					}
				}
				out := y[(oh*OW+ow)*b : (oh*OW+ow+1)*b]
				switch {
				case pl.kind == nnPoolMax:
					copy(out, a)
				case pl.includePad:
					for i := range out {
						out[i] = a[i] / kernelSize
					}
				case n == 0:
					clear(out)
				default:
					for i := range out {
						out[i] = a[i] / float32(n)
					}
				}
			}
		}
	}
}

// nchwcTaps returns the kernel taps [lo, hi) of a window starting at base
// (dilation d, k taps) that fall inside [0, in).
func nchwcTaps(base, d, k, in int) (lo, hi int) {
	if base < 0 {
		lo = (-base + d - 1) / d
	}
	if last := in - 1 - base; last >= 0 {
		hi = min(k, last/d+1)
	}
	return min(lo, hi), hi
}

// ---- GlobalMaxPool / GlobalAveragePool ----

type nchwcGlobalPool struct {
	b     int
	kind  nnPoolKind
	shape []int64
}

func nchwcBuildGlobalPool(n *graph.Node, bc *BuildContext, kind nnPoolKind) (Kernel, error) {
	b, err := bc.nchwcBlock()
	if err != nil {
		return nil, err
	}
	gp := &nchwcGlobalPool{b: b, kind: kind}
	return gp.run, nil
}

func (gp *nchwcGlobalPool) run(c *Call) error {
	x := c.In[0]
	if err := nchwcCheckBlocked(c.Node, "X", x, gp.b); err != nil {
		return err
	}
	N, Cp, HW := int(x.Shape[0]), int(x.Shape[1]), int(x.Shape[2]*x.Shape[3])
	gp.shape = append(gp.shape[:0], x.Shape[0], x.Shape[1], 1, 1)
	y, err := c.Out(0, graph.Float, gp.shape)
	if err != nil {
		return err
	}
	xd, yd := x.Float32s(), y.Float32s()
	b := gp.b
	var acc [16]float64
	var mx [16]float32
	for n := 0; n < N; n++ {
		for cb := 0; cb < Cp/b; cb++ {
			blk := xd[(n*Cp+cb*b)*HW : (n*Cp+cb*b+b)*HW]
			out := yd[n*Cp+cb*b : n*Cp+cb*b+b]
			switch gp.kind {
			case nnPoolAvg:
				clear(acc[:b])
				for p := 0; p < HW; p++ {
					for bi, v := range blk[p*b : p*b+b] {
						acc[bi] += float64(v)
					}
				}
				for bi := range out {
					if HW == 0 {
						out[bi] = float32(math.NaN())
					} else {
						out[bi] = float32(acc[bi] / float64(HW))
					}
				}
			case nnPoolMax:
				for bi := 0; bi < b; bi++ {
					mx[bi] = float32(math.Inf(-1))
				}
				for p := 0; p < HW; p++ {
					for bi, v := range blk[p*b : p*b+b] {
						mx[bi] = max(mx[bi], v)
					}
				}
				copy(out, mx[:b])
			}
		}
	}
	return nil
}

// ---- Upsample ----

// nchwcUpsample scales the spatial dims by integer factors: nearest
// (y[oh][ow] = x[oh/sh][ow/sw]) or bilinear with ORT's coordinate
// transformations (asymmetric, align_corners, half_pixel).
type nchwcUpsample struct {
	b      int
	sh, sw int64
	linear bool
	mode   string // coordinate_transformation_mode
	shape  []int64
	ih, iw []float32 // input coordinate per output row / column
}

func nchwcBuildUpsample(n *graph.Node, bc *BuildContext) (Kernel, error) {
	b, err := bc.nchwcBlock()
	if err != nil {
		return nil, err
	}
	s := n.AttrInts("scales")
	if len(s) != 4 || s[0] != 1 || s[1] != 1 || s[2] < 1 || s[3] < 1 || s[2] > 1<<16 || s[3] > 1<<16 {
		return nil, fmt.Errorf("scales %v must be [1, 1, sh, sw] with positive sh, sw", s)
	}
	u := &nchwcUpsample{b: b, sh: s[2], sw: s[3]}
	switch mode := n.AttrString("mode", "nearest"); mode {
	case "nearest":
	case "linear":
		u.linear = true
	default:
		return nil, fmt.Errorf("mode %q must be nearest or linear", mode)
	}
	u.mode = n.AttrString("coordinate_transformation_mode", "asymmetric")
	switch u.mode {
	case "asymmetric", "align_corners", "half_pixel": // nearest ignores it, as MLAS does
	default:
		return nil, unsupportedf("unsupported coordinate_transformation_mode %q", u.mode)
	}
	return u.run, nil
}

// coords returns the input coordinate of each of out output positions
// (ORT's NchwcUpsample::ComputeInterpolation).
func (u *nchwcUpsample) coords(dst []float32, in, out, scale int64) []float32 {
	dst = dst[:0]
	for o := int64(0); o < out; o++ {
		var v float32
		switch {
		case scale == 1:
			v = float32(o)
		case u.mode == "align_corners":
			if out > 1 {
				v = float32(o) * float32(in-1) / float32(out-1)
			}
		case u.mode == "half_pixel":
			v = max(0, (float32(o)+0.5)/float32(scale)-0.5)
		default:
			v = float32(o) / float32(scale)
		}
		dst = append(dst, v)
	}
	return dst
}

func (u *nchwcUpsample) run(c *Call) error {
	x := c.In[0]
	if err := nchwcCheckBlocked(c.Node, "X", x, u.b); err != nil {
		return err
	}
	N, Cp, H, W := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	if H > graph.MaxElements/u.sh || W > graph.MaxElements/u.sw {
		return fmt.Errorf("interp: %s: X%v scaled by %d×%d is too large", c.Node, x.Shape, u.sh, u.sw)
	}
	OH, OW := H*u.sh, W*u.sw
	u.shape = append(u.shape[:0], N, Cp, OH, OW)
	if err := nnCheckSize("output", u.shape); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	y, err := c.Out(0, graph.Float, u.shape)
	if err != nil {
		return err
	}
	xd, yd := x.Float32s(), y.Float32s()
	b := u.b
	planes := int(N * Cp / int64(b))
	h, w, oh, ow := int(H), int(W), int(OH), int(OW)
	if !u.linear {
		for pl := 0; pl < planes; pl++ {
			src := xd[pl*h*w*b : (pl+1)*h*w*b]
			dst := yd[pl*oh*ow*b : (pl+1)*oh*ow*b]
			for i := 0; i < oh; i++ {
				si := i / int(u.sh)
				for j := 0; j < ow; j++ {
					sj := j / int(u.sw)
					copy(dst[(i*ow+j)*b:(i*ow+j+1)*b], src[(si*w+sj)*b:(si*w+sj+1)*b])
				}
			}
		}
		return nil
	}
	u.ih = u.coords(u.ih, H, OH, u.sh)
	u.iw = u.coords(u.iw, W, OW, u.sw)
	for pl := 0; pl < planes; pl++ {
		src := xd[pl*h*w*b : (pl+1)*h*w*b]
		dst := yd[pl*oh*ow*b : (pl+1)*oh*ow*b]
		for i := 0; i < oh; i++ {
			fh := u.ih[i]
			h0 := min(int(fh), h-1)
			h1 := min(h0+1, h-1)
			lh := fh - float32(h0)
			for j := 0; j < ow; j++ {
				fw := u.iw[j]
				w0 := min(int(fw), w-1)
				w1 := min(w0+1, w-1)
				lw := fw - float32(w0)
				// MLAS's weights and summation order.
				m00, m01 := (1-lh)*(1-lw), (1-lh)*lw
				m10, m11 := lh*(1-lw), lh*lw
				p00, p01 := src[(h0*w+w0)*b:], src[(h0*w+w1)*b:]
				p10, p11 := src[(h1*w+w0)*b:], src[(h1*w+w1)*b:]
				d := dst[(i*ow+j)*b : (i*ow+j+1)*b]
				for k := range d {
					d[k] = (p00[k]*m00 + p01[k]*m01) + (p10[k]*m10 + p11[k]*m11)
				}
			}
		}
	}
	return nil
}
