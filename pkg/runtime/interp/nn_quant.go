package interp

import (
	"fmt"
	"math"
	"sort"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics/half"
	"github.com/optictl/optictl/pkg/runtime"
)

// Quantization: QuantizeLinear / DequantizeLinear (per tensor, per axis,
// blocked; 2/4/8/16-bit integers, int32 for DQ, float8 e4m3fn/e5m2 and
// float4 e2m1), DynamicQuantizeLinear, and the integer ops MatMulInteger,
// ConvInteger, QLinearMatMul, QLinearConv on int32 accumulators.

func init() {
	Register("", "QuantizeLinear", nnBuildQuantize)
	Register("", "DequantizeLinear", nnBuildDequantize)
	Register("", "DynamicQuantizeLinear", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return nnDynQuant, nil })
	Register("", "MatMulInteger", nnBuildMatMulInteger)
	Register("", "QLinearMatMul", nnBuildQLinearMatMul)
	Register("", "ConvInteger", nnBuildConvInteger)
	Register("", "QLinearConv", nnBuildConvInteger)
}

// nnQRange is the integer range of a quantized dtype (ok false for floats).
func nnQRange(dt graph.DType) (lo, hi float64, ok bool) {
	switch dt {
	case graph.Uint8:
		return 0, 255, true
	case graph.Int8:
		return -128, 127, true
	case graph.Uint16:
		return 0, 65535, true
	case graph.Int16:
		return -32768, 32767, true
	case graph.Int32:
		return math.MinInt32, math.MaxInt32, true
	case graph.Uint4:
		return 0, 15, true
	case graph.Int4:
		return -8, 7, true
	case graph.Uint2:
		return 0, 3, true
	case graph.Int2:
		return -2, 1, true
	}
	return 0, 0, false
}

func nnQIsFloat(dt graph.DType) bool {
	return dt == graph.Float8E4M3FN || dt == graph.Float8E5M2 || dt == graph.Float4E2M1
}

// nnQGet reads element i of a quantized tensor as a number.
func nnQGet(t *runtime.Tensor, i int) float64 {
	switch t.DType {
	case graph.Uint4:
		return float64((t.Raw[i/2] >> (4 * uint(i%2))) & 0xf)
	case graph.Int4:
		v := int8((t.Raw[i/2]>>(4*uint(i%2)))&0xf) << 4 >> 4
		return float64(v)
	case graph.Uint2:
		return float64((t.Raw[i/4] >> (2 * uint(i%4))) & 3)
	case graph.Int2:
		v := int8((t.Raw[i/4]>>(2*uint(i%4)))&3) << 6 >> 6
		return float64(v)
	case graph.Float8E4M3FN, graph.Float8E5M2:
		return float64(nnF8Tables[t.DType].decode[t.Raw[i]])
	case graph.Float4E2M1:
		return float64(nnF8Tables[t.DType].decode[(t.Raw[i/2]>>(4*uint(i%2)))&0xf])
	}
	return float64(nnIntAt(t, i))
}

// nnQSet stores v (already rounded and saturated for integer dtypes) as
// element i. Sub-byte outputs must start zeroed.
func nnQSet(t *runtime.Tensor, i int, v float64, saturate bool) {
	switch t.DType {
	case graph.Uint4, graph.Int4:
		t.Raw[i/2] |= (byte(int64(v)) & 0xf) << (4 * uint(i%2))
	case graph.Uint2, graph.Int2:
		t.Raw[i/4] |= (byte(int64(v)) & 3) << (2 * uint(i%4))
	case graph.Float8E4M3FN, graph.Float8E5M2:
		t.Raw[i] = nnF8Tables[t.DType].encode(float32(v), saturate)
	case graph.Float4E2M1:
		t.Raw[i/2] |= (nnF8Tables[t.DType].encode(float32(v), true) & 0xf) << (4 * uint(i%2))
	default:
		nnSetInt(t, i, int64(v))
	}
}

// nnF8Table decodes every code of a small float format and encodes by
// nearest value, ties to the even code.
type nnF8Table struct {
	decode  []float32
	pos     []float32 // finite non-negative values, ascending
	posCode []byte
	nan     byte
	inf     int // code of +inf, or -1
	signBit byte
}

