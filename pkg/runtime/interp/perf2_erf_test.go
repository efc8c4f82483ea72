package interp

import (
	"math"
	"testing"
)

// TestPerf2ErfAccuracy bounds the fast float32 erf against math.Erf over a
// dense grid and checks special values.
func TestPerf2ErfAccuracy(t *testing.T) {
	worst, at := 0.0, 0.0
	for x := -6.0; x <= 6.0; x += 1.0 / 4096 {
		x32 := float32(x)
		got := float64(perf2Erf32(x32))
		want := math.Erf(float64(x32))
		if d := math.Abs(got - want); d > worst {
			worst, at = d, float64(x32)
		}
	}
	t.Logf("max abs error %.3g at %g", worst, at)
	if worst > 2e-7 {
		t.Errorf("max abs error %.3g at %g, want <= 2e-7", worst, at)
	}
	// Relative error near 0 (erf(x) ≈ 2x/√π).
	for _, x := range []float32{1e-30, -1e-30, 1e-10, 1e-5, -3e-4, 0.01, 1.4e-45} {
		got, want := float64(perf2Erf32(x)), math.Erf(float64(x))
		if math.Abs(got-want) > 4e-7*math.Abs(want)+1e-45 {
			t.Errorf("erf(%g) = %g, want %g", x, got, want)
		}
	}
	for _, tc := range []struct {
		x, want float32
	}{
		{0, 0}, {float32(math.Inf(1)), 1}, {float32(math.Inf(-1)), -1}, {5, 1}, {-5, -1}, {1e30, 1}, {-1e30, -1},
	} {
		if got := perf2Erf32(tc.x); got != tc.want {
			t.Errorf("erf(%g) = %g, want %g", tc.x, got, tc.want)
		}
	}
	if got := perf2Erf32(float32(math.NaN())); !math.IsNaN(float64(got)) {
		t.Errorf("erf(NaN) = %g, want NaN", got)
	}
	if got := perf2Erf32(float32(math.Copysign(0, -1))); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("erf(-0) = %g, want -0", got)
	}
}

// TestPerf2ErfSlices checks the vector paths (and their scalar tails)
// against math.Erf and the float64 GELU, special values included.
// GELU's bound is absolute, scaled by |x|: for x < 0 it is x times
// (1+erf), where erf's absolute error carries over.
func TestPerf2ErfSlices(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	special := []float32{0, float32(math.Copysign(0, -1)), nan, inf, -inf, 1e30, -1e30, 3.999, 4.001, -4, 1e-40, 7}
	var grid []float32
	for x := -8.0; x <= 8.0; x += 1.0 / 1024 {
		grid = append(grid, float32(x))
	}
	for _, n := range []int{0, 1, 3, 4, 5, 8, 13, len(special)} {
		for _, src := range [][]float32{special, grid} {
			if n > len(src) {
				continue
			}
			s := src[:n]
			if len(src) == len(grid) {
				s = grid
			}
			de, dg := make([]float32, len(s)+1), make([]float32, len(s)+1)
			de[len(s)], dg[len(s)] = 42, 42
			perf2Erf(de, s)
			perf2Gelu(dg, s)
			if de[len(s)] != 42 || dg[len(s)] != 42 {
				t.Fatalf("n=%d: wrote past the end", len(s))
			}
			for i, x := range s {
				we := math.Erf(float64(x))
				wg := 0.5 * float64(x) * (1 + math.Erf(float64(x)/math.Sqrt2))
				if math.IsNaN(we) != math.IsNaN(float64(de[i])) || math.Abs(float64(de[i])-we) > 2e-7 {
					t.Errorf("erf(%g) = %g, want %g", x, de[i], we)
				}
				if math.IsNaN(wg) != math.IsNaN(float64(dg[i])) ||
					!math.IsInf(wg, 0) && math.Abs(float64(dg[i])-wg) > 2.5e-7*math.Max(1, math.Abs(float64(x))) ||
					math.IsInf(wg, 0) && float64(dg[i]) != wg {
					t.Errorf("gelu(%g) = %g, want %g", x, dg[i], wg)
				}
			}
		}
	}
}

func BenchmarkPerf2Erf(b *testing.B) {
	s := make([]float32, 4096)
	for i := range s {
		s[i] = float32(i%97)/16 - 3
	}
	d := make([]float32, len(s))
	b.Run("math", func(b *testing.B) {
		for b.Loop() {
			for i, x := range s {
				d[i] = float32(math.Erf(float64(x)))
			}
		}
	})
	b.Run("go", func(b *testing.B) {
		for b.Loop() {
			perf2ErfSlice(d, s)
		}
	})
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			perf2Erf(d, s)
		}
	})
}

func BenchmarkPerf2Gelu(b *testing.B) {
	s := make([]float32, 4096)
	for i := range s {
		s[i] = float32(i%97)/16 - 3
	}
	d := make([]float32, len(s))
	for b.Loop() {
		perf2Gelu(d, s)
	}
}
