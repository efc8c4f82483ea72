package interp

import "math"

// Layer-norm rows with the sums split over four accumulators (the
// dependent float64 add chains, not the arithmetic, bound the plain loops
// on short rows such as a transformer's 64).

// perf2Sum returns Σ x[i] in float64.
func perf2Sum(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += float64(x[i])
		s1 += float64(x[i+1])
		s2 += float64(x[i+2])
		s3 += float64(x[i+3])
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// perf2LNRow normalises one row as the written-out float32 graph does
// (perf2_fuse.go): mean = float32(Σx/n); d = x-mean in float32;
// var = float32(Σ float32(d²)/n); std = float32(√(var+eps)); y = d/std
// (as d·(1/std)), then ·gamma, +beta (each one value or len(x) values).
func perf2LNRow(y, x, gamma, beta []float32, eps float32) {
	n := len(x)
	y = y[:n]
	mean := float32(perf2Sum(x) / float64(n))
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= n; i += 4 {
		d0, d1, d2, d3 := x[i]-mean, x[i+1]-mean, x[i+2]-mean, x[i+3]-mean
		y[i], y[i+1], y[i+2], y[i+3] = d0, d1, d2, d3
		s0 += float64(d0 * d0)
		s1 += float64(d1 * d1)
		s2 += float64(d2 * d2)
		s3 += float64(d3 * d3)
	}
	for ; i < n; i++ {
		d := x[i] - mean
		y[i] = d
		s0 += float64(d * d)
	}
	v := float32(((s0 + s1) + (s2 + s3)) / float64(n))
	inv := 1 / float32(math.Sqrt(float64(v+eps)))
	switch {
	case len(gamma) == n && len(beta) == n:
		gamma, beta = gamma[:n], beta[:n]
		for i, d := range y {
			y[i] = d*inv*gamma[i] + beta[i]
		}
		return
	case len(gamma) == n && len(beta) == 0:
		gamma = gamma[:n]
		for i, d := range y {
			y[i] = d * inv * gamma[i]
		}
		return
	}
	for i, d := range y {
		y[i] = d * inv
	}
	switch len(gamma) {
	case 0:
	case 1:
		for i := range y {
			y[i] *= gamma[0]
		}
	default:
		gamma = gamma[:n]
		for i := range y {
			y[i] *= gamma[i]
		}
	}
	switch len(beta) {
	case 0:
	case 1:
		for i := range y {
			y[i] += beta[0]
		}
	default:
		beta = beta[:n]
		for i := range y {
			y[i] += beta[i]
		}
	}
}

// perf2LNOpRow is one row of the LayerNormalization op (nn_norm.go) with
// per-element scale s and optional bias b (len(row) values each): mean and
// variance in float64, y = float32((x-mean)·inv)·s + b. It returns mean and
// inv = 1/√(var+eps).
func perf2LNOpRow(dst, row, s, b []float32, eps float32) (mean, inv float64) {
	n := len(row)
	dst, s = dst[:n], s[:n]
	mean = perf2Sum(row) / float64(n)
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= n; i += 4 {
		d0, d1 := float64(row[i])-mean, float64(row[i+1])-mean
		d2, d3 := float64(row[i+2])-mean, float64(row[i+3])-mean
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < n; i++ {
		d := float64(row[i]) - mean
		s0 += d * d
	}
	inv = 1 / math.Sqrt(((s0+s1)+(s2+s3))/float64(n)+float64(eps))
	if b != nil {
		b = b[:n]
		for i, v := range row {
			dst[i] = float32((float64(v)-mean)*inv)*s[i] + b[i]
		}
		return mean, inv
	}
	for i, v := range row {
		dst[i] = float32((float64(v)-mean)*inv) * s[i]
	}
	return mean, inv
}