var nnF8Tables = map[graph.DType]*nnF8Table{
	graph.Float8E4M3FN: nnNewF8Table(256, 0x80, func(c int) float32 {
		e, m := (c>>3)&0xf, c&7
		if e == 0xf && m == 7 {
			return float32(math.NaN())
		}
		if e == 0 {
			return float32(math.Ldexp(float64(m)/8, -6))
		}
		return float32(math.Ldexp(1+float64(m)/8, e-7))
	}),
	graph.Float8E5M2: nnNewF8Table(256, 0x80, func(c int) float32 {
		return half.Float16ToFloat32(uint16(c&0x7f) << 8)
	}),
	graph.Float4E2M1: nnNewF8Table(16, 0x8, func(c int) float32 {
		e, m := (c>>1)&3, c&1
		if e == 0 {
			return float32(m) * 0.5
		}
		return float32(math.Ldexp(1+float64(m)/2, e-1))
	}),
}

func nnNewF8Table(n int, sign byte, mag func(c int) float32) *nnF8Table {
	t := &nnF8Table{decode: make([]float32, n), inf: -1, signBit: sign, nan: 0xff}
	for c := 0; c < n; c++ {
		v := mag(c &^ int(sign))
		if c&int(sign) != 0 {
			v = -v
		}
		t.decode[c] = v
		if c&int(sign) == 0 {
			switch {
			case v != v:
				t.nan = byte(c)
			case math.IsInf(float64(v), 1):
				t.inf = c
			default:
				t.pos = append(t.pos, v)
				t.posCode = append(t.posCode, byte(c))
			}
		}
	}
	idx := make([]int, len(t.pos))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return t.pos[idx[a]] < t.pos[idx[b]] })
	p, pc := make([]float32, len(idx)), make([]byte, len(idx))
	for i, j := range idx {
		p[i], pc[i] = t.pos[j], t.posCode[j]
	}
	t.pos, t.posCode = p, pc
	return t
}

func (t *nnF8Table) encode(v float32, saturate bool) byte {
	if v != v {
		return t.nan
	}
	neg := math.Signbit(float64(v))
	a := float32(math.Abs(float64(v)))
	var code byte
	maxv := t.pos[len(t.pos)-1]
	switch {
	case a > maxv:
		// Beyond the largest finite value: saturate, or round to max within
		// half an ulp, else inf (e5m2) or NaN (e4m3fn).
		half := (maxv - t.pos[len(t.pos)-2]) / 2
		switch {
		case saturate || a < maxv+half:
			code = t.posCode[len(t.pos)-1]
		case t.inf >= 0:
			code = byte(t.inf)
		default:
			code = t.nan
		}
	default:
		i := sort.Search(len(t.pos), func(i int) bool { return t.pos[i] >= a })
		if i == 0 {
			code = t.posCode[0]
		} else {
			lo, hi := t.pos[i-1], t.pos[i]
			switch dl, dh := a-lo, hi-a; {
			case dl < dh:
				code = t.posCode[i-1]
			case dh < dl:
				code = t.posCode[i]
			default:
				code = t.posCode[i-1]
				if code&1 != 0 {
					code = t.posCode[i]
				}
			}
		}
	}
	if neg {
		code |= t.signBit
	}
	return code
}

// nnQParams resolves how a scale / zero point indexes elements: per tensor,
// per axis, or blocked along axis.
type nnQParams struct {
	axis, blockSize int64
	outer, d, inner int
	db              int
	mode            int // 0 tensor, 1 axis, 2 blocked
}

func (q *nnQParams) setup(xs, ss []int64) error {
	r := int64(len(xs))
	sn := nnNumel(ss)
	if sn == 1 && q.blockSize == 0 {
		q.mode = 0
		return nil
	}
	ax := q.axis
	if ax < 0 {
		ax += r
	}
	if ax < 0 || ax >= r {
		return fmt.Errorf("axis %d out of range for rank %d", q.axis, r)
	}
	q.outer, q.d, q.inner = nnNumel(xs[:ax]), int(xs[ax]), nnNumel(xs[ax+1:])
	if q.blockSize > 0 {
		if int64(len(ss)) != r {
			return fmt.Errorf("blocked scale %v must have the rank of x %v", ss, xs)
		}
		for i := range ss {
			if int64(i) != ax && ss[i] != xs[i] {
				return fmt.Errorf("blocked scale %v does not match x %v", ss, xs)
			}
		}
		q.db = int(ss[ax])
		if int64(q.db) != (xs[ax]+q.blockSize-1)/q.blockSize {
			return fmt.Errorf("blocked scale %v does not match x %v with block_size %d", ss, xs, q.blockSize)
		}
		q.mode = 2
		return nil
	}
	if len(ss) != 1 || int(ss[0]) != q.d {
		return fmt.Errorf("scale %v is neither a scalar nor a 1-D tensor of %d (axis %d)", ss, q.d, ax)
	}
	q.mode = 1
	return nil
}

