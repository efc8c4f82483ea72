package interp

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestPerf2PackA compares perf2PackA with nnPackAStrips bit for bit over
// strip and column tails, K over one nnKC block, padded rows (rs > K),
// alpha ≠ 1 and NaN/Inf values.
func TestPerf2PackA(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var gm nnGemmer
	gm.init(func(n int, fn func(lo, hi int)) { fn(0, n) })
	for _, tc := range []struct {
		M, K, pad int
		alpha     float32
	}{
		{1, 1, 0, 1}, {4, 8, 0, 1}, {4, 7, 0, 1}, {5, 9, 3, 1}, {16, 64, 0, 1}, {16, 16, 0, 0.5},
		{7, 300, 0, 1}, {12, 257, 5, -2}, {3, 40, 0, 1}, {64, 256, 0, 1}, {9, 520, 1, 1},
	} {
		t.Run(fmt.Sprintf("M%d_K%d_pad%d", tc.M, tc.K, tc.pad), func(t *testing.T) {
			rs := tc.K + tc.pad
			a := make([]float32, (tc.M-1)*rs+tc.K)
			for i := range a {
				a[i] = float32(r.NormFloat64())
			}
			a[0], a[len(a)-1] = float32(math.NaN()), float32(math.Inf(-1))
			n := nnPackedLenA(tc.M, tc.K)
			got, want := make([]float32, n+1), make([]float32, n+1)
			for i := range got {
				got[i], want[i] = 7, 7
			}
			perf2PackA(&gm, got[:n], a, rs, 1, tc.M, tc.K, tc.alpha)
			nnPackAStrips(want[:n], a, rs, 1, tc.M, tc.K, tc.alpha, 0, nnRoundUp(tc.M, nnMR)/nnMR)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("packed[%d] = %g, want %g", i, got[i], want[i])
				}
			}
		})
	}
}
