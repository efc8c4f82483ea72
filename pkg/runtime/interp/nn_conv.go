package interp

import (
	"fmt"
	"math"
	"sync/atomic"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Conv: im2col + packed GEMM (im2col writes straight into the packed B
// layout), the input itself as B for 1×1 stride-1 unpadded kernels, and a
// direct loop for depthwise convolutions (group == channels, one output
// channel per group). Constant weights are packed per group at Open.

func init() {
	Register("", "Conv", nnBuildConv)
	Register("com.microsoft", "FusedConv", nnBuildConv)
}

type nnConv struct {
	node    *graph.Node
	win     nnWindow
	group   int
	act     nnAct
	packed  [][]float32 // per group, when W is constant
	packedT [][]float32 // Wᵀ packed as a B operand per group (perf_smalln.go), made on first use
	snIdx   perfSmallNIndex
	wShape  []int64
	geo     nnGeom
	shape   []int64
	sIn     []int64
	sK      []int64
	wbuf    []float32
	xbuf    []float32
	bbuf    []float32
	ybuf    []float32
	gm      nnGemmer
	threads int
	// im2col / depthwise arguments, read by closures made once
	icDst, icX []float32
	icCg, icKg int
	icOut      int
	icFn       func(lo, hi int)
	// icBuf holds one im2col row buffer per worker; icNext hands out the
	// slots (a worker past the last slot takes the per-value path).
	icBuf    []float32
	icNext   atomic.Int32
	dwX, dwW []float32
	dwB, dwY []float32
	dwFn     func(lo, hi int)
	// dwPad holds one padded plane per worker (perf_dw.go); dwNext hands
	// out the slots.
	dwPad  []float32
	dwNext atomic.Int32
	pd     perfDirect // direct stride-1 path (perf_direct.go)
	// hasZ is set while FusedConv's Z input is present; actDone when
	// compute already applied act.
	hasZ, actDone bool
}

func nnBuildConv(n *graph.Node, bc *BuildContext) (Kernel, error) {
	cv, err := nnNewConv(n, bc)
	if err != nil {
		return nil, err
	}
	return cv.run, nil
}

// nnConvBuilder builds a Conv whose output goes through act (Open-time
// fusion, perf_fuse.go).
func nnConvBuilder(act nnAct) Builder {
	return func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		cv, err := nnNewConv(n, bc)
		if err != nil {
			return nil, err
		}
		if cv.act.kind == "" {
			cv.act = act
		}
		return cv.run, nil
	}
}

func nnNewConv(n *graph.Node, bc *BuildContext) (*nnConv, error) {
	win, err := nnParseWindow(n)
	if err != nil {
		return nil, err
	}
	cv := &nnConv{node: n, win: win, group: int(n.AttrInt("group", 1))}
	if cv.group <= 0 {
		return nil, fmt.Errorf("group %d must be positive", cv.group)
	}
	if n.OpType == "FusedConv" {
		if cv.act, err = nnParseAct(n); err != nil {
			return nil, err
		}
	}
	if w := bc.Const(1); w != nil && w.DType == graph.Float && len(w.Shape) >= 3 && !cv.depthwise(w.Shape) {
		if err := cv.prepack(w); err != nil {
			return nil, err
		}
	}
	return cv, nil
}

func (cv *nnConv) depthwise(ws []int64) bool {
	// W is (M, C/group, k...); depthwise when C/group == 1 and M == group.
	return ws[1] == 1 && int(ws[0]) == cv.group && len(ws) <= 4
}

func (cv *nnConv) prepack(w *runtime.Tensor) error {
	M := int(w.Shape[0])
	if M%cv.group != 0 {
		return fmt.Errorf("%d output channels are not divisible by group %d", M, cv.group)
	}
	Mg := M / cv.group
	Kg := nnNumel(w.Shape[1:])
	wd := w.Float32s()
	cv.packed = make([][]float32, cv.group)
	for g := 0; g < cv.group; g++ {
		p := make([]float32, nnPackedLenA(Mg, Kg))
		nnPackA(p, wd[g*Mg*Kg:], Kg, 1, Mg, Kg, 1)
		cv.packed[g] = p
	}
	cv.wShape = append([]int64{}, w.Shape...)
	return nil
}

func (cv *nnConv) run(c *Call) error {
	x, w, b := c.In[0], c.In[1], (*runtime.Tensor)(nil)
	if len(c.In) > 2 {
		b = c.In[2]
	}
	var z *runtime.Tensor
	if len(c.In) > 3 {
		z = c.In[3] // FusedConv's Sum input
	}
	if x == nil || w == nil {
		return fmt.Errorf("interp: %s: missing X or W", c.Node)
	}
	if !nnIsFloatish(x.DType) || x.DType != w.DType {
		return fmt.Errorf("interp: %s: X is %s and W is %s, want float tensors of one dtype", c.Node, x.DType, w.DType)
	}
	if len(x.Shape) < 3 || len(w.Shape) != len(x.Shape) {
		return fmt.Errorf("interp: %s: X%v and W%v must have the same rank ≥ 3", c.Node, x.Shape, w.Shape)
	}
	N, C, M := int(x.Shape[0]), int(x.Shape[1]), int(w.Shape[0])
	G := cv.group
	if C%G != 0 || M%G != 0 || int(w.Shape[1])*G != C {
		return fmt.Errorf("interp: %s: X%v, W%v and group %d do not agree", c.Node, x.Shape, w.Shape, G)
	}
	if cv.win.kernel != nil {
		for i, k := range cv.win.kernel {
			if i+2 >= len(w.Shape) || w.Shape[i+2] != k {
				return fmt.Errorf("interp: %s: kernel_shape %v does not match W%v", c.Node, cv.win.kernel, w.Shape)
			}
		}
	}
	if err := cv.win.geom(&cv.geo, x.Shape[2:], w.Shape[2:]); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	if b != nil && (b.DType != x.DType || b.Len() != M) {
		return fmt.Errorf("interp: %s: B%v (%s) must hold %d values of %s", c.Node, b.Shape, b.DType, M, x.DType)
	}
	g := &cv.geo
	cv.shape = nnShapeWith(cv.shape, []int64{int64(N), int64(M)}, g)
	if err := nnCheckSize("output", cv.shape); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	if z != nil && (z.DType != x.DType || !nnSameShape(z.Shape, cv.shape)) {
		return fmt.Errorf("interp: %s: Z%v must have the output shape %v", c.Node, z.Shape, cv.shape)
	}
	if kg := int64(w.Shape[1]) * int64(g.kSize()); kg*int64(g.outSize()) > nnMaxScratch {
		return fmt.Errorf("interp: %s: the im2col buffer (%d×%d) is too large", c.Node, kg, g.outSize())
	}
	y, err := c.Out(0, x.DType, cv.shape)
	if err != nil {
		return err
	}
	var xd, wd, bd, yd []float32
	if xd, cv.xbuf, err = nnToF32(x, cv.xbuf); err != nil {
		return err
	}
	if wd, cv.wbuf, err = nnToF32(w, cv.wbuf); err != nil {
		return err
	}
	if b != nil {
		if bd, cv.bbuf, err = nnToF32(b, cv.bbuf); err != nil {
			return err
		}
	}
	if x.DType == graph.Float {
		yd = y.Float32s()
	} else {
		if cap(cv.ybuf) < y.Len() {
			cv.ybuf = make([]float32, y.Len())
		}
		yd = cv.ybuf[:y.Len()]
	}
	cv.hasZ, cv.actDone = z != nil, false
	cv.compute(c, N, C, M, xd, wd, bd, yd, w)
	if z != nil {
		zd, _, err := nnToF32(z, nil)
		if err != nil {
			return err
		}
		for i := range yd {
			yd[i] += zd[i]
		}
	}
	if !cv.actDone {
		cv.act.apply(yd)
	}
	if x.DType != graph.Float {
		nnFromF32(y, yd)
	}
	return nil
}

func nnSameShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (cv *nnConv) compute(c *Call, N, C, M int, xd, wd, bd, yd []float32, w *runtime.Tensor) {
	g := &cv.geo
	g.to2D()
	if cv.gm.par == nil {
		cv.gm.init(c.Parallel)
	}
	cv.ensureFns(c)
	G := cv.group
	Cg, Mg := C/G, M/G
	inSz, outSz, kSz := g.inSize(), g.outSize(), g.kSize()
	Kg := Cg * kSz
	if Cg == 1 && Mg == 1 && g.nd == 2 {
		cv.depthwise2D(c, N*C, xd, wd, bd, yd)
		return
	}
	pointwise := true
	for i := 0; i < g.nd; i++ {
		if g.k[i] != 1 || g.s[i] != 1 || g.pb[i] != 0 || g.pe[i] != 0 {
			pointwise = false
		}
	}
	usePacked := cv.packed != nil && nnSameShape(cv.wShape, w.Shape) && w.DType == graph.Float
	if usePacked && perfSmallNFits(g, Cg, outSz, Mg) {
		lo, hi, clamp := cv.act.clamp()
		clamp = clamp && !cv.hasZ && cv.act.kind != ""
		cv.perfSmallN(c, N, C, M, xd, wd, bd, yd, Cg, Mg, Kg, lo, hi, clamp)
		cv.actDone = clamp
		return
	}
	if usePacked && perfDirectFits(g, Cg, Mg) {
		for n := 0; n < N; n++ {
			for gr := 0; gr < G; gr++ {
				xg := xd[(n*C+gr*Cg)*inSz : (n*C+(gr+1)*Cg)*inSz]
				yg := yd[(n*M+gr*Mg)*outSz : (n*M+(gr+1)*Mg)*outSz]
				var bg []float32
				if bd != nil {
					bg = bd[gr*Mg : (gr+1)*Mg]
				}
				cv.perfDirectConv(c, xg, cv.packed[gr], yg, bg, Cg, Mg, Kg)
			}
		}
		return
	}
	lb := nnPackedLenB(Kg, outSz)
	bp := c.ScratchF32(0, lb)
	var ap []float32
	if !usePacked {
		ap = c.ScratchF32(1, nnPackedLenA(Mg, Kg))
	}
	if g.nd == 2 {
		cv.icBuf = c.ScratchF32(2, max(1, cv.threads)*nnRoundUp(outSz, nnNR))
	}
	gm := &cv.gm
	lo, hi, doClamp := cv.act.clamp()
	if cv.hasZ || cv.act.kind == "" || !doClamp {
		doClamp = false
		lo, hi = float32(math.Inf(-1)), float32(math.Inf(1))
	}
	for n := 0; n < N; n++ {
		for gr := 0; gr < G; gr++ {
			xg := xd[(n*C+gr*Cg)*inSz : (n*C+(gr+1)*Cg)*inSz]
			if pointwise {
				gm.packB(bp, xg, outSz, 1, Kg, outSz)
			} else {
				cv.im2col(bp, xg, Cg, Kg, outSz)
			}
			a := ap
			if usePacked {
				a = cv.packed[gr]
			} else {
				gm.packA(ap, wd[gr*Mg*Kg:], Kg, 1, Mg, Kg, 1)
			}
			yg := yd[(n*M+gr*Mg)*outSz : (n*M+(gr+1)*Mg)*outSz]
			gm.gemm(Mg, outSz, Kg, a, bp, yg, outSz, false)
			// Bias and a clamp-type activation in one vectorised pass
			// over the rows the GEMM just wrote (perf_act.go).
			if bd != nil || doClamp {
				for m := 0; m < Mg; m++ {
					row := yg[m*outSz : (m+1)*outSz]
					var v float32
					if bd != nil {
						v = bd[gr*Mg+m]
					}
					perfBiasClamp(row, row, v, lo, hi)
				}
			}
		}
	}
	if doClamp {
		cv.actDone = true
	}
}

// im2col writes the im2col matrix of one group's input channels (Kg =
// Cg·kernel rows, outSz columns) straight into packed-B layout, using the
// closure made once in ensureFns.
func (cv *nnConv) im2col(dst, x []float32, Cg, Kg, outSz int) {
	cv.icDst, cv.icX, cv.icCg, cv.icKg, cv.icOut = dst, x, Cg, Kg, outSz
	cv.icNext.Store(0)
	if Kg*outSz < 1<<15 || cv.threads <= 1 {
		cv.icFn(0, Kg)
	} else {
		cv.gm.par(Kg, cv.icFn)
	}
	cv.icDst, cv.icX = nil, nil
}

func (cv *nnConv) ensureFns(c *Call) {
	if cv.icFn != nil {
		return
	}
	cv.threads = c.Threads()
	cv.icFn = func(lo, hi int) {
		npad := nnRoundUp(cv.icOut, nnNR)
		var buf []float32
		if slot := int(cv.icNext.Add(1)) - 1; (slot+1)*npad <= len(cv.icBuf) {
			buf = cv.icBuf[slot*npad : (slot+1)*npad]
		}
		nnIm2colRows(cv.icDst, cv.icX, buf, &cv.geo, cv.icKg, cv.icOut, lo, hi)
	}
	cv.dwFn = func(lo, hi int) { cv.depthwiseRows(lo, hi) }
}

// nnIm2colRows writes im2col rows [lo, hi); buf (npad floats, or nil for
// the per-value path) is the worker's row buffer for 2-D convolutions.
func nnIm2colRows(dst, x, buf []float32, g *nnGeom, Kg, outSz, lo, hi int) {
	npad := nnRoundUp(outSz, nnNR)
	kSz := g.kSize()
	inSz := g.inSize()
	var kc [nnMaxND]int
	var oc [nnMaxND]int
	for k := lo; k < hi; k++ {
		pc := k / nnKC * nnKC
		kcn := min(nnKC, Kg-pc)
		base := npad*pc + (k-pc)*nnNR
		sstride := nnNR * kcn
		ci, r := k/kSz, k%kSz
		xc := x[ci*inSz : (ci+1)*inSz]
		for i := g.nd - 1; i >= 0; i-- {
			kc[i] = r % g.k[i]
			r /= g.k[i]
		}
		put := func(j int, v float32) { dst[base+(j/nnNR)*sstride+(j%nnNR)] = v }
		run := func(j int, src []float32, n int) { nnPackedRun(dst, base, sstride, j, src, n) }
		if g.nd == 2 && len(buf) >= npad {
			nnIm2col2DRow(dst, xc, buf, g, kc[0], kc[1], base, sstride, npad)
			continue
		}
		if g.nd == 2 {
			OH, OW, H, W := g.out[0], g.out[1], g.in[0], g.in[1]
			offH := kc[0]*g.d[0] - g.pb[0]
			offW := kc[1]*g.d[1] - g.pb[1]
			sh, sw := g.s[0], g.s[1]
			owLo, owHi := nnValidCols(offW, sw, W, OW)
			j := 0
			for oh := 0; oh < OH; oh++ {
				ih := oh*sh + offH
				if ih < 0 || ih >= H {
					run(j, nil, OW)
					j += OW
					continue
				}
				row := xc[ih*W : (ih+1)*W]
				run(j, nil, owLo)
				j += owLo
				if sw == 1 && owLo < owHi { // empty: offW may be far outside the row
					run(j, row[owLo+offW:owHi+offW], owHi-owLo)
					j += owHi - owLo
				} else {
					for ow := owLo; ow < owHi; ow++ {
						put(j, row[ow*sw+offW])
						j++
					}
				}
				run(j, nil, OW-owHi)
				j += OW - owHi
			}
		} else {
			for j := 0; j < outSz; j++ {
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
					put(j, xc[idx])
				} else {
					put(j, 0)
				}
			}
		}
		run(outSz, nil, npad-outSz)
	}
}

