//go:build !purego && !goexperiment.simd

#include "textflag.h"

// func perfConvKernel4x24AVX2(kc int, a, x *float32, offs *int, c *float32, ldc int, accum int)
// The direct-convolution tile of perfDirectNR = 24 columns: a 4×24 block
// of C (+)= Σk a[k*4+r]·x[offs[k]+q]. Twelve accumulators keep both FMA
// pipes busy (the 4×16 GEMM tile's eight are latency-bound), and each step
// issues 3 B loads + 4 broadcasts for 12 FMAs.
TEXT ·perfConvKernel4x24AVX2(SB), NOSPLIT, $0-56
	MOVQ   kc+0(FP), CX
	MOVQ   a+8(FP), SI
	MOVQ   x+16(FP), DI
	MOVQ   offs+24(FP), R10
	MOVQ   c+32(FP), DX
	MOVQ   ldc+40(FP), R8
	SHLQ   $2, R8
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	MOVQ   CX, R9
	SHRQ   $1, R9
	JZ     e4tail

e4loop2:
	MOVQ         (R10), R11
	MOVQ         8(R10), R12
	VMOVUPS      (DI)(R11*4), Y12
	VMOVUPS      32(DI)(R11*4), Y13
	VMOVUPS      64(DI)(R11*4), Y14
	VBROADCASTSS 0(SI), Y15
	VFMADD231PS  Y12, Y15, Y0
	VFMADD231PS  Y13, Y15, Y1
	VFMADD231PS  Y14, Y15, Y2
	VBROADCASTSS 4(SI), Y15
	VFMADD231PS  Y12, Y15, Y3
	VFMADD231PS  Y13, Y15, Y4
	VFMADD231PS  Y14, Y15, Y5
	VBROADCASTSS 8(SI), Y15
	VFMADD231PS  Y12, Y15, Y6
	VFMADD231PS  Y13, Y15, Y7
	VFMADD231PS  Y14, Y15, Y8
	VBROADCASTSS 12(SI), Y15
	VFMADD231PS  Y12, Y15, Y9
	VFMADD231PS  Y13, Y15, Y10
	VFMADD231PS  Y14, Y15, Y11
	VMOVUPS      (DI)(R12*4), Y12
	VMOVUPS      32(DI)(R12*4), Y13
	VMOVUPS      64(DI)(R12*4), Y14
	VBROADCASTSS 16(SI), Y15
	VFMADD231PS  Y12, Y15, Y0
	VFMADD231PS  Y13, Y15, Y1
	VFMADD231PS  Y14, Y15, Y2
	VBROADCASTSS 20(SI), Y15
	VFMADD231PS  Y12, Y15, Y3
	VFMADD231PS  Y13, Y15, Y4
	VFMADD231PS  Y14, Y15, Y5
	VBROADCASTSS 24(SI), Y15
	VFMADD231PS  Y12, Y15, Y6
	VFMADD231PS  Y13, Y15, Y7
	VFMADD231PS  Y14, Y15, Y8
	VBROADCASTSS 28(SI), Y15
	VFMADD231PS  Y12, Y15, Y9
	VFMADD231PS  Y13, Y15, Y10
	VFMADD231PS  Y14, Y15, Y11
	ADDQ         $32, SI
	ADDQ         $16, R10
	DECQ         R9
	JNZ          e4loop2

e4tail:
	TESTQ        $1, CX
	JZ           e4store
	MOVQ         (R10), R11
	VMOVUPS      (DI)(R11*4), Y12
	VMOVUPS      32(DI)(R11*4), Y13
	VMOVUPS      64(DI)(R11*4), Y14
	VBROADCASTSS 0(SI), Y15
	VFMADD231PS  Y12, Y15, Y0
	VFMADD231PS  Y13, Y15, Y1
	VFMADD231PS  Y14, Y15, Y2
	VBROADCASTSS 4(SI), Y15
	VFMADD231PS  Y12, Y15, Y3
	VFMADD231PS  Y13, Y15, Y4
	VFMADD231PS  Y14, Y15, Y5
	VBROADCASTSS 8(SI), Y15
	VFMADD231PS  Y12, Y15, Y6
	VFMADD231PS  Y13, Y15, Y7
	VFMADD231PS  Y14, Y15, Y8
	VBROADCASTSS 12(SI), Y15
	VFMADD231PS  Y12, Y15, Y9
	VFMADD231PS  Y13, Y15, Y10
	VFMADD231PS  Y14, Y15, Y11

