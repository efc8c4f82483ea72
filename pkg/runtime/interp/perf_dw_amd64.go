//go:build !purego && !goexperiment.simd

package interp

//go:noescape
func perfDWRowAVX2(out *float32, n int, x *float32, rs int, w *float32, kh, kw, dw int, bias float32)

// perfDWRow computes len(out) stride-1 depthwise outputs from a padded
// plane: out[i] = bias + Σki Σkj w[ki*kw+kj]·x[ki*rs+kj*dw+i]. The caller
// guarantees those reads are in range.
func perfDWRow(out, x []float32, rs int, w []float32, kh, kw, dw int, bias float32) {
	n := len(out)
	if !perfHasAVX2 || n < 8 || kh <= 0 || kw <= 0 {
		perfDWRowGo(out, x, rs, w, kh, kw, dw, bias)
		return
	}
	_ = x[(kh-1)*rs+(kw-1)*dw+n-1]
	_ = w[kh*kw-1]
	m := n &^ 7
	perfDWRowAVX2(&out[0], m, &x[0], rs, &w[0], kh, kw, dw, bias)
	if m < n {
		// The last 8 outputs again (overlapping: each is computed afresh).
		perfDWRowAVX2(&out[n-8], 8, &x[n-8], rs, &w[0], kh, kw, dw, bias)
	}
}