// nnValidCols returns the output columns [lo, hi) whose input column
// ow*sw+off lies in [0, W), for OW output columns.
func nnValidCols(off, sw, W, OW int) (lo, hi int) {
	if off < 0 {
		lo = (-off + sw - 1) / sw
	}
	if W-off > 0 {
		hi = min(OW, (W-off+sw-1)/sw)
	}
	return min(lo, hi), hi
}

// nnIm2col2DRow writes one im2col row (kernel tap ki,kj of one input
// channel xc) of a 2-D convolution into packed-B layout: output position j
// goes to dst[base+(j/nnNR)*sstride+j%nnNR]. The row is first built
// contiguously in buf (long copies, no per-value index arithmetic), then
// moved strip by strip as fixed-size blocks; buf must hold npad floats.
func nnIm2col2DRow(dst, xc, buf []float32, g *nnGeom, ki, kj, base, sstride, npad int) {
	OH, OW, H, W := g.out[0], g.out[1], g.in[0], g.in[1]
	offH := ki*g.d[0] - g.pb[0]
	offW := kj*g.d[1] - g.pb[1]
	sh, sw := g.s[0], g.s[1]
	owLo, owHi := nnValidCols(offW, sw, W, OW)
	row := buf[:npad]
	j := 0
	for oh := 0; oh < OH; oh++ {
		out := row[j : j+OW]
		j += OW
		ih := oh*sh + offH
		if ih < 0 || ih >= H {
			clear(out)
			continue
		}
		src := xc[ih*W : (ih+1)*W]
		for q := 0; q < owLo; q++ {
			out[q] = 0
		}
		if sw == 1 && owLo < owHi { // empty: offW may be far outside the row
			copy(out[owLo:owHi], src[owLo+offW:owHi+offW])
		} else {
			x := owLo*sw + offW
			for ow := owLo; ow < owHi; ow++ {
				out[ow] = src[x]
				x += sw
			}
		}
		for q := owHi; q < OW; q++ {
			out[q] = 0
		}
	}
	clear(row[j:])
	nnCopyStrips(dst[base:], sstride, row)
}

