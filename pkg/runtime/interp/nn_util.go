package interp

import (
	"fmt"
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics/half"
	"github.com/optictl/optictl/pkg/runtime"
)

// nnMaxND bounds the spatial rank of Conv/Pool so per-run geometry fits in
// fixed arrays (no allocation).
const nnMaxND = 6

// nnGeom is the geometry of a sliding-window op over nd spatial dims.
type nnGeom struct {
	nd                       int
	in, k, s, d, pb, pe, out [nnMaxND]int
}

// nnWindow holds the window attributes common to Conv and the pools.
type nnWindow struct {
	kernel    []int64 // kernel_shape (may be nil for Conv: taken from W)
	strides   []int64
	dilations []int64
	pads      []int64
	autoPad   string
	ceil      bool
}

func nnParseWindow(n *graph.Node) (nnWindow, error) {
	w := nnWindow{
		kernel:    n.AttrInts("kernel_shape"),
		strides:   n.AttrInts("strides"),
		dilations: n.AttrInts("dilations"),
		pads:      n.AttrInts("pads"),
		autoPad:   n.AttrString("auto_pad", "NOTSET"),
		ceil:      n.AttrInt("ceil_mode", 0) != 0,
	}
	switch w.autoPad {
	case "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER", "":
	default:
		return w, fmt.Errorf("unknown auto_pad %q", w.autoPad)
	}
	for _, v := range w.kernel {
		if v <= 0 {
			return w, fmt.Errorf("kernel_shape %v has a non-positive entry", w.kernel)
		}
	}
	for _, v := range w.strides {
		if v <= 0 {
			return w, fmt.Errorf("strides %v has a non-positive entry", w.strides)
		}
	}
	for _, v := range w.dilations {
		if v <= 0 {
			return w, fmt.Errorf("dilations %v has a non-positive entry", w.dilations)
		}
	}
	for _, v := range w.pads {
		if v < 0 {
			return w, fmt.Errorf("pads %v has a negative entry", w.pads)
		}
	}
	return w, nil
}

// geom computes the output geometry for input spatial dims in and kernel k.
// Convolution and pooling share the formula; ceil_mode only pools use.
func (w *nnWindow) geom(g *nnGeom, in []int64, k []int64) error {
	nd := len(in)
	if nd == 0 || nd > nnMaxND {
		return unsupportedf("%d spatial dims not supported (1 to %d)", nd, nnMaxND)
	}
	if len(k) != nd {
		return fmt.Errorf("kernel has %d dims, input has %d spatial dims", len(k), nd)
	}
	if w.strides != nil && len(w.strides) != nd {
		return fmt.Errorf("strides %v do not match %d spatial dims", w.strides, nd)
	}
	if w.dilations != nil && len(w.dilations) != nd {
		return fmt.Errorf("dilations %v do not match %d spatial dims", w.dilations, nd)
	}
	if w.pads != nil && len(w.pads) != 2*nd && (w.autoPad == "NOTSET" || w.autoPad == "") {
		return fmt.Errorf("pads %v do not match %d spatial dims", w.pads, nd)
	}
	g.nd = nd
	for i := 0; i < nd; i++ {
		if in[i] < 0 || in[i] > math.MaxInt32 || k[i] <= 0 || k[i] > math.MaxInt32 {
			return fmt.Errorf("bad spatial size %d or kernel size %d", in[i], k[i])
		}
		g.in[i], g.k[i], g.s[i], g.d[i] = int(in[i]), int(k[i]), 1, 1
		if w.strides != nil {
			g.s[i] = int(w.strides[i])
		}
		if w.dilations != nil {
			g.d[i] = int(w.dilations[i])
		}
		ek := (g.k[i]-1)*g.d[i] + 1
		switch w.autoPad {
		case "SAME_UPPER", "SAME_LOWER":
			out := (g.in[i] + g.s[i] - 1) / g.s[i]
			total := max(0, (out-1)*g.s[i]+ek-g.in[i])
			small := total / 2
			if w.autoPad == "SAME_UPPER" {
				g.pb[i], g.pe[i] = small, total-small
			} else {
				g.pb[i], g.pe[i] = total-small, small
			}
			g.out[i] = out
			continue
		case "VALID":
			g.pb[i], g.pe[i] = 0, 0
		default:
			if w.pads != nil {
				g.pb[i], g.pe[i] = int(w.pads[i]), int(w.pads[i+nd])
			} else {
				g.pb[i], g.pe[i] = 0, 0
			}
		}
		span := g.in[i] + g.pb[i] + g.pe[i] - ek
		if span < 0 {
			return fmt.Errorf("window %d (dilated) is larger than the padded input %d", ek, g.in[i]+g.pb[i]+g.pe[i])
		}
		if w.ceil {
			o := (span+g.s[i]-1)/g.s[i] + 1
			// The last window must start inside the input or the begin padding.
			if (o-1)*g.s[i] >= g.in[i]+g.pb[i] {
				o--
			}
			g.out[i] = o
		} else {
			g.out[i] = span/g.s[i] + 1
		}
	}
	return nil
}

