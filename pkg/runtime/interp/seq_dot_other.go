//go:build !amd64 || purego

package interp

// seqHasAVX2 is false without the assembly kernels.
const seqHasAVX2 = false

// seqMatVecAdd computes y[r] += dot(m[r*k:(r+1)*k], x) for r in [lo, hi).
func seqMatVecAdd(y, m, x []float32, k, lo, hi int) { seqMatVecAddGo(y, m, x, k, lo, hi) }

// seqTanhSlice sets v[i] = outScale*tanh(scale*v[i]) + outBias.
func seqTanhSlice(v []float32, scale, outScale, outBias float32) {
	seqTanhSliceGo(v, scale, outScale, outBias)
}
