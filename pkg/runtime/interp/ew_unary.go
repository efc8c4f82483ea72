package interp

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics/half"
	"github.com/optictl/optictl/pkg/runtime"
)

// Unary elementwise ops and activations. Floats are computed in float64
// (float32 hot ops have dedicated loops); integer inputs are accepted by the
// ops whose ONNX schema allows them (Abs, Neg, Sign, Relu, ...).

type ewUnarySpec struct {
	f     func(n *graph.Node) func(float64) float64
	f32   func(dst, src []float32)                     // optional fast path
	f32n  func(n *graph.Node) func(dst, src []float32) // optional, per node (nil: none)
	ints  bool                                         // accepts integer inputs
	boolO bool                                         // output is bool (IsNaN, IsInf)
}

func ewC(f func(float64) float64) func(*graph.Node) func(float64) float64 {
	return func(*graph.Node) func(float64) float64 { return f }
}

func ewSigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

var ewUnaryOps = map[string]ewUnarySpec{
	"Abs": {f: ewC(math.Abs), ints: true, f32: func(d, s []float32) {
		for i, x := range s {
			d[i] = float32(math.Abs(float64(x)))
		}
	}},
	"Neg": {f: ewC(func(x float64) float64 { return -x }), ints: true, f32: func(d, s []float32) {
		for i, x := range s {
			d[i] = -x
		}
	}},
	"Sign": {f: ewC(func(x float64) float64 {
		switch {
		case x > 0:
			return 1
		case x < 0:
			return -1
		}
		return x
	}), ints: true},
	"Floor":      {f: ewC(math.Floor)},
	"Ceil":       {f: ewC(math.Ceil)},
	"Round":      {f: ewC(math.RoundToEven)},
	"Sqrt":       {f: ewC(math.Sqrt)},
	"Reciprocal": {f: ewC(func(x float64) float64 { return 1 / x })},
	"Exp": {f: ewC(math.Exp), f32: func(d, s []float32) {
		for i, x := range s {
			d[i] = float32(math.Exp(float64(x)))
		}
	}},
	"Log":   {f: ewC(math.Log)},
	"Erf":   {f: ewC(math.Erf), f32: perf2Erf}, // float32: fast erf (perf2_erf.go)
	"Sin":   {f: ewC(math.Sin)},
	"Cos":   {f: ewC(math.Cos)},
	"Tan":   {f: ewC(math.Tan)},
	"Asin":  {f: ewC(math.Asin)},
	"Acos":  {f: ewC(math.Acos)},
	"Atan":  {f: ewC(math.Atan)},
	"Sinh":  {f: ewC(math.Sinh)},
	"Cosh":  {f: ewC(math.Cosh)},
	"Asinh": {f: ewC(math.Asinh)},
	"Acosh": {f: ewC(math.Acosh)},
	"Atanh": {f: ewC(math.Atanh)},
	"Relu": {f: ewC(func(x float64) float64 { return max(x, 0) }), ints: true, f32: func(d, s []float32) {
		for i, x := range s {
			if x < 0 {
				x = 0
			}
			d[i] = x
		}
	}},
	"Sigmoid": {f: ewC(ewSigmoid), f32: func(d, s []float32) {
		for i, x := range s {
			d[i] = float32(ewSigmoid(float64(x)))
		}
	}},
	"Tanh": {f: ewC(math.Tanh), f32: func(d, s []float32) {
		for i, x := range s {
			d[i] = float32(math.Tanh(float64(x)))
		}
	}},
	"Softplus": {f: ewC(func(x float64) float64 {
		if x > 30 {
			return x
		}
		return math.Log1p(math.Exp(x))
	})},
	"Softsign": {f: ewC(func(x float64) float64 { return x / (1 + math.Abs(x)) })},
	"LeakyRelu": {f: func(n *graph.Node) func(float64) float64 {
		a := float64(n.AttrFloat("alpha", 0.01))
		return func(x float64) float64 {
			if x < 0 {
				return a * x
			}
			return x
		}
	}},
	"Elu": {f: func(n *graph.Node) func(float64) float64 {
		a := float64(n.AttrFloat("alpha", 1))
		return func(x float64) float64 {
			if x < 0 {
				return a * (math.Exp(x) - 1)
			}
			return x
		}
	}},
	"Celu": {f: func(n *graph.Node) func(float64) float64 {
		a := float64(n.AttrFloat("alpha", 1))
		return func(x float64) float64 { return max(0, x) + min(0, a*(math.Exp(x/a)-1)) }
	}},
	"Selu": {f: func(n *graph.Node) func(float64) float64 {
		a := float64(n.AttrFloat("alpha", 1.67326319217681884765625))
		g := float64(n.AttrFloat("gamma", 1.05070102214813232421875))
		return func(x float64) float64 {
			if x <= 0 {
				return g * (a*math.Exp(x) - a)
			}
			return g * x
		}
	}},
	"HardSigmoid": {f: func(n *graph.Node) func(float64) float64 {
		a := float64(n.AttrFloat("alpha", 0.2))
		b := float64(n.AttrFloat("beta", 0.5))
		return func(x float64) float64 { return max(0, min(1, a*x+b)) }
	}},
	"HardSwish": {f: ewC(func(x float64) float64 { return x * max(0, min(1, x/6+0.5)) })},
	"ThresholdedRelu": {f: func(n *graph.Node) func(float64) float64 {
		a := float64(n.AttrFloat("alpha", 1))
		return func(x float64) float64 {
			if x > a {
				return x
			}
			return 0
		}
	}},
	"Shrink": {ints: true, f: func(n *graph.Node) func(float64) float64 {
		l := float64(n.AttrFloat("lambd", 0.5))
		b := float64(n.AttrFloat("bias", 0))
		return func(x float64) float64 {
			switch {
			case x < -l:
				return x + b
			case x > l:
				return x - b
			}
			return 0
		}
	}},
	"Gelu": {f: func(n *graph.Node) func(float64) float64 {
		if n.AttrString("approximate", "none") == "tanh" {
			return func(x float64) float64 {
				return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
			}
		}
		return func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }
	}, f32n: func(n *graph.Node) func(d, s []float32) {
		if n.AttrString("approximate", "none") == "none" {
			return perf2Gelu // float32 exact GELU with the fast erf (perf2_erf.go)
		}
		return nil
	}},
	"Mish": {f: ewC(func(x float64) float64 { return x * math.Tanh(math.Log1p(math.Exp(x))) })},
	"IsNaN": {boolO: true, f: ewC(func(x float64) float64 {
		if math.IsNaN(x) {
			return 1
		}
		return 0
	})},
	"IsInf": {boolO: true, f: func(n *graph.Node) func(float64) float64 {
		neg := n.AttrInt("detect_negative", 1) != 0
		pos := n.AttrInt("detect_positive", 1) != 0
		return func(x float64) float64 {
			if (pos && math.IsInf(x, 1)) || (neg && math.IsInf(x, -1)) {
				return 1
			}
			return 0
		}
	}},
}

