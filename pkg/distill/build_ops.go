package distill

import (
	"fmt"
	"math"

	"github.com/optictl/optictl/pkg/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// supportedOps names the ops Build handles, for refusals.
const supportedOps = "Conv (any group), BatchNormalization, Relu, LeakyRelu, Sigmoid, Tanh, Clip, HardSigmoid, HardSwish, " +
	"Add, Sub, Mul, Div, Max, Min, Neg, Sqrt, MaxPool, AveragePool, GlobalAveragePool, MatMul, Gemm, Softmax, Concat, Transpose, " +
	"Reshape, Flatten, Squeeze, Unsqueeze, Dropout, Identity, Constant"

// nodeCtx is what buildNode hands the op builders of this file.
type nodeCtx struct {
	eg   *G.ExprGraph
	net  *Net
	nd   *graph.Node
	vals map[string]*value
	in   func(i int) (*value, error)
	set  func(n *G.Node, act bool)
	fail func(format string, a ...any) error
}

// floatIn is input i as a float node.
func (c *nodeCtx) floatIn(i int) (*value, error) {
	v, err := c.in(i)
	if err != nil {
		return nil, err
	}
	if v.n == nil {
		return nil, c.fail("input %d (%q) is an integer tensor, not float32", i, c.nd.Inputs[i])
	}
	return v, nil
}

// constFloats reads input i as a constant float tensor without making it
// a parameter (Clip bounds, BatchNormalization statistics). ok is false
// when the input is absent.
func (c *nodeCtx) constFloats(i int) (data []float32, ok bool, err error) {
	if i >= len(c.nd.Inputs) || c.nd.Inputs[i] == "" {
		return nil, false, nil
	}
	v, found := c.vals[c.nd.Inputs[i]]
	if !found {
		return nil, false, c.fail("input %q is not computed by a supported node", c.nd.Inputs[i])
	}
	if v.act || v.param == nil || v.n == nil || v.n.Value() == nil {
		return nil, false, c.fail("input %d (%q) must be a float32 constant (an initializer or a Constant node)", i, c.nd.Inputs[i])
	}
	return v.param.Node.Value().Data().([]float32), true, nil
}

// constInts reads input i as an int64 constant; ok is false when absent.
func (c *nodeCtx) constInts(i int) (ints []int64, ok bool, err error) {
	if i >= len(c.nd.Inputs) || c.nd.Inputs[i] == "" {
		return nil, false, nil
	}
	v, found := c.vals[c.nd.Inputs[i]]
	if !found {
		return nil, false, c.fail("input %q is not computed by a supported node", c.nd.Inputs[i])
	}
	if v.ints == nil {
		return nil, false, c.fail("input %d (%q) must be an int64 constant", i, c.nd.Inputs[i])
	}
	return v.ints, true, nil
}

func scalar(f float32) *G.Node { return G.NewConstant(f) }

// clipNode is min(max(x, lo), hi) built from Rectify so that it has
// gradients: max(x, lo) = lo + relu(x-lo), min(y, hi) = y - relu(y-hi).
func clipNode(x *G.Node, lo, hi *float32) (*G.Node, error) {
	y := x
	if lo != nil {
		d, err := G.Sub(y, scalar(*lo))
		if err != nil {
			return nil, err
		}
		r, err := G.Rectify(d)
		if err != nil {
			return nil, err
		}
		if y, err = G.Add(r, scalar(*lo)); err != nil {
			return nil, err
		}
	}
	if hi != nil {
		d, err := G.Sub(y, scalar(*hi))
		if err != nil {
			return nil, err
		}
		r, err := G.Rectify(d)
		if err != nil {
			return nil, err
		}
		if y, err = G.Sub(y, r); err != nil {
			return nil, err
		}
	}
	return y, nil
}

// hardSigmoid is clip(alpha*x + beta, 0, 1).
func hardSigmoid(x *G.Node, alpha, beta float32) (*G.Node, error) {
	z, err := G.Mul(x, scalar(alpha))
	if err != nil {
		return nil, err
	}
	if z, err = G.Add(z, scalar(beta)); err != nil {
		return nil, err
	}
	lo, hi := float32(0), float32(1)
	return clipNode(z, &lo, &hi)
}

// groupConv is a 2-D convolution with groups: the input channels and the
// weight's output channels are sliced per group (slices of the one weight
// node, so the gradients reach the single parameter), convolved, and the
// results concatenated on the channel axis.
func groupConv(x, w *G.Node, group int, k, pad, stride, dil []int) (*G.Node, error) {
	if group == 1 {
		return G.Conv2d(x, w, tensor.Shape(k), pad, stride, dil)
	}
	xs, ws := x.Shape(), w.Shape()
	if group < 1 || xs[1] != group*ws[1] || ws[0]%group != 0 {
		return nil, fmt.Errorf("group %d does not divide input channels %d and weight %v", group, xs[1], ws)
	}
	cin, cout := ws[1], ws[0]/group
	if cin == 1 && cout == 1 {
		return depthwiseConv(x, w, k, pad, stride, dil)
	}
	outs := make([]*G.Node, group)
	for g := 0; g < group; g++ {
		xg, err := G.Slice(x, nil, G.S(g*cin, (g+1)*cin))
		if err != nil {
			return nil, err
		}
		if want := (tensor.Shape{xs[0], cin, xs[2], xs[3]}); !xg.Shape().Eq(want) {
			if xg, err = G.Reshape(xg, want); err != nil {
				return nil, err
			}
		}
		wg, err := G.Slice(w, G.S(g*cout, (g+1)*cout))
		if err != nil {
			return nil, err
		}
		if want := (tensor.Shape{cout, cin, ws[2], ws[3]}); !wg.Shape().Eq(want) {
			if wg, err = G.Reshape(wg, want); err != nil {
				return nil, err
			}
		}
		if outs[g], err = G.Conv2d(xg, wg, tensor.Shape(k), pad, stride, dil); err != nil {
			return nil, err
		}
	}
	return G.Concat(1, outs...)
}

// depthwiseConv is a convolution with one input and one output channel
// per group, in a fixed number of nodes whatever the channel count: the
// im2col patches [N·Ho·Wo, C·kh·kw] times the weight broadcast over the
// rows, summed over each channel's kh·kw taps.
func depthwiseConv(x, w *G.Node, k, pad, stride, dil []int) (*G.Node, error) {
	xs := x.Shape()
	c, taps := xs[1], k[0]*k[1]
	col, err := G.Im2Col(x, tensor.Shape(k), tensor.Shape(pad), tensor.Shape(stride), tensor.Shape(dil))
	if err != nil {
		return nil, err
	}
	cs := col.Shape() // [N, Ho, Wo, C·kh·kw]
	rows := cs[0] * cs[1] * cs[2]
	if col, err = G.Reshape(col, tensor.Shape{rows, c * taps}); err != nil {
		return nil, err
	}
	wf, err := G.Reshape(w, tensor.Shape{1, c * taps})
	if err != nil {
		return nil, err
	}
	if wf, err = expand(wf, tensor.Shape{rows, c * taps}, []byte{0}); err != nil {
		return nil, err
	}
	prodn, err := G.HadamardProd(col, wf)
	if err != nil {
		return nil, err
	}
	if prodn, err = G.Reshape(prodn, tensor.Shape{rows, c, taps}); err != nil {
		return nil, err
	}
	sum, err := G.Sum(prodn, 2)
	if err != nil {
		return nil, err
	}
	if sum, err = G.Reshape(sum, tensor.Shape{cs[0], cs[1], cs[2], c}); err != nil {
		return nil, err
	}
	return G.Transpose(sum, 0, 3, 1, 2)
}

// channelShape is [1, C, 1, ...] of the given rank.
func channelShape(rank, c int) tensor.Shape {
	s := make(tensor.Shape, rank)
	for i := range s {
		s[i] = 1
	}
	s[1] = c
	return s
}

func normAxis(axis int64, rank int) (int, bool) {
	if axis < 0 {
		axis += int64(rank)
	}
	return int(axis), axis >= 0 && axis < int64(rank)
}

// buildOp builds the ops buildNode does not handle itself.
func buildOp(c *nodeCtx) error {
	nd, fail := c.nd, c.fail
	unary := func(f func(*G.Node) (*G.Node, error)) error {
		x, err := c.floatIn(0)
		if err != nil {
			return err
		}
		y, err := f(x.n)
		if err != nil {
			return fail("%v", err)
		}
		c.set(y, x.act)
		return nil
	}
	switch nd.OpType {
	case "Sigmoid":
		return unary(G.Sigmoid)
	case "Tanh":
		return unary(G.Tanh)
	case "Neg":
		return unary(G.Neg)
	case "Sqrt":
		return unary(G.Sqrt)
	case "LeakyRelu":
		alpha := nd.AttrFloat("alpha", 0.01)
		// relu(x) - alpha*relu(-x)
		return unary(func(x *G.Node) (*G.Node, error) {
			p, err := G.Rectify(x)
			if err != nil {
				return nil, err
			}
			nx, err := G.Neg(x)
			if err != nil {
				return nil, err
			}
			n, err := G.Rectify(nx)
			if err != nil {
				return nil, err
			}
			if n, err = G.Mul(n, scalar(alpha)); err != nil {
				return nil, err
			}
			return G.Sub(p, n)
		})
	case "Clip":
		var lo, hi *float32
		if c.net.opset < 11 {
			if a := nd.Attr("min"); a != nil {
				v := a.F
				lo = &v
			}
			if a := nd.Attr("max"); a != nil {
				v := a.F
				hi = &v
			}
		} else {
			for i, dst := range []**float32{&lo, &hi} {
				f, ok, err := c.constFloats(i + 1)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				if len(f) != 1 {
					return fail("Clip bound input %d has %d values, want a scalar", i+1, len(f))
				}
				v := f[0]
				*dst = &v
			}
		}
		if lo != nil && hi != nil && *lo > *hi {
			return fail("Clip min %g is above max %g", *lo, *hi)
		}
		return unary(func(x *G.Node) (*G.Node, error) { return clipNode(x, lo, hi) })
	case "HardSigmoid":
		alpha, beta := nd.AttrFloat("alpha", 0.2), nd.AttrFloat("beta", 0.5)
		return unary(func(x *G.Node) (*G.Node, error) { return hardSigmoid(x, alpha, beta) })
	case "HardSwish":
		return unary(func(x *G.Node) (*G.Node, error) {
			h, err := hardSigmoid(x, 1.0/6, 0.5)
			if err != nil {
				return nil, err
			}
			return G.HadamardProd(x, h)
		})
	case "Dropout":
		// Inference: output 0 is the input. The mask (output 1) is not
		// computed, so a node reading it is refused as reading an
		// unsupported value.
		x, err := c.in(0)
		if err != nil {
			return err
		}
		c.vals[nd.Outputs[0]] = x
		return nil
	case "Softmax":
		x, err := c.floatIn(0)
		if err != nil {
			return err
		}
		rank := x.n.Dims()
		def := int64(-1)
		if c.net.opset < 13 {
			def = 1
		}
		axis, ok := normAxis(nd.AttrInt("axis", def), rank)
		if !ok || axis != rank-1 {
			return fail("Softmax axis %d on a rank-%d input: only the last axis is supported", nd.AttrInt("axis", def), rank)
		}
		y, err := softmaxLast(x.n)
		if err != nil {
			return fail("%v", err)
		}
		c.set(y, x.act)
		if rank == 2 {
			c.vals[nd.Outputs[0]].logits = x.n
		}
		return nil
	case "GlobalAveragePool":
		x, err := c.floatIn(0)
		if err != nil {
			return err
		}
		s := x.n.Shape()
		if len(s) < 3 {
			return fail("input rank %d: want N, C and spatial dims", len(s))
		}
		r, err := G.Reshape(x.n, tensor.Shape{s[0], s[1], s.TotalSize() / (s[0] * s[1])})
		if err != nil {
			return fail("%v", err)
		}
		m, err := G.Mean(r, 2)
		if err != nil {
			return fail("%v", err)
		}
		out := channelShape(len(s), s[1])
		out[0] = s[0]
		y, err := G.Reshape(m, out)
		if err != nil {
			return fail("%v", err)
		}
		c.set(y, x.act)
		return nil
	case "AveragePool":
		return averagePool(c)
	case "Concat":
		return concat(c)
	case "Transpose":
		x, err := c.floatIn(0)
		if err != nil {
			return err
		}
		rank := x.n.Dims()
		perm := make([]int, rank)
		if p := nd.AttrInts("perm"); p != nil {
			if len(p) != rank {
				return fail("perm %v for a rank-%d input", p, rank)
			}
			for i, v := range p {
				perm[i] = int(v)
			}
		} else {
			for i := range perm {
				perm[i] = rank - 1 - i
			}
		}
		if x.act && perm[0] != 0 {
			return fail("perm %v moves the batch dim (the batch must stay first)", perm)
		}
		y, err := G.Transpose(x.n, perm...)
		if err == nil && !x.act {
			y, err = fresh(y)
		}
		if err != nil {
			return fail("%v", err)
		}
		c.set(y, x.act)
		return nil
	case "Squeeze", "Unsqueeze":
		return squeeze(c)
	case "BatchNormalization":
		return batchNorm(c)
	case "Shape", "Gather", "Cast", "Slice", "ConstantOfShape", "Expand":
		return fail("op %s (shape computation) is not supported: fix the input shape and fold the shape arithmetic into constants first (optictl optimize --shape NAME=1x3xHxW -O1)", nd.OpType)
	}
	return fail("op %s is not supported (%s)", nd.OpType, supportedOps)
}

// softmaxLast is a softmax over the last axis (gorgonia's, whose gradient
// the finite-difference tests check).
func softmaxLast(x *G.Node) (*G.Node, error) {
	return G.SoftMax(x)
}

func averagePool(c *nodeCtx) error {
	nd, fail := c.nd, c.fail
	x, err := c.floatIn(0)
	if err != nil {
		return err
	}
	s := x.n.Shape()
	if len(s) != 4 {
		return fail("only 2-D pooling is supported")
	}
	k := ints2(nd.AttrInts("kernel_shape"), 0)
	if k[0] == 0 {
		return fail("kernel_shape is missing")
	}
	stride := ints2(nd.AttrInts("strides"), 1)
	if stride[0] != k[0] || stride[1] != k[1] {
		return fail("strides %v differ from kernel_shape %v (only non-overlapping pooling, stride = kernel, is supported)", stride, k)
	}
	if nd.AttrInt("ceil_mode", 0) != 0 {
		return fail("ceil_mode 1 is not supported")
	}
	if ap := nd.AttrString("auto_pad", "NOTSET"); ap != "NOTSET" && ap != "" && ap != "VALID" {
		return fail("auto_pad %s is not supported (no padding only)", ap)
	}
	for _, p := range nd.AttrInts("pads") {
		if p != 0 {
			return fail("pads %v are not supported (no padding only)", nd.AttrInts("pads"))
		}
	}
	ho, wo := s[2]/k[0], s[3]/k[1]
	if ho == 0 || wo == 0 {
		return fail("kernel %v is larger than the input %v", k, s)
	}
	xn := x.n
	if ho*k[0] != s[2] || wo*k[1] != s[3] {
		// floor mode drops the rows and columns no window covers
		if xn, err = G.Slice(xn, nil, nil, G.S(0, ho*k[0]), G.S(0, wo*k[1])); err != nil {
			return fail("%v", err)
		}
	}
	r, err := G.Reshape(xn, tensor.Shape{s[0] * s[1] * ho, k[0], wo, k[1]})
	if err != nil {
		return fail("%v", err)
	}
	m, err := G.Mean(r, 3)
	if err != nil {
		return fail("%v", err)
	}
	if m, err = G.Mean(m, 1); err != nil {
		return fail("%v", err)
	}
	y, err := G.Reshape(m, tensor.Shape{s[0], s[1], ho, wo})
	if err != nil {
		return fail("%v", err)
	}
	c.set(y, x.act)
	return nil
}

func concat(c *nodeCtx) error {
	nd, fail := c.nd, c.fail
	if len(nd.Inputs) == 0 {
		return fail("no inputs")
	}
	var vs []*value
	ints, floats := 0, 0
	act := false
	for i := range nd.Inputs {
		v, err := c.in(i)
		if err != nil {
			return err
		}
		if v.n == nil {
			ints++
		} else {
			floats++
		}
		act = act || v.act
		vs = append(vs, v)
	}
	axis := nd.AttrInt("axis", 0)
	if ints > 0 {
		if floats > 0 || (axis != 0 && axis != -1) {
			return fail("mixed or multi-dimensional integer Concat is not supported")
		}
		var out []int64
		for _, v := range vs {
			out = append(out, v.ints...)
		}
		c.vals[nd.Outputs[0]] = &value{ints: out}
		return nil
	}
	rank := vs[0].n.Dims()
	ax, ok := normAxis(axis, rank)
	if !ok {
		return fail("axis %d of rank-%d inputs", axis, rank)
	}
	if act && ax == 0 {
		return fail("Concat on the batch axis is not supported")
	}
	ns := make([]*G.Node, len(vs))
	for i, v := range vs {
		ns[i] = v.n
		if act && !v.act && v.n.Dims() == rank && v.n.Shape()[0] != c.net.Batch {
			return fail("constant input %q has batch dim %d, not the batch %d", nd.Inputs[i], v.n.Shape()[0], c.net.Batch)
		}
	}
	var y *G.Node
	var err error
	if len(ns) == 1 {
		y = ns[0]
	} else if y, err = G.Concat(ax, ns...); err != nil {
		return fail("%v", err)
	}
	c.set(y, act)
	return nil
}

func squeeze(c *nodeCtx) error {
	nd, fail := c.nd, c.fail
	x, err := c.floatIn(0)
	if err != nil {
		return err
	}
	axes := nd.AttrInts("axes")
	if c.net.opset >= 13 {
		a, ok, err := c.constInts(1)
		if err != nil {
			return err
		}
		if ok {
			axes = a
		} else {
			axes = nil
		}
	}
	s := x.n.Shape()
	var out tensor.Shape
	if nd.OpType == "Squeeze" {
		drop := map[int]bool{}
		if axes == nil {
			for i, d := range s {
				if d == 1 && !(x.act && i == 0) {
					drop[i] = true
				}
			}
		}
		for _, a := range axes {
			ax, ok := normAxis(a, len(s))
			if !ok || s[ax] != 1 {
				return fail("axis %d of %v is not a dim of size 1", a, s)
			}
			if x.act && ax == 0 {
				return fail("squeezing the batch dim is not supported")
			}
			drop[ax] = true
		}
		for i, d := range s {
			if !drop[i] {
				out = append(out, d)
			}
		}
	} else {
		if len(axes) == 0 {
			return fail("Unsqueeze needs axes")
		}
		rank := len(s) + len(axes)
		ins := map[int]bool{}
		for _, a := range axes {
			ax, ok := normAxis(a, rank)
			if !ok || ins[ax] {
				return fail("axes %v for an output of rank %d", axes, rank)
			}
			if x.act && ax == 0 {
				return fail("unsqueezing before the batch dim is not supported")
			}
			ins[ax] = true
		}
		j := 0
		for i := 0; i < rank; i++ {
			if ins[i] {
				out = append(out, 1)
				continue
			}
			out = append(out, s[j])
			j++
		}
	}
	if len(out) == 0 {
		out = tensor.Shape{1}
	}
	y, err := G.Reshape(x.n, out)
	if err == nil && !x.act {
		y, err = fresh(y)
	}
	if err != nil {
		return fail("%v", err)
	}
	c.set(y, x.act)
	return nil
}

// batchNorm builds inference BatchNormalization as a per-channel affine
// map: scale and bias are parameters, mean and var stay constants (they
// are read without being made parameters, so they are not trained and
// not written back).
func batchNorm(c *nodeCtx) error {
	nd, fail := c.nd, c.fail
	if nd.AttrInt("training_mode", 0) != 0 {
		return fail("training_mode 1 is not supported (inference BatchNormalization only)")
	}
	for _, o := range nd.Outputs[1:] {
		if o != "" {
			return fail("the running statistics outputs are not supported (inference BatchNormalization only)")
		}
	}
	x, err := c.floatIn(0)
	if err != nil {
		return err
	}
	s := x.n.Shape()
	if len(s) < 2 {
		return fail("input rank %d: want N, C, ...", len(s))
	}
	ch := s[1]
	mean, ok, err := c.constFloats(3)
	if err != nil {
		return err
	}
	if !ok {
		return fail("the mean input is missing")
	}
	vr, ok, err := c.constFloats(4)
	if err != nil {
		return err
	}
	if !ok {
		return fail("the var input is missing")
	}
	if len(mean) != ch || len(vr) != ch {
		return fail("mean (%d) and var (%d) are not vectors of the %d channels", len(mean), len(vr), ch)
	}
	scale, err := c.floatIn(1)
	if err != nil {
		return err
	}
	bias, err := c.floatIn(2)
	if err != nil {
		return err
	}
	if scale.n.Shape().TotalSize() != ch || bias.n.Shape().TotalSize() != ch {
		return fail("scale %v and bias %v are not vectors of the %d channels", scale.n.Shape(), bias.n.Shape(), ch)
	}
	eps := float64(nd.AttrFloat("epsilon", 1e-5))
	negMean := make([]float32, ch)
	inv := make([]float32, ch)
	for i := range inv {
		negMean[i] = -mean[i]
		inv[i] = float32(1 / math.Sqrt(float64(vr[i])+eps))
	}
	cs := channelShape(len(s), ch)
	konst := func(name string, d []float32) *G.Node {
		t := tensor.New(tensor.WithShape(cs...), tensor.WithBacking(d))
		return G.NewTensor(c.eg, tensor.Float32, len(cs), G.WithShape(cs...), G.WithName("const:"+nd.Name+"/"+name), G.WithValue(t))
	}
	xm, err := broadcastOp("Add", x.n, konst("negmean", negMean))
	if err != nil {
		return fail("%v", err)
	}
	// (x - mean) · invstd · scale: the scale is broadcast on its own, not
	// multiplied with invstd first, because gorgonia runs elementwise ops
	// in place on a reshaped parameter (it would scale the parameter at
	// every run).
	y, err := broadcastOp("Mul", xm, konst("invstd", inv))
	if err != nil {
		return fail("%v", err)
	}
	sr, err := G.Reshape(scale.n, cs)
	if err != nil {
		return fail("%v", err)
	}
	if y, err = broadcastOp("Mul", y, sr); err != nil {
		return fail("%v", err)
	}
	br, err := G.Reshape(bias.n, cs)
	if err != nil {
		return fail("%v", err)
	}
	if y, err = broadcastOp("Add", y, br); err != nil {
		return fail("%v", err)
	}
	c.set(y, x.act)
	return nil
}
