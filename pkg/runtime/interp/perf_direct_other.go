//go:build !amd64 || purego || goexperiment.simd

package interp

// perfConvTile computes one nnMR×nnNR tile of a direct convolution:
// c[r*ldc+q] (+)= Σk a[k*nnMR+r]·x[offs[k]+q].
func perfConvTile(kc int, a, x []float32, offs []int, c []float32, ldc int, accum bool) {
	perfConvTileGo(kc, a, x, offs, c, ldc, accum)
}