func (q *nnQParams) index(j int) int {
	switch q.mode {
	case 1:
		return (j / q.inner) % q.d
	case 2:
		in := j % q.inner
		d := (j / q.inner) % q.d
		o := j / (q.inner * q.d)
		return (o*q.db+d/int(q.blockSize))*q.inner + in
	}
	return 0
}

type nnQuant struct {
	q        nnQParams
	saturate bool
	outDT    graph.DType
	xin, sin nnF32In
}

func nnBuildQuantize(n *graph.Node, bc *BuildContext) (Kernel, error) {
	qt := &nnQuant{q: nnQParams{axis: n.AttrInt("axis", 1), blockSize: n.AttrInt("block_size", 0)},
		saturate: n.AttrInt("saturate", 1) != 0, outDT: graph.DType(n.AttrInt("output_dtype", 0))}
	if qt.q.blockSize < 0 {
		return nil, fmt.Errorf("block_size must not be negative")
	}
	return qt.quantize, nil
}

func nnBuildDequantize(n *graph.Node, bc *BuildContext) (Kernel, error) {
	qt := &nnQuant{q: nnQParams{axis: n.AttrInt("axis", 1), blockSize: n.AttrInt("block_size", 0)},
		outDT: graph.DType(n.AttrInt("output_dtype", 0))}
	if qt.q.blockSize < 0 {
		return nil, fmt.Errorf("block_size must not be negative")
	}
	return qt.dequantize, nil
}

func (qt *nnQuant) quantize(c *Call) error {
	x, s := c.In[0], c.In[1]
	if x == nil || s == nil {
		return fmt.Errorf("interp: %s: missing x or y_scale", c.Node)
	}
	var zp *runtime.Tensor
	if len(c.In) > 2 {
		zp = c.In[2]
	}
	dt := graph.Uint8
	if qt.outDT != 0 {
		dt = qt.outDT
	}
	if zp != nil {
		dt = zp.DType
		if nnNumel(zp.Shape) != nnNumel(s.Shape) {
			return fmt.Errorf("interp: %s: y_zero_point%v and y_scale%v differ", c.Node, zp.Shape, s.Shape)
		}
	}
	lo, hi, isInt := nnQRange(dt)
	if !isInt && !nnQIsFloat(dt) {
		return unsupportedf("interp: %s: output dtype %s is not supported", c.Node, dt)
	}
	if err := qt.q.setup(x.Shape, s.Shape); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	var xd []float32
	var err error
	if x.DType == graph.Int32 {
		if cap(qt.xin.buf) < x.Len() {
			qt.xin.buf = make([]float32, x.Len())
		}
		xd = qt.xin.buf[:x.Len()]
		for i, v := range x.Int32s() {
			xd[i] = float32(v)
		}
	} else if xd, err = qt.xin.get(x); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	sd, err := qt.sin.get(s)
	if err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	y, err := c.OutZero(0, dt, x.Shape)
	if err != nil {
		return err
	}
	for j, v := range xd {
		k := qt.q.index(j)
		r := v / sd[k]
		if !isInt {
			z := 0.0
			if zp != nil {
				z = nnQGet(zp, k)
			}
			nnQSet(y, j, float64(r)+z, qt.saturate)
			continue
		}
		f := math.RoundToEven(float64(r))
		if zp != nil {
			f += nnQGet(zp, k)
		}
		nnQSet(y, j, min(max(f, lo), hi), true)
	}
	return nil
}