// nnMaxScratch bounds the float32 scratch one node may ask for (im2col and
// packed panels), so absurd shapes fail with an error instead of an
// allocation panic.
const nnMaxScratch = 1 << 31

// nnDWMaxK bounds the kernel height of the row-wise depthwise path.
const nnDWMaxK = 16

// nnPackedRun copies src[:n] (zeros when src is nil) to the packed-B
// positions j, j+1, ... of one K row (base = the row's offset in strip 0,
// sstride = the distance between strips), one strip-contiguous chunk at a
// time.
func nnPackedRun(dst []float32, base, sstride, j int, src []float32, n int) {
	for n > 0 {
		s, o := j/nnNR, j%nnNR
		m := min(n, nnNR-o)
		d := dst[base+s*sstride+o : base+s*sstride+o+m]
		if src == nil {
			clear(d)
		} else {
			copy(d, src[:m])
			src = src[m:]
		}
		j += m
		n -= m
	}
}

// depthwise2D convolves each of NC planes with its own kernel.
func (cv *nnConv) depthwise2D(c *Call, NC int, xd, wd, bd, yd []float32) {
	g := &cv.geo
	cv.dwX, cv.dwW, cv.dwB, cv.dwY = xd, wd, bd, yd
	cv.dwPad = nil
	if padSz, ok := perfDWFits(g); ok {
		cv.dwPad = c.ScratchF32(5, max(1, cv.threads)*padSz)
		cv.dwNext.Store(0)
	}
	if NC*g.out[0]*g.out[1]*g.k[0]*g.k[1] < 1<<15 || cv.threads <= 1 {
		cv.dwFn(0, NC)
	} else {
		cv.gm.par(NC, cv.dwFn)
	}
	cv.dwX, cv.dwW, cv.dwB, cv.dwY = nil, nil, nil, nil
}

