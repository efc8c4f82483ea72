package interp

import (
	"math"
	"sort"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Reductions (Reduce*, ArgMax/ArgMin), Softmax/LogSoftmax/Hardmax, TopK,
// CumSum, Clip.

func init() {
	for name, since := range map[string]int64{
		"ReduceSum": 13, "ReduceMean": 18, "ReduceMax": 18, "ReduceMin": 18, "ReduceProd": 18,
		"ReduceL1": 18, "ReduceL2": 18, "ReduceLogSum": 18, "ReduceLogSumExp": 18, "ReduceSumSquare": 18,
	} {
		name, since := name, since
		Register("", name, func(n *graph.Node, bc *BuildContext) (Kernel, error) { return ewBuildReduce(n, bc, name, since) })
	}
	Register("", "ArgMax", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return ewBuildArg(n, true) })
	Register("", "ArgMin", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return ewBuildArg(n, false) })
	Register("", "Softmax", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return ewBuildSoftmax(n, bc, 0) })
	Register("", "LogSoftmax", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return ewBuildSoftmax(n, bc, 1) })
	Register("", "Hardmax", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return ewBuildSoftmax(n, bc, 2) })
	Register("", "TopK", ewBuildTopK)
	Register("", "CumSum", ewBuildCumulative(false))
	Register("", "Clip", ewBuildClip)
}

// ewReduceGeom describes a reduction as out[o] over in elements.
type ewReduceGeom struct {
	key    []int64
	oshape []int64
	omap   []int // input element -> output element
	count  int   // elements per output
}

func ewReduceAxes(shape []int64, axes []int64, keep bool) (oshape []int64, red []bool, err error) {
	r := len(shape)
	red = make([]bool, r)
	if len(axes) == 0 {
		for i := range red {
			red[i] = true
		}
	}
	for _, a := range axes {
		ax, err := ewNormAxis(a, r)
		if err != nil {
			return nil, nil, err
		}
		red[ax] = true
	}
	for i, d := range shape {
		if red[i] {
			if keep {
				oshape = append(oshape, 1)
			}
		} else {
			oshape = append(oshape, d)
		}
	}
	if oshape == nil {
		oshape = []int64{}
	}
	return oshape, red, nil
}

