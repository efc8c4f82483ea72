//go:build !purego && !goexperiment.simd

package interp

import "golang.org/x/sys/cpu"

// Default-build amd64 micro-kernel: 4×16 in Go assembly (perf_gemm_amd64.s),
// eight YMM accumulators and one FMA per accumulator and k, the same tile
// and packed layout as the GOEXPERIMENT=simd kernel. CPUs without AVX2 and
// FMA run a portable loop over the same layout; other architectures and the
// purego tag keep the 3×4 scalar kernel (nn_gemm_scalar.go).
const (
	nnMR = 4
	nnNR = 16
)

const nnKernelName = "asm-avx2-4x16"

// perfHasAVX2 selects the assembly kernels; tests turn it off to exercise
// the portable fallback.
var perfHasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func perfKernel4x16AVX2(kc int, a, b, c *float32, ldc int, accum int)

//go:noescape
func perfAxpyAVX2(y, x *float32, n int, a float32)

func perfBool(b bool) int {
	if b {
		return 1
	}
	return 0
}

// nnKernel computes a full 4×16 block: c[r*ldc+q] (+)= Σk a[k*4+r]·b[k*16+q].
func nnKernel(kc int, a, b []float32, c []float32, ldc int, accum bool) {
	if !perfHasAVX2 || kc <= 0 {
		nnKernelGeneric(kc, a, b, c, ldc, nnMR, accum)
		return
	}
	// Bounds checks once, outside the kernel.
	_ = a[kc*nnMR-1]
	_ = b[kc*nnNR-1]
	_ = c[3*ldc+nnNR-1]
	perfKernel4x16AVX2(kc, &a[0], &b[0], &c[0], ldc, perfBool(accum))
}

// nnKernelGeneric is the portable fallback for rows rows of a tile.
func nnKernelGeneric(kc int, a, b []float32, c []float32, ldc, rows int, accum bool) {
	for r := 0; r < rows; r++ {
		var acc [nnNR]float32
		for k := 0; k < kc; k++ {
			av := a[k*nnMR+r]
			bk := b[k*nnNR : k*nnNR+nnNR]
			for q := range acc {
				acc[q] += av * bk[q]
			}
		}
		row := c[r*ldc : r*ldc+nnNR]
		for q := range acc {
			if accum {
				row[q] += acc[q]
			} else {
				row[q] = acc[q]
			}
		}
	}
}

// nnAxpy computes y[i] += a·x[i] (len(x) >= len(y)).
func nnAxpy(y, x []float32, a float32) {
	x = x[:len(y)]
	i := 0
	if main := len(y) &^ 7; perfHasAVX2 && main > 0 {
		perfAxpyAVX2(&y[0], &x[0], main, a)
		i = main
	}
	for ; i < len(y); i++ {
		y[i] += a * x[i]
	}
}

// nnDWInterior computes len(out) stride-1 depthwise outputs whose taps are
// all inside the input: out[i] = bias + Σr Σkj w[r][kj]·rows[r][x0+i+kj·dw].
func nnDWInterior(out []float32, rows, w [][]float32, x0, dw int, bias float32) {
	for i := range out {
		out[i] = bias
	}
	for r, row := range rows {
		for kj, wv := range w[r] {
			nnAxpy(out, row[x0+kj*dw:], wv)
		}
	}
}

//go:noescape
func perfCopyStrips(dst *float32, dstride int, src *float32, n int)

// nnCopyStrips copies len(src)/nnNR blocks of nnNR floats: block s of src
// goes to dst[s*dstride:] (scattering a contiguous row into packed-B
// strips).
func nnCopyStrips(dst []float32, dstride int, src []float32) {
	n := len(src) / nnNR
	if n == 0 {
		return
	}
	_ = dst[(n-1)*dstride+nnNR-1]
	if perfHasAVX2 && nnNR == 16 {
		perfCopyStrips(&dst[0], dstride, &src[0], n)
		return
	}
	nnCopyStripsGo(dst, dstride, src)
}
