//go:build !purego && !goexperiment.simd

package interp

//go:noescape
func perfConvKernel4x16AVX2(kc int, a, x *float32, offs *int, c *float32, ldc int, accum int)

// perfConvTile computes one nnMR×nnNR tile of a direct convolution:
// c[r*ldc+q] (+)= Σk a[k*nnMR+r]·x[offs[k]+q]. The caller guarantees that
// every x[offs[k]+q] (q < nnNR) is in range.
func perfConvTile(kc int, a, x []float32, offs []int, c []float32, ldc int, accum bool) {
	if !perfHasAVX2 || kc <= 0 {
		perfConvTileGo(kc, a, x, offs, c, ldc, accum)
		return
	}
	_ = a[kc*nnMR-1]
	_ = offs[kc-1]
	_ = c[(nnMR-1)*ldc+nnNR-1]
	perfConvKernel4x16AVX2(kc, &a[0], &x[0], &offs[0], &c[0], ldc, perfBool(accum))
}