func ewBuildReduce(n *graph.Node, bc *BuildContext, op string, axesInputSince int64) (Kernel, error) {
	keep := n.AttrInt("keepdims", 1) != 0
	noop := n.AttrInt("noop_with_empty_axes", 0) != 0
	var g ewReduceGeom
	var acc []float64
	var key, axesBuf []int64
	return func(c *Call) error {
		x := c.In[0]
		if x == nil {
			return ewErr(n, "missing input")
		}
		if !ewIsNumeric(x.DType) && !(x.DType == graph.Bool && (op == "ReduceMax" || op == "ReduceMin")) {
			return ewUnsupported(n, "dtype %s is not supported", x.DType)
		}
		var axes []int64
		if bc.Opset < axesInputSince {
			axes = n.AttrInts("axes")
		} else if len(c.In) > 1 && c.In[1] != nil {
			var err error
			if axesBuf, err = ewIntsInto(axesBuf, c.In[1]); err != nil {
				return ewErr(n, "axes: %v", err)
			}
			axes = axesBuf
		}
		if len(axes) == 0 && noop && bc.Opset >= axesInputSince {
			return c.Alias(0, x, x.Shape)
		}
		key = append(append(append(key[:0], x.Shape...), -7), axes...)
		if !ewSameShape(key, g.key) || g.omap == nil {
			oshape, red, err := ewReduceAxes(x.Shape, axes, keep)
			if err != nil {
				return ewErr(n, "%v", err)
			}
			ost := make([]int, len(x.Shape))
			acc := 1
			for i := len(x.Shape) - 1; i >= 0; i-- {
				if !red[i] {
					ost[i] = acc
					acc *= int(x.Shape[i])
				}
			}
			g.omap = make([]int, x.Len())
			ewForEach(x.Shape, func(i int, ix []int64) {
				p := 0
				for d, v := range ix {
					p += int(v) * ost[d]
				}
				g.omap[i] = p
			})
			g.oshape = oshape
			g.count = 1
			for i, d := range x.Shape {
				if red[i] {
					g.count *= int(d)
				}
			}
			g.key = append(g.key[:0], key...)
		}
		o, err := c.Out(0, x.DType, g.oshape)
		if err != nil {
			return err
		}
		no := ewNumel(g.oshape)
		// float32 sum/mean fast path, allocation-free
		if x.DType == graph.Float && (op == "ReduceMean" || op == "ReduceSum") {
			ov := ewView[float32](o)
			xv := ewView[float32](x)
			acc32 := c.ScratchF32(0, 2*no)
			accd := unsafeF64(acc32, no)
			clear(accd)
			for i, v := range xv {
				accd[g.omap[i]] += float64(v)
			}
			for i := range ov {
				s := accd[i]
				if op == "ReduceMean" {
					s /= float64(g.count)
				}
				ov[i] = float32(s)
			}
			return nil
		}
		xv, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		if cap(acc) < no {
			acc = make([]float64, no)
		}
		acc = acc[:no]
		init := 0.0
		switch op {
		case "ReduceProd":
			init = 1
		case "ReduceMax", "ReduceLogSumExp":
			init = math.Inf(-1)
		case "ReduceMin":
			init = math.Inf(1)
		}
		for i := range acc {
			acc[i] = init
		}
		switch op {
		case "ReduceSum", "ReduceMean", "ReduceLogSum":
			for i, v := range xv {
				acc[g.omap[i]] += v
			}
		case "ReduceProd":
			for i, v := range xv {
				acc[g.omap[i]] *= v
			}
		case "ReduceMax":
			for i, v := range xv {
				if p := g.omap[i]; v > acc[p] || math.IsNaN(v) {
					acc[p] = v
				}
			}
		case "ReduceMin":
			for i, v := range xv {
				if p := g.omap[i]; v < acc[p] || math.IsNaN(v) {
					acc[p] = v
				}
			}
		case "ReduceL1":
			for i, v := range xv {
				acc[g.omap[i]] += math.Abs(v)
			}
		case "ReduceL2", "ReduceSumSquare":
			for i, v := range xv {
				acc[g.omap[i]] += v * v
			}
		case "ReduceLogSumExp":
			mx := make([]float64, no)
			for i := range mx {
				mx[i] = math.Inf(-1)
			}
			for i, v := range xv {
				mx[g.omap[i]] = max(mx[g.omap[i]], v)
			}
			for i := range acc {
				acc[i] = 0
			}
			for i, v := range xv {
				acc[g.omap[i]] += math.Exp(v - mx[g.omap[i]])
			}
			for i := range acc {
				if math.IsInf(mx[i], -1) {
					acc[i] = math.Inf(-1)
				} else {
					acc[i] = mx[i] + math.Log(acc[i])
				}
			}
		}
		switch op {
		case "ReduceMean":
			for i := range acc {
				acc[i] /= float64(g.count)
			}
		case "ReduceL2":
			for i := range acc {
				acc[i] = math.Sqrt(acc[i])
			}
		case "ReduceLogSum":
			for i := range acc {
				acc[i] = math.Log(acc[i])
			}
		case "ReduceMax", "ReduceMin":
			if x.DType.IsInt() && g.count == 0 {
				for i := range acc {
					acc[i] = 0
				}
			}
		}
		return ewSetF64(o, acc)
	}, nil
}

// unsafeF64 reinterprets a float32 scratch of 2n elements as n float64s.
func unsafeF64(s []float32, n int) []float64 {
	t := runtime.Tensor{Raw: ewBytesF32(s[:2*n])}
	return ewView[float64](&t)[:n]
}

func ewBuildArg(n *graph.Node, isMax bool) (Kernel, error) {
	axis := n.AttrInt("axis", 0)
	keep := n.AttrInt("keepdims", 1) != 0
	last := n.AttrInt("select_last_index", 0) != 0
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || !ewIsNumeric(x.DType) {
			return ewErr(n, "needs a numeric input")
		}
		ax, err := ewNormAxis(axis, len(x.Shape))
		if err != nil {
			return ewErr(n, "%v", err)
		}
		oshape, _, _ := ewReduceAxes(x.Shape, []int64{int64(ax)}, keep)
		o, err := c.Out(0, graph.Int64, oshape)
		if err != nil {
			return err
		}
		xv, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		outer := ewNumel(x.Shape[:ax])
		dim := int(x.Shape[ax])
		inner := ewNumel(x.Shape[ax+1:])
		ov := ewView[int64](o)
		for j := 0; j < outer; j++ {
			for q := 0; q < inner; q++ {
				best, bi := 0.0, 0
				for k := 0; k < dim; k++ {
					v := xv[(j*dim+k)*inner+q]
					better := k == 0
					if !better {
						if isMax {
							better = v > best || (last && v == best)
						} else {
							better = v < best || (last && v == best)
						}
					}
					if better {
						best, bi = v, k
					}
				}
				ov[j*inner+q] = int64(bi)
			}
		}
		return nil
	}, nil
}

