package distill

import (
	"errors"
	"fmt"
	"slices"

	"github.com/optictl/optictl/pkg/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ErrUnsupported marks a student the trainer cannot build (an op, an
// attribute or a shape outside the supported set).
var ErrUnsupported = errors.New("distill: unsupported")

// Param is one trainable tensor: an initializer or a Constant node's value.
type Param struct {
	Name string
	Dims []int64
	Node *G.Node
	// constant is the Constant node holding it, nil for an initializer.
	constant *graph.Node
}

// Net is a student model built as a gorgonia graph for one batch size.
type Net struct {
	G       *G.ExprGraph
	Batch   int
	Inputs  []*G.Node // the model's inputs, batch-sized, in model order
	Outputs []*G.Node // the model's outputs, in model order
	// OutputNames are the model's output names.
	OutputNames []string
	// Logits holds, per output, the scores a Softmax (last axis) turned
	// into that output's probabilities, nil when the output is not a
	// Softmax's: KD and cross-entropy read scores, not probabilities.
	Logits []*G.Node
	Params []*Param
	// opset is the model's default-domain opset (Softmax and Squeeze
	// semantics depend on it).
	opset int64
}

type value struct {
	n *G.Node
	// act: computed from the model's inputs (carries the batch dim).
	act bool
	// ints holds an int64 constant (Reshape shapes).
	ints []int64
	// param is the parameter the value is, if any; used marks it read by
	// a node (parameters no node reads are not trained).
	param *Param
	// logits is the input of the Softmax that computed this value.
	logits *G.Node
}

// Build makes a trainable graph of m for the given batch size. m is not
// modified; its float32 initializers become the parameters' values.
func Build(m *graph.Model, batch int) (*Net, error) {
	if batch < 1 {
		return nil, fmt.Errorf("distill: batch %d must be at least 1", batch)
	}
	g := m.Graph
	eg := G.NewGraph()
	net := &Net{G: eg, Batch: batch, opset: m.Opset("")}
	vals := map[string]*value{}
	for _, t := range g.Initializers {
		v, p, err := constValue(eg, t, nil)
		if err != nil {
			return nil, err
		}
		v.param = p
		vals[t.Name] = v
	}
	for _, in := range g.RealInputs() {
		if !in.HasShape || len(in.Shape) == 0 {
			return nil, fmt.Errorf("%w: input %q has no shape", ErrUnsupported, in.Name)
		}
		if in.DType != graph.Float {
			return nil, fmt.Errorf("%w: input %q is %s, not float32", ErrUnsupported, in.Name, in.DType)
		}
		shp := make(tensor.Shape, len(in.Shape))
		for i, d := range in.Shape {
			switch {
			case i == 0:
				shp[i] = batch
			case d.Size > 0:
				shp[i] = int(d.Size)
			default:
				return nil, fmt.Errorf("%w: input %q has dynamic dim %d: fix the input shape first (optictl optimize --shape %s=1x... -O1, which also folds Shape arithmetic into constants)", ErrUnsupported, in.Name, i, in.Name)
			}
		}
		n := G.NewTensor(eg, tensor.Float32, len(shp), G.WithShape(shp...), G.WithName(in.Name))
		vals[in.Name] = &value{n: n, act: true}
		net.Inputs = append(net.Inputs, n)
	}
	for _, nd := range g.Nodes {
		if err := buildNode(eg, net, nd, vals); err != nil {
			return nil, err
		}
	}
	for _, o := range g.Outputs {
		v, ok := vals[o.Name]
		if !ok || v.n == nil {
			return nil, fmt.Errorf("%w: output %q is not computed by a supported node", ErrUnsupported, o.Name)
		}
		net.Outputs = append(net.Outputs, v.n)
		net.Logits = append(net.Logits, v.logits)
		net.OutputNames = append(net.OutputNames, o.Name)
	}
	return net, nil
}

// constValue makes a graph value of a constant tensor: float32 becomes a
// trainable parameter, int64 and int32 an integer constant.
func constValue(eg *G.ExprGraph, t *graph.Tensor, owner *graph.Node) (*value, *Param, error) {
	switch t.DType {
	case graph.Int64:
		ints, err := t.Int64s()
		if err != nil {
			return nil, nil, fmt.Errorf("distill: tensor %q: %w", t.Name, err)
		}
		return &value{ints: ints}, nil, nil
	case graph.Int32:
		i32, err := t.Int32s()
		if err != nil {
			return nil, nil, fmt.Errorf("distill: tensor %q: %w", t.Name, err)
		}
		ints := make([]int64, len(i32))
		for i, v := range i32 {
			ints[i] = int64(v)
		}
		return &value{ints: ints}, nil, nil
	case graph.Float:
		f, err := t.Float32s()
		if err != nil {
			return nil, nil, fmt.Errorf("distill: tensor %q: %w", t.Name, err)
		}
		data := append([]float32(nil), f...)
		shp := make([]int, len(t.Dims))
		for i, d := range t.Dims {
			shp[i] = int(d)
		}
		if len(shp) == 0 {
			shp = []int{1}
		}
		tt := tensor.New(tensor.WithShape(shp...), tensor.WithBacking(data))
		n := G.NewTensor(eg, tensor.Float32, len(shp), G.WithShape(shp...), G.WithName("param:"+t.Name), G.WithValue(tt))
		return &value{n: n}, &Param{Name: t.Name, Dims: append([]int64(nil), t.Dims...), Node: n, constant: owner}, nil
	}
	return nil, nil, fmt.Errorf("%w: tensor %q has type %s (float32, int64 and int32 only)", ErrUnsupported, t.Name, t.DType)
}

func buildNode(eg *G.ExprGraph, net *Net, nd *graph.Node, vals map[string]*value) (err error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: node %s: %s", ErrUnsupported, nd, fmt.Sprintf(format, a...))
	}
	defer func() {
		// gorgonia panics on some shape mismatches: report them on the node.
		if r := recover(); r != nil {
			err = fail("gorgonia: %v", r)
		}
	}()
	if !nd.IsDefaultDomain() {
		return fail("custom domain %q", nd.Domain)
	}
	in := func(i int) (*value, error) {
		if i >= len(nd.Inputs) || nd.Inputs[i] == "" {
			return nil, fail("input %d is missing", i)
		}
		v, ok := vals[nd.Inputs[i]]
		if !ok {
			return nil, fail("input %q is not computed by a supported node", nd.Inputs[i])
		}
		if v.param != nil && !slices.Contains(net.Params, v.param) {
			net.Params = append(net.Params, v.param)
		}
		return v, nil
	}
	set := func(n *G.Node, act bool) {
		vals[nd.Outputs[0]] = &value{n: n, act: act}
	}
	if len(nd.Outputs) == 0 {
		return fail("no output")
	}
	switch nd.OpType {
	case "Constant":
		t := nd.AttrTensor("value")
		if t == nil {
			return fail("only the tensor 'value' attribute is supported")
		}
		t = t.Clone()
		t.Name = nd.Outputs[0]
		v, p, err := constValue(eg, t, nd)
		if err != nil {
			return err
		}
		v.param = p
		vals[nd.Outputs[0]] = v
		return nil
	case "Identity":
		x, err := in(0)
		if err != nil {
			return err
		}
		vals[nd.Outputs[0]] = x
		return nil
	case "Relu":
		x, err := in(0)
		if err != nil {
			return err
		}
		y, err := G.Rectify(x.n)
		if err != nil {
			return fail("%v", err)
		}
		set(y, x.act)
		return nil
	case "Conv":
		x, err := in(0)
		if err != nil {
			return err
		}
		w, err := in(1)
		if err != nil {
			return err
		}
		group := int(nd.AttrInt("group", 1))
		if x.n == nil || w.n == nil || x.n.Dims() != 4 || w.n.Dims() != 4 {
			return fail("only 2-D convolutions on float tensors are supported")
		}
		ws := w.n.Shape()
		k := []int{ws[2], ws[3]}
		if ks := nd.AttrInts("kernel_shape"); len(ks) == 2 && (int(ks[0]) != k[0] || int(ks[1]) != k[1]) {
			return fail("kernel_shape %v does not match the weight shape %v", ks, ws)
		}
		stride := ints2(nd.AttrInts("strides"), 1)
		dil := ints2(nd.AttrInts("dilations"), 1)
		pad, err := pads(nd, x.n.Shape(), k, stride, dil)
		if err != nil {
			return err
		}
		y, err := groupConv(x.n, w.n, group, k, pad, stride, dil)
		if err != nil {
			return fail("%v", err)
		}
		if len(nd.Inputs) > 2 && nd.Inputs[2] != "" {
			b, err := in(2)
			if err != nil {
				return err
			}
			if b.n == nil || b.n.Shape().TotalSize() != ws[0] {
				return fail("bias is not a vector of %d", ws[0])
			}
			br, err := G.Reshape(b.n, tensor.Shape{1, ws[0], 1, 1})
			if err != nil {
				return fail("%v", err)
			}
			if y, err = broadcastAdd(y, br); err != nil {
				return fail("%v", err)
			}
		}
		set(y, true)
		return nil
	case "MaxPool":
		x, err := in(0)
		if err != nil {
			return err
		}
		if len(nd.Outputs) > 1 && nd.Outputs[1] != "" {
			return fail("the Indices output is not supported")
		}
		if x.n == nil || x.n.Dims() != 4 {
			return fail("only 2-D pooling is supported")
		}
		k := ints2(nd.AttrInts("kernel_shape"), 0)
		if k[0] == 0 {
			return fail("kernel_shape is missing")
		}
		if nd.AttrInt("ceil_mode", 0) != 0 {
			return fail("ceil_mode 1 is not supported")
		}
		stride := ints2(nd.AttrInts("strides"), 1)
		dil := ints2(nd.AttrInts("dilations"), 1)
		if dil[0] != 1 || dil[1] != 1 {
			return fail("dilations %v are not supported", dil)
		}
		pad, err := pads(nd, x.n.Shape(), k, stride, dil)
		if err != nil {
			return err
		}
		if pad[0] != 0 || pad[1] != 0 {
			// gorgonia pads with zeros, not -inf: only equal after a Relu.
			return fail("padded max pooling is not supported")
		}
		y, err := G.MaxPool2D(x.n, tensor.Shape(k), pad, stride)
		if err != nil {
			return fail("%v", err)
		}
		set(y, true)
		return nil
	case "Add", "Sub", "Mul", "Div", "Max", "Min":
		// Max and Min take one or more inputs (folded left to right);
		// the others exactly two.
		n := len(nd.Inputs)
		if nd.OpType != "Max" && nd.OpType != "Min" || n < 1 {
			n = 2
		}
		a, err := in(0)
		if err != nil {
			return err
		}
		if a.n == nil {
			return fail("integer %s is not supported", nd.OpType)
		}
		y, act := a.n, a.act
		for i := 1; i < n; i++ {
			b, err := in(i)
			if err != nil {
				return err
			}
			if b.n == nil {
				return fail("integer %s is not supported", nd.OpType)
			}
			if y, err = broadcastOp(nd.OpType, y, b.n); err != nil {
				return fail("%v", err)
			}
			act = act || b.act
		}
		if n == 1 {
			vals[nd.Outputs[0]] = a
			return nil
		}
		set(y, act)
		return nil
	case "MatMul":
		a, err := in(0)
		if err != nil {
			return err
		}
		b, err := in(1)
		if err != nil {
			return err
		}
		if a.n == nil || b.n == nil || a.n.Dims() != 2 || b.n.Dims() != 2 {
			return fail("only 2-D float MatMul is supported")
		}
		y, err := G.Mul(a.n, b.n)
		if err != nil {
			return fail("%v", err)
		}
		set(y, a.act || b.act)
		return nil
	case "Gemm":
		a, err := in(0)
		if err != nil {
			return err
		}
		b, err := in(1)
		if err != nil {
			return err
		}
		if a.n == nil || b.n == nil || a.n.Dims() != 2 || b.n.Dims() != 2 {
			return fail("only 2-D float Gemm is supported")
		}
		an, bn := a.n, b.n
		if nd.AttrInt("transA", 0) != 0 {
			if an, err = G.Transpose(an, 1, 0); err != nil {
				return fail("%v", err)
			}
		}
		if nd.AttrInt("transB", 0) != 0 {
			if bn, err = G.Transpose(bn, 1, 0); err != nil {
				return fail("%v", err)
			}
		}
		y, err := G.Mul(an, bn)
		if err != nil {
			return fail("%v", err)
		}
		if alpha := nd.AttrFloat("alpha", 1); alpha != 1 {
			if y, err = G.Mul(y, G.NewConstant(alpha)); err != nil {
				return fail("%v", err)
			}
		}
		if len(nd.Inputs) > 2 && nd.Inputs[2] != "" {
			c, err := in(2)
			if err != nil {
				return err
			}
			if c.n == nil {
				return fail("C is not float")
			}
			cn := c.n
			if beta := nd.AttrFloat("beta", 1); beta != 1 {
				if cn, err = G.Mul(cn, G.NewConstant(beta)); err != nil {
					return fail("%v", err)
				}
			}
			if y, err = broadcastAdd(y, cn); err != nil {
				return fail("%v", err)
			}
		}
		set(y, a.act || b.act)
		return nil
	case "Flatten":
		x, err := in(0)
		if err != nil {
			return err
		}
		if axis := nd.AttrInt("axis", 1); axis != 1 {
			return fail("axis %d (only 1 is supported)", axis)
		}
		s := x.n.Shape()
		y, err := G.Reshape(x.n, tensor.Shape{s[0], s.TotalSize() / s[0]})
		if err == nil && !x.act {
			y, err = fresh(y)
		}
		if err != nil {
			return fail("%v", err)
		}
		set(y, x.act)
		return nil
	case "Reshape":
		x, err := in(0)
		if err != nil {
			return err
		}
		sh, err := in(1)
		if err != nil {
			return err
		}
		if sh.ints == nil {
			return fail("the shape must be a constant")
		}
		if x.n == nil {
			return fail("reshaping integer tensors is not supported")
		}
		to, err := reshapeTarget(x.n.Shape(), sh.ints, x.act, nd.AttrInt("allowzero", 0) != 0)
		if err != nil {
			return fail("%v", err)
		}
		y, err := G.Reshape(x.n, to)
		if err == nil && !x.act {
			y, err = fresh(y)
		}
		if err != nil {
			return fail("%v", err)
		}
		set(y, x.act)
		return nil
	}
	return buildOp(&nodeCtx{eg: eg, net: net, nd: nd, vals: vals, in: in, set: set, fail: fail})
}

