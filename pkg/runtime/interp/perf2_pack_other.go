//go:build !amd64 || purego || goexperiment.simd

package interp

// perf2PackAFast is gm.packA (the vector packing is amd64-only).
func perf2PackAFast(gm *nnGemmer, dst, a []float32, rs, cs, M, K int, alpha float32) {
	gm.packA(dst, a, rs, cs, M, K, alpha)
}
