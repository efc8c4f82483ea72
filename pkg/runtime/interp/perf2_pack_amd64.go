//go:build !purego && !goexperiment.simd

package interp

//go:noescape
func perf2PackA4AVX2(dst, a *float32, rs, n int, alpha float32)

// perf2PackAFast is gm.packA for small row-major A (the shapes of a small
// transformer, where packing costs as much as the multiply): full strips
// of 4 rows are transposed 8 columns at a time with AVX2; the rest, and
// anything large enough for gm.packA to split over threads, goes to
// nnPackAStrips. Same layout, same values.
func perf2PackAFast(gm *nnGemmer, dst, a []float32, rs, cs, M, K int, alpha float32) {
	if !perfHasAVX2 || nnMR != 4 || cs != 1 || M*K >= 1<<15 || M <= 0 || K <= 0 {
		gm.packA(dst, a, rs, cs, M, K, alpha)
		return
	}
	full := M / 4
	// Bounds: the last element read is a[(M-1)*rs+K-1]; written,
	// dst[nnPackedLenA(M,K)-1].
	_ = a[(M-1)*rs+K-1]
	mpad := nnRoundUp(M, nnMR)
	_ = dst[mpad*K-1]
	for pc := 0; pc < K; pc += nnKC {
		kc := min(nnKC, K-pc)
		k8 := kc &^ 7
		for s := 0; s < full; s++ {
			d := dst[mpad*pc+s*4*kc : mpad*pc+(s+1)*4*kc]
			i0 := s * 4
			if k8 > 0 {
				perf2PackA4AVX2(&d[0], &a[i0*rs+pc], rs, k8, alpha)
			}
			for r := 0; r < 4; r++ {
				row := a[(i0+r)*rs+pc : (i0+r)*rs+pc+kc]
				for k := k8; k < kc; k++ {
					d[k*4+r] = row[k] * alpha
				}
			}
		}
	}
	if full*4 < M {
		nnPackAStrips(dst, a, rs, cs, M, K, alpha, full, full+1)
	}
}