// kind: 0 Softmax, 1 LogSoftmax, 2 Hardmax.
func ewBuildSoftmax(n *graph.Node, bc *BuildContext, kind int) (Kernel, error) {
	def := int64(-1)
	if bc.Opset < 13 {
		def = 1
	}
	axis := n.AttrInt("axis", def)
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || !x.DType.IsFloat() {
			return ewErr(n, "needs a float input")
		}
		ax, err := ewNormAxis(axis, len(x.Shape))
		if err != nil {
			return ewErr(n, "%v", err)
		}
		outer := ewNumel(x.Shape[:ax])
		dim := int(x.Shape[ax])
		inner := ewNumel(x.Shape[ax+1:])
		if bc.Opset < 13 {
			dim, inner = dim*inner, 1
		}
		o, err := c.Out(0, x.DType, x.Shape)
		if err != nil {
			return err
		}
		if x.DType == graph.Float && inner == 1 && kind != 2 {
			xv, ov := ewView[float32](x), ewView[float32](o)
			for j := 0; j < outer; j++ {
				if kind == 0 {
					// Vectorised exp (perf2_exp.go).
					perf2SoftmaxRow(ov[j*dim:(j+1)*dim], xv[j*dim:(j+1)*dim])
				} else {
					ewSoftmaxRow(ov[j*dim:(j+1)*dim], xv[j*dim:(j+1)*dim], true)
				}
			}
			return nil
		}
		xv, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		ov := make([]float64, len(xv))
		for j := 0; j < outer; j++ {
			for q := 0; q < inner; q++ {
				base := j*dim*inner + q
				mx, mi := math.Inf(-1), 0
				for k := 0; k < dim; k++ {
					if v := xv[base+k*inner]; v > mx {
						mx, mi = v, k
					}
				}
				if kind == 2 {
					for k := 0; k < dim; k++ {
						ov[base+k*inner] = 0
					}
					if dim > 0 {
						ov[base+mi*inner] = 1
					}
					continue
				}
				s := 0.0
				for k := 0; k < dim; k++ {
					s += math.Exp(xv[base+k*inner] - mx)
				}
				for k := 0; k < dim; k++ {
					d := xv[base+k*inner] - mx
					if kind == 1 {
						ov[base+k*inner] = d - math.Log(s)
					} else {
						ov[base+k*inner] = math.Exp(d) / s
					}
				}
			}
		}
		return ewSetF64(o, ov)
	}, nil
}

func ewSoftmaxRow(o, x []float32, logsm bool) {
	if len(x) == 0 {
		return
	}
	mx := x[0]
	for _, v := range x[1:] {
		if v > mx {
			mx = v
		}
	}
	var s float64
	if logsm {
		for _, v := range x {
			s += math.Exp(float64(v - mx))
		}
		ls := float32(math.Log(s))
		for i, v := range x {
			o[i] = v - mx - ls
		}
		return
	}
	for i, v := range x {
		e := float32(math.Exp(float64(v - mx)))
		o[i] = e
		s += float64(e)
	}
	inv := float32(1 / s)
	for i := range o {
		o[i] *= inv
	}
}