func init() {
	for name, spec := range ewUnaryOps {
		spec := spec
		Register("", name, func(n *graph.Node, bc *BuildContext) (Kernel, error) {
			return ewBuildUnary(n, spec)
		})
	}
	Register("", "Not", func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		return func(c *Call) error {
			x := c.In[0]
			if x == nil || x.DType != graph.Bool {
				return ewErr(n, "input must be bool")
			}
			o, err := c.Out(0, graph.Bool, x.Shape)
			if err != nil {
				return err
			}
			for i, v := range x.Raw {
				if v == 0 {
					o.Raw[i] = 1
				} else {
					o.Raw[i] = 0
				}
			}
			return nil
		}, nil
	})
	Register("", "BitwiseNot", func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		return func(c *Call) error {
			x := c.In[0]
			if x == nil || !x.DType.IsInt() {
				return ewErr(n, "input must be an integer tensor")
			}
			o, err := c.Out(0, x.DType, x.Shape)
			if err != nil {
				return err
			}
			for i, v := range x.Raw {
				o.Raw[i] = ^v
			}
			return nil
		}, nil
	})
}

func ewBuildUnary(n *graph.Node, spec ewUnarySpec) (Kernel, error) {
	f := spec.f(n)
	f32 := spec.f32
	if spec.f32n != nil {
		f32 = spec.f32n(n)
	}
	if f32 == nil {
		f32 = func(d, s []float32) {
			for i, x := range s {
				d[i] = float32(f(float64(x)))
			}
		}
	}
	return func(c *Call) error {
		x := c.In[0]
		if x == nil {
			return ewErr(n, "missing input")
		}
		odt := x.DType
		if spec.boolO {
			odt = graph.Bool
		}
		if !ewIsNumeric(x.DType) || (!spec.ints && x.DType.IsInt()) {
			return ewUnsupported(n, "dtype %s is not supported", x.DType)
		}
		o, err := c.Out(0, odt, x.Shape)
		if err != nil {
			return err
		}
		switch {
		case x.DType == graph.Float && !spec.boolO:
			src, dst := ewView[float32](x), ewView[float32](o)
			if len(src) >= 1<<15 && c.Threads() > 1 {
				c.Parallel(len(src), func(lo, hi int) { f32(dst[lo:hi], src[lo:hi]) })
			} else {
				f32(dst, src)
			}
		case x.DType == graph.Double && !spec.boolO:
			src, dst := ewView[float64](x), ewView[float64](o)
			for i, v := range src {
				dst[i] = f(v)
			}
		default:
			v, err := ewF64s(x)
			if err != nil {
				return ewErr(n, "%v", err)
			}
			for i := range v {
				v[i] = f(v[i])
			}
			return ewSetF64(o, v)
		}
		return nil
	}, nil
}

// ewToF32 converts a float16/bfloat16 tensor into a new float32 tensor.
func ewToF32(t *runtime.Tensor) *runtime.Tensor {
	v := ewF16s(t)
	return runtime.FromFloat32(t.Shape, v)
}

// ewFromF32 writes a float32 tensor's values into a float16/bfloat16 one.
func ewFromF32(dst, src *runtime.Tensor) {
	s := ewView[float32](src)
	d := ewView[uint16](dst)
	if dst.DType == graph.BFloat16 {
		for i, v := range s {
			d[i] = half.Float32ToBFloat16(v)
		}
		return
	}
	for i, v := range s {
		d[i] = half.Float32ToFloat16(v)
	}
}
