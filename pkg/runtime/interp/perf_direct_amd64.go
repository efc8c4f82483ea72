//go:build !purego && !goexperiment.simd

package interp

//go:noescape
func perfConvKernel4x24AVX2(kc int, a, x *float32, offs *int, c *float32, ldc int, accum int)

//go:noescape
func perfCopyOutAVX2(dst, src, bias *float32, m, rows, w, sstride, splane int, lo, hi float32)

// perfConvTile computes one nnMR×perfDirectNR tile of a direct
// convolution: c[r*ldc+q] (+)= Σk a[k*nnMR+r]·x[offs[k]+q]. The caller
// guarantees that every x[offs[k]+q] (q < perfDirectNR) is in range.
func perfConvTile(kc int, a, x []float32, offs []int, c []float32, ldc int, accum bool) {
	if !perfHasAVX2 || kc <= 0 {
		perfConvTileGo(kc, a, x, offs, c, ldc, accum)
		return
	}
	_ = a[kc*nnMR-1]
	_ = offs[kc-1]
	_ = c[(nnMR-1)*ldc+perfDirectNR-1]
	perfConvKernel4x24AVX2(kc, &a[0], &x[0], &offs[0], &c[0], ldc, perfBool(accum))
}

// perfCopyOut sets dst[(i·rows+h)·w+j] = min(max(src[i·splane+h·sstride+j]
// + bias[i], lo), hi) for i < m, h < rows, j < w. dst and src are disjoint.
func perfCopyOut(dst, src, bias []float32, m, rows, w, sstride, splane int, lo, hi float32) {
	if m <= 0 || rows <= 0 || w <= 0 {
		return
	}
	_ = dst[m*rows*w-1]
	_ = src[(m-1)*splane+(rows-1)*sstride+w-1]
	_ = bias[m-1]
	if !perfHasAVX2 || w < 8 {
		perfCopyOutGo(dst, src, bias, m, rows, w, sstride, splane, lo, hi)
		return
	}
	perfCopyOutAVX2(&dst[0], &src[0], &bias[0], m, rows, w, sstride, splane, lo, hi)
}
