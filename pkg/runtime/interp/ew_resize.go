package interp

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
)

// Resize (opsets 10-19: nearest/linear/cubic, every coordinate
// transformation mode, antialias, axes, keep_aspect_ratio_policy,
// exclude_outside, extrapolation) and Upsample. Interpolation is separable:
// the last axis is resized first, as onnx's reference nests it, so
// tf_crop_and_resize extrapolation mixes identically.

func init() {
	Register("", "Resize", ewBuildResize)
	Register("", "Upsample", ewBuildResize)
}

type ewResizeCfg struct {
	mode, coord, nearest, policy string
	cubicA, extrap               float64
	exclude, antialias           bool
	axes                         []int64
}

func ewBuildResize(n *graph.Node, bc *BuildContext) (Kernel, error) {
	cfg := ewResizeCfg{
		mode:      n.AttrString("mode", "nearest"),
		coord:     n.AttrString("coordinate_transformation_mode", "half_pixel"),
		nearest:   n.AttrString("nearest_mode", "round_prefer_floor"),
		policy:    n.AttrString("keep_aspect_ratio_policy", "stretch"),
		cubicA:    float64(n.AttrFloat("cubic_coeff_a", -0.75)),
		extrap:    float64(n.AttrFloat("extrapolation_value", 0)),
		exclude:   n.AttrInt("exclude_outside", 0) != 0,
		antialias: n.AttrInt("antialias", 0) != 0,
		axes:      n.AttrInts("axes"),
	}
	upsample := n.OpType == "Upsample"
	if upsample || bc.Opset < 11 {
		cfg.coord, cfg.nearest = "asymmetric", "floor"
	}
	if cfg.mode == "bilinear" || cfg.mode == "trilinear" {
		cfg.mode = "linear"
	}
	switch cfg.mode {
	case "nearest", "linear", "cubic":
	default:
		return nil, ewErr(n, "unknown mode %q", cfg.mode)
	}
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || !ewIsNumeric(x.DType) {
			return ewErr(n, "needs a numeric input")
		}
		r := len(x.Shape)
		var scalesIn, sizesIn, roiIn []float64
		get := func(i int) ([]float64, error) {
			if i < len(c.In) && c.In[i] != nil && c.In[i].Len() > 0 {
				return ewF64s(c.In[i])
			}
			return nil, nil
		}
		var err error
		switch {
		case upsample && bc.Opset < 9:
			for _, f := range n.AttrFloats("scales") {
				scalesIn = append(scalesIn, float64(f))
			}
		case upsample || bc.Opset < 11:
			scalesIn, err = get(1)
		default:
			if roiIn, err = get(1); err == nil {
				if scalesIn, err = get(2); err == nil {
					sizesIn, err = get(3)
				}
			}
		}
		if err != nil {
			return ewErr(n, "%v", err)
		}
		axes := make([]int, 0, r)
		if len(cfg.axes) > 0 {
			for _, a := range cfg.axes {
				ax, err := ewNormAxis(a, r)
				if err != nil {
					return ewErr(n, "%v", err)
				}
				axes = append(axes, ax)
			}
		} else {
			for i := 0; i < r; i++ {
				axes = append(axes, i)
			}
		}
		scale := make([]float64, r)
		out := append([]int64(nil), x.Shape...)
		for i := range scale {
			scale[i] = 1
		}
		switch {
		case len(sizesIn) > 0:
			if len(sizesIn) != len(axes) {
				return ewErr(n, "%d sizes for %d axes", len(sizesIn), len(axes))
			}
			if cfg.policy != "stretch" {
				s := math.Inf(1)
				if cfg.policy == "not_smaller" {
					s = math.Inf(-1)
				}
				for i, ax := range axes {
					v := sizesIn[i] / float64(x.Shape[ax])
					if cfg.policy == "not_larger" {
						s = min(s, v)
					} else {
						s = max(s, v)
					}
				}
				for _, ax := range axes {
					scale[ax] = s
					out[ax] = int64(math.Floor(s*float64(x.Shape[ax]) + 0.5))
				}
			} else {
				for i, ax := range axes {
					out[ax] = int64(sizesIn[i])
					if x.Shape[ax] > 0 {
						scale[ax] = sizesIn[i] / float64(x.Shape[ax])
					}
				}
			}
		case len(scalesIn) > 0:
			if len(scalesIn) != len(axes) {
				return ewErr(n, "%d scales for %d axes", len(scalesIn), len(axes))
			}
			for i, ax := range axes {
				if scalesIn[i] <= 0 {
					return ewErr(n, "scale %g must be positive", scalesIn[i])
				}
				scale[ax] = scalesIn[i]
				out[ax] = int64(scalesIn[i] * float64(x.Shape[ax]))
			}
		default:
			return ewErr(n, "needs scales or sizes")
		}
		if err := ewCheckSize(out); err != nil {
			return ewErr(n, "%v", err)
		}
		roiS := make([]float64, r)
		roiE := make([]float64, r)
		for i := range roiE {
			roiE[i] = 1
		}
		if len(roiIn) == 2*len(axes) {
			for i, ax := range axes {
				roiS[ax], roiE[ax] = roiIn[i], roiIn[i+len(axes)]
			}
		} else if len(roiIn) == 2*r {
			copy(roiS, roiIn[:r])
			copy(roiE, roiIn[r:])
		}
		cur, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		shape := append([]int64(nil), x.Shape...)
		for d := r - 1; d >= 0; d-- {
			if out[d] == shape[d] && scale[d] == 1 && cfg.coord != "tf_crop_and_resize" {
				continue
			}
			cur, shape = ewResizeAxis(cur, shape, d, out[d], scale[d], roiS[d], roiE[d], &cfg)
		}
		o, err := c.Out(0, x.DType, out)
		if err != nil {
			return err
		}
		if x.DType.IsInt() && cfg.mode != "nearest" {
			for i, v := range cur {
				cur[i] = math.RoundToEven(v)
			}
		}
		return ewSetF64(o, cur)
	}, nil
}

