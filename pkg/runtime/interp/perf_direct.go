package interp

import "math"

// Direct convolution for 2-D stride-1 convolutions with packed constant
// weights (the common 3×3/5×5 case), instead of im2col + GEMM.
//
// The group's input is copied once into a zero-padded image Xp (Cg planes
// of Hp×Wp, Wp = W + max(left, right padding): consecutive rows share
// their side padding). In Xp, output (oh, ow) and kernel tap k = (c, ki, kj) read
// Xp[j + offs[k]] with j = oh·Wp + ow and offs[k] = c·Hp·Wp + ki·dh·Wp +
// kj·dw, so the im2col row of tap k is a contiguous run of Xp: the GEMM
// micro-kernel reads its B row straight from the image (perfConvTile)
// and no im2col matrix is built. The GEMM runs over the flattened index
// j ∈ [0, (OH−1)·Wp+OW), Wp−OW columns per output row being junk that the
// copy-out (which also adds the bias) skips. Xp has slack at the end so
// that the junk reads of the last tile stay in range.

// perfDirectOn enables the direct path; tests turn it off to compare.
var perfDirectOn = true

// perfDirectNR is the direct path's tile width: 24 columns, so that the
// 4×24 micro-kernel's twelve accumulators keep both FMA pipes busy.
const perfDirectNR = 24

// perfDirect is the per-node state of the direct path (closures made once).
type perfDirect struct {
	xp, yp, a   []float32
	zeros       []float32 // the bias of a Conv without one
	padKey      perfPadKey
	offs        []int
	K, mpad, np int
	fn          func(lo, hi int)
}

// perfPadKey identifies the padded buffer's zeros: the buffer and the
// geometry whose padding positions they are.
type perfPadKey struct {
	buf                         *float32
	L, Cg, H, W, Hp, Wp, pt, pl int
}

// perfDirectFits reports whether the direct path applies to geometry g with
// Cg input and Mg output channels per group, and its scratch sizes are sane.
func perfDirectFits(g *nnGeom, Cg, Mg int) bool {
	if !perfDirectOn || g.nd != 2 || g.s[0] != 1 || g.s[1] != 1 {
		return false
	}
	if g.k[0] == 1 && g.k[1] == 1 && g.pb[0] == 0 && g.pb[1] == 0 && g.pe[0] == 0 && g.pe[1] == 0 {
		return false // pointwise: the input already is the GEMM's B
	}
	hp := int64(g.in[0]) + int64(g.pb[0]) + int64(g.pe[0])
	wp := int64(g.in[1]) + int64(g.pb[1]) + int64(g.pe[1])
	if hp <= 0 || wp <= 0 || int64(Cg)*hp*wp > nnMaxScratch/4 {
		return false
	}
	np := int64(g.out[0])*wp + int64(perfDirectNR)
	return int64(nnRoundUp(Mg, nnMR))*np <= nnMaxScratch/4
}

// perfConvTileGo is the portable perfConvTile.
func perfConvTileGo(kc int, a, x []float32, offs []int, c []float32, ldc int, accum bool) {
	for r := 0; r < nnMR; r++ {
		var acc [perfDirectNR]float32
		for k := 0; k < kc; k++ {
			av := a[k*nnMR+r]
			xs := x[offs[k] : offs[k]+perfDirectNR]
			for q := range acc {
				acc[q] += av * xs[q]
			}
		}
		row := c[r*ldc : r*ldc+perfDirectNR]
		for q := range acc {
			if accum {
				row[q] += acc[q]
			} else {
				row[q] = acc[q]
			}
		}
	}
}