// reshapeTarget resolves an ONNX Reshape shape (0 copies, -1 infers). On
// activations the first dim is the batch, whatever the model says.
func reshapeTarget(in tensor.Shape, shape []int64, act, allowZero bool) (tensor.Shape, error) {
	to := make(tensor.Shape, len(shape))
	infer := -1
	known := 1
	for i, d := range shape {
		switch {
		case act && i == 0:
			to[i] = in[0]
		case d == 0 && !allowZero:
			if i >= len(in) {
				return nil, fmt.Errorf("shape %v copies dim %d of a rank-%d input", shape, i, len(in))
			}
			to[i] = in[i]
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("shape %v has two -1", shape)
			}
			infer = i
			continue
		case d < 0:
			return nil, fmt.Errorf("shape %v has a negative dim", shape)
		default:
			to[i] = int(d)
		}
		known *= to[i]
	}
	total := in.TotalSize()
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("shape %v does not divide %v", shape, in)
		}
		to[infer] = total / known
		known *= to[infer]
	}
	if known != total {
		return nil, fmt.Errorf("shape %v (batch %d) does not hold the %d elements of %v", shape, in[0], total, in)
	}
	return to, nil
}

// broadcastAdd adds with numpy broadcasting.
func broadcastAdd(a, b *G.Node) (*G.Node, error) { return broadcastOp("Add", a, b) }

