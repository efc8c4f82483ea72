//go:build !purego && !goexperiment.simd

package interp

//go:noescape
func perfClampAVX2(y *float32, n int, lo, hi float32)

//go:noescape
func perfBiasClampAVX2(dst, src *float32, n int, b, lo, hi float32)

//go:noescape
func perfHardSwishAVX2(y *float32, n int, a, lo, hi, d float32, div int)

// perfClamp sets y[i] = min(max(y[i], lo), hi) (NaN stays NaN).
func perfClamp(y []float32, lo, hi float32) {
	i := 0
	if m := len(y) &^ 7; perfHasAVX2 && m > 0 {
		perfClampAVX2(&y[0], m, lo, hi)
		i = m
	}
	perfClampGo(y[i:], lo, hi)
}

// perfBiasClamp sets dst[i] = min(max(src[i]+b, lo), hi) (len(src) >=
// len(dst)); dst and src are the same slice or disjoint.
func perfBiasClamp(dst, src []float32, b, lo, hi float32) {
	n := len(dst)
	src = src[:n]
	i := 0
	if m := n &^ 7; perfHasAVX2 && m > 0 {
		perfBiasClampAVX2(&dst[0], &src[0], m, b, lo, hi)
		i = m
		if m < n && &dst[0] != &src[0] {
			// Disjoint: the last 8 again (overlapping) instead of a
			// scalar tail.
			perfBiasClampAVX2(&dst[n-8], &src[n-8], 8, b, lo, hi)
			return
		}
	}
	perfBiasClampGo(dst[i:], src[i:], b, lo, hi)
}

// perfHardSwish sets y = y·min(max(y+a, lo), hi) then /d (div) or ·d.
func perfHardSwish(y []float32, a, lo, hi, d float32, div bool) {
	i := 0
	if m := len(y) &^ 7; perfHasAVX2 && m > 0 {
		perfHardSwishAVX2(&y[0], m, a, lo, hi, d, perfBool(div))
		i = m
	}
	perfHardSwishGo(y[i:], a, lo, hi, d, div)
}

//go:noescape
func perfMaxIntoAVX2(dst, src *float32, n int)

// perfMaxInto sets dst[i] = src[i] if src[i] > dst[i] (a NaN never wins).
func perfMaxInto(dst, src []float32) {
	src = src[:len(dst)]
	i := 0
	if m := len(dst) &^ 7; perfHasAVX2 && m > 0 {
		perfMaxIntoAVX2(&dst[0], &src[0], m)
		i = m
	}
	perfMaxIntoGo(dst[i:], src[i:])
}

//go:noescape
func perfMaxPool2x2AVX2(out, r0, r1 *float32, n int)

// perfMaxPool2x2Row sets out[i] to the max of r0[2i:2i+2] and r1[2i:2i+2]
// (a NaN never wins) and reports whether it did (false: use another path).
func perfMaxPool2x2Row(out, r0, r1 []float32) bool {
	n := len(out)
	if !perfHasAVX2 || n < 8 || len(r0) < 2*n || len(r1) < 2*n {
		return false
	}
	m := n &^ 7
	perfMaxPool2x2AVX2(&out[0], &r0[0], &r1[0], m)
	if m < n {
		perfMaxPool2x2AVX2(&out[n-8], &r0[2*(n-8)], &r1[2*(n-8)], 8)
	}
	return true
}

//go:noescape
func perfSumAVX2(x *float32, n int) float32

// perfSum returns Σ x[i] (vectorised partial sums for long inputs).
func perfSum(x []float32) float32 {
	var s float32
	i := 0
	if m := len(x) &^ 31; perfHasAVX2 && m > 0 {
		s = perfSumAVX2(&x[0], m)
		i = m
	}
	for _, v := range x[i:] {
		s += v
	}
	return s
}