func (qt *nnQuant) dequantize(c *Call) error {
	x, s := c.In[0], c.In[1]
	if x == nil || s == nil {
		return fmt.Errorf("interp: %s: missing x or x_scale", c.Node)
	}
	var zp *runtime.Tensor
	if len(c.In) > 2 {
		zp = c.In[2]
	}
	if _, _, ok := nnQRange(x.DType); !ok && !nnQIsFloat(x.DType) {
		return unsupportedf("interp: %s: x dtype %s is not supported", c.Node, x.DType)
	}
	if zp != nil && (zp.DType != x.DType || nnNumel(zp.Shape) != nnNumel(s.Shape)) {
		return fmt.Errorf("interp: %s: x_zero_point %s%v does not match x (%s) and x_scale%v", c.Node, zp.DType, zp.Shape, x.DType, s.Shape)
	}
	if err := qt.q.setup(x.Shape, s.Shape); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	sd, err := qt.sin.get(s)
	if err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	dt := s.DType
	if qt.outDT != 0 {
		dt = qt.outDT
	}
	y, err := c.Out(0, dt, x.Shape)
	if err != nil {
		return err
	}
	var out nnF32Out
	if dt == graph.Float {
		yd := y.Float32s()
		for j := range yd {
			k := qt.q.index(j)
			v := nnQGet(x, j)
			if zp != nil {
				v -= nnQGet(zp, k)
			}
			yd[j] = float32(v) * sd[k]
		}
		return nil
	}
	if !nnIsFloatish(dt) {
		return unsupportedf("interp: %s: output dtype %s is not supported", c.Node, dt)
	}
	yd := out.get(y)
	for j := range yd {
		k := qt.q.index(j)
		v := nnQGet(x, j)
		if zp != nil {
			v -= nnQGet(zp, k)
		}
		yd[j] = float32(v) * sd[k]
	}
	out.done(y, yd)
	return nil
}

func nnDynQuant(c *Call) error {
	x := c.In[0]
	if x == nil || x.DType != graph.Float {
		return fmt.Errorf("interp: %s: x must be float32", c.Node)
	}
	xd := x.Float32s()[:x.Len()]
	mn, mx := float32(0), float32(0)
	for _, v := range xd {
		mn, mx = min(mn, v), max(mx, v)
	}
	scale := (mx - mn) / 255
	zp := 0.0
	if scale != 0 {
		zp = min(max(math.RoundToEven(float64(0-mn/scale)), 0), 255)
	}
	y, err := c.Out(0, graph.Uint8, x.Shape)
	if err != nil {
		return err
	}
	for i, v := range xd {
		q := zp
		if scale != 0 {
			q = math.RoundToEven(float64(v/scale)) + zp
		}
		y.Raw[i] = byte(min(max(q, 0), 255))
	}
	st, err := c.Out(1, graph.Float, nil)
	if err != nil {
		return err
	}
	st.Float32s()[0] = scale
	zt, err := c.Out(2, graph.Uint8, nil)
	if err != nil {
		return err
	}
	zt.Raw[0] = byte(zp)
	return nil
}

// nnI32 converts an 8-bit tensor minus a zero point into int32s. zp may be
// per-tensor or per-"row" where row(i) gives the zero-point index.
func nnI32(dst []int32, t *runtime.Tensor, zp *runtime.Tensor, row func(i int) int) ([]int32, error) {
	if t.DType != graph.Uint8 && t.DType != graph.Int8 {
		return dst, fmt.Errorf("dtype %s is not uint8/int8", t.DType)
	}
	n := t.Len()
	if cap(dst) < n {
		dst = make([]int32, n)
	}
	dst = dst[:n]
	if zp != nil && zp.DType != t.DType {
		return dst, fmt.Errorf("zero point is %s, data is %s", zp.DType, t.DType)
	}
	zn := 0
	if zp != nil {
		zn = zp.Len()
	}
	for i := range dst {
		v := int32(nnIntAt(t, i))
		if zn == 1 {
			v -= int32(nnIntAt(zp, 0))
		} else if zn > 1 {
			v -= int32(nnIntAt(zp, row(i)))
		}
		dst[i] = v
	}
	return dst, nil
}

