//go:build !amd64 || purego || goexperiment.simd

package interp

// perfClamp sets y[i] = min(max(y[i], lo), hi) (NaN stays NaN).
func perfClamp(y []float32, lo, hi float32) { perfClampGo(y, lo, hi) }

// perfBiasClamp sets dst[i] = min(max(src[i]+b, lo), hi) (len(src) >= len(dst)).
func perfBiasClamp(dst, src []float32, b, lo, hi float32) { perfBiasClampGo(dst, src, b, lo, hi) }

// perfHardSwish sets y = y·min(max(y+a, lo), hi) then /d (div) or ·d.
func perfHardSwish(y []float32, a, lo, hi, d float32, div bool) {
	perfHardSwishGo(y, a, lo, hi, d, div)
}

// perfMaxInto sets dst[i] = src[i] if src[i] > dst[i] (a NaN never wins).
func perfMaxInto(dst, src []float32) { perfMaxIntoGo(dst, src) }

// perfMaxPool2x2Row reports false: no vector kernel in this build.
func perfMaxPool2x2Row(out, r0, r1 []float32) bool { return false }

// perfSum returns Σ x[i].
func perfSum(x []float32) float32 {
	var s float32
	for _, v := range x {
		s += v
	}
	return s
}
