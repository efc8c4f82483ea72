//go:build !purego && !goexperiment.simd

package interp

//go:noescape
func perf2ErfAVX2(d, s *float32, n int)

//go:noescape
func perf2GeluAVX2(d, s *float32, n int)

// perf2ErfFast sets d[i] = erf(s[i]) (float32, len(d) >= len(s)).
func perf2ErfFast(d, s []float32) {
	d = d[:len(s)]
	i := 0
	if m := len(s) &^ 3; perfHasAVX2 && m > 0 {
		perf2ErfAVX2(&d[0], &s[0], m)
		i = m
	}
	perf2ErfSlice(d[i:], s[i:])
}

// perf2GeluFast sets d[i] = 0.5·s[i]·(1+erf(s[i]/√2)) (len(d) >= len(s)).
func perf2GeluFast(d, s []float32) {
	d = d[:len(s)]
	i := 0
	if m := len(s) &^ 3; perfHasAVX2 && m > 0 {
		perf2GeluAVX2(&d[0], &s[0], m)
		i = m
	}
	perf2GeluSlice(d[i:], s[i:])
}

//go:noescape
func perf2ExpSubAVX2(d, s *float32, n int, m float32)

// perf2ExpSubFast sets d[i] = exp(s[i]-m) in float32 for s[i]-m <= 88 (as
// in a softmax row, where m is the row's max); len(d) >= len(s).
func perf2ExpSubFast(d, s []float32, m float32) {
	d = d[:len(s)]
	i := 0
	if k := len(s) &^ 7; perfHasAVX2 && k > 0 {
		perf2ExpSubAVX2(&d[0], &s[0], k, m)
		i = k
	}
	perf2ExpSubGo(d[i:], s[i:], m)
}