// nnIGemm: c[M×N] = a[M×K]·b[K×N], int32 with wrap-around.
func nnIGemm(M, N, K int, a, b, c []int32) {
	for i := 0; i < M; i++ {
		row := c[i*N : (i+1)*N]
		clear(row)
		for k := 0; k < K; k++ {
			av := a[i*K+k]
			if av == 0 {
				continue
			}
			br := b[k*N : (k+1)*N]
			for j := range row {
				row[j] += av * br[j]
			}
		}
	}
}

type nnIntMM struct {
	qlinear    bool
	ai, bi     []int32
	acc        []int32
	shape      []int64
	oB, aB, bB []int64
}

func nnBuildMatMulInteger(n *graph.Node, bc *BuildContext) (Kernel, error) {
	return (&nnIntMM{}).run, nil
}

func nnBuildQLinearMatMul(n *graph.Node, bc *BuildContext) (Kernel, error) {
	return (&nnIntMM{qlinear: true}).run, nil
}

func (mm *nnIntMM) run(c *Call) error {
	in := func(i int) *runtime.Tensor {
		if i < len(c.In) {
			return c.In[i]
		}
		return nil
	}
	var a, b, azp, bzp, as, bs, ys, yzp *runtime.Tensor
	if mm.qlinear {
		a, as, azp, b, bs, bzp, ys, yzp = in(0), in(1), in(2), in(3), in(4), in(5), in(6), in(7)
		if as == nil || bs == nil || ys == nil {
			return fmt.Errorf("interp: %s: missing a scale", c.Node)
		}
	} else {
		a, b, azp, bzp = in(0), in(1), in(2), in(3)
	}
	if a == nil || b == nil || len(a.Shape) == 0 || len(b.Shape) == 0 {
		return fmt.Errorf("interp: %s: A and B must have rank ≥ 1", c.Node)
	}
	var M, K, N, K2 int
	var aB, bB []int64
	if len(a.Shape) == 1 {
		M, K = 1, int(a.Shape[0])
	} else {
		M, K = int(a.Shape[len(a.Shape)-2]), int(a.Shape[len(a.Shape)-1])
		aB = a.Shape[:len(a.Shape)-2]
	}
	if len(b.Shape) == 1 {
		K2, N = int(b.Shape[0]), 1
	} else {
		K2, N = int(b.Shape[len(b.Shape)-2]), int(b.Shape[len(b.Shape)-1])
		bB = b.Shape[:len(b.Shape)-2]
	}
	if K != K2 {
		return fmt.Errorf("interp: %s: inner dims differ: A%v, B%v", c.Node, a.Shape, b.Shape)
	}
	var err error
	if mm.oB, err = nnBroadcastBatch(mm.oB, aB, bB); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	mm.shape = append(mm.shape[:0], mm.oB...)
	if len(a.Shape) > 1 {
		mm.shape = append(mm.shape, int64(M))
	}
	if len(b.Shape) > 1 {
		mm.shape = append(mm.shape, int64(N))
	}
	if err := nnCheckSize("output", mm.shape); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	// a's zero point may be per row (M), b's per column (N).
	if mm.ai, err = nnI32(mm.ai, a, azp, func(i int) int { return (i / K) % M }); err != nil {
		return fmt.Errorf("interp: %s: A: %w", c.Node, err)
	}
	if mm.bi, err = nnI32(mm.bi, b, bzp, func(i int) int { return i % N }); err != nil {
		return fmt.Errorf("interp: %s: B: %w", c.Node, err)
	}
	batch := nnNumel(mm.oB)
	var acc []int32
	var y *runtime.Tensor
	if mm.qlinear {
		if cap(mm.acc) < batch*M*N {
			mm.acc = make([]int32, batch*M*N)
		}
		acc = mm.acc[:batch*M*N]
	} else {
		if y, err = c.Out(0, graph.Int32, mm.shape); err != nil {
			return err
		}
		acc = y.Int32s()
	}
	for bi := 0; bi < batch; bi++ {
		ao := nnBatchOffset(bi, mm.oB, aB) * M * K
		bo := nnBatchOffset(bi, mm.oB, bB) * K * N
		nnIGemm(M, N, K, mm.ai[ao:ao+M*K], mm.bi[bo:bo+K*N], acc[bi*M*N:(bi+1)*M*N])
	}
	if !mm.qlinear {
		return nil
	}
	dt := a.DType
	if yzp != nil {
		dt = yzp.DType
	}
	lo, hi, _ := nnQRange(dt)
	y, err = c.Out(0, dt, mm.shape)
	if err != nil {
		return err
	}
	f16 := as.DType == graph.Float16
	for j, v := range acc {
		i := (j / N) % M
		col := j % N
		asv, err1 := nnF32At(as, i)
		bsv, err2 := nnF32At(bs, col)
		ysv, err3 := nnF32At(ys, 0)
		if err1 != nil || err2 != nil || err3 != nil {
			return fmt.Errorf("interp: %s: bad scale tensors", c.Node)
		}
		m := asv * bsv
		if f16 {
			m = nnRoundF16(m)
			m = nnRoundF16(m / ysv)
		} else {
			m /= ysv
		}
		f := math.RoundToEven(float64(v) * float64(m))
		if yzp != nil {
			f += float64(nnIntAt(yzp, 0))
		}
		nnSetInt(y, j, int64(min(max(f, lo), hi)))
	}
	return nil
}

