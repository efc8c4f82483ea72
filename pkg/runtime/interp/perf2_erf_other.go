//go:build !amd64 || purego || goexperiment.simd

package interp

// perf2ErfFast sets d[i] = erf(s[i]) (float32, len(d) >= len(s)).
func perf2ErfFast(d, s []float32) { perf2ErfSlice(d, s) }

// perf2GeluFast sets d[i] = 0.5·s[i]·(1+erf(s[i]/√2)) (len(d) >= len(s)).
func perf2GeluFast(d, s []float32) { perf2GeluSlice(d, s) }

// perf2ExpSubFast sets d[i] = exp(s[i]-m) in float32; len(d) >= len(s).
func perf2ExpSubFast(d, s []float32, m float32) { perf2ExpSubGo(d, s, m) }
