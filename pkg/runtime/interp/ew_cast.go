package interp

import (
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics/half"
	"github.com/optictl/optictl/pkg/runtime"
)

// Cast and CastLike between numeric dtypes, bool, float16, bfloat16, the
// four float8 formats (saturate attribute honoured) and strings.

func init() {
	Register("", "Cast", func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		a := n.Attr("to")
		if a == nil {
			return nil, ewErr(n, "missing attribute to")
		}
		to := graph.DType(a.I)
		sat := n.AttrInt("saturate", 1) != 0
		mode := n.AttrString("round_mode", "up")
		return func(c *Call) error {
			if c.In[0] == nil {
				return ewErr(n, "missing input")
			}
			if to == graph.Float8E8M0 && mode != "up" {
				o, err := c.Out(0, to, c.In[0].Shape)
				if err != nil {
					return err
				}
				v, err := ewCastF64s(c.In[0])
				if err != nil {
					return ewErr(n, "%v", err)
				}
				for i, x := range v {
					o.Raw[i] = ewE8M0Encode(float32(x), sat, mode)
				}
				return nil
			}
			return ewCastKernel(c, n, c.In[0], to, sat)
		}, nil
	})
	Register("", "CastLike", func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		sat := n.AttrInt("saturate", 1) != 0
		return func(c *Call) error {
			if c.In[0] == nil || len(c.In) < 2 || c.In[1] == nil {
				return ewErr(n, "missing input")
			}
			return ewCastKernel(c, n, c.In[0], c.In[1].DType, sat)
		}, nil
	})
}

type ewF8 struct {
	dt             graph.DType
	mbits, bias    int
	fnuz, inf      bool
	vals           []float64 // decoded positive finite codes 0..maxCode
	maxCode        int
	nanCode, infCd uint8
}

var ewF8Formats = map[graph.DType]*ewF8{}

func init() {
	for _, f := range []*ewF8{
		{dt: graph.Float8E4M3FN, mbits: 3, bias: 7, nanCode: 0x7f},
		{dt: graph.Float8E4M3FNUZ, mbits: 3, bias: 8, fnuz: true, nanCode: 0x80},
		{dt: graph.Float8E5M2, mbits: 2, bias: 15, inf: true, nanCode: 0x7e, infCd: 0x7c},
		{dt: graph.Float8E5M2FNUZ, mbits: 2, bias: 16, fnuz: true, nanCode: 0x80},
	} {
		for code := 0; code < 128; code++ {
			v := f.decode(uint8(code))
			if math.IsNaN(v) || math.IsInf(v, 0) {
				break
			}
			f.vals = append(f.vals, v)
			f.maxCode = code
		}
		ewF8Formats[f.dt] = f
	}
}

func (f *ewF8) decode(b uint8) float64 {
	if f.fnuz && b == 0x80 {
		return math.NaN()
	}
	neg := b&0x80 != 0
	ebits := 7 - f.mbits
	ex := int(b>>f.mbits) & (1<<ebits - 1)
	man := int(b) & (1<<f.mbits - 1)
	if !f.fnuz && !f.inf && ex == 1<<ebits-1 && man == 1<<f.mbits-1 {
		return math.NaN()
	}
	if f.inf && ex == 1<<ebits-1 {
		if man == 0 {
			if neg {
				return math.Inf(-1)
			}
			return math.Inf(1)
		}
		return math.NaN()
	}
	var v float64
	if ex == 0 {
		v = math.Ldexp(float64(man), 1-f.bias-f.mbits)
	} else {
		v = math.Ldexp(1+float64(man)/float64(int(1)<<f.mbits), ex-f.bias)
	}
	if neg {
		v = -v
	}
	return v
}

func (f *ewF8) encode(x float64, sat bool) uint8 {
	if math.IsNaN(x) {
		return f.nanCode
	}
	var sign uint8
	if math.Signbit(x) {
		sign = 0x80
		x = -x
	}
	top := f.vals[f.maxCode]
	over := func() uint8 {
		if sat {
			return sign | uint8(f.maxCode)
		}
		if f.inf {
			return sign | f.infCd
		}
		if f.fnuz {
			return 0x80
		}
		return sign | f.nanCode
	}
	if math.IsInf(x, 0) {
		if sat {
			return sign | uint8(f.maxCode)
		}
		return over()
	}
	if x > top {
		ulp := top - f.vals[f.maxCode-1]
		lim := top + ulp/2
		if x > lim || (x == lim && f.maxCode&1 == 1) {
			return over()
		}
		return sign | uint8(f.maxCode)
	}
	i := sort.SearchFloat64s(f.vals, x) // vals[i] >= x
	code := i
	if i > 0 && f.vals[i] != x {
		lo, hi := f.vals[i-1], f.vals[i]
		switch {
		case x-lo < hi-x:
			code = i - 1
		case x-lo == hi-x && (i-1)&1 == 0:
			code = i - 1
		}
	}
	if code == 0 && f.fnuz {
		return 0
	}
	return sign | uint8(code)
}

