//go:build !amd64 || purego || goexperiment.simd

package interp

// perfConvTile computes one nnMR×perfDirectNR tile of a direct
// convolution: c[r*ldc+q] (+)= Σk a[k*nnMR+r]·x[offs[k]+q].
func perfConvTile(kc int, a, x []float32, offs []int, c []float32, ldc int, accum bool) {
	perfConvTileGo(kc, a, x, offs, c, ldc, accum)
}

// perfCopyOut sets dst[(i·rows+h)·w+j] = min(max(src[i·splane+h·sstride+j]
// + bias[i], lo), hi) for i < m, h < rows, j < w.
func perfCopyOut(dst, src, bias []float32, m, rows, w, sstride, splane int, lo, hi float32) {
	perfCopyOutGo(dst, src, bias, m, rows, w, sstride, splane, lo, hi)
}
