package interp

// A float32 erf for the float32 Erf kernel and the GELU family (the float64
// kernels keep math.Erf).
//
// erf(x) ≈ x·P(x²)/Q(x²) on [-4, 4] with the odd rational approximation
// Eigen uses for its fast float erf (P of degree 6, Q of degree 4 in x²),
// evaluated in float64 so that only the approximation error (not float32
// rounding of the Horner steps) remains; beyond ±4, erf rounds to ±1 in
// float32. Max abs error against math.Erf is asserted in perf2_erf_test.go.
// NaN propagates (the clamp keeps it), ±Inf gives ±1, -0 gives -0.

const (
	perf2ErfA1  = -2.72614225801306e-10
	perf2ErfA3  = 2.77068142495902e-08
	perf2ErfA5  = -2.10102402082508e-06
	perf2ErfA7  = -5.69250639462346e-05
	perf2ErfA9  = -7.34990630326855e-04
	perf2ErfA11 = -2.95459980854025e-03
	perf2ErfA13 = -1.60960333262415e-02
	perf2ErfB0  = -1.45660718464996e-05
	perf2ErfB2  = -2.13374055278905e-04
	perf2ErfB4  = -1.68282697438203e-03
	perf2ErfB6  = -7.37332916720468e-03
	perf2ErfB8  = -1.42647390514189e-02
)

// perf2Erf64 is the rational approximation in float64 arithmetic; its
// result is meant to be rounded to float32.
func perf2Erf64(x float64) float64 {
	// Comparisons written so that a NaN falls through unchanged.
	if x > 4 {
		x = 4
	} else if x < -4 {
		x = -4
	}
	x2 := x * x
	p := x2*perf2ErfA1 + perf2ErfA3
	p = x2*p + perf2ErfA5
	p = x2*p + perf2ErfA7
	p = x2*p + perf2ErfA9
	p = x2*p + perf2ErfA11
	p = x2*p + perf2ErfA13
	q := x2*perf2ErfB0 + perf2ErfB2
	q = x2*q + perf2ErfB4
	q = x2*q + perf2ErfB6
	q = x2*q + perf2ErfB8
	return x * p / q
}

// perf2Erf32 is erf for float32.
func perf2Erf32(x float32) float32 { return float32(perf2Erf64(float64(x))) }

// perf2ErfSlice sets d[i] = erf(s[i]) (len(d) >= len(s)).
func perf2ErfSlice(d, s []float32) {
	d = d[:len(s)]
	for i, x := range s {
		d[i] = float32(perf2Erf64(float64(x)))
	}
}

// perf2Gelu64 is the exact GELU 0.5·x·(1+erf(x/√2)) with the fast erf,
// for float32 results. erf is rounded to float32 first so that it
// saturates to ±1 exactly for large |x| (GELU(-1e30) is -0, not the
// approximation's residue times x; GELU(-Inf) is NaN, as written out).
func perf2Gelu64(x float64) float64 {
	e := float64(float32(perf2Erf64(x * (1 / 1.4142135623730951))))
	return 0.5 * x * (1 + e)
}

// perf2GeluSlice sets d[i] = GELU(s[i]) in float32 (len(d) >= len(s)).
func perf2GeluSlice(d, s []float32) {
	d = d[:len(s)]
	for i, x := range s {
		d[i] = float32(perf2Gelu64(float64(x)))
	}
}
