package interp

import (
	"math"
	"testing"
)

// TestPerf2ExpSub bounds the vector exp (and its scalar tail) against
// math.Exp over the range a softmax row produces (x-max in [-∞, 0]), plus
// a little above, with -Inf, NaN and denormal-range values.
func TestPerf2ExpSub(t *testing.T) {
	var s []float32
	for x := -110.0; x <= 88; x += 1.0 / 512 {
		s = append(s, float32(x))
	}
	s = append(s, float32(math.Inf(-1)), float32(math.NaN()), -87.01, -86.99, 0, float32(math.Copysign(0, -1)))
	for _, m := range []float32{0, 3.5, -2} {
		for _, n := range []int{len(s), 7, 8, 9, 1} {
			src := s[len(s)-n:]
			d := make([]float32, n+1)
			d[n] = 42
			perf2ExpSub(d, src, m)
			if d[n] != 42 {
				t.Fatal("wrote past the end")
			}
			worst := 0.0
			for i, v := range src {
				x := float64(v - m)
				if x > 88 {
					continue
				}
				want, got := math.Exp(x), float64(d[i])
				switch {
				case math.IsNaN(x):
					if !math.IsNaN(got) {
						t.Errorf("exp(NaN) = %g", got)
					}
				case want < 1.7e-38: // flushed to 0 below exp(-87)
					if got != 0 && math.Abs(got-want) > 1.5e-45 {
						t.Errorf("exp(%g) = %g, want 0 or %g", x, got, want)
					}
				default:
					if r := math.Abs(got-want) / want; r > worst {
						worst = r
					}
					if math.Abs(got-want) > 3e-7*want {
						t.Errorf("exp(%g) = %g, want %g", x, got, want)
					}
				}
			}
			if n == len(s) {
				t.Logf("m=%g: max rel error %.3g", m, worst)
			}
		}
	}
}

// TestPerf2SoftmaxRow compares the vector softmax row with ewSoftmaxRow.
func TestPerf2SoftmaxRow(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	for _, row := range [][]float32{
		{1, 2, 3},
		{0.5, -1, 3, 7, -2, 0, 1, 2, 9, -9, 4, 4, 3, 2, 1, 0, -50},
		{-inf, 0, 1, -inf, 2, 3, 4, 5, 6},
		{nan, 1, 2, 3, 4, 5, 6, 7, 8},
		{1, 2, 3, 4, 5, 6, 7, 8, nan},
		{-inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf},
		{inf, 1, 2, 3, 4, 5, 6, 7},
		{1e30, -1e30, 0, 88, -88, 100, -100, 3, 2},
		{},
	} {
		got, want := make([]float32, len(row)), make([]float32, len(row))
		perf2SoftmaxRow(got, row)
		ewSoftmaxRow(want, row, false)
		for i := range row {
			g, w := float64(got[i]), float64(want[i])
			if math.IsNaN(g) != math.IsNaN(w) || !math.IsNaN(w) && math.Abs(g-w) > 1e-6*w+1e-30 {
				t.Errorf("row %v: [%d] = %g, want %g", row, i, g, w)
			}
		}
	}
}

func BenchmarkPerf2Softmax(b *testing.B) {
	row := make([]float32, 16*64)
	for i := range row {
		row[i] = float32(i%29)/4 - 3
	}
	o := make([]float32, len(row))
	b.Run("ew", func(b *testing.B) {
		for b.Loop() {
			for r := 0; r < len(row); r += 16 {
				ewSoftmaxRow(o[r:r+16], row[r:r+16], false)
			}
		}
	})
	b.Run("perf2", func(b *testing.B) {
		for b.Loop() {
			for r := 0; r < len(row); r += 16 {
				perf2SoftmaxRow(o[r:r+16], row[r:r+16])
			}
		}
	})
}