// broadcastOp applies the elementwise ONNX op (Add, Sub, Mul, Div) with
// numpy broadcasting.
func broadcastOp(op string, a, b *G.Node) (*G.Node, error) {
	var same func(a, b *G.Node) (*G.Node, error)
	switch op {
	case "Add":
		same = G.Add
	case "Sub":
		same = G.Sub
	case "Mul":
		same = G.HadamardProd
	case "Div":
		same = G.HadamardDiv
	case "Max":
		// max(a, b) = a + relu(b - a): Rectify has a gradient, an
		// elementwise max has none in gorgonia.
		same = func(a, b *G.Node) (*G.Node, error) {
			d, err := G.Sub(b, a)
			if err != nil {
				return nil, err
			}
			if d, err = G.Rectify(d); err != nil {
				return nil, err
			}
			return G.Add(a, d)
		}
	case "Min":
		// min(a, b) = a - relu(a - b)
		same = func(a, b *G.Node) (*G.Node, error) {
			d, err := G.Sub(a, b)
			if err != nil {
				return nil, err
			}
			if d, err = G.Rectify(d); err != nil {
				return nil, err
			}
			return G.Sub(a, d)
		}
	default:
		return nil, fmt.Errorf("no elementwise op %s", op)
	}
	as, bs := a.Shape(), b.Shape()
	if as.Eq(bs) {
		return same(a, b)
	}
	var err error
	rank := max(len(as), len(bs))
	lift := func(n *G.Node, s tensor.Shape) (*G.Node, tensor.Shape, error) {
		if len(s) == rank {
			return n, s, nil
		}
		ns := make(tensor.Shape, rank)
		for i := range ns {
			ns[i] = 1
		}
		copy(ns[rank-len(s):], s)
		r, err := G.Reshape(n, ns)
		return r, ns, err
	}
	liftedA := len(as) != rank
	if a, as, err = lift(a, as); err != nil {
		return nil, err
	}
	if b, bs, err = lift(b, bs); err != nil {
		return nil, err
	}
	var left, right []byte
	for i := 0; i < rank; i++ {
		switch {
		case as[i] == bs[i]:
		case as[i] == 1:
			left = append(left, byte(i))
		case bs[i] == 1:
			right = append(right, byte(i))
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", as, bs)
		}
	}
	if len(left) == 0 && len(right) == 0 {
		if liftedA {
			// a is a reshaped view: the op would run in place on it
			if a, err = fresh(a); err != nil {
				return nil, err
			}
		}
		return same(a, b)
	}
	// gorgonia's broadcasting ops get the gradient of an operand
	// broadcast along several axes wrong (it is right along one axis):
	// expand the operands to the full shape one axis at a time with a
	// broadcasting Add of zeros, then apply the plain op.
	full := make(tensor.Shape, rank)
	for i := range full {
		full[i] = max(as[i], bs[i])
	}
	if a, err = expand(a, full, left); err != nil {
		return nil, err
	}
	if b, err = expand(b, full, right); err != nil {
		return nil, err
	}
	return same(a, b)
}

