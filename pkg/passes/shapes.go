package passes

import (
	"github.com/optictl/optictl/pkg/graph"
)

// tinfo is what static shape propagation knows about a value.
type tinfo struct {
	dt   graph.DType
	dims []int64 // valid when ok
	ok   bool
}

// staticShapes returns what is known about the main graph's values: the
// result of graph.InferShapes on a copy of the model (declared value infos,
// graph inputs with --shape applied), completed by a local propagation for
// the ops the rewrites care about, initializers and Constant nodes. Values
// whose type is unknown are absent; ok is set only for fully static shapes.
func staticShapes(m *graph.Model) map[string]tinfo {
	g := m.Graph
	out := map[string]tinfo{}
	known := g.ValueInfoMap()
	c := m.Clone()
	if _, err := graph.InferShapes(c, graph.InferOptions{}); err == nil {
		known = c.Graph.ValueInfoMap()
	}
	for name, v := range known {
		if v.HasType && v.IsTensor() {
			ti := tinfo{dt: v.DType}
			if v.HasShape {
				ti.dims, ti.ok = v.Shape.Static()
			}
			out[name] = ti
		}
	}
	for _, t := range g.Initializers {
		if !g.IsGraphInput(t.Name) {
			out[t.Name] = tinfo{dt: t.DType, dims: t.Dims, ok: true}
		}
	}
	ci := newConstIndex(g)
	for _, n := range g.Nodes {
		if !n.IsDefaultDomain() || len(n.Outputs) == 0 {
			continue
		}
		if ti, ok := out[n.Outputs[0]]; ok && ti.ok {
			continue
		}
		in := func(i int) tinfo {
			if i < len(n.Inputs) {
				return out[n.Inputs[i]]
			}
			return tinfo{}
		}
		set := func(dt graph.DType, dims []int64) {
			if dt == graph.Undefined {
				dt = in(0).dt
			}
			out[n.Outputs[0]] = tinfo{dt: dt, dims: dims, ok: true}
		}
		x := in(0)
		switch n.OpType {
		case "Constant":
			if t := n.AttrTensor("value"); t != nil {
				set(t.DType, t.Dims)
			}
		case "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Neg", "Abs", "Erf", "LeakyRelu",
			"HardSigmoid", "HardSwish", "Clip", "Identity", "Softmax", "LogSoftmax", "BatchNormalization",
			"Dropout", "Reciprocal", "Floor", "Ceil", "Gelu", "LayerNormalization", "Elu", "Selu", "Softplus":
			if x.ok {
				set(x.dt, x.dims)
			}
		case "Cast":
			if x.ok {
				set(graph.DType(n.AttrInt("to", 0)), x.dims)
			}
		case "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu", "Sum", "Where", "Equal", "Less", "Greater":
			var dims []int64
			all := true
			for i := range n.Inputs {
				t := in(i)
				if !t.ok {
					all = false
					break
				}
				d, ok := broadcast(dims, t.dims)
				if !ok {
					all = false
					break
				}
				dims = d
			}
			dt := x.dt
			switch n.OpType {
			case "Equal", "Less", "Greater":
				dt = graph.Bool
			case "Where":
				dt = in(1).dt
			}
			if all {
				set(dt, dims)
			}
		case "Shape":
			if x.ok {
				set(graph.Int64, []int64{int64(len(x.dims))})
			}
		case "Conv":
			w := in(1)
			if x.ok && w.ok && len(x.dims) >= 3 && len(w.dims) == len(x.dims) {
				if d, ok := convOut(n, x.dims, w.dims[2:], w.dims[0]); ok {
					set(x.dt, d)
				}
			}
		case "MaxPool", "AveragePool":
			if x.ok && len(x.dims) >= 3 && len(n.Outputs) == 1 {
				k := n.AttrInts("kernel_shape")
				if len(k) == len(x.dims)-2 {
					if d, ok := convOut(n, x.dims, k, x.dims[1]); ok {
						set(x.dt, d)
					}
				}
			}
		case "GlobalAveragePool", "GlobalMaxPool":
			if x.ok && len(x.dims) >= 2 {
				d := append([]int64{}, x.dims[:2]...)
				for range x.dims[2:] {
					d = append(d, 1)
				}
				set(x.dt, d)
			}
		case "Gemm":
			a, b := in(0), in(1)
			if a.ok && b.ok && len(a.dims) == 2 && len(b.dims) == 2 {
				m0, n0 := a.dims[0], b.dims[1]
				if n.AttrInt("transA", 0) != 0 {
					m0 = a.dims[1]
				}
				if n.AttrInt("transB", 0) != 0 {
					n0 = b.dims[0]
				}
				set(a.dt, []int64{m0, n0})
			}
		case "MatMul":
			a, b := in(0), in(1)
			if a.ok && b.ok && len(a.dims) >= 2 && len(b.dims) >= 2 {
				batch, ok := broadcast(a.dims[:len(a.dims)-2], b.dims[:len(b.dims)-2])
				if ok && a.dims[len(a.dims)-1] == b.dims[len(b.dims)-2] {
					set(a.dt, append(batch, a.dims[len(a.dims)-2], b.dims[len(b.dims)-1]))
				}
			}
		case "Transpose":
			if x.ok {
				perm := n.AttrInts("perm")
				if perm == nil {
					for i := len(x.dims) - 1; i >= 0; i-- {
						perm = append(perm, int64(i))
					}
				}
				if validPerm(perm, len(x.dims)) {
					d := make([]int64, len(perm))
					for i, p := range perm {
						d[i] = x.dims[p]
					}
					set(x.dt, d)
				}
			}
		case "Reshape":
			s, okc := intsConst(ci.get(inputAt(n, 1)))
			if x.ok && okc {
				if d, ok := reshapeDims(x.dims, s, n.AttrInt("allowzero", 0) != 0); ok {
					set(x.dt, d)
				}
			}
		case "Flatten":
			if x.ok {
				ax := n.AttrInt("axis", 1)
				if ax < 0 {
					ax += int64(len(x.dims))
				}
				if ax >= 0 && ax <= int64(len(x.dims)) {
					a, b := int64(1), int64(1)
					for i, d := range x.dims {
						if int64(i) < ax {
							a *= d
						} else {
							b *= d
						}
					}
					set(x.dt, []int64{a, b})
				}
			}
		case "Concat":
			ax := n.AttrInt("axis", 0)
			var dims []int64
			all := true
			for i := range n.Inputs {
				t := in(i)
				if !t.ok {
					all = false
					break
				}
				a := ax
				if a < 0 {
					a += int64(len(t.dims))
				}
				if a < 0 || a >= int64(len(t.dims)) {
					all = false
					break
				}
				if dims == nil {
					dims = append([]int64{}, t.dims...)
				} else if len(dims) == len(t.dims) {
					dims[a] += t.dims[a]
				} else {
					all = false
					break
				}
			}
			if all && dims != nil {
				set(x.dt, dims)
			}
		case "Expand":
			if s, okc := intsConst(ci.get(inputAt(n, 1))); okc && x.ok {
				if d, ok := broadcast(x.dims, s); ok {
					set(x.dt, d)
				}
			}
		case "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd":
			axes := n.AttrInts("axes")
			if a, ok := intsConst(ci.get(inputAt(n, 1))); ok {
				axes = a
			}
			if x.ok && axes != nil {
				r := int64(len(x.dims))
				mark := make([]bool, r)
				ok := true
				for _, a := range axes {
					if a < 0 {
						a += r
					}
					if a < 0 || a >= r {
						ok = false
						break
					}
					mark[a] = true
				}
				if ok {
					keep := n.AttrInt("keepdims", 1) != 0
					d := []int64{}
					for i, v := range x.dims {
						switch {
						case !mark[i]:
							d = append(d, v)
						case keep:
							d = append(d, 1)
						}
					}
					set(x.dt, d)
				}
			}
		case "Squeeze", "Unsqueeze":
			axes := n.AttrInts("axes")
			if a, ok := intsConst(ci.get(inputAt(n, 1))); ok {
				axes = a
			}
			if x.ok && axes != nil {
				if d, ok := squeezeDims(n.OpType == "Unsqueeze", x.dims, axes); ok {
					set(x.dt, d)
				}
			}
		}
	}
	return out
}