e4store:
	MOVQ  accum+48(FP), AX
	TESTQ AX, AX
	JZ    e4over
	VADDPS 0(DX), Y0, Y0
	VADDPS 32(DX), Y1, Y1
	VADDPS 64(DX), Y2, Y2
	ADDQ   R8, DX
	VADDPS 0(DX), Y3, Y3
	VADDPS 32(DX), Y4, Y4
	VADDPS 64(DX), Y5, Y5
	ADDQ   R8, DX
	VADDPS 0(DX), Y6, Y6
	VADDPS 32(DX), Y7, Y7
	VADDPS 64(DX), Y8, Y8
	ADDQ   R8, DX
	VADDPS 0(DX), Y9, Y9
	VADDPS 32(DX), Y10, Y10
	VADDPS 64(DX), Y11, Y11
	MOVQ   c+32(FP), DX

e4over:
	VMOVUPS Y0, 0(DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, 64(DX)
	ADDQ    R8, DX
	VMOVUPS Y3, 0(DX)
	VMOVUPS Y4, 32(DX)
	VMOVUPS Y5, 64(DX)
	ADDQ    R8, DX
	VMOVUPS Y6, 0(DX)
	VMOVUPS Y7, 32(DX)
	VMOVUPS Y8, 64(DX)
	ADDQ    R8, DX
	VMOVUPS Y9, 0(DX)
	VMOVUPS Y10, 32(DX)
	VMOVUPS Y11, 64(DX)
	VZEROUPPER
	RET

// func perfCopyOutAVX2(dst, src, bias *float32, m, rows, w, sstride, splane int, lo, hi float32)
// The direct convolution's copy-out: for channel i < m and row h < rows,
// dst[(i*rows+h)*w + j] = min(max(src[i*splane + h*sstride + j] + bias[i], lo), hi)
// for j < w (w >= 8; the last 8 columns of a row are redone overlapping
// when w is not a multiple of 8, so dst and src must not overlap).
TEXT ·perfCopyOutAVX2(SB), NOSPLIT, $0-72
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         bias+16(FP), BX
	MOVQ         m+24(FP), R8
	MOVQ         w+40(FP), R10
	MOVQ         sstride+48(FP), R11
	SHLQ         $2, R11
	MOVQ         splane+56(FP), R12
	SHLQ         $2, R12
	VBROADCASTSS lo+64(FP), Y14
	VBROADCASTSS hi+68(FP), Y15
	MOVQ         R10, R13
	ANDQ         $-8, R13          // full 8-wide columns
	MOVQ         R10, R15
	SHLQ         $2, R15
	SUBQ         $32, R15          // byte offset of the last 8 columns

cchan:
	VBROADCASTSS (BX), Y13
	MOVQ         SI, DX            // this channel's first source row
	MOVQ         rows+32(FP), R9

crow:
	XORQ         AX, AX
ccol:
	VMOVUPS      (DX)(AX*4), Y0
	VADDPS       Y13, Y0, Y0
	VMAXPS       Y0, Y14, Y0
	VMINPS       Y0, Y15, Y0
	VMOVUPS      Y0, (DI)(AX*4)
	ADDQ         $8, AX
	CMPQ         AX, R13
	JLT          ccol
	CMPQ         R13, R10
	JEQ          cnext
	VMOVUPS      (DX)(R15*1), Y0
	VADDPS       Y13, Y0, Y0
	VMAXPS       Y0, Y14, Y0
	VMINPS       Y0, Y15, Y0
	VMOVUPS      Y0, (DI)(R15*1)

cnext:
	LEAQ         (DI)(R10*4), DI
	ADDQ         R11, DX
	DECQ         R9
	JNZ          crow
	ADDQ         R12, SI
	ADDQ         $4, BX
	DECQ         R8
	JNZ          cchan
	VZEROUPPER
	RET