// ewResizeAxis resizes axis d of data (shape) to length m.
func ewResizeAxis(data []float64, shape []int64, d int, m int64, scale, rs, re float64, cfg *ewResizeCfg) ([]float64, []int64) {
	outer := ewNumel(shape[:d])
	L := int(shape[d])
	inner := ewNumel(shape[d+1:])
	ns := append([]int64(nil), shape...)
	ns[d] = m
	res := make([]float64, outer*int(m)*inner)
	// Per output coordinate: neighbour indices and weights.
	type tap struct {
		idx []int
		w   []float64
		ext bool
	}
	taps := make([]tap, m)
	for xo := 0; xo < int(m); xo++ {
		taps[xo] = ewResizeTap(float64(xo), L, int(m), scale, rs, re, cfg)
	}
	for j := 0; j < outer; j++ {
		for xo := 0; xo < int(m); xo++ {
			t := taps[xo]
			for q := 0; q < inner; q++ {
				var v float64
				if t.ext {
					v = cfg.extrap
				} else {
					for k, i := range t.idx {
						v += t.w[k] * data[(j*L+i)*inner+q]
					}
				}
				res[(j*int(m)+xo)*inner+q] = v
			}
		}
	}
	return res, ns
}

func ewResizeTap(xo float64, L, m int, scale, rs, re float64, cfg *ewResizeCfg) (t struct {
	idx []int
	w   []float64
	ext bool
}) {
	var x float64
	switch cfg.coord {
	case "half_pixel":
		x = (xo+0.5)/scale - 0.5
	case "half_pixel_symmetric":
		ow := scale * float64(L)
		adj := float64(m) / ow
		center := float64(L) / 2
		off := center * (1 - adj)
		x = off + (xo+0.5)/scale - 0.5
	case "pytorch_half_pixel":
		if m > 1 {
			x = (xo+0.5)/scale - 0.5
		} else {
			x = 0
		}
	case "align_corners":
		if m > 1 {
			// onnx's reference divides by the unrounded output length
			x = xo * float64(L-1) / (scale*float64(L) - 1)
		}
	case "asymmetric":
		x = xo / scale
	case "tf_half_pixel_for_nn": // Resize-11 only
		x = (xo + 0.5) / scale
	case "tf_crop_and_resize":
		if m > 1 {
			x = rs*float64(L-1) + xo*(re-rs)*float64(L-1)/float64(m-1)
		} else {
			x = 0.5 * (rs + re) * float64(L-1)
		}
		if x < 0 || x > float64(L-1) {
			t.ext = true
			return t
		}
	default:
		x = (xo+0.5)/scale - 0.5
	}
	xi := math.Floor(x)
	ratio := x - xi
	if ratio == 0 {
		ratio = 1
		xi--
	}
	clamp := func(i int) int { return min(max(i, 0), L-1) }
	base := int(xi)
	var start int
	var w []float64
	switch cfg.mode {
	case "nearest":
		pick := 0
		switch cfg.nearest {
		case "round_prefer_ceil":
			if ratio >= 0.5 {
				pick = 1
			}
		case "floor":
			if ratio == 1 {
				pick = 1
			}
		case "ceil":
			pick = 1
		default: // round_prefer_floor
			if ratio > 0.5 {
				pick = 1
			}
		}
		t.idx = []int{clamp(base + pick)}
		t.w = []float64{1}
		return t
	case "linear":
		if cfg.antialias && scale < 1 {
			start = int(math.Floor(-1/scale) + 1)
			fp := 2 - 2*start
			w = make([]float64, fp)
			var s float64
			for k := range w {
				a := (float64(start+k) - ratio) * scale
				w[k] = min(max(1-math.Abs(a), 0), 1)
				s += w[k]
			}
			for k := range w {
				w[k] /= s
			}
		} else {
			start = 0
			w = []float64{1 - ratio, ratio}
		}
	case "cubic":
		A := cfg.cubicA
		if cfg.antialias && scale < 1 {
			start = int(math.Floor(-2/scale) + 1)
			end := 2 - start
			var s float64
			for i := start; i < end; i++ {
				a := math.Abs(scale * (float64(i) - ratio))
				var c float64
				switch {
				case a <= 1:
					c = (A+2)*a*a*a - (A+3)*a*a + 1
				case a < 2:
					c = A*a*a*a - 5*A*a*a + 8*A*a - 4*A
				}
				w = append(w, c)
				s += c
			}
			for k := range w {
				w[k] /= s
			}
		} else {
			start = -1
			r := ratio
			w = []float64{
				((A*(r+1)-5*A)*(r+1)+8*A)*(r+1) - 4*A,
				((A+2)*r-(A+3))*r*r + 1,
				((A+2)*(1-r)-(A+3))*(1-r)*(1-r) + 1,
				((A*(2-r)-5*A)*(2-r)+8*A)*(2-r) - 4*A,
			}
		}
	}
	t.idx = make([]int, len(w))
	if cfg.exclude {
		var s float64
		for k := range w {
			i := base + start + k
			if i < 0 || i >= L {
				w[k] = 0
			}
			s += w[k]
		}
		if s != 0 {
			for k := range w {
				w[k] /= s
			}
		}
	}
	for k := range w {
		t.idx[k] = clamp(base + start + k)
	}
	t.w = w
	return t
}
