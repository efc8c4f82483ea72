//go:build !amd64 || (purego && !goexperiment.simd)

package interp

// Scalar micro-kernel: 3×4. Twelve accumulators plus the 3+4 operands fit
// the 15 float registers the Go compiler allocates on amd64, so nothing
// spills (4×8 and 4×4 tiles spill and measured 20-30% slower).
const (
	nnMR = 3
	nnNR = 4
)

// nnKernelName names the micro-kernel in benchmark output.
const nnKernelName = "scalar3x4"

func nnKernel(kc int, a, b []float32, c []float32, ldc int, accum bool) {
	nnKernel3x4(kc, a, b, c, ldc, accum)
}

// nnKernel3x4 computes a 3×4 block: c[r*ldc+q] (+)= Σk a[k*3+r]·b[k*4+q].
// The k loop is unrolled by two and reslices a and b so that bounds checks
// are hoisted.
func nnKernel3x4(kc int, a, b []float32, c []float32, ldc int, accum bool) {
	var c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23 float32
	a = a[:kc*3]
	b = b[:kc*4]
	for len(a) >= 6 && len(b) >= 8 {
		b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
		a0, a1, a2 := a[0], a[1], a[2]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		b0, b1, b2, b3 = b[4], b[5], b[6], b[7]
		a0, a1, a2 = a[3], a[4], a[5]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		a = a[6:]
		b = b[8:]
	}
	if len(a) >= 3 && len(b) >= 4 {
		b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
		a0, a1, a2 := a[0], a[1], a[2]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
	}
	r0 := c[0:4:4]
	r1 := c[ldc : ldc+4 : ldc+4]
	r2 := c[2*ldc : 2*ldc+4 : 2*ldc+4]
	if accum {
		r0[0] += c00
		r0[1] += c01
		r0[2] += c02
		r0[3] += c03
		r1[0] += c10
		r1[1] += c11
		r1[2] += c12
		r1[3] += c13
		r2[0] += c20
		r2[1] += c21
		r2[2] += c22
		r2[3] += c23
		return
	}
	r0[0], r0[1], r0[2], r0[3] = c00, c01, c02, c03
	r1[0], r1[1], r1[2], r1[3] = c10, c11, c12, c13
	r2[0], r2[1], r2[2], r2[3] = c20, c21, c22, c23
}

// nnAxpy computes y[i] += a·x[i] (len(x) >= len(y)).
func nnAxpy(y, x []float32, a float32) {
	x = x[:len(y)]
	for i := range y {
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