func ewCastKernel(c *Call, n *graph.Node, x *runtime.Tensor, to graph.DType, sat bool) error {
	o, err := c.Out(0, to, x.Shape)
	if err != nil {
		return err
	}
	if err := ewCast(o, x, sat); err != nil {
		return ewErr(n, "%v", err)
	}
	return nil
}

func ewIntLike(dt graph.DType) bool { return dt == graph.Bool || dt.IsInt() }

// ewCast converts src into dst (already sized, dst.DType the target).
func ewCast(dst, src *runtime.Tensor, sat bool) error {
	to := dst.DType
	if src.DType == to {
		if to == graph.String {
			copy(dst.Strings, src.Strings)
		} else {
			copy(dst.Raw, src.Raw)
		}
		return nil
	}
	if to == graph.String {
		v, err := ewCastF64s(src)
		if err != nil {
			return err
		}
		for i, f := range v {
			if ewIntLike(src.DType) {
				dst.Strings[i] = strconv.FormatInt(int64(f), 10)
			} else {
				dst.Strings[i] = strconv.FormatFloat(f, 'g', -1, 64)
			}
		}
		return nil
	}
	if src.DType == graph.String {
		v := make([]float64, len(src.Strings))
		for i, s := range src.Strings {
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				ls := strings.ToLower(strings.TrimSpace(s))
				switch ls {
				case "inf", "+inf", "infinity":
					f = math.Inf(1)
				case "-inf", "-infinity":
					f = math.Inf(-1)
				case "nan":
					f = math.NaN()
				default:
					return err
				}
			}
			v[i] = f
		}
		return ewCastStore(dst, v, sat)
	}
	if ewSubByte(src.DType) || ewSubByte(to) {
		var v []float64
		var err error
		if ewSubByte(src.DType) {
			v = ewSubDecode(src)
		} else if v, err = ewCastF64s(src); err != nil {
			return err
		}
		if ewSubByte(to) {
			ewSubEncode(dst, v)
			return nil
		}
		return ewCastStore(dst, v, sat)
	}
	if ewIntLike(src.DType) && ewIntLike(to) && src.DType != graph.Uint64 {
		iv, err := ewInts(src)
		if src.DType == graph.Bool {
			iv = make([]int64, len(src.Raw))
			for i, b := range src.Raw {
				if b != 0 {
					iv[i] = 1
				}
			}
			err = nil
		}
		if err != nil {
			return err
		}
		return ewStoreInts(dst, iv)
	}
	v, err := ewCastF64s(src)
	if err != nil {
		return err
	}
	return ewCastStore(dst, v, sat)
}

func ewStoreInts(dst *runtime.Tensor, iv []int64) error {
	switch dst.DType {
	case graph.Bool:
		for i, v := range iv {
			dst.Raw[i] = 0
			if v != 0 {
				dst.Raw[i] = 1
			}
		}
	case graph.Int8:
		ewStoreIntsT(ewView[int8](dst), iv)
	case graph.Int16:
		ewStoreIntsT(ewView[int16](dst), iv)
	case graph.Int32:
		ewStoreIntsT(ewView[int32](dst), iv)
	case graph.Int64:
		copy(ewView[int64](dst), iv)
	case graph.Uint8:
		ewStoreIntsT(ewView[uint8](dst), iv)
	case graph.Uint16:
		ewStoreIntsT(ewView[uint16](dst), iv)
	case graph.Uint32:
		ewStoreIntsT(ewView[uint32](dst), iv)
	case graph.Uint64:
		ewStoreIntsT(ewView[uint64](dst), iv)
	default:
		return errDType(dst.DType)
	}
	return nil
}

func ewStoreIntsT[T ewInt](d []T, iv []int64) {
	for i, v := range iv {
		d[i] = T(v)
	}
}

// ewCastF64s decodes any numeric source, float8 included.
func ewCastF64s(src *runtime.Tensor) ([]float64, error) {
	if src.DType == graph.Float8E8M0 {
		v := make([]float64, len(src.Raw))
		for i, b := range src.Raw {
			if b == 0xff {
				v[i] = math.NaN()
			} else {
				v[i] = math.Ldexp(1, int(b)-127)
			}
		}
		return v, nil
	}
	if f := ewF8Formats[src.DType]; f != nil {
		v := make([]float64, len(src.Raw))
		for i, b := range src.Raw {
			v[i] = f.decode(b)
		}
		return v, nil
	}
	switch src.DType {
	case graph.Float16, graph.BFloat16:
		h := ewF16s(src)
		v := make([]float64, len(h))
		for i, x := range h {
			v[i] = float64(x)
		}
		return v, nil
	case graph.Uint64:
		u := ewView[uint64](src)
		v := make([]float64, len(u))
		for i, x := range u {
			v[i] = float64(x)
		}
		return v, nil
	}
	return ewF64s(src)
}