func inputAt(n *graph.Node, i int) string {
	if i < len(n.Inputs) {
		return n.Inputs[i]
	}
	return ""
}

func broadcast(a, b []int64) ([]int64, bool) {
	if a == nil {
		return append([]int64{}, b...), true
	}
	n := max(len(a), len(b))
	out := make([]int64, n)
	for i := 0; i < n; i++ {
		x, y := int64(1), int64(1)
		if j := i - (n - len(a)); j >= 0 {
			x = a[j]
		}
		if j := i - (n - len(b)); j >= 0 {
			y = b[j]
		}
		switch {
		case x == y, y == 1:
			out[i] = x
		case x == 1:
			out[i] = y
		default:
			return nil, false
		}
	}
	return out, true
}

func convOut(n *graph.Node, x, k []int64, outC int64) ([]int64, bool) {
	sp := len(x) - 2
	if len(k) != sp {
		return nil, false
	}
	if ap := n.AttrString("auto_pad", "NOTSET"); ap != "NOTSET" && ap != "VALID" {
		return nil, false
	}
	strides := n.AttrInts("strides")
	dil := n.AttrInts("dilations")
	pads := n.AttrInts("pads")
	if n.AttrString("auto_pad", "NOTSET") == "VALID" {
		pads = nil
	}
	if n.AttrInt("ceil_mode", 0) != 0 {
		return nil, false
	}
	out := []int64{x[0], outC}
	for i := 0; i < sp; i++ {
		s, d, p0, p1 := int64(1), int64(1), int64(0), int64(0)
		if len(strides) == sp {
			s = strides[i]
		}
		if len(dil) == sp {
			d = dil[i]
		}
		if len(pads) == 2*sp {
			p0, p1 = pads[i], pads[i+sp]
		}
		if s <= 0 || d <= 0 {
			return nil, false
		}
		ek := d*(k[i]-1) + 1
		v := (x[i+2]+p0+p1-ek)/s + 1
		if v <= 0 {
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}

func validPerm(p []int64, rank int) bool {
	if len(p) != rank {
		return false
	}
	seen := make([]bool, rank)
	for _, v := range p {
		if v < 0 || v >= int64(rank) || seen[v] {
			return false
		}
		seen[v] = true
	}
	return true
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