// to2D turns 1-D geometry into 2-D with a leading unit dim, so 2-D fast
// paths serve 1-D ops too.
func (g *nnGeom) to2D() {
	if g.nd != 1 {
		return
	}
	g.in[1], g.k[1], g.s[1], g.d[1], g.pb[1], g.pe[1], g.out[1] = g.in[0], g.k[0], g.s[0], g.d[0], g.pb[0], g.pe[0], g.out[0]
	g.in[0], g.k[0], g.s[0], g.d[0], g.pb[0], g.pe[0], g.out[0] = 1, 1, 1, 1, 0, 0, 1
	g.nd = 2
}

func (g *nnGeom) outSize() int {
	n := 1
	for i := 0; i < g.nd; i++ {
		n *= g.out[i]
	}
	return n
}

func (g *nnGeom) inSize() int {
	n := 1
	for i := 0; i < g.nd; i++ {
		n *= g.in[i]
	}
	return n
}

func (g *nnGeom) kSize() int {
	n := 1
	for i := 0; i < g.nd; i++ {
		n *= g.k[i]
	}
	return n
}

// nnShapeWith writes lead followed by g.out into dst (reused).
func nnShapeWith(dst []int64, lead []int64, g *nnGeom) []int64 {
	dst = append(dst[:0], lead...)
	for i := 0; i < g.nd; i++ {
		dst = append(dst, int64(g.out[i]))
	}
	return dst
}

// nnToF32 returns t's values as float32: a view for float32, a conversion
// into buf (grown as needed and returned) for other numeric dtypes.
func nnToF32(t *runtime.Tensor, buf []float32) ([]float32, []float32, error) {
	n := t.Len()
	switch t.DType {
	case graph.Float:
		return t.Float32s()[:n], buf, nil
	case graph.Float16:
		if cap(buf) < n {
			buf = make([]float32, n)
		}
		buf = buf[:n]
		for i, h := range t.Uint16s()[:n] {
			buf[i] = half.Float16ToFloat32(h)
		}
		return buf, buf, nil
	case graph.BFloat16:
		if cap(buf) < n {
			buf = make([]float32, n)
		}
		buf = buf[:n]
		for i, h := range t.Uint16s()[:n] {
			buf[i] = half.BFloat16ToFloat32(h)
		}
		return buf, buf, nil
	case graph.Double:
		if cap(buf) < n {
			buf = make([]float32, n)
		}
		buf = buf[:n]
		for i, v := range t.Float64s()[:n] {
			buf[i] = float32(v)
		}
		return buf, buf, nil
	}
	return nil, buf, unsupportedf("dtype %s is not supported here", t.DType)
}

// nnFromF32 writes float32 values into a tensor of dtype dt (float32,
// float16, bfloat16 or double).
func nnFromF32(dst *runtime.Tensor, src []float32) {
	switch dst.DType {
	case graph.Float:
		copy(dst.Float32s(), src)
	case graph.Float16:
		d := dst.Uint16s()
		for i, v := range src {
			d[i] = half.Float32ToFloat16(v)
		}
	case graph.BFloat16:
		d := dst.Uint16s()
		for i, v := range src {
			d[i] = nnF32ToBF16(v)
		}
	case graph.Double:
		d := dst.Float64s()
		for i, v := range src {
			d[i] = float64(v)
		}
	}
}

func nnF32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if f != f {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

func nnIsFloatish(dt graph.DType) bool {
	return dt == graph.Float || dt == graph.Float16 || dt == graph.Double || dt == graph.BFloat16
}

// nnScalarF32 reads element 0 of a float tensor.
func nnScalarF32(t *runtime.Tensor) (float32, error) {
	if t.Len() < 1 {
		return 0, fmt.Errorf("empty tensor where a scalar is needed")
	}
	switch t.DType {
	case graph.Float:
		return t.Float32s()[0], nil
	case graph.Float16:
		return half.Float16ToFloat32(t.Uint16s()[0]), nil
	case graph.BFloat16:
		return half.BFloat16ToFloat32(t.Uint16s()[0]), nil
	case graph.Double:
		return float32(t.Float64s()[0]), nil
	}
	return 0, fmt.Errorf("dtype %s where a float is needed", t.DType)
}

// nnIntAt reads element i of an integer tensor as int64.
func nnIntAt(t *runtime.Tensor, i int) int64 {
	switch t.DType {
	case graph.Uint8:
		return int64(t.Raw[i])
	case graph.Int8:
		return int64(int8(t.Raw[i]))
	case graph.Int16:
		return int64(int16(t.Uint16s()[i]))
	case graph.Uint16:
		return int64(t.Uint16s()[i])
	case graph.Int32:
		return int64(t.Int32s()[i])
	case graph.Uint32:
		return int64(uint32(t.Int32s()[i]))
	case graph.Int64, graph.Uint64:
		return t.Int64s()[i]
	}
	return 0
}

func nnNumel(shape []int64) int {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	return n
}

// nnCheckSize rejects shapes whose element count overflows or is absurd.
func nnCheckSize(what string, shape []int64) error {
	n, err := graph.NumElements(shape)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n > 1<<34 {
		return fmt.Errorf("%s%v is too large", what, shape)
	}
	return nil
}
