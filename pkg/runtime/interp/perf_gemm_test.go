package interp

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestPerfGemmKernels checks the GEMM (whichever micro-kernel this build
// selects) against the naive reference at sizes that hit every edge of the
// tile: M and N not multiples of nnMR/nnNR, K odd, K over one nnKC block,
// M = 1 (the vector-matrix path), accumulation, and a padded ldc. On amd64
// it runs again with the assembly kernels switched off (portable fallback).
func TestPerfGemmKernels(t *testing.T) {
	cases := []struct{ M, N, K int }{
		{1, 1, 1}, {1, 16, 1}, {1, 17, 3}, {1, 10, 256}, {1, 33, 257}, {1, 1000, 64},
		{2, 15, 2}, {3, 16, 5}, {4, 16, 1}, {4, 16, 2}, {4, 16, 7}, {5, 31, 9},
		{1, 1000, 2048}, {1, 4096, 9216}, {7, 47, 513}, {8, 784, 25}, {16, 196, 200}, {13, 100, 300}, {97, 513, 33},
	}
	modes := []bool{false}
	if perfFallbackToggle(false) != nil {
		modes = append(modes, true)
	}
	for _, fallback := range modes {
		for _, tc := range cases {
			for _, accum := range []bool{false, true} {
				name := fmt.Sprintf("%s/%dx%dx%d/acc%v", nnKernelName, tc.M, tc.N, tc.K, accum)
				if fallback {
					name = "fallback/" + name
				}
				t.Run(name, func(t *testing.T) {
					if restore := perfFallbackToggle(fallback); restore != nil {
						defer restore()
					}
					r := rand.New(rand.NewPCG(uint64(tc.M), uint64(tc.N*1000+tc.K)))
					a := nnRandF32(r, tc.M*tc.K)
					b := nnRandF32(r, tc.K*tc.N)
					ldc := tc.N + 5
					c0 := nnRandF32(r, tc.M*ldc)
					want := append([]float32{}, c0...)
					got := append([]float32{}, c0...)
					nnNaiveGemm(tc.M, tc.N, tc.K, 1.5, a, tc.K, 1, b, tc.N, 1, want, ldc, accum)
					scratch := make([]float32, nnPackedLenA(tc.M, tc.K)+nnPackedLenB(tc.K, tc.N))
					nnSgemmT(1, tc.M, tc.N, tc.K, 1.5, a, tc.K, 1, b, tc.N, 1, got, ldc, accum, scratch)
					for i := 0; i < tc.M; i++ {
						for j := 0; j < ldc; j++ {
							w, g := want[i*ldc+j], got[i*ldc+j]
							if j >= tc.N {
								w = c0[i*ldc+j]
							}
							if math.Abs(float64(w-g)) > 1e-4*(1+math.Abs(float64(w)))*math.Sqrt(float64(tc.K+1)) {
								t.Fatalf("C[%d,%d] = %g, want %g", i, j, g, w)
							}
						}
					}
				})
			}
		}
	}
}

// TestPerfAxpy checks nnAxpy (assembly on amd64) at lengths around the
// 8-wide vector step.
func TestPerfAxpy(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 64, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, uint64(n)))
			x := nnRandF32(r, n+3)
			y := nnRandF32(r, n)
			want := append([]float32{}, y...)
			for i := range want {
				want[i] += -0.75 * x[i]
			}
			nnAxpy(y, x, -0.75)
			for i := range y {
				if math.Abs(float64(y[i]-want[i])) > 1e-6 {
					t.Fatalf("y[%d] = %g, want %g", i, y[i], want[i])
				}
			}
		})
	}
}

// TestPerfGemmColumnsRoundAlike: with identical B columns every output of a
// row must be bit-identical whichever kernel (full tile, row edge, column
// edge) computed it; models with huge logits feeding Softmax depend on it.
func TestPerfGemmColumnsRoundAlike(t *testing.T) {
	for _, tc := range []struct{ M, N, K int }{{1, 1000, 2048}, {5, 40, 300}, {3, 17, 129}} {
		t.Run(fmt.Sprintf("%dx%dx%d", tc.M, tc.N, tc.K), func(t *testing.T) {
			r := rand.New(rand.NewPCG(9, uint64(tc.K)))
			a := nnRandF32(r, tc.M*tc.K)
			for i := range a {
				a[i] *= 1e6
			}
			col := nnRandF32(r, tc.K)
			b := make([]float32, tc.K*tc.N)
			for k := 0; k < tc.K; k++ {
				for j := 0; j < tc.N; j++ {
					b[k*tc.N+j] = col[k]
				}
			}
			c := make([]float32, tc.M*tc.N)
			scratch := make([]float32, nnPackedLenA(tc.M, tc.K)+nnPackedLenB(tc.K, tc.N))
			nnSgemmT(2, tc.M, tc.N, tc.K, 1, a, tc.K, 1, b, tc.N, 1, c, tc.N, false, scratch)
			for i := 0; i < tc.M; i++ {
				for j := 1; j < tc.N; j++ {
					if c[i*tc.N+j] != c[i*tc.N] {
						t.Fatalf("row %d: C[%d] = %g but C[0] = %g", i, j, c[i*tc.N+j], c[i*tc.N])
					}
				}
			}
		})
	}
}

// TestPerfCopyStrips checks the strip scatter against the portable loop.
func TestPerfCopyStrips(t *testing.T) {
	for _, n := range []int{0, 1, 2, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, uint64(n)))
			src := nnRandF32(r, n*nnNR)
			stride := nnNR*3 + 1
			got := nnRandF32(r, n*stride+nnNR)
			want := append([]float32{}, got...)
			nnCopyStripsGo(want, stride, src)
			nnCopyStrips(got, stride, src)
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("dst[%d] = %g, want %g", i, got[i], want[i])
				}
			}
			if n > 1 && got[stride] != src[nnNR] {
				t.Fatalf("block 1 not at dst[%d]", stride)
			}
		})
	}
}

// TestPerfGemv checks the unpacked vector×matrix path against the naive
// GEMM, with a strided A row, a padded B row stride and accumulation.
func TestPerfGemv(t *testing.T) {
	for _, tc := range []struct{ N, K, acs, brsPad int }{{1, 1, 1, 0}, {7, 3, 2, 1}, {16, 64, 1, 0}, {33, 257, 3, 5}, {1000, 128, 1, 0}} {
		for _, accum := range []bool{false, true} {
			t.Run(fmt.Sprintf("%dx%d/acs%d/acc%v", tc.N, tc.K, tc.acs, accum), func(t *testing.T) {
				r := rand.New(rand.NewPCG(11, uint64(tc.N*7+tc.K)))
				a := nnRandF32(r, tc.K*tc.acs)
				brs := tc.N + tc.brsPad
				b := nnRandF32(r, tc.K*brs)
				y0 := nnRandF32(r, tc.N)
				want := append([]float32{}, y0...)
				got := append([]float32{}, y0...)
				nnNaiveGemm(1, tc.N, tc.K, 0.5, a, 0, tc.acs, b, brs, 1, want, tc.N, accum)
				nnGemv(got, a, tc.acs, b, brs, tc.N, tc.K, 0.5, accum)
				for j := range got {
					if math.Abs(float64(got[j]-want[j])) > 1e-4*(1+math.Abs(float64(want[j])))*math.Sqrt(float64(tc.K)) {
						t.Fatalf("y[%d] = %g, want %g", j, got[j], want[j])
					}
				}
			})
		}
	}
}