// perfDirectConv convolves one group: xg holds its Cg input planes, a its
// packed weights (Mg×Kg, Kg = Cg·KH·KW), yg receives Mg output planes, bias
// (Mg values) may be nil.
func (cv *nnConv) perfDirectConv(c *Call, xg, a, yg, bias []float32, Cg, Mg, Kg int) {
	g := &cv.geo
	H, W := g.in[0], g.in[1]
	// Rows share their side padding: row h's right padding reads the next
	// row's left padding (or its own zero tail when pe > pb), so a row
	// takes W + max(pb, pe) floats rather than W + pb + pe.
	Hp, Wp := H+g.pb[0]+g.pe[0], W+max(g.pb[1], g.pe[1])
	OH, OW := g.out[0], g.out[1]
	KH, KW := g.k[0], g.k[1]
	pd := &cv.pd
	np := nnRoundUp((OH-1)*Wp+OW, perfDirectNR)
	offMax := (Cg-1)*Hp*Wp + (KH-1)*g.d[0]*Wp + (KW-1)*g.d[1]
	plane := Hp * Wp
	L := max(Cg*plane, np+offMax)
	xp := c.ScratchF32(3, L)
	// Padded copy of the input. The padding and the slack are zeroed
	// only when the buffer or the geometry changes: every copy writes the
	// same interior positions, so the zeros stay.
	pt, pl := g.pb[0], g.pb[1]
	key := perfPadKey{&xp[0], L, Cg, H, W, Hp, Wp, pt, pl}
	if pd.padKey != key {
		clear(xp)
		pd.padKey = key
	}
	for ci := 0; ci < Cg; ci++ {
		dst := xp[ci*plane : (ci+1)*plane]
		src := xg[ci*H*W : (ci+1)*H*W]
		for h := 0; h < H; h++ {
			copy(dst[(pt+h)*Wp+pl:(pt+h)*Wp+pl+W], src[h*W:(h+1)*W])
		}
	}
	if cap(pd.offs) < Kg {
		pd.offs = make([]int, Kg)
	}
	offs := pd.offs[:Kg]
	k := 0
	for ci := 0; ci < Cg; ci++ {
		for ki := 0; ki < KH; ki++ {
			for kj := 0; kj < KW; kj++ {
				offs[k] = ci*plane + ki*g.d[0]*Wp + kj*g.d[1]
				k++
			}
		}
	}
	mpad := nnRoundUp(Mg, nnMR)
	yp := c.ScratchF32(4, mpad*np)
	pd.xp, pd.yp, pd.a, pd.K, pd.mpad, pd.np = xp, yp, a, Kg, mpad, np
	if pd.fn == nil {
		pd.fn = func(lo, hi int) { cv.perfDirectTiles(lo, hi) }
	}
	tiles := np / perfDirectNR
	if cv.threads <= 1 || tiles < 2 || mpad*np*Kg < 1<<16 {
		pd.fn(0, tiles)
	} else {
		cv.gm.par(tiles, pd.fn)
	}
	// Copy-out: drop the junk columns, add the bias, and apply a
	// clamp-type activation on the way (unless FusedConv's Z comes first).
	lo, hi, clamp := cv.act.clamp()
	if clamp && !cv.hasZ {
		cv.actDone = true
	} else {
		lo, hi = float32(math.Inf(-1)), float32(math.Inf(1))
	}
	if bias == nil {
		if len(pd.zeros) < Mg {
			pd.zeros = make([]float32, Mg)
		}
		bias = pd.zeros
	}
	perfCopyOut(yg, yp, bias, Mg, OH, OW, Wp, np, lo, hi)
	pd.xp, pd.yp, pd.a = nil, nil, nil
}

// perfDirectTiles computes column tiles [lo, hi) of every row strip.
func (cv *nnConv) perfDirectTiles(lo, hi int) {
	pd := &cv.pd
	xp, yp, a, K, mpad, np := pd.xp, pd.yp, pd.a, pd.K, pd.mpad, pd.np
	strips := mpad / nnMR
	for pc := 0; pc < K; pc += nnKC {
		kc := min(nnKC, K-pc)
		ab := a[mpad*pc : mpad*pc+mpad*kc]
		offs := pd.offs[pc : pc+kc]
		for t := lo; t < hi; t++ {
			base := t * perfDirectNR
			x := xp[base:]
			for s := 0; s < strips; s++ {
				perfConvTile(kc, ab[s*nnMR*kc:(s+1)*nnMR*kc], x, offs, yp[s*nnMR*np+base:], np, pc > 0)
			}
		}
	}
}

// perfCopyOutGo is the portable perfCopyOut.
func perfCopyOutGo(dst, src, bias []float32, m, rows, w, sstride, splane int, lo, hi float32) {
	for i := 0; i < m; i++ {
		b := bias[i]
		for h := 0; h < rows; h++ {
			perfBiasClampGo(dst[(i*rows+h)*w:(i*rows+h+1)*w], src[i*splane+h*sstride:], b, lo, hi)
		}
	}
}
