package interp

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// perf2LNRef is layer norm of one row in float64.
func perf2LNRef(x, g, b []float32, eps float64) []float64 {
	n := float64(len(x))
	var m, v float64
	for _, e := range x {
		m += float64(e)
	}
	m /= n
	for _, e := range x {
		v += (float64(e) - m) * (float64(e) - m)
	}
	inv := 1 / math.Sqrt(v/n+eps)
	out := make([]float64, len(x))
	for i, e := range x {
		y := (float64(e) - m) * inv
		if g != nil {
			y *= float64(g[min(i, len(g)-1)])
		}
		if b != nil {
			y += float64(b[min(i, len(b)-1)])
		}
		out[i] = y
	}
	return out
}

// TestPerf2LNRows checks both row kernels against float64 over tails of
// the 4-way split, affine variants, and rows with NaN/Inf/huge values.
func TestPerf2LNRows(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	rnd := func(n int, scale float64, off float32) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64()*scale) + off
		}
		return v
	}
	for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 63, 64, 256} {
		for _, kind := range []string{"plain", "offset", "nan", "inf", "const"} {
			x := rnd(n, 2, 0)
			switch kind {
			case "offset":
				x = rnd(n, 1, 1000)
			case "nan":
				x[n/2] = float32(math.NaN())
			case "inf":
				x[n-1] = float32(math.Inf(1))
			case "const":
				for i := range x {
					x[i] = 3
				}
			}
			g, b := rnd(n, 1, 1), rnd(n, 1, 0)
			for _, aff := range []struct {
				name string
				g, b []float32
			}{{"gb", g, b}, {"g", g, nil}, {"none", nil, nil}, {"scalars", g[:1], b[:1]}} {
				t.Run(fmt.Sprintf("n%d_%s_%s", n, kind, aff.name), func(t *testing.T) {
					want := perf2LNRef(x, aff.g, aff.b, 1e-5)
					got := make([]float32, n)
					perf2LNRow(got, x, aff.g, aff.b, 1e-5)
					check := func(which string, got []float32) {
						for i, w := range want {
							g := float64(got[i])
							if math.IsNaN(w) != math.IsNaN(g) || !math.IsNaN(w) && math.Abs(g-w) > 2e-4*(1+math.Abs(w)) {
								t.Fatalf("%s: y[%d] = %g, want %g", which, i, g, w)
							}
						}
					}
					check("perf2LNRow", got)
					if len(aff.g) == n && (aff.b == nil || len(aff.b) == n) {
						got2 := make([]float32, n)
						perf2LNOpRow(got2, x, aff.g, aff.b, 1e-5)
						check("perf2LNOpRow", got2)
					}
				})
			}
		}
	}
}
