package passes

// A small, slow, independent reference evaluator registered as the runtime
// backend "testref" for the tests of this package only: the golden cases
// are verified numerically through the real framework path (Options.Verify
// with Backend "testref") even for ops the interp backend does not have
// yet. Values are computed in float64.

import (
	"context"
	"fmt"
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

func init() { runtime.Register(refBackend{}) }

type refBackend struct{}

func (refBackend) Name() string { return "testref" }
func (refBackend) Capabilities() runtime.Capabilities {
	return runtime.Capabilities{Devices: []string{"cpu"}, Supports: func(d, op string, _ int64) bool { return refOps[d+"."+op] }, PureGo: true}
}

var refOps = map[string]bool{}

func init() {
	for _, op := range []string{"Relu", "Tanh", "Sigmoid", "Neg", "Erf", "Sqrt", "Exp", "Identity", "Dropout", "LeakyRelu",
		"Clip", "HardSigmoid", "Cast", "Add", "Sub", "Mul", "Div", "Pow", "Transpose", "Reshape", "Squeeze", "Unsqueeze",
		"Expand", "Pad", "Shape", "ReduceMean", "ReduceSum", "Conv", "BatchNormalization", "Gemm", "MatMul",
		"LayerNormalization", "Gelu", "Constant", "Concat", "Slice", "Softmax", "GlobalAveragePool", "MaxPool",
		"ConstantOfShape", "Flatten", "HardSwish"} {
		refOps["."+op] = true
	}
	for _, op := range []string{"FusedConv", "FusedGemm", "Gelu", "Attention", "SkipLayerNormalization", "BiasGelu"} {
		refOps["com.microsoft."+op] = true
	}
}

type refSession struct {
	m   *graph.Model
	in  []runtime.IOInfo
	out []runtime.IOInfo
}

func (refBackend) Open(m *graph.Model, opts runtime.Options) (runtime.Session, error) {
	for _, n := range m.Graph.Nodes {
		d := n.Domain
		if d == "ai.onnx" {
			d = ""
		}
		if !refOps[d+"."+n.OpType] {
			return nil, &runtime.UnsupportedError{Op: n.OpType, Domain: n.Domain, Reason: "testref: unsupported op " + n.OpType}
		}
	}
	s := &refSession{m: m}
	for _, v := range m.Graph.RealInputs() {
		s.in = append(s.in, runtime.IOInfo{Name: v.Name, DType: v.DType})
	}
	for _, v := range m.Graph.Outputs {
		s.out = append(s.out, runtime.IOInfo{Name: v.Name, DType: v.DType})
	}
	return s, nil
}

func (s *refSession) Inputs() []runtime.IOInfo  { return s.in }
func (s *refSession) Outputs() []runtime.IOInfo { return s.out }
func (s *refSession) Device() string            { return "cpu" }
func (s *refSession) Close() error              { return nil }

type rt struct {
	dt   graph.DType
	dims []int64
	v    []float64
}

func (t *rt) n() int { return len(t.v) }

func fromGraph(t *graph.Tensor) *rt {
	v, _ := t.AsFloat64s()
	return &rt{dt: t.DType, dims: append([]int64{}, t.Dims...), v: v}
}

func (s *refSession) Run(_ context.Context, in []*runtime.Tensor) ([]*runtime.Tensor, error) {
	g := s.m.Graph
	env := map[string]*rt{}
	for _, t := range g.Initializers {
		env[t.Name] = fromGraph(t)
	}
	for i, info := range s.in {
		v, err := in[i].AsFloat64()
		if err != nil {
			return nil, err
		}
		env[info.Name] = &rt{dt: in[i].DType, dims: in[i].Shape, v: v}
	}
	for _, n := range g.Nodes {
		ins := make([]*rt, len(n.Inputs))
		for i, name := range n.Inputs {
			if name != "" {
				ins[i] = env[name]
				if ins[i] == nil {
					return nil, fmt.Errorf("testref: %s reads unknown %q", n, name)
				}
			}
		}
		out, err := refEval(n, ins)
		if err != nil {
			return nil, fmt.Errorf("testref: %s: %w", n, err)
		}
		env[n.Outputs[0]] = out
		if n.OpType == "SkipLayerNormalization" && len(n.Outputs) > 3 && n.Outputs[3] != "" {
			// input_skip_bias_sum
			sum, err := bcast(ins[:2], func(a []float64) float64 { return a[0] + a[1] })
			if err == nil && len(ins) > 4 && ins[4] != nil {
				sum, err = bcast([]*rt{sum, ins[4]}, func(a []float64) float64 { return a[0] + a[1] })
			}
			if err != nil {
				return nil, fmt.Errorf("testref: %s: %w", n, err)
			}
			env[n.Outputs[3]] = sum
		}
	}
	var res []*runtime.Tensor
	for _, o := range s.out {
		t := env[o.Name]
		if t == nil {
			return nil, fmt.Errorf("testref: no value for output %q", o.Name)
		}
		r := runtime.NewTensor(t.dt, t.dims)
		switch t.dt {
		case graph.Float:
			f := r.Float32s()
			for i := range f {
				f[i] = float32(t.v[i])
			}
		case graph.Int64:
			x := r.Int64s()
			for i := range x {
				x[i] = int64(t.v[i])
			}
		case graph.Double:
			copy(r.Float64s(), t.v)
		default:
			return nil, fmt.Errorf("testref: output dtype %s", t.dt)
		}
		res = append(res, r)
	}
	return res, nil
}

func numel(d []int64) int {
	n := 1
	for _, x := range d {
		n *= int(x)
	}
	return n
}

func strides(d []int64) []int {
	s := make([]int, len(d))
	k := 1
	for i := len(d) - 1; i >= 0; i-- {
		s[i] = k
		k *= int(d[i])
	}
	return s
}

// bcast computes f over broadcast inputs.
func bcast(ins []*rt, f func(x []float64) float64) (*rt, error) {
	var dims []int64
	for _, t := range ins {
		d, ok := broadcast(dims, t.dims)
		if !ok {
			return nil, fmt.Errorf("cannot broadcast %v", t.dims)
		}
		dims = d
	}
	out := &rt{dt: ins[0].dt, dims: dims, v: make([]float64, numel(dims))}
	os := strides(dims)
	x := make([]float64, len(ins))
	for i := range out.v {
		for k, t := range ins {
			off := len(dims) - len(t.dims)
			ts := strides(t.dims)
			idx := 0
			for a := range t.dims {
				c := (i / os[a+off]) % int(dims[a+off])
				if t.dims[a] == 1 {
					c = 0
				}
				idx += c * ts[a]
			}
			x[k] = t.v[idx]
		}
		out.v[i] = f(x)
	}
	return out, nil
}

func unary(t *rt, f func(float64) float64) *rt {
	o := &rt{dt: t.dt, dims: t.dims, v: make([]float64, t.n())}
	for i, x := range t.v {
		o.v[i] = f(x)
	}
	return o
}

func activation(kind string, p []float32) func(float64) float64 {
	switch kind {
	case "Relu":
		return func(x float64) float64 { return math.Max(x, 0) }
	case "Tanh":
		return math.Tanh
	case "Sigmoid":
		return func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	case "LeakyRelu":
		return func(x float64) float64 {
			if x < 0 {
				return float64(p[0]) * x
			}
			return x
		}
	case "Clip":
		return func(x float64) float64 { return math.Min(math.Max(x, float64(p[0])), float64(p[1])) }
	case "HardSigmoid":
		return func(x float64) float64 { return math.Max(0, math.Min(1, float64(p[0])*x+float64(p[1]))) }
	}
	return func(x float64) float64 { return x }
}

func axesOf(n *graph.Node, ins []*rt, rank int) []int {
	var a []int64
	if len(ins) > 1 && ins[1] != nil {
		for _, v := range ins[1].v {
			a = append(a, int64(v))
		}
	} else {
		a = n.AttrInts("axes")
	}
	out := make([]int, len(a))
	for i, v := range a {
		if v < 0 {
			v += int64(rank)
		}
		out[i] = int(v)
	}
	return out
}

func refEval(n *graph.Node, in []*rt) (*rt, error) {
	x := in
	switch n.OpType {
	case "Constant":
		return fromGraph(n.AttrTensor("value")), nil
	case "Identity", "Dropout":
		return x[0], nil
	case "Cast":
		o := unary(x[0], func(v float64) float64 { return v })
		o.dt = graph.DType(n.AttrInt("to", 1))
		return o, nil
	case "Relu", "Tanh", "Sigmoid":
		return unary(x[0], activation(n.OpType, nil)), nil
	case "LeakyRelu":
		return unary(x[0], activation("LeakyRelu", []float32{n.AttrFloat("alpha", 0.01)})), nil
	case "HardSigmoid":
		return unary(x[0], activation("HardSigmoid", []float32{n.AttrFloat("alpha", 0.2), n.AttrFloat("beta", 0.5)})), nil
	case "Clip":
		lo, hi := float32(math.Inf(-1)), float32(math.Inf(1))
		if a := n.Attr("min"); a != nil {
			lo = a.F
		}
		if a := n.Attr("max"); a != nil {
			hi = a.F
		}
		if len(x) > 1 && x[1] != nil {
			lo = float32(x[1].v[0])
		}
		if len(x) > 2 && x[2] != nil {
			hi = float32(x[2].v[0])
		}
		return unary(x[0], activation("Clip", []float32{lo, hi})), nil
	case "HardSwish":
		return unary(x[0], func(v float64) float64 { return v * math.Max(0, math.Min(1, v/6+0.5)) }), nil
	case "Neg":
		return unary(x[0], func(v float64) float64 { return -v }), nil
	case "Erf":
		return unary(x[0], math.Erf), nil
	case "Sqrt":
		return unary(x[0], math.Sqrt), nil
	case "Exp":
		return unary(x[0], math.Exp), nil
	case "Gelu":
		return unary(x[0], func(v float64) float64 { return 0.5 * v * (1 + math.Erf(v/math.Sqrt2)) }), nil
	case "Add":
		return bcast(x, func(a []float64) float64 { return a[0] + a[1] })
	case "Sub":
		return bcast(x, func(a []float64) float64 { return a[0] - a[1] })
	case "Mul":
		return bcast(x, func(a []float64) float64 { return a[0] * a[1] })
	case "Div":
		return bcast(x, func(a []float64) float64 { return a[0] / a[1] })
	case "Pow":
		return bcast(x, func(a []float64) float64 { return math.Pow(a[0], a[1]) })
	case "Shape":
		o := &rt{dt: graph.Int64, dims: []int64{int64(len(x[0].dims))}}
		for _, d := range x[0].dims {
			o.v = append(o.v, float64(d))
		}
		return o, nil
	case "Reshape":
		spec := make([]int64, len(x[1].v))
		for i, v := range x[1].v {
			spec[i] = int64(v)
		}
		d, ok := reshapeDims(x[0].dims, spec, false)
		if !ok {
			return nil, fmt.Errorf("bad reshape %v -> %v", x[0].dims, spec)
		}
		return &rt{dt: x[0].dt, dims: d, v: x[0].v}, nil
	case "Squeeze", "Unsqueeze":
		ax := n.AttrInts("axes")
		if len(x) > 1 && x[1] != nil {
			ax = nil
			for _, v := range x[1].v {
				ax = append(ax, int64(v))
			}
		}
		d, ok := squeezeDims(n.OpType == "Unsqueeze", x[0].dims, ax)
		if !ok {
			return nil, fmt.Errorf("bad axes")
		}
		return &rt{dt: x[0].dt, dims: d, v: x[0].v}, nil
	case "Expand":
		var s []int64
		for _, v := range x[1].v {
			s = append(s, int64(v))
		}
		d, _ := broadcast(x[0].dims, s)
		z := &rt{dt: x[0].dt, dims: d, v: make([]float64, numel(d))}
		return bcast([]*rt{x[0], z}, func(a []float64) float64 { return a[0] })
	case "Transpose":
		perm := n.AttrInts("perm")
		r := len(x[0].dims)
		if perm == nil {
			for i := r - 1; i >= 0; i-- {
				perm = append(perm, int64(i))
			}
		}
		d := make([]int64, r)
		for i, p := range perm {
			d[i] = x[0].dims[p]
		}
		o := &rt{dt: x[0].dt, dims: d, v: make([]float64, x[0].n())}
		is, os := strides(x[0].dims), strides(d)
		for i := range o.v {
			src := 0
			for a := 0; a < r; a++ {
				src += ((i / os[a]) % int(d[a])) * is[perm[a]]
			}
			o.v[i] = x[0].v[src]
		}
		return o, nil
	case "Pad":
		r := len(x[0].dims)
		pads := make([]int, 2*r)
		for i, v := range x[1].v {
			pads[i] = int(v)
		}
		cv := 0.0
		if len(x) > 2 && x[2] != nil {
			cv = x[2].v[0]
		}
		d := make([]int64, r)
		for i := range d {
			d[i] = x[0].dims[i] + int64(pads[i]+pads[i+r])
		}
		o := &rt{dt: x[0].dt, dims: d, v: make([]float64, numel(d))}
		is, os := strides(x[0].dims), strides(d)
		for i := range o.v {
			src, inside := 0, true
			for a := 0; a < r; a++ {
				c := (i/os[a])%int(d[a]) - pads[a]
				if c < 0 || c >= int(x[0].dims[a]) {
					inside = false
					break
				}
				src += c * is[a]
			}
			o.v[i] = cv
			if inside {
				o.v[i] = x[0].v[src]
			}
		}
		return o, nil
	case "ReduceMean", "ReduceSum":
		r := len(x[0].dims)
		ax := axesOf(n, x, r)
		mark := make([]bool, r)
		for _, a := range ax {
			mark[a] = true
		}
		d := make([]int64, r)
		cnt := 1
		for i := range d {
			d[i] = x[0].dims[i]
			if mark[i] {
				d[i] = 1
				cnt *= int(x[0].dims[i])
			}
		}
		o := &rt{dt: x[0].dt, dims: d, v: make([]float64, numel(d))}
		is, os := strides(x[0].dims), strides(d)
		for i, v := range x[0].v {
			dst := 0
			for a := 0; a < r; a++ {
				c := (i / is[a]) % int(x[0].dims[a])
				if mark[a] {
					c = 0
				}
				dst += c * os[a]
			}
			o.v[dst] += v
		}
		if n.OpType == "ReduceMean" {
			for i := range o.v {
				o.v[i] /= float64(cnt)
			}
		}
		if n.AttrInt("keepdims", 1) == 0 {
			var kd []int64
			for i, v := range d {
				if !mark[i] {
					kd = append(kd, v)
				}
			}
			o.dims = kd
		}
		return o, nil
	case "BatchNormalization":
		c := int(x[0].dims[1])
		inner := x[0].n() / int(x[0].dims[0]) / c
		eps := float64(n.AttrFloat("epsilon", 1e-5))
		o := unary(x[0], func(v float64) float64 { return v })
		for i := range o.v {
			ch := (i / inner) % c
			o.v[i] = (o.v[i]-x[3].v[ch])/math.Sqrt(x[4].v[ch]+eps)*x[1].v[ch] + x[2].v[ch]
		}
		return o, nil
	case "LayerNormalization":
		d := int(x[0].dims[len(x[0].dims)-1])
		eps := float64(n.AttrFloat("epsilon", 1e-5))
		o := unary(x[0], func(v float64) float64 { return v })
		for r0 := 0; r0 < x[0].n(); r0 += d {
			row := o.v[r0 : r0+d]
			var m, s float64
			for _, v := range row {
				m += v
			}
			m /= float64(d)
			for _, v := range row {
				s += (v - m) * (v - m)
			}
			s = math.Sqrt(s/float64(d) + eps)
			for i := range row {
				row[i] = (row[i]-m)/s*x[1].v[i] + x[2].v[i]
			}
		}
		return o, nil
	case "MatMul", "Gemm", "FusedGemm":
		a, b := x[0], x[1]
		if n.OpType == "MatMul" && (len(a.dims) > 2 || len(b.dims) > 2) {
			return refBatchedMatMul(a, b)
		}
		if len(a.dims) != 2 || len(b.dims) != 2 {
			return nil, fmt.Errorf("testref: only 2-D matmul")
		}
		ta, tb := n.AttrInt("transA", 0) != 0, n.AttrInt("transB", 0) != 0
		m, k := int(a.dims[0]), int(a.dims[1])
		if ta {
			m, k = k, m
		}
		nn := int(b.dims[1])
		if tb {
			nn = int(b.dims[0])
		}
		alpha, beta := float64(n.AttrFloat("alpha", 1)), float64(n.AttrFloat("beta", 1))
		if n.OpType == "MatMul" {
			alpha, beta = 1, 0
		}
		o := &rt{dt: a.dt, dims: []int64{int64(m), int64(nn)}, v: make([]float64, m*nn)}
		for i := 0; i < m; i++ {
			for j := 0; j < nn; j++ {
				var s float64
				for l := 0; l < k; l++ {
					av := a.v[i*k+l]
					if ta {
						av = a.v[l*m+i]
					}
					bv := b.v[l*nn+j]
					if tb {
						bv = b.v[j*k+l]
					}
					s += av * bv
				}
				o.v[i*nn+j] = alpha * s
			}
		}
		if len(x) > 2 && x[2] != nil && n.OpType != "MatMul" {
			scaled := unary(x[2], func(v float64) float64 { return beta * v })
			var err error
			if o, err = bcast([]*rt{o, scaled}, func(a []float64) float64 { return a[0] + a[1] }); err != nil {
				return nil, err
			}
		}
		if n.OpType == "FusedGemm" {
			o = unary(o, activation(n.AttrString("activation", ""), []float32{n.AttrFloat("activation_alpha", 0.01)}))
		}
		return o, nil
	case "Conv", "FusedConv":
		xx, w := x[0], x[1]
		if len(xx.dims) != 4 {
			return nil, fmt.Errorf("testref: only 2-D conv")
		}
		N, C, H, W := int(xx.dims[0]), int(xx.dims[1]), int(xx.dims[2]), int(xx.dims[3])
		M, CG, KH, KW := int(w.dims[0]), int(w.dims[1]), int(w.dims[2]), int(w.dims[3])
		grp := int(n.AttrInt("group", 1))
		st, dl, pd := []int64{1, 1}, []int64{1, 1}, []int64{0, 0, 0, 0}
		if v := n.AttrInts("strides"); v != nil {
			st = v
		}
		if v := n.AttrInts("dilations"); v != nil {
			dl = v
		}
		if v := n.AttrInts("pads"); v != nil {
			pd = v
		}
		if ap := n.AttrString("auto_pad", "NOTSET"); ap == "SAME_UPPER" || ap == "SAME_LOWER" {
			pd = make([]int64, 4)
			for i, sz := range []int{H, W} {
				k := []int{KH, KW}[i]
				out := (sz + int(st[i]) - 1) / int(st[i])
				total := max((out-1)*int(st[i])+(k-1)*int(dl[i])+1-sz, 0)
				b := total / 2
				if ap == "SAME_LOWER" {
					b = total - total/2
				}
				pd[i], pd[i+2] = int64(b), int64(total-b)
			}
		}
		OH := (H+int(pd[0]+pd[2])-int(dl[0])*(KH-1)-1)/int(st[0]) + 1
		OW := (W+int(pd[1]+pd[3])-int(dl[1])*(KW-1)-1)/int(st[1]) + 1
		o := &rt{dt: xx.dt, dims: []int64{int64(N), int64(M), int64(OH), int64(OW)}, v: make([]float64, N*M*OH*OW)}
		mg := M / grp
		for b := 0; b < N; b++ {
			for m := 0; m < M; m++ {
				g := m / mg
				for oh := 0; oh < OH; oh++ {
					for ow := 0; ow < OW; ow++ {
						s := 0.0
						if len(x) > 2 && x[2] != nil {
							s = x[2].v[m]
						}
						for c := 0; c < CG; c++ {
							ci := g*CG + c
							for kh := 0; kh < KH; kh++ {
								ih := oh*int(st[0]) - int(pd[0]) + kh*int(dl[0])
								if ih < 0 || ih >= H {
									continue
								}
								for kw := 0; kw < KW; kw++ {
									iw := ow*int(st[1]) - int(pd[1]) + kw*int(dl[1])
									if iw < 0 || iw >= W {
										continue
									}
									s += xx.v[((b*C+ci)*H+ih)*W+iw] * w.v[((m*CG+c)*KH+kh)*KW+kw]
								}
							}
						}
						o.v[((b*M+m)*OH+oh)*OW+ow] = s
					}
				}
			}
		}
		if n.OpType == "FusedConv" {
			o = unary(o, activation(n.AttrString("activation", ""), n.AttrFloats("activation_params")))
		}
		return o, nil
	case "ConstantOfShape":
		var d []int64
		for _, v := range x[0].v {
			d = append(d, int64(v))
		}
		o := &rt{dt: graph.Float, dims: d, v: make([]float64, numel(d))}
		if t := n.AttrTensor("value"); t != nil {
			f := fromGraph(t)
			o.dt = t.DType
			for i := range o.v {
				o.v[i] = f.v[0]
			}
		}
		return o, nil
	case "Flatten":
		ax := int(n.AttrInt("axis", 1))
		if ax < 0 {
			ax += len(x[0].dims)
		}
		a := numel(x[0].dims[:ax])
		return &rt{dt: x[0].dt, dims: []int64{int64(a), int64(x[0].n() / max(a, 1))}, v: x[0].v}, nil
	case "Concat":
		r := len(x[0].dims)
		ax := int(n.AttrInt("axis", 0))
		if ax < 0 {
			ax += r
		}
		d := append([]int64{}, x[0].dims...)
		d[ax] = 0
		for _, t := range x {
			d[ax] += t.dims[ax]
		}
		o := &rt{dt: x[0].dt, dims: d}
		outer := numel(d[:ax])
		for b := 0; b < outer; b++ {
			for _, t := range x {
				chunk := t.n() / max(outer, 1)
				o.v = append(o.v, t.v[b*chunk:(b+1)*chunk]...)
			}
		}
		return o, nil
	case "Slice":
		r := len(x[0].dims)
		var starts, ends []float64
		attrAxes := n.AttrInts("axes")
		if len(x) == 1 { // opset < 10: attributes
			for _, v := range n.AttrInts("starts") {
				starts = append(starts, float64(v))
			}
			for _, v := range n.AttrInts("ends") {
				ends = append(ends, float64(v))
			}
		} else {
			starts, ends, attrAxes = x[1].v, x[2].v, nil
		}
		axes := make([]int, len(starts))
		steps := make([]int, len(starts))
		for i := range axes {
			axes[i], steps[i] = i, 1
			if attrAxes != nil {
				axes[i] = int(attrAxes[i])
				if axes[i] < 0 {
					axes[i] += r
				}
			}
			if len(x) > 3 && x[3] != nil {
				axes[i] = int(x[3].v[i])
				if axes[i] < 0 {
					axes[i] += r
				}
			}
			if len(x) > 4 && x[4] != nil {
				steps[i] = int(x[4].v[i])
			}
		}
		lo := make([]int, r)
		st := make([]int, r)
		d := append([]int64{}, x[0].dims...)
		for i := range st {
			st[i] = 1
		}
		for i, a := range axes {
			dim := int(x[0].dims[a])
			clamp := func(v float64, hi int) int {
				k := int(math.Max(math.Min(v, 1<<40), -(1 << 40)))
				if k < 0 {
					k += dim
				}
				return min(max(k, 0), hi)
			}
			if steps[i] != 1 {
				return nil, fmt.Errorf("testref: Slice steps")
			}
			b, e := clamp(starts[i], dim), clamp(ends[i], dim)
			lo[a], st[a] = b, 1
			d[a] = int64(max(e-b, 0))
		}
		o := &rt{dt: x[0].dt, dims: d, v: make([]float64, numel(d))}
		is, os := strides(x[0].dims), strides(d)
		for i := range o.v {
			src := 0
			for a := 0; a < r; a++ {
				src += ((i/os[a])%int(d[a]) + lo[a]) * is[a]
			}
			o.v[i] = x[0].v[src]
		}
		return o, nil
	case "BiasGelu":
		return bcast(x, func(a []float64) float64 { v := a[0] + a[1]; return 0.5 * v * (1 + math.Erf(v/math.Sqrt2)) })
	case "SkipLayerNormalization":
		sum, err := bcast(x[:2], func(a []float64) float64 { return a[0] + a[1] })
		if err != nil {
			return nil, err
		}
		if len(x) > 4 && x[4] != nil {
			if sum, err = bcast([]*rt{sum, x[4]}, func(a []float64) float64 { return a[0] + a[1] }); err != nil {
				return nil, err
			}
		}
		beta := &rt{dt: graph.Float, dims: x[2].dims, v: make([]float64, x[2].n())}
		if len(x) > 3 && x[3] != nil {
			beta = x[3]
		}
		ln := &graph.Node{OpType: "LayerNormalization", Attrs: []*graph.Attr{graph.FloatAttr("epsilon", n.AttrFloat("epsilon", 1e-12))}}
		return refEval(ln, []*rt{sum, x[2], beta})
	case "Attention":
		return refAttention(n, x)
	case "Softmax":
		r := len(x[0].dims)
		ax := int(n.AttrInt("axis", -1))
		if ax < 0 {
			ax += r
		}
		if ax != r-1 {
			return nil, fmt.Errorf("testref: Softmax on the last axis only")
		}
		dd := int(x[0].dims[r-1])
		o := unary(x[0], func(v float64) float64 { return v })
		for r0 := 0; r0 < o.n(); r0 += dd {
			row := o.v[r0 : r0+dd]
			m := math.Inf(-1)
			for _, v := range row {
				m = math.Max(m, v)
			}
			var s float64
			for i := range row {
				row[i] = math.Exp(row[i] - m)
				s += row[i]
			}
			for i := range row {
				row[i] /= s
			}
		}
		return o, nil
	case "GlobalAveragePool":
		N, C := int(x[0].dims[0]), int(x[0].dims[1])
		inner := x[0].n() / max(N*C, 1)
		d := []int64{int64(N), int64(C)}
		for range x[0].dims[2:] {
			d = append(d, 1)
		}
		o := &rt{dt: x[0].dt, dims: d, v: make([]float64, N*C)}
		for i := range o.v {
			for k := 0; k < inner; k++ {
				o.v[i] += x[0].v[i*inner+k]
			}
			o.v[i] /= float64(inner)
		}
		return o, nil
	case "MaxPool":
		if len(x[0].dims) != 4 || n.AttrInt("ceil_mode", 0) != 0 || n.AttrString("auto_pad", "NOTSET") != "NOTSET" {
			return nil, fmt.Errorf("testref: MaxPool form")
		}
		N, C, H, W := int(x[0].dims[0]), int(x[0].dims[1]), int(x[0].dims[2]), int(x[0].dims[3])
		k := n.AttrInts("kernel_shape")
		st, pd := []int64{1, 1}, []int64{0, 0, 0, 0}
		if v := n.AttrInts("strides"); v != nil {
			st = v
		}
		if v := n.AttrInts("pads"); v != nil {
			pd = v
		}
		OH := (H+int(pd[0]+pd[2])-int(k[0]))/int(st[0]) + 1
		OW := (W+int(pd[1]+pd[3])-int(k[1]))/int(st[1]) + 1
		o := &rt{dt: x[0].dt, dims: []int64{int64(N), int64(C), int64(OH), int64(OW)}, v: make([]float64, N*C*OH*OW)}
		for bc := 0; bc < N*C; bc++ {
			for oh := 0; oh < OH; oh++ {
				for ow := 0; ow < OW; ow++ {
					m := math.Inf(-1)
					for kh := 0; kh < int(k[0]); kh++ {
						ih := oh*int(st[0]) - int(pd[0]) + kh
						for kw := 0; kw < int(k[1]); kw++ {
							iw := ow*int(st[1]) - int(pd[1]) + kw
							if ih >= 0 && ih < H && iw >= 0 && iw < W {
								m = math.Max(m, x[0].v[(bc*H+ih)*W+iw])
							}
						}
					}
					o.v[(bc*OH+oh)*OW+ow] = m
				}
			}
		}
		return o, nil
	}
	return nil, fmt.Errorf("testref: no kernel for %s", n.OpType)
}

func reshapeDims(in, spec []int64, allowZero bool) ([]int64, bool) {
	total, err := graph.NumElements(in)
	if err != nil {
		return nil, false
	}
	out := make([]int64, len(spec))
	neg := -1
	prod := int64(1)
	for i, s := range spec {
		switch {
		case s == -1:
			if neg >= 0 {
				return nil, false
			}
			neg = i
			continue
		case s == 0 && !allowZero:
			if i >= len(in) {
				return nil, false
			}
			out[i] = in[i]
		case s < 0:
			return nil, false
		default:
			out[i] = s
		}
		prod *= out[i]
	}
	if neg >= 0 {
		if prod == 0 || total%prod != 0 {
			return nil, false
		}
		out[neg] = total / prod
	} else if prod != total {
		return nil, false
	}
	return out, true
}

func squeezeDims(unsqueeze bool, in, axes []int64) ([]int64, bool) {
	if unsqueeze {
		r := int64(len(in) + len(axes))
		mark := make([]bool, r)
		for _, a := range axes {
			if a < 0 {
				a += r
			}
			if a < 0 || a >= r || mark[a] {
				return nil, false
			}
			mark[a] = true
		}
		out := make([]int64, 0, r)
		j := 0
		for i := int64(0); i < r; i++ {
			if mark[i] {
				out = append(out, 1)
			} else {
				out = append(out, in[j])
				j++
			}
		}
		return out, true
	}
	r := int64(len(in))
	mark := make([]bool, r)
	for _, a := range axes {
		if a < 0 {
			a += r
		}
		if a < 0 || a >= r || in[a] != 1 {
			return nil, false
		}
		mark[a] = true
	}
	var out []int64
	for i, d := range in {
		if !mark[i] {
			out = append(out, d)
		}
	}
	if out == nil {
		out = []int64{}
	}
	return out, true
}

// refBatchedMatMul multiplies [..., M, K] by [..., K, N] (equal leading
// dims, or a 2-D right side shared by every batch).
func refBatchedMatMul(a, b *rt) (*rt, error) {
	ra, rb := len(a.dims), len(b.dims)
	if ra < 2 || rb < 2 || (rb > 2 && !equalInts(a.dims[:ra-2], b.dims[:rb-2])) {
		return nil, fmt.Errorf("testref: batched matmul %v x %v", a.dims, b.dims)
	}
	M, K, N := int(a.dims[ra-2]), int(a.dims[ra-1]), int(b.dims[rb-1])
	if int(b.dims[rb-2]) != K {
		return nil, fmt.Errorf("testref: matmul %v x %v", a.dims, b.dims)
	}
	batch := a.n() / max(M*K, 1)
	dims := append(append([]int64{}, a.dims[:ra-1]...), int64(N))
	o := &rt{dt: a.dt, dims: dims, v: make([]float64, batch*M*N)}
	for bi := 0; bi < batch; bi++ {
		bo := 0
		if rb > 2 {
			bo = bi * K * N
		}
		for i := 0; i < M; i++ {
			for j := 0; j < N; j++ {
				var s float64
				for l := 0; l < K; l++ {
					s += a.v[bi*M*K+i*K+l] * b.v[bo+l*N+j]
				}
				o.v[bi*M*N+i*N+j] = s
			}
		}
	}
	return o, nil
}

// refAttention is com.microsoft Attention without mask or past: per head,
// softmax(scale * Q K^T) V over the packed projection X W + b.
func refAttention(n *graph.Node, x []*rt) (*rt, error) {
	in, w := x[0], x[1]
	if len(in.dims) != 3 || len(w.dims) != 2 {
		return nil, fmt.Errorf("testref: Attention wants [B,S,D] and 2-D weights")
	}
	B, S, D, T := int(in.dims[0]), int(in.dims[1]), int(in.dims[2]), int(w.dims[1])
	H := int(n.AttrInt("num_heads", 1))
	hid := T / 3
	dh := hid / H
	scale := 1 / math.Sqrt(float64(dh))
	if a := n.Attr("scale"); a != nil {
		scale = float64(a.F)
	}
	qkv := make([]float64, B*S*T)
	for r := 0; r < B*S; r++ {
		for j := 0; j < T; j++ {
			s := 0.0
			if len(x) > 2 && x[2] != nil {
				s = x[2].v[j]
			}
			for k := 0; k < D; k++ {
				s += in.v[r*D+k] * w.v[k*T+j]
			}
			qkv[r*T+j] = s
		}
	}
	o := &rt{dt: in.dt, dims: []int64{int64(B), int64(S), int64(hid)}, v: make([]float64, B*S*hid)}
	p := make([]float64, S)
	for b := 0; b < B; b++ {
		for h := 0; h < H; h++ {
			for i := 0; i < S; i++ {
				m := math.Inf(-1)
				for j := 0; j < S; j++ {
					var s float64
					for d := 0; d < dh; d++ {
						s += qkv[(b*S+i)*T+h*dh+d] * qkv[(b*S+j)*T+hid+h*dh+d]
					}
					p[j] = s * scale
					m = math.Max(m, p[j])
				}
				var sum float64
				for j := range p {
					p[j] = math.Exp(p[j] - m)
					sum += p[j]
				}
				for d := 0; d < dh; d++ {
					var s float64
					for j := 0; j < S; j++ {
						s += p[j] / sum * qkv[(b*S+j)*T+2*hid+h*dh+d]
					}
					o.v[(b*S+i)*hid+h*dh+d] = s
				}
			}
		}
	}
	return o, nil
}
