package interp

import "math"

// Convolutions with few output positions per image (a strided 1-D
// encoder's last layers, an STFT frame count, a pointwise conv over a
// single vector) as the transposed GEMM Yᵀ = colᵀ·Wᵀ.
//
// The packed GEMM computes tiles of nnMR output channels × nnNR output
// positions; with N = 4 positions (or 1) three quarters (fifteen
// sixteenths) of every tile is padding, so a conv whose cost is streaming
// its weights once does 4-16× the FMAs. Transposed, the positions become
// the tile's nnMR rows and the output channels its nnNR columns: Wᵀ is
// packed once (lazily, on the first run that takes this path) as a B
// operand, the im2col matrix (already K×nnNR row-major for N ≤ nnNR) is
// packed as a small A, and the nnMR×nnNR result comes back transposed with
// the bias and a clamp-type activation on the way.

// perfSmallNOn enables the path; tests turn it off to compare.
var perfSmallNOn = true

// perfSmallNMax is the largest output size per image that takes it: at
// N ≤ 8 the normal tile is at least half padding.
const perfSmallNMax = 8

// perfSmallNFits reports whether a group of Mg output channels over outSz
// positions per image takes the transposed path.
func perfSmallNFits(g *nnGeom, Cg, outSz, Mg int) bool {
	return perfSmallNOn && g.nd == 2 && outSz >= 1 && outSz <= perfSmallNMax && Mg >= 1 &&
		int64(Cg)*int64(g.inSize()) < math.MaxInt32 && int64(Cg)*int64(g.kSize())*perfSmallNMax < nnMaxScratch/4
}

// perfSmallNIndex is the gather table of the transposed path: element i of
// the packed colᵀ is xg[idx[i]], or 0 where idx[i] < 0 (padding).
type perfSmallNIndex struct {
	key [8]int // geometry the table was made for
	idx []int32
}

// perfSmallNTable returns the gather table for the conv's current
// geometry (made again only when the input geometry changes).
func (cv *nnConv) perfSmallNTable(Cg, Kg int) []int32 {
	g := &cv.geo
	key := [8]int{g.in[0], g.in[1], g.out[0], g.out[1], Cg, Kg, g.k[0], g.k[1]}
	t := &cv.snIdx
	if t.idx != nil && t.key == key {
		return t.idx
	}
	H, W, OH, OW := g.in[0], g.in[1], g.out[0], g.out[1]
	KH, KW := g.k[0], g.k[1]
	outSz := OH * OW
	mpad := nnRoundUp(outSz, nnMR)
	idx := make([]int32, mpad*Kg)
	for pc := 0; pc < Kg; pc += nnKC {
		kc := min(nnKC, Kg-pc)
		for st := 0; st < mpad/nnMR; st++ {
			d := idx[mpad*pc+st*nnMR*kc : mpad*pc+(st+1)*nnMR*kc]
			for k := 0; k < kc; k++ {
				kk := pc + k
				ci, r := kk/(KH*KW), kk%(KH*KW)
				ki, kj := r/KW, r%KW
				for q := 0; q < nnMR; q++ {
					j := st*nnMR + q
					v := int32(-1)
					if j < outSz {
						ih := (j/OW)*g.s[0] + ki*g.d[0] - g.pb[0]
						iw := (j%OW)*g.s[1] + kj*g.d[1] - g.pb[1]
						if ih >= 0 && ih < H && iw >= 0 && iw < W {
							v = int32((ci*H+ih)*W + iw)
						}
					}
					d[k*nnMR+q] = v
				}
			}
		}
	}
	t.key, t.idx = key, idx
	return idx
}

// perfSmallN runs the transposed path for every image and group. wd holds
// the unpacked weights (M×Kg); lo, hi clamp when clamp is set.
func (cv *nnConv) perfSmallN(c *Call, N, C, M int, xd, wd, bd, yd []float32, Cg, Mg, Kg int, lo, hi float32, clamp bool) {
	g := &cv.geo
	inSz, outSz := g.inSize(), g.outSize()
	G := cv.group
	if cv.packedT == nil {
		cv.packedT = make([][]float32, G)
		for gr := range G {
			p := make([]float32, nnPackedLenB(Kg, Mg))
			// Wᵀ's element (k, m) is W[m][k]: row stride 1, column stride Kg.
			nnPackB(p, wd[gr*Mg*Kg:(gr+1)*Mg*Kg], 1, Kg, Kg, Mg)
			cv.packedT[gr] = p
		}
	}
	gm := &cv.gm
	idx := cv.perfSmallNTable(Cg, Kg)
	ap := c.ScratchF32(1, len(idx))
	ct := c.ScratchF32(6, outSz*Mg)
	if !clamp {
		lo, hi = float32(math.Inf(-1)), float32(math.Inf(1))
	}
	for n := 0; n < N; n++ {
		for gr := 0; gr < G; gr++ {
			xg := xd[(n*C+gr*Cg)*inSz : (n*C+(gr+1)*Cg)*inSz]
			for i, ix := range idx {
				if ix >= 0 {
					ap[i] = xg[ix]
				} else {
					ap[i] = 0
				}
			}
			gm.gemm(outSz, Mg, Kg, ap, cv.packedT[gr], ct, Mg, false)
			yg := yd[(n*M+gr*Mg)*outSz : (n*M+(gr+1)*Mg)*outSz]
			for m := 0; m < Mg; m++ {
				var b float32
				if bd != nil {
					b = bd[gr*Mg+m]
				}
				row := yg[m*outSz : (m+1)*outSz]
				for j := range row {
					row[j] = min(max(ct[j*Mg+m]+b, lo), hi)
				}
			}
		}
	}
}
