//go:build !purego

package interp

import "golang.org/x/sys/cpu"

// seqHasAVX2 selects the AVX2+FMA matrix-vector kernel.
var seqHasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func seqMatVecAVX2(y, m, x *float32, groups, k int)

//go:noescape
func seqDot4AVX2(m0, m1, m2, m3, x *float32, n int, out *[4]float32)

// seqMatVecAdd computes y[r] += dot(m[r*k:(r+1)*k], x) for r in [lo, hi).
func seqMatVecAdd(y, m, x []float32, k, lo, hi int) {
	if !seqHasAVX2 || k < 8 {
		seqMatVecAddGo(y, m, x, k, lo, hi)
		return
	}
	x = x[:k]
	_ = m[hi*k-1]
	_ = y[hi-1]
	if k&7 == 0 {
		// The whole matrix in one call.
		groups := (hi - lo) / 4
		if groups > 0 {
			seqMatVecAVX2(&y[lo], &m[lo*k], &x[0], groups, k)
		}
		if r := lo + 4*groups; r < hi {
			seqMatVecAddGo(y, m, x, k, r, hi)
		}
		return
	}
	main := k &^ 7
	var s [4]float32
	r := lo
	for ; r+4 <= hi; r += 4 {
		seqDot4AVX2(&m[r*k], &m[(r+1)*k], &m[(r+2)*k], &m[(r+3)*k], &x[0], k, &s)
		for j := main; j < k; j++ {
			xv := x[j]
			s[0] += m[r*k+j] * xv
			s[1] += m[(r+1)*k+j] * xv
			s[2] += m[(r+2)*k+j] * xv
			s[3] += m[(r+3)*k+j] * xv
		}
		y[r] += s[0]
		y[r+1] += s[1]
		y[r+2] += s[2]
		y[r+3] += s[3]
	}
	if r < hi {
		seqMatVecAddGo(y, m, x, k, r, hi)
	}
}

//go:noescape
func seqTanhAVX2(x *float32, n int, scale, outScale, outBias float32)

// seqTanhSlice sets v[i] = outScale*tanh(scale*v[i]) + outBias (sigmoid is
// scale 0.5, outScale 0.5, outBias 0.5).
func seqTanhSlice(v []float32, scale, outScale, outBias float32) {
	main := len(v) &^ 7
	if seqHasAVX2 && main > 0 {
		seqTanhAVX2(&v[0], main, scale, outScale, outBias)
		v = v[main:]
	}
	seqTanhSliceGo(v, scale, outScale, outBias)
}
