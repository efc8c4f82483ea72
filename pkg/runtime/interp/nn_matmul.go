package interp

import (
	"fmt"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// MatMul (numpy semantics: 1-D promotion, broadcast batch dims) and Gemm
// (transA/transB, alpha, beta, C broadcast), on the packed GEMM for floats
// and plain loops for integers. A constant 2-D B is packed once at Open.

func init() {
	Register("", "MatMul", nnBuildMatMul)
	Register("", "Gemm", nnBuildGemm)
	Register("com.microsoft", "FusedGemm", nnBuildGemm)
	Register("com.microsoft", "FusedMatMul", nnBuildMatMul)
}

type nnMatMul struct {
	alpha          float32
	transA, transB bool
	// packed B (K×N) when B is a constant matrix.
	bPacked []float32
	bK, bN  int
	shape   []int64
	abuf    []float32
	bbuf    []float32
	ybuf    []float32
	aBatch  []int64
	bBatch  []int64
	oBatch  []int64
	gm      nnGemmer
}

func nnBuildMatMul(n *graph.Node, bc *BuildContext) (Kernel, error) {
	mm := &nnMatMul{alpha: 1}
	if n.OpType == "FusedMatMul" {
		mm.alpha = n.AttrFloat("alpha", 1)
		mm.transA = n.AttrInt("transA", 0) != 0
		mm.transB = n.AttrInt("transB", 0) != 0
		if n.AttrInt("transBatchA", 0) != 0 || n.AttrInt("transBatchB", 0) != 0 {
			return nil, unsupportedf("transBatchA/transBatchB are not supported")
		}
	}
	if b := bc.Const(1); b != nil && b.DType == graph.Float && len(b.Shape) == 2 {
		K, N := int(b.Shape[0]), int(b.Shape[1])
		rs, cs := N, 1
		if mm.transB {
			K, N = N, K
			rs, cs = 1, K
		}
		mm.bK, mm.bN = K, N
		mm.bPacked = make([]float32, nnPackedLenB(K, N))
		nnPackB(mm.bPacked, b.Float32s(), rs, cs, K, N)
	}
	return mm.run, nil
}

// nnBroadcastBatch broadcasts two batch shapes (numpy rules).
func nnBroadcastBatch(dst, a, b []int64) ([]int64, error) {
	r := max(len(a), len(b))
	dst = dst[:0]
	for i := 0; i < r; i++ {
		da, db := int64(1), int64(1)
		if j := i - (r - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (r - len(b)); j >= 0 {
			db = b[j]
		}
		switch {
		case da == db, db == 1:
			dst = append(dst, da)
		case da == 1:
			dst = append(dst, db)
		default:
			return dst, fmt.Errorf("batch dims %v and %v do not broadcast", a, b)
		}
	}
	return dst, nil
}

// nnBatchOffset maps output batch index bi to the matrix index of an
// operand with batch shape sub (right-aligned, broadcast).
func nnBatchOffset(bi int, out, sub []int64) int {
	off, mul := 0, 1
	for i := len(out) - 1; i >= 0; i-- {
		d := int(out[i])
		c := bi % d
		bi /= d
		j := i - (len(out) - len(sub))
		if j < 0 {
			continue
		}
		if sub[j] != 1 {
			off += c * mul
		}
		mul *= int(sub[j])
	}
	return off
}

func (mm *nnMatMul) run(c *Call) error {
	a, b := c.In[0], c.In[1]
	if a == nil || b == nil {
		return fmt.Errorf("interp: %s: missing input", c.Node)
	}
	if a.DType != b.DType {
		return fmt.Errorf("interp: %s: A is %s, B is %s", c.Node, a.DType, b.DType)
	}
	if len(a.Shape) == 0 || len(b.Shape) == 0 {
		return fmt.Errorf("interp: %s: MatMul inputs must have rank ≥ 1, got %v and %v", c.Node, a.Shape, b.Shape)
	}
	as, bs := a.Shape, b.Shape
	var M, K, N, K2 int
	var aB, bB []int64
	if len(as) == 1 {
		M, K = 1, int(as[0])
	} else {
		M, K = int(as[len(as)-2]), int(as[len(as)-1])
		aB = as[:len(as)-2]
		if mm.transA {
			M, K = K, M
		}
	}
	if len(bs) == 1 {
		K2, N = int(bs[0]), 1
	} else {
		K2, N = int(bs[len(bs)-2]), int(bs[len(bs)-1])
		bB = bs[:len(bs)-2]
		if mm.transB {
			K2, N = N, K2
		}
	}
	if K != K2 {
		return fmt.Errorf("interp: %s: inner dims differ: A%v, B%v", c.Node, as, bs)
	}
	var err error
	if mm.oBatch, err = nnBroadcastBatch(mm.oBatch, aB, bB); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	mm.shape = append(mm.shape[:0], mm.oBatch...)
	if len(as) > 1 {
		mm.shape = append(mm.shape, int64(M))
	}
	if len(bs) > 1 {
		mm.shape = append(mm.shape, int64(N))
	}
	if err := nnCheckSize("output", mm.shape); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	y, err := c.Out(0, a.DType, mm.shape)
	if err != nil {
		return err
	}
	batch := nnNumel(mm.oBatch)
	if !nnIsFloatish(a.DType) {
		return nnMatMulInt(c, a, b, y, M, N, K, batch, mm.oBatch, aB, bB, mm.transA, mm.transB)
	}
	var ad, bd, yd []float32
	if ad, mm.abuf, err = nnToF32(a, mm.abuf); err != nil {
		return err
	}
	if bd, mm.bbuf, err = nnToF32(b, mm.bbuf); err != nil {
		return err
	}
	if a.DType == graph.Float {
		yd = y.Float32s()
	} else {
		if cap(mm.ybuf) < y.Len() {
			mm.ybuf = make([]float32, y.Len())
		}
		yd = mm.ybuf[:y.Len()]
	}
	if mm.gm.par == nil {
		mm.gm.init(c.Parallel)
	}
	gm := &mm.gm
	ars, acs := K, 1
	if mm.transA {
		ars, acs = 1, M
	}
	brs, bcs := N, 1
	if mm.transB {
		brs, bcs = 1, K
	}
	bConst := mm.bPacked != nil && len(bs) == 2 && mm.bK == K && mm.bN == N && b.DType == graph.Float
	// B shared by every batch and A contiguous row-major: one tall GEMM.
	if nnNumel(bB) == 1 && !mm.transA && len(as) >= 2 {
		Mt := batch * M
		bp := mm.bPacked
		if !bConst {
			bp = c.ScratchF32(0, nnPackedLenB(K, N))
			gm.packB(bp, bd, brs, bcs, K, N)
		}
		ap := c.ScratchF32(1, nnPackedLenA(Mt, K))
		if nnNumel(aB) == batch {
			perf2PackA(gm, ap, ad, K, 1, Mt, K, mm.alpha)
			gm.gemm(Mt, N, K, ap, bp, yd, N, false)
		} else {
			// A's batch broadcasts: multiply per batch.
			ap = c.ScratchF32(1, nnPackedLenA(M, K))
			for bi := 0; bi < batch; bi++ {
				ao := nnBatchOffset(bi, mm.oBatch, aB) * M * K
				perf2PackA(gm, ap, ad[ao:], ars, acs, M, K, mm.alpha)
				gm.gemm(M, N, K, ap, bp, yd[bi*M*N:], N, false)
			}
		}
	} else {
		ap := c.ScratchF32(1, nnPackedLenA(M, K))
		bp := c.ScratchF32(0, nnPackedLenB(K, N))
		for bi := 0; bi < batch; bi++ {
			ao := nnBatchOffset(bi, mm.oBatch, aB) * M * K
			bo := nnBatchOffset(bi, mm.oBatch, bB) * K * N
			perf2PackA(gm, ap, ad[ao:], ars, acs, M, K, mm.alpha)
			if bConst {
				bp = mm.bPacked
			} else {
				gm.packB(bp, bd[bo:], brs, bcs, K, N)
			}
			gm.gemm(M, N, K, ap, bp, yd[bi*M*N:], N, false)
		}
	}
	if a.DType != graph.Float {
		nnFromF32(y, yd)
	}
	return nil
}

// nnMatMulInt multiplies integer matrices with wrap-around arithmetic.
func nnMatMulInt(c *Call, a, b, y *runtime.Tensor, M, N, K, batch int, oB, aB, bB []int64, tA, tB bool) error {
	get := func(t *runtime.Tensor) (func(i int) int64, error) {
		switch t.DType {
		case graph.Int32, graph.Int64, graph.Uint32, graph.Uint64, graph.Int8, graph.Uint8, graph.Int16, graph.Uint16:
			if t.DType == graph.Uint64 {
				s := t.Int64s()
				return func(i int) int64 { return s[i] }, nil
			}
			return func(i int) int64 { return nnIntAt(t, i) }, nil
		}
		return nil, unsupportedf("interp: %s: dtype %s is not supported", c.Node, t.DType)
	}
	ga, err := get(a)
	if err != nil {
		return err
	}
	gb, err := get(b)
	if err != nil {
		return err
	}
	for bi := 0; bi < batch; bi++ {
		ao := nnBatchOffset(bi, oB, aB) * M * K
		bo := nnBatchOffset(bi, oB, bB) * K * N
		for i := 0; i < M; i++ {
			for j := 0; j < N; j++ {
				var s int64
				for k := 0; k < K; k++ {
					ai := ao + i*K + k
					if tA {
						ai = ao + k*M + i
					}
					bj := bo + k*N + j
					if tB {
						bj = bo + j*K + k
					}
					s += ga(ai) * gb(bj)
				}
				nnSetInt(y, bi*M*N+i*N+j, s)
			}
		}
	}
	return nil
}

func nnSetInt(t *runtime.Tensor, i int, v int64) {
	switch t.DType {
	case graph.Uint8, graph.Int8:
		t.Raw[i] = byte(v)
	case graph.Int16, graph.Uint16:
		t.Uint16s()[i] = uint16(v)
	case graph.Int32, graph.Uint32:
		t.Int32s()[i] = int32(v)
	case graph.Int64, graph.Uint64:
		t.Int64s()[i] = v
	}
}

type nnGemmOp struct {
	alpha, beta    float32
	transA, transB bool
	act            nnAct
	bPacked        []float32
	bK, bN         int
	shape          []int64
	abuf, bbuf     []float32
	cbuf, ybuf     []float32
	gm             nnGemmer
}

func nnBuildGemm(n *graph.Node, bc *BuildContext) (Kernel, error) {
	g := &nnGemmOp{
		alpha:  n.AttrFloat("alpha", 1),
		beta:   n.AttrFloat("beta", 1),
		transA: n.AttrInt("transA", 0) != 0,
		transB: n.AttrInt("transB", 0) != 0,
	}
	if n.OpType == "FusedGemm" {
		var err error
		if g.act, err = nnParseAct(n); err != nil {
			return nil, err
		}
	}
	if b := bc.Const(1); b != nil && b.DType == graph.Float && len(b.Shape) == 2 {
		K, N := int(b.Shape[0]), int(b.Shape[1])
		rs, cs := N, 1
		if g.transB {
			K, N = N, K
			rs, cs = 1, K
		}
		g.bK, g.bN = K, N
		g.bPacked = make([]float32, nnPackedLenB(K, N))
		nnPackB(g.bPacked, b.Float32s(), rs, cs, K, N)
	}
	return g.run, nil
}

func (g *nnGemmOp) run(c *Call) error {
	a, b := c.In[0], c.In[1]
	var cc *runtime.Tensor
	if len(c.In) > 2 {
		cc = c.In[2]
	}
	if a == nil || b == nil {
		return fmt.Errorf("interp: %s: missing input", c.Node)
	}
	if len(a.Shape) != 2 || len(b.Shape) != 2 {
		return fmt.Errorf("interp: %s: A%v and B%v must be matrices", c.Node, a.Shape, b.Shape)
	}
	if a.DType != b.DType || (cc != nil && cc.DType != a.DType) {
		return fmt.Errorf("interp: %s: inputs have different dtypes", c.Node)
	}
	M, K := int(a.Shape[0]), int(a.Shape[1])
	ars, acs := K, 1
	if g.transA {
		M, K = K, M
		ars, acs = 1, M
	}
	K2, N := int(b.Shape[0]), int(b.Shape[1])
	brs, bcs := N, 1
	if g.transB {
		K2, N = N, K2
		brs, bcs = 1, K2
	}
	if K != K2 {
		return fmt.Errorf("interp: %s: inner dims differ: A%v (transA %v), B%v (transB %v)", c.Node, a.Shape, g.transA, b.Shape, g.transB)
	}
	// C broadcasts unidirectionally to (M, N).
	var cRS, cCS int
	if cc != nil {
		cs := cc.Shape
		if len(cs) > 2 {
			return fmt.Errorf("interp: %s: C%v has rank > 2", c.Node, cs)
		}
		cm, cn := 1, 1
		if len(cs) == 2 {
			cm, cn = int(cs[0]), int(cs[1])
		} else if len(cs) == 1 {
			cn = int(cs[0])
		}
		if (cm != 1 && cm != M) || (cn != 1 && cn != N) {
			return fmt.Errorf("interp: %s: C%v does not broadcast to [%d %d]", c.Node, cs, M, N)
		}
		if cm != 1 {
			cRS = cn
		}
		if cn != 1 {
			cCS = 1
		}
	}
	g.shape = append(g.shape[:0], int64(M), int64(N))
	if err := nnCheckSize("output", g.shape); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	y, err := c.Out(0, a.DType, g.shape)
	if err != nil {
		return err
	}
	if !nnIsFloatish(a.DType) {
		return g.runInt(c, a, b, cc, y, M, N, K, cRS, cCS)
	}
	var ad, bd, cd, yd []float32
	if ad, g.abuf, err = nnToF32(a, g.abuf); err != nil {
		return err
	}
	if bd, g.bbuf, err = nnToF32(b, g.bbuf); err != nil {
		return err
	}
	if cc != nil {
		if cd, g.cbuf, err = nnToF32(cc, g.cbuf); err != nil {
			return err
		}
	}
	if a.DType == graph.Float {
		yd = y.Float32s()
	} else {
		if cap(g.ybuf) < y.Len() {
			g.ybuf = make([]float32, y.Len())
		}
		yd = g.ybuf[:y.Len()]
	}
	accum := false
	if cd != nil && g.beta != 0 {
		for i := 0; i < M; i++ {
			row := yd[i*N : (i+1)*N]
			for j := range row {
				row[j] = g.beta * cd[i*cRS+j*cCS]
			}
		}
		accum = true
	}
	if g.gm.par == nil {
		g.gm.init(c.Parallel)
	}
	gm := &g.gm
	bp := g.bPacked
	if bp == nil || g.bK != K || g.bN != N || b.DType != graph.Float {
		if M == 1 && bcs == 1 {
			// Vector × matrix with B not prepacked: no packing at all.
			nnGemv(yd, ad, acs, bd, brs, N, K, g.alpha, accum)
			g.act.apply(yd)
			if a.DType != graph.Float {
				nnFromF32(y, yd)
			}
			return nil
		}
		bp = c.ScratchF32(0, nnPackedLenB(K, N))
		gm.packB(bp, bd, brs, bcs, K, N)
	}
	ap := c.ScratchF32(1, nnPackedLenA(M, K))
	perf2PackA(gm, ap, ad, ars, acs, M, K, g.alpha)
	gm.gemm(M, N, K, ap, bp, yd, N, accum)
	g.act.apply(yd)
	if a.DType != graph.Float {
		nnFromF32(y, yd)
	}
	return nil
}

func (g *nnGemmOp) runInt(c *Call, a, b, cc, y *runtime.Tensor, M, N, K, cRS, cCS int) error {
	switch a.DType {
	case graph.Int32, graph.Int64, graph.Uint32, graph.Uint64:
	default:
		return unsupportedf("interp: %s: dtype %s is not supported", c.Node, a.DType)
	}
	al, be := int64(g.alpha), int64(g.beta)
	for i := 0; i < M; i++ {
		for j := 0; j < N; j++ {
			var s int64
			for k := 0; k < K; k++ {
				ai := i*int(a.Shape[1]) + k
				if g.transA {
					ai = k*int(a.Shape[1]) + i
				}
				bj := k*int(b.Shape[1]) + j
				if g.transB {
					bj = j*int(b.Shape[1]) + k
				}
				s += nnIntAt(a, ai) * nnIntAt(b, bj)
			}
			s *= al
			if cc != nil {
				s += be * nnIntAt(cc, i*cRS+j*cCS)
			}
			nnSetInt(y, i*N+j, s)
		}
	}
	return nil
}
