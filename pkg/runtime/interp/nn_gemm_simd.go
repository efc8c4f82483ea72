//go:build goexperiment.simd && amd64

package interp

import "simd/archsimd"

// SIMD micro-kernel (build with GOEXPERIMENT=simd): 4×16, eight 8-wide
// accumulators in YMM registers, one FMA per accumulator and k. CPUs
// without AVX2/FMA take a scalar loop over the same packed layout.
const (
	nnMR = 4
	nnNR = 16
)

const nnKernelName = "avx2-4x16"

var nnHaveAVX2 = archsimd.X86.AVX2() && archsimd.X86.FMA()

func nnKernel(kc int, a, b []float32, c []float32, ldc int, accum bool) {
	if !nnHaveAVX2 {
		nnKernelGeneric(kc, a, b, c, ldc, nnMR, accum)
		return
	}
	var c00, c01, c10, c11, c20, c21, c30, c31 archsimd.Float32x8
	a = a[:kc*4]
	b = b[:kc*16]
	for len(a) >= 4 && len(b) >= 16 {
		b0 := archsimd.LoadFloat32x8((*[8]float32)(b[0:8]))
		b1 := archsimd.LoadFloat32x8((*[8]float32)(b[8:16]))
		av := archsimd.BroadcastFloat32x8(a[0])
		c00 = av.MulAdd(b0, c00)
		c01 = av.MulAdd(b1, c01)
		av = archsimd.BroadcastFloat32x8(a[1])
		c10 = av.MulAdd(b0, c10)
		c11 = av.MulAdd(b1, c11)
		av = archsimd.BroadcastFloat32x8(a[2])
		c20 = av.MulAdd(b0, c20)
		c21 = av.MulAdd(b1, c21)
		av = archsimd.BroadcastFloat32x8(a[3])
		c30 = av.MulAdd(b0, c30)
		c31 = av.MulAdd(b1, c31)
		a = a[4:]
		b = b[16:]
	}
	nnStore8(c[0:8], c00, accum)
	nnStore8(c[8:16], c01, accum)
	nnStore8(c[ldc:ldc+8], c10, accum)
	nnStore8(c[ldc+8:ldc+16], c11, accum)
	nnStore8(c[2*ldc:2*ldc+8], c20, accum)
	nnStore8(c[2*ldc+8:2*ldc+16], c21, accum)
	nnStore8(c[3*ldc:3*ldc+8], c30, accum)
	nnStore8(c[3*ldc+8:3*ldc+16], c31, accum)
}

func nnStore8(dst []float32, v archsimd.Float32x8, accum bool) {
	p := (*[8]float32)(dst[:8])
	if accum {
		v = v.Add(archsimd.LoadFloat32x8(p))
	}
	v.Store(p)
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
	if nnHaveAVX2 {
		av := archsimd.BroadcastFloat32x8(a)
		for ; i+8 <= len(y); i += 8 {
			p := (*[8]float32)(y[i : i+8])
			v := av.MulAdd(archsimd.LoadFloat32x8((*[8]float32)(x[i:i+8])), archsimd.LoadFloat32x8(p))
			v.Store(p)
		}
	}
	for ; i < len(y); i++ {
		y[i] += a * x[i]
	}
}

// nnDWInterior computes len(out) stride-1 depthwise outputs whose taps are
// all inside the input: out[i] = bias + Σr Σkj w[r][kj]·rows[r][x0+i+kj·dw],
// 8 outputs per step with the sum kept in a register.
func nnDWInterior(out []float32, rows, w [][]float32, x0, dw int, bias float32) {
	i := 0
	if nnHaveAVX2 {
		bv := archsimd.BroadcastFloat32x8(bias)
		for ; i+8 <= len(out); i += 8 {
			acc := bv
			for r, row := range rows {
				for kj, wv := range w[r] {
					o := x0 + i + kj*dw
					acc = archsimd.BroadcastFloat32x8(wv).MulAdd(archsimd.LoadFloat32x8((*[8]float32)(row[o:o+8])), acc)
				}
			}
			acc.Store((*[8]float32)(out[i : i+8]))
		}
	}
	for ; i < len(out); i++ {
		acc := bias
		for r, row := range rows {
			for kj, wv := range w[r] {
				acc += wv * row[x0+i+kj*dw]
			}
		}
		out[i] = acc
	}
}