// nnF32At reads element i of a float scale tensor (element 0 when it has one).
func nnF32At(t *runtime.Tensor, i int) (float32, error) {
	if t.Len() == 1 {
		i = 0
	}
	if i >= t.Len() {
		return 0, fmt.Errorf("index %d out of range", i)
	}
	switch t.DType {
	case graph.Float:
		return t.Float32s()[i], nil
	case graph.Float16:
		return half.Float16ToFloat32(t.Uint16s()[i]), nil
	case graph.BFloat16:
		return half.BFloat16ToFloat32(t.Uint16s()[i]), nil
	case graph.Double:
		return float32(t.Float64s()[i]), nil
	}
	return 0, fmt.Errorf("dtype %s is not a float", t.DType)
}

func nnRoundF16(v float32) float32 { return half.Float16ToFloat32(half.Float32ToFloat16(v)) }

// nnIntConv serves ConvInteger and QLinearConv: im2col into int32 and an
// int32 GEMM per group.
type nnIntConv struct {
	qlinear bool
	win     nnWindow
	group   int
	geo     nnGeom
	shape   []int64
	xi, wi  []int32
	col     []int32
	acc     []int32
}

func nnBuildConvInteger(n *graph.Node, bc *BuildContext) (Kernel, error) {
	win, err := nnParseWindow(n)
	if err != nil {
		return nil, err
	}
	ic := &nnIntConv{qlinear: n.OpType == "QLinearConv", win: win, group: int(n.AttrInt("group", 1))}
	if ic.group <= 0 {
		return nil, fmt.Errorf("group must be positive")
	}
	return ic.run, nil
}

