//go:build !amd64 || purego || goexperiment.simd

package interp

// perfDWRow computes len(out) stride-1 depthwise outputs from a padded
// plane: out[i] = bias + Σki Σkj w[ki*kw+kj]·x[ki*rs+kj*dw+i].
func perfDWRow(out, x []float32, rs int, w []float32, kh, kw, dw int, bias float32) {
	perfDWRowGo(out, x, rs, w, kh, kw, dw, bias)
}
