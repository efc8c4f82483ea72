package interp

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func nnNaiveGemm(M, N, K int, alpha float32, a []float32, ars, acs int, b []float32, brs, bcs int, c []float32, ldc int, accum bool) {
	for i := 0; i < M; i++ {
		for j := 0; j < N; j++ {
			var s float64
			for k := 0; k < K; k++ {
				s += float64(a[i*ars+k*acs]) * float64(b[k*brs+j*bcs])
			}
			v := float32(s) * alpha
			if accum {
				c[i*ldc+j] += v
			} else {
				c[i*ldc+j] = v
			}
		}
	}
}

func nnRandF32(r *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = r.Float32()*2 - 1
	}
	return out
}

func TestNNSgemm(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		M, N, K        int
		transA, transB bool
		accum          bool
		threads        int
	}{
		{1, 1, 1, false, false, false, 1},
		{3, 5, 7, false, false, false, 1},
		{4, 8, 256, false, false, false, 1},
		{5, 9, 257, true, false, true, 2},
		{67, 130, 300, false, true, false, 2},
		{64, 512, 513, true, true, true, 2},
		{129, 33, 1, false, false, false, 2},
		{7, 1000, 64, false, false, false, 2},
		{2, 3, 0, false, false, false, 1},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%dx%dx%d_tA%v_tB%v_acc%v_t%d", tc.M, tc.N, tc.K, tc.transA, tc.transB, tc.accum, tc.threads), func(t *testing.T) {
			a := nnRandF32(r, tc.M*tc.K)
			b := nnRandF32(r, tc.K*tc.N)
			ars, acs := tc.K, 1
			if tc.transA {
				ars, acs = 1, tc.M
			}
			brs, bcs := tc.N, 1
			if tc.transB {
				brs, bcs = 1, tc.K
			}
			ldc := tc.N + 3
			c0 := nnRandF32(r, tc.M*ldc)
			want := append([]float32{}, c0...)
			got := append([]float32{}, c0...)
			nnNaiveGemm(tc.M, tc.N, tc.K, 0.5, a, ars, acs, b, brs, bcs, want, ldc, tc.accum)
			scratch := make([]float32, nnPackedLenA(tc.M, tc.K)+nnPackedLenB(tc.K, tc.N))
			nnSgemmT(tc.threads, tc.M, tc.N, tc.K, 0.5, a, ars, acs, b, brs, bcs, got, ldc, tc.accum, scratch)
			for i := 0; i < tc.M; i++ {
				for j := 0; j < ldc; j++ {
					w, g := want[i*ldc+j], got[i*ldc+j]
					if j >= tc.N {
						w = c0[i*ldc+j] // padding columns must be untouched
					}
					if math.Abs(float64(w-g)) > 1e-4*(1+math.Abs(float64(w))) {
						t.Fatalf("C[%d,%d] = %g, want %g", i, j, g, w)
					}
				}
			}
		})
	}
}

// BenchmarkNNSgemm reports GFLOP/s of the packed GEMM (packing included).
func BenchmarkNNSgemm(b *testing.B) {
	for _, sz := range []struct{ M, N, K, threads int }{
		{64, 64, 64, 1}, {256, 256, 256, 1}, {512, 512, 512, 1}, {1024, 1024, 1024, 1},
		{512, 512, 512, 2}, {1024, 1024, 1024, 2},
		{16, 2304, 144, 1}, {1, 1000, 1024, 1},
	} {
		b.Run(fmt.Sprintf("%dx%dx%d/t%d", sz.M, sz.N, sz.K, sz.threads), func(b *testing.B) {
			r := rand.New(rand.NewPCG(3, 4))
			a := nnRandF32(r, sz.M*sz.K)
			bb := nnRandF32(r, sz.K*sz.N)
			c := make([]float32, sz.M*sz.N)
			scratch := make([]float32, nnPackedLenA(sz.M, sz.K)+nnPackedLenB(sz.K, sz.N))
			var gm nnGemmer
			gm.init(nnGoPar(sz.threads))
			b.ResetTimer()
			for b.Loop() {
				nnSgemm(&gm, sz.M, sz.N, sz.K, 1, a, sz.K, 1, bb, sz.N, 1, c, sz.N, false, scratch)
			}
			flops := 2 * float64(sz.M) * float64(sz.N) * float64(sz.K) * float64(b.N)
			b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

func nnSgemmT(threads, M, N, K int, alpha float32, a []float32, ars, acs int, b []float32, brs, bcs int, c []float32, ldc int, accum bool, scratch []float32) {
	var gm nnGemmer
	gm.init(nnGoPar(threads))
	nnSgemm(&gm, M, N, K, alpha, a, ars, acs, b, brs, bcs, c, ldc, accum, scratch)
}