func (ic *nnIntConv) run(c *Call) error {
	in := func(i int) *runtime.Tensor {
		if i < len(c.In) {
			return c.In[i]
		}
		return nil
	}
	var x, w, xzp, wzp, xs, ws, ys, yzp, bias *runtime.Tensor
	if ic.qlinear {
		x, xs, xzp, w, ws, wzp, ys, yzp, bias = in(0), in(1), in(2), in(3), in(4), in(5), in(6), in(7), in(8)
		if xs == nil || ws == nil || ys == nil {
			return fmt.Errorf("interp: %s: missing a scale", c.Node)
		}
	} else {
		x, w, xzp, wzp = in(0), in(1), in(2), in(3)
	}
	if x == nil || w == nil || len(x.Shape) < 3 || len(w.Shape) != len(x.Shape) {
		return fmt.Errorf("interp: %s: X and W must have the same rank ≥ 3", c.Node)
	}
	N, C, M := int(x.Shape[0]), int(x.Shape[1]), int(w.Shape[0])
	G := ic.group
	if C%G != 0 || M%G != 0 || int(w.Shape[1])*G != C {
		return fmt.Errorf("interp: %s: X%v, W%v and group %d do not agree", c.Node, x.Shape, w.Shape, G)
	}
	if err := ic.win.geom(&ic.geo, x.Shape[2:], w.Shape[2:]); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	g := &ic.geo
	ic.shape = nnShapeWith(ic.shape, []int64{int64(N), int64(M)}, g)
	if err := nnCheckSize("output", ic.shape); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	var err error
	if xzp != nil && xzp.Len() != 1 {
		return fmt.Errorf("interp: %s: x_zero_point must be a scalar", c.Node)
	}
	if ic.xi, err = nnI32(ic.xi, x, xzp, nil); err != nil {
		return fmt.Errorf("interp: %s: X: %w", c.Node, err)
	}
	kAll := nnNumel(w.Shape[1:])
	if wzp != nil && wzp.Len() != 1 && wzp.Len() != M {
		return fmt.Errorf("interp: %s: w_zero_point has %d values for %d output channels", c.Node, wzp.Len(), M)
	}
	if ic.wi, err = nnI32(ic.wi, w, wzp, func(i int) int { return i / kAll }); err != nil {
		return fmt.Errorf("interp: %s: W: %w", c.Node, err)
	}
	Cg, Mg := C/G, M/G
	inSz, outSz, kSz := g.inSize(), g.outSize(), g.kSize()
	Kg := Cg * kSz
	if int64(Kg)*int64(outSz) > nnMaxScratch {
		return fmt.Errorf("interp: %s: the im2col buffer (%d×%d) is too large", c.Node, Kg, outSz)
	}
	if cap(ic.col) < Kg*outSz {
		ic.col = make([]int32, Kg*outSz)
	}
	col := ic.col[:Kg*outSz]
	total := N * M * outSz
	var acc []int32
	var y *runtime.Tensor
	if ic.qlinear {
		if cap(ic.acc) < total {
			ic.acc = make([]int32, total)
		}
		acc = ic.acc[:total]
	} else {
		if y, err = c.Out(0, graph.Int32, ic.shape); err != nil {
			return err
		}
		acc = y.Int32s()
	}
	var kc, oc [nnMaxND]int
	for n := 0; n < N; n++ {
		for gr := 0; gr < G; gr++ {
			xg := ic.xi[(n*C+gr*Cg)*inSz:]
			for k := 0; k < Kg; k++ {
				ci, r := k/kSz, k%kSz
				for i := g.nd - 1; i >= 0; i-- {
					kc[i] = r % g.k[i]
					r /= g.k[i]
				}
				row := col[k*outSz : (k+1)*outSz]
				for j := range row {
					q := j
					for i := g.nd - 1; i >= 0; i-- {
						oc[i] = q % g.out[i]
						q /= g.out[i]
					}
					idx, ok := 0, true
					for i := 0; i < g.nd; i++ {
						p := oc[i]*g.s[i] + kc[i]*g.d[i] - g.pb[i]
						if p < 0 || p >= g.in[i] {
							ok = false
							break
						}
						idx = idx*g.in[i] + p
					}
					if ok {
						row[j] = xg[ci*inSz+idx]
					} else {
						row[j] = 0 // padding is the zero point, i.e. 0 after the shift
					}
				}
			}
			nnIGemm(Mg, outSz, Kg, ic.wi[gr*Mg*Kg:(gr+1)*Mg*Kg], col, acc[(n*M+gr*Mg)*outSz:(n*M+(gr+1)*Mg)*outSz])
		}
	}
	if !ic.qlinear {
		return nil
	}
	dt := x.DType
	if yzp != nil {
		dt = yzp.DType
	}
	lo, hi, _ := nnQRange(dt)
	if y, err = c.Out(0, dt, ic.shape); err != nil {
		return err
	}
	if bias != nil && (bias.DType != graph.Int32 || bias.Len() != M) {
		return fmt.Errorf("interp: %s: B must be %d int32 values", c.Node, M)
	}
	xsv, err1 := nnF32At(xs, 0)
	ysv, err2 := nnF32At(ys, 0)
	if err1 != nil || err2 != nil || (ws.Len() != 1 && ws.Len() != M) {
		return fmt.Errorf("interp: %s: bad scale tensors", c.Node)
	}
	for j, v := range acc {
		m := (j / outSz) % M
		if bias != nil {
			v += bias.Int32s()[m]
		}
		wsv, _ := nnF32At(ws, m)
		f := math.RoundToEven(float64(v) * float64(xsv*wsv/ysv))
		if yzp != nil {
			f += float64(nnIntAt(yzp, 0))
		}
		nnSetInt(y, j, int64(min(max(f, lo), hi)))
	}
	return nil
}
