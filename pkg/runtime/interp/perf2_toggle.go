package interp

import "math"

// perf2FastOn selects the run-time fast paths of the perf2_* files (fast
// float32 erf and GELU, vector exp in Softmax, vector packing of A in
// MatMul/Gemm); off, the same calls compute what the kernels did before
// (math.Erf / math.Exp in float64, nnPackAStrips). Tests and the A/B
// benchmark turn it off; perf2FuseOn does the same for the Open-time
// fusions.
var perf2FastOn = true

// perf2Erf sets d[i] = erf(s[i]) (float32, len(d) >= len(s)).
func perf2Erf(d, s []float32) {
	if perf2FastOn {
		perf2ErfFast(d, s)
		return
	}
	d = d[:len(s)]
	for i, x := range s {
		d[i] = float32(math.Erf(float64(x)))
	}
}

// perf2Gelu sets d[i] = 0.5·s[i]·(1+erf(s[i]/√2)) (len(d) >= len(s); d
// and s may be the same slice).
func perf2Gelu(d, s []float32) {
	if perf2FastOn {
		perf2GeluFast(d, s)
		return
	}
	d = d[:len(s)]
	for i, x := range s {
		f := float64(x)
		d[i] = float32(0.5 * f * (1 + math.Erf(f/math.Sqrt2)))
	}
}

// perf2ExpSub sets d[i] = exp(s[i]-m) in float32 for s[i]-m <= 88 (a
// softmax row, m its max); len(d) >= len(s).
func perf2ExpSub(d, s []float32, m float32) {
	if perf2FastOn {
		perf2ExpSubFast(d, s, m)
		return
	}
	perf2ExpSubGo(d, s, m)
}

// perf2PackA is gm.packA, with vector packing for small row-major A.
func perf2PackA(gm *nnGemmer, dst, a []float32, rs, cs, M, K int, alpha float32) {
	if perf2FastOn {
		perf2PackAFast(gm, dst, a, rs, cs, M, K, alpha)
		return
	}
	gm.packA(dst, a, rs, cs, M, K, alpha)
}