func ewBuildTopK(n *graph.Node, bc *BuildContext) (Kernel, error) {
	axis := n.AttrInt("axis", -1)
	largest := n.AttrInt("largest", 1) != 0
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || !ewIsNumeric(x.DType) {
			return ewErr(n, "needs a numeric input")
		}
		var k int64
		if bc.Opset < 10 {
			k = n.AttrInt("k", 0)
		} else {
			if len(c.In) < 2 || c.In[1] == nil {
				return ewErr(n, "missing k")
			}
			kv, err := ewInts(c.In[1])
			if err != nil || len(kv) != 1 {
				return ewErr(n, "k must hold one value")
			}
			k = kv[0]
		}
		ax, err := ewNormAxis(axis, len(x.Shape))
		if err != nil {
			return ewErr(n, "%v", err)
		}
		if k < 0 || k > x.Shape[ax] {
			return ewErr(n, "k=%d out of range for dim %d", k, x.Shape[ax])
		}
		oshape := append([]int64(nil), x.Shape...)
		oshape[ax] = k
		vo, err := c.Out(0, x.DType, oshape)
		if err != nil {
			return err
		}
		iv := make([]int64, ewNumel(oshape))
		if c.NumOutputs() > 1 && c.HasOutput(1) {
			io, err := c.Out(1, graph.Int64, oshape)
			if err != nil {
				return err
			}
			iv = ewView[int64](io)
		}
		xv, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		outer := ewNumel(x.Shape[:ax])
		dim := int(x.Shape[ax])
		inner := ewNumel(x.Shape[ax+1:])
		take := make([]int, ewNumel(oshape))
		ord := make([]int, dim)
		for j := 0; j < outer; j++ {
			for q := 0; q < inner; q++ {
				for i := range ord {
					ord[i] = i
				}
				at := func(i int) float64 { return xv[(j*dim+i)*inner+q] }
				sort.SliceStable(ord, func(a, b int) bool {
					va, vb := at(ord[a]), at(ord[b])
					if largest {
						return va > vb
					}
					return va < vb
				})
				for t := 0; t < int(k); t++ {
					p := (j*int(k)+t)*inner + q
					iv[p] = int64(ord[t])
					take[p] = (j*dim+ord[t])*inner + q
				}
			}
		}
		ewTake(vo, x, take)
		return nil
	}, nil
}

// ewBuildCumulative builds CumSum (prod false) or CumProd (prod true):
// a running sum or product along one axis, optionally exclusive/reversed.
func ewBuildCumulative(prod bool) Builder {
	return func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		excl := n.AttrInt("exclusive", 0) != 0
		rev := n.AttrInt("reverse", 0) != 0
		return func(c *Call) error {
			x := c.In[0]
			if x == nil || len(c.In) < 2 || c.In[1] == nil || !ewIsNumeric(x.DType) {
				return ewErr(n, "needs a numeric input and an axis")
			}
			av, err := ewInts(c.In[1])
			if err != nil || len(av) != 1 {
				return ewErr(n, "axis must be a scalar")
			}
			ax, err := ewNormAxis(av[0], len(x.Shape))
			if err != nil {
				return ewErr(n, "%v", err)
			}
			o, err := c.Out(0, x.DType, x.Shape)
			if err != nil {
				return err
			}
			xv, err := ewF64s(x)
			if err != nil {
				return ewErr(n, "%v", err)
			}
			ov := make([]float64, len(xv))
			outer := ewNumel(x.Shape[:ax])
			dim := int(x.Shape[ax])
			inner := ewNumel(x.Shape[ax+1:])
			for j := 0; j < outer; j++ {
				for q := 0; q < inner; q++ {
					acc := 0.0
					if prod {
						acc = 1
					}
					for t := 0; t < dim; t++ {
						k := t
						if rev {
							k = dim - 1 - t
						}
						p := (j*dim+k)*inner + q
						if excl {
							ov[p] = acc
						}
						if prod {
							acc *= xv[p]
						} else {
							acc += xv[p]
						}
						if !excl {
							ov[p] = acc
						}
					}
				}
			}
			return ewSetF64(o, ov)
		}, nil
	}
}

func ewBuildClip(n *graph.Node, bc *BuildContext) (Kernel, error) {
	amin := float64(n.AttrFloat("min", float32(math.Inf(-1))))
	amax := float64(n.AttrFloat("max", float32(math.Inf(1))))
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || !ewIsNumeric(x.DType) {
			return ewErr(n, "needs a numeric input")
		}
		lo, hi := amin, amax
		if bc.Opset >= 11 {
			lo, hi = math.Inf(-1), math.Inf(1)
			for i, p := range []*float64{&lo, &hi} {
				if len(c.In) > i+1 && c.In[i+1] != nil {
					v, err := ewF64s(c.In[i+1])
					if err != nil || len(v) != 1 {
						return ewErr(n, "min/max must be scalars")
					}
					*p = v[0]
				}
			}
		}
		o, err := c.Out(0, x.DType, x.Shape)
		if err != nil {
			return err
		}
		if x.DType == graph.Float {
			l, h := float32(lo), float32(hi)
			xv, ov := ewView[float32](x), ewView[float32](o)
			for i, v := range xv {
				if v < l {
					v = l
				}
				if v > h {
					v = h
				}
				ov[i] = v
			}
			return nil
		}
		xv, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		for i, v := range xv {
			xv[i] = min(max(v, lo), hi)
		}
		return ewSetF64(o, xv)
	}, nil
}