func (cv *nnConv) depthwiseRows(lo, hi int) {
	g := &cv.geo
	C := cv.group
	xd, wd, bd, yd := cv.dwX, cv.dwW, cv.dwB, cv.dwY
	H, W, OH, OW := g.in[0], g.in[1], g.out[0], g.out[1]
	KH, KW := g.k[0], g.k[1]
	sh, sw := g.s[0], g.s[1]
	var rows [nnDWMaxK][]float32
	var wrow [nnDWMaxK][]float32
	// Stride 1 only: for stride 2 the per-tap passes below measured faster.
	fast := sw == 1 && KH <= nnDWMaxK
	var pad []float32
	if padSz, ok := perfDWFits(g); ok && cv.dwPad != nil {
		if slot := int(cv.dwNext.Add(1)) - 1; (slot+1)*padSz <= len(cv.dwPad) {
			pad = cv.dwPad[slot*padSz : (slot+1)*padSz]
		}
	}
	for p := lo; p < hi; p++ {
		ch := p % C
		xp := xd[p*H*W : (p+1)*H*W]
		yp := yd[p*OH*OW : (p+1)*OH*OW]
		var bias float32
		if bd != nil {
			bias = bd[ch]
		}
		wk := wd[ch*KH*KW : (ch+1)*KH*KW]
		if pad != nil {
			perfDWPlane(g, xp, yp, wk, pad, bias)
			continue
		}
		if fast {
			// Row by row: the interior columns (all taps inside the
			// input) sum every tap in registers, 8 outputs at a time.
			offW0 := -g.pb[1]
			owA := 0
			if offW0 < 0 {
				owA = (-offW0 + sw - 1) / sw
			}
			owB := 0
			if lim := W - offW0 - (KW-1)*g.d[1]; lim > 0 {
				owB = min(OW, (lim+sw-1)/sw)
			}
			owA = min(owA, OW)
			if owB < owA {
				owB = owA
			}
			for oh := 0; oh < OH; oh++ {
				n := 0
				for ki := 0; ki < KH; ki++ {
					ih := oh*sh + ki*g.d[0] - g.pb[0]
					if ih < 0 || ih >= H {
						continue
					}
					rows[n] = xp[ih*W : (ih+1)*W]
					wrow[n] = wk[ki*KW : (ki+1)*KW]
					n++
				}
				out := yp[oh*OW : (oh+1)*OW]
				for ow := 0; ow < OW; ow++ {
					if ow == owA {
						ow = owB
						if ow >= OW {
							break
						}
					}
					acc := bias
					for r := 0; r < n; r++ {
						for kj := 0; kj < KW; kj++ {
							iw := ow*sw + kj*g.d[1] + offW0
							if iw >= 0 && iw < W {
								acc += wrow[r][kj] * rows[r][iw]
							}
						}
					}
					out[ow] = acc
				}
				if owB > owA {
					nnDWInterior(out[owA:owB], rows[:n], wrow[:n], owA+offW0, g.d[1], bias)
				}
			}
			continue
		}
		for i := range yp {
			yp[i] = bias
		}
		for ki := 0; ki < KH; ki++ {
			offH := ki*g.d[0] - g.pb[0]
			for kj := 0; kj < KW; kj++ {
				wv := wk[ki*KW+kj]
				offW := kj*g.d[1] - g.pb[1]
				owLo := 0
				if offW < 0 {
					owLo = (-offW + sw - 1) / sw
				}
				owHi := 0
				if W-offW > 0 {
					owHi = min(OW, (W-offW+sw-1)/sw)
				}
				if owLo >= owHi {
					continue
				}
				for oh := 0; oh < OH; oh++ {
					ih := oh*sh + offH
					if ih < 0 || ih >= H {
						continue
					}
					row := xp[ih*W : (ih+1)*W]
					out := yp[oh*OW+owLo : oh*OW+owHi]
					idx := owLo*sw + offW
					for i := range out {
						out[i] += wv * row[idx]
						idx += sw
					}
				}
			}
		}
	}
}