func ewCastStore(dst *runtime.Tensor, v []float64, sat bool) error {
	if dst.DType == graph.Float8E8M0 {
		for i, x := range v {
			dst.Raw[i] = ewE8M0Encode(float32(x), sat, "up")
		}
		return nil
	}
	if f := ewF8Formats[dst.DType]; f != nil {
		for i, x := range v {
			dst.Raw[i] = f.encode(float64(float32(x)), sat)
		}
		return nil
	}
	if dst.DType == graph.Float16 {
		o := ewView[uint16](dst)
		for i, x := range v {
			o[i] = ewF64ToF16(x)
		}
		return nil
	}
	return ewSetF64(dst, v)
}

// ewF64ToF16 rounds a float64 to the nearest float16 (one rounding step,
// unlike going through float32).
func ewF64ToF16(x float64) uint16 {
	f := float32(x)
	h := half.Float32ToFloat16(f)
	if math.IsNaN(x) || math.IsInf(x, 0) || float64(f) == x {
		return h
	}
	// Check the neighbours for the truly nearest value.
	best, bd := h, math.Abs(float64(half.Float16ToFloat32(h))-x)
	for _, c := range []uint16{h - 1, h + 1} {
		v := float64(half.Float16ToFloat32(c))
		if math.IsNaN(v) || math.Signbit(v) != math.Signbit(float64(half.Float16ToFloat32(h))) {
			continue
		}
		if d := math.Abs(v - x); d < bd {
			best, bd = c, d
		}
	}
	return best
}

// Packed sub-byte dtypes (int4, uint4, int2, uint2, float4e2m1): element i
// lives in the low bits first.

var ewF4Vals = []float64{0, 0.5, 1, 1.5, 2, 3, 4, 6}

func ewSubByte(dt graph.DType) bool {
	switch dt {
	case graph.Int4, graph.Uint4, graph.Int2, graph.Uint2, graph.Float4E2M1:
		return true
	}
	return false
}

func ewSubDecode(t *runtime.Tensor) []float64 {
	bits := t.DType.BitSize()
	per := 8 / bits
	n := t.Len()
	v := make([]float64, n)
	mask := byte(1<<bits - 1)
	for i := 0; i < n; i++ {
		u := (t.Raw[i/per] >> (uint(i%per) * uint(bits))) & mask
		switch t.DType {
		case graph.Int4, graph.Int2:
			s := int(u)
			if s >= 1<<(bits-1) {
				s -= 1 << bits
			}
			v[i] = float64(s)
		case graph.Float4E2M1:
			f := ewF4Vals[u&7]
			if u&8 != 0 {
				f = -f
			}
			v[i] = f
		default:
			v[i] = float64(u)
		}
	}
	return v
}

func ewSubEncode(t *runtime.Tensor, v []float64) {
	bits := t.DType.BitSize()
	per := 8 / bits
	clear(t.Raw)
	for i, x := range v {
		var u byte
		switch t.DType {
		case graph.Float4E2M1:
			u = ewF4Encode(x)
		default:
			// integers wrap (two's complement), as onnx's reference does
			if math.IsNaN(x) || math.IsInf(x, 0) {
				x = 0
			}
			u = byte(int64(math.RoundToEven(x))) & byte(1<<bits-1)
		}
		t.Raw[i/per] |= u << (uint(i%per) * uint(bits))
	}
}

func ewF4Encode(x float64) byte {
	var sign byte
	if math.Signbit(x) {
		sign = 8
		x = -x
	}
	if math.IsNaN(x) {
		return 8 // onnx's reference maps NaN to negative zero
	}
	if x >= 6 {
		return sign | 7
	}
	i := sort.SearchFloat64s(ewF4Vals, x)
	code := i
	if i > 0 && ewF4Vals[i] != x {
		lo, hi := ewF4Vals[i-1], ewF4Vals[i]
		if x-lo < hi-x || (x-lo == hi-x && (i-1)&1 == 0) {
			code = i - 1
		}
	}
	return sign | byte(code)
}

// ewE8M0Encode keeps a float32's exponent, rounding by mode on its mantissa.
func ewE8M0Encode(x float32, sat bool, mode string) uint8 {
	if x != x {
		return 0xff
	}
	b := math.Float32bits(x)
	e := (b >> 23) & 0xff
	m := b & 0x7fffff
	if e == 0xff { // infinity
		if sat {
			return 0xfe
		}
		return 0xff
	}
	switch mode {
	case "up":
		if m != 0 {
			e++
		}
	case "nearest":
		if m > 0x400000 || (m == 0x400000 && e&1 == 1) {
			e++
		}
	}
	if e >= 0xff {
		if sat {
			return 0xfe
		}
		return 0xff
	}
	return uint8(e)
}