// fresh is n computed into its own memory (a product by 1). gorgonia
// runs an elementwise op in place on its first operand when that operand
// is not read later, and a Reshape (or Transpose) of a parameter or
// constant is a view of it: without the copy, every run would overwrite
// the parameter. Build passes reshaped non-activation values through it.
func fresh(n *G.Node) (*G.Node, error) {
	s := n.Shape().Clone()
	size := s.TotalSize()
	r, err := G.Reshape(n, tensor.Shape{1, size})
	if err != nil {
		return nil, err
	}
	one := tensor.New(tensor.WithShape(1, 1), tensor.WithBacking([]float32{1}))
	o := G.NewTensor(n.Graph(), tensor.Float32, 2, G.WithShape(1, 1), G.WithName("one"), G.WithValue(one))
	if r, err = G.Mul(o, r); err != nil {
		return nil, err
	}
	if len(s) == 0 {
		return r, nil
	}
	return G.Reshape(r, s)
}

// expand broadcasts n along axes to shape full, one axis at a time, with
// matrix products by ones (gorgonia's own broadcasting ops get the
// gradient of an operand broadcast along some axes wrong; MatMul,
// Reshape and Transpose have exact gradients).
func expand(n *G.Node, full tensor.Shape, axes []byte) (*G.Node, error) {
	ones := func(r, c int) *G.Node {
		d := make([]float32, r*c)
		for i := range d {
			d[i] = 1
		}
		t := tensor.New(tensor.WithShape(r, c), tensor.WithBacking(d))
		return G.NewTensor(n.Graph(), tensor.Float32, 2, G.WithShape(r, c), G.WithName(fmt.Sprintf("ones%dx%d", r, c)), G.WithValue(t))
	}
	cur := n.Shape().Clone()
	for _, ax := range axes {
		k := full[ax]
		p, q := 1, 1
		for _, d := range cur[:ax] {
			p *= d
		}
		for _, d := range cur[ax+1:] {
			q *= d
		}
		cur[ax] = k
		var err error
		switch {
		case p == 1:
			if n, err = G.Reshape(n, tensor.Shape{1, q}); err == nil {
				n, err = G.Mul(ones(k, 1), n)
			}
		case q == 1:
			if n, err = G.Reshape(n, tensor.Shape{p, 1}); err == nil {
				n, err = G.Mul(n, ones(1, k))
			}
		default:
			// [p,q] → [q,p] → [q·p,1]·ones[1,k] → [q,p,k] → [p,k,q]
			if n, err = G.Reshape(n, tensor.Shape{p, q}); err == nil {
				if n, err = G.Transpose(n, 1, 0); err == nil {
					if n, err = G.Reshape(n, tensor.Shape{q * p, 1}); err == nil {
						if n, err = G.Mul(n, ones(1, k)); err == nil {
							if n, err = G.Reshape(n, tensor.Shape{q, p, k}); err == nil {
								n, err = G.Transpose(n, 1, 2, 0)
							}
						}
					}
				}
			}
		}
		if err != nil {
			return nil, err
		}
		if n, err = G.Reshape(n, cur.Clone()); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func ints2(v []int64, def int) []int {
	if len(v) == 2 {
		return []int{int(v[0]), int(v[1])}
	}
	return []int{def, def}
}

// pads resolves pads / auto_pad to gorgonia's symmetric padding.
func pads(nd *graph.Node, in tensor.Shape, k, stride, dil []int) ([]int, error) {
	switch ap := nd.AttrString("auto_pad", "NOTSET"); ap {
	case "NOTSET", "":
		p := nd.AttrInts("pads")
		if len(p) == 0 {
			return []int{0, 0}, nil
		}
		if len(p) != 4 || p[0] != p[2] || p[1] != p[3] {
			return nil, fmt.Errorf("%w: node %s: pads %v are not symmetric", ErrUnsupported, nd, p)
		}
		return []int{int(p[0]), int(p[1])}, nil
	case "VALID":
		return []int{0, 0}, nil
	case "SAME_UPPER", "SAME_LOWER":
		out := make([]int, 2)
		for i := 0; i < 2; i++ {
			size := in[2+i]
			o := (size + stride[i] - 1) / stride[i]
			total := max(0, (o-1)*stride[i]+(k[i]-1)*dil[i]+1-size)
			if total%2 != 0 {
				return nil, fmt.Errorf("%w: node %s: auto_pad %s needs asymmetric padding on this input", ErrUnsupported, nd, ap)
			}
			out[i] = total / 2
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: node %s: auto_pad %q", ErrUnsupported, nd, ap)
	}
}

// Values returns the current parameter values by name (copies).
func (n *Net) Values() map[string][]float32 {
	out := make(map[string][]float32, len(n.Params))
	for _, p := range n.Params {
		out[p.Name] = append([]float32(nil), p.Node.Value().Data().([]float32)...)
	}
	return out
}

// WriteBack writes the parameters' current values into m (the model Build
// was given, or a clone of it): initializers are replaced by name,
// Constant nodes get a new value attribute.
func (n *Net) WriteBack(m *graph.Model) error {
	byOut := map[string]*graph.Node{}
	for _, nd := range m.Graph.Nodes {
		if nd.Is("Constant") && len(nd.Outputs) > 0 {
			byOut[nd.Outputs[0]] = nd
		}
	}
	for _, p := range n.Params {
		data := append([]float32(nil), p.Node.Value().Data().([]float32)...)
		t := graph.NewFloat32(p.Name, p.Dims, data)
		if p.constant != nil {
			nd, ok := byOut[p.Name]
			if !ok {
				return fmt.Errorf("distill: write back: no Constant node outputs %q", p.Name)
			}
			t.Name = ""
			nd.SetAttr(graph.TensorAttr("value", t))
			continue
		}
		done := false
		for i, old := range m.Graph.Initializers {
			if old.Name == p.Name {
				m.Graph.Initializers[i] = t
				done = true
				break
			}
		}
		if !done {
			return fmt.Errorf("distill: write back: no initializer %q", p.Name)
		}
	}
	return nil
}

// Forward runs the graph once on batch-sized inputs (flat, in model input
// order) and returns the outputs (flat copies). Use it on a Net that is
// not being trained.
func (n *Net) Forward(inputs [][]float32) (out [][]float32, err error) {
	if len(inputs) != len(n.Inputs) {
		return nil, fmt.Errorf("distill: %d inputs for a model with %d", len(inputs), len(n.Inputs))
	}
	vals := make([]G.Value, len(n.Outputs))
	for i, o := range n.Outputs {
		G.Read(o, &vals[i])
	}
	for i, in := range n.Inputs {
		if len(inputs[i]) != in.Shape().TotalSize() {
			return nil, fmt.Errorf("distill: input %q has %d values, want %v", in.Name(), len(inputs[i]), in.Shape())
		}
		if err := G.Let(in, tensor.New(tensor.WithShape(in.Shape()...), tensor.WithBacking(inputs[i]))); err != nil {
			return nil, fmt.Errorf("distill: %w", err)
		}
	}
	vm := G.NewTapeMachine(n.G)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		return nil, fmt.Errorf("distill: forward: %w", err)
	}
	for _, v := range vals {
		out = append(out, append([]float32(nil), v.Data().([]float32)...))
	}
	return out, nil
}
