//go:build !purego && !goexperiment.simd

#include "textflag.h"

// func perfConvKernel4x16AVX2(kc int, a, x *float32, offs *int, c *float32, ldc int, accum int)
// Direct-convolution tile: a 4×16 block of C (row stride ldc floats)
// (+)= Σk a[k*4+r]·x[offs[k]+q]. It is the packed GEMM micro-kernel with
// the B row of step k read straight from the (padded) input image at
// element offset offs[k] instead of from a packed panel.
TEXT ·perfConvKernel4x16AVX2(SB), NOSPLIT, $0-56
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
	MOVQ   CX, R9
	SHRQ   $1, R9
	JZ     d4tail

d4loop2:
	MOVQ         (R10), R11
	MOVQ         8(R10), R12
	VMOVUPS      (DI)(R11*4), Y8
	VMOVUPS      32(DI)(R11*4), Y9
	VBROADCASTSS (SI), Y10
	VBROADCASTSS 4(SI), Y11
	VFMADD231PS  Y8, Y10, Y0
	VFMADD231PS  Y9, Y10, Y1
	VFMADD231PS  Y8, Y11, Y2
	VFMADD231PS  Y9, Y11, Y3
	VBROADCASTSS 8(SI), Y12
	VBROADCASTSS 12(SI), Y13
	VFMADD231PS  Y8, Y12, Y4
	VFMADD231PS  Y9, Y12, Y5
	VFMADD231PS  Y8, Y13, Y6
	VFMADD231PS  Y9, Y13, Y7
	VMOVUPS      (DI)(R12*4), Y8
	VMOVUPS      32(DI)(R12*4), Y9
	VBROADCASTSS 16(SI), Y10
	VBROADCASTSS 20(SI), Y11
	VFMADD231PS  Y8, Y10, Y0
	VFMADD231PS  Y9, Y10, Y1
	VFMADD231PS  Y8, Y11, Y2
	VFMADD231PS  Y9, Y11, Y3
	VBROADCASTSS 24(SI), Y12
	VBROADCASTSS 28(SI), Y13
	VFMADD231PS  Y8, Y12, Y4
	VFMADD231PS  Y9, Y12, Y5
	VFMADD231PS  Y8, Y13, Y6
	VFMADD231PS  Y9, Y13, Y7
	ADDQ         $32, SI
	ADDQ         $16, R10
	DECQ         R9
	JNZ          d4loop2

d4tail:
	TESTQ        $1, CX
	JZ           d4store
	MOVQ         (R10), R11
	VMOVUPS      (DI)(R11*4), Y8
	VMOVUPS      32(DI)(R11*4), Y9
	VBROADCASTSS (SI), Y10
	VBROADCASTSS 4(SI), Y11
	VFMADD231PS  Y8, Y10, Y0
	VFMADD231PS  Y9, Y10, Y1
	VFMADD231PS  Y8, Y11, Y2
	VFMADD231PS  Y9, Y11, Y3
	VBROADCASTSS 8(SI), Y12
	VBROADCASTSS 12(SI), Y13
	VFMADD231PS  Y8, Y12, Y4
	VFMADD231PS  Y9, Y12, Y5
	VFMADD231PS  Y8, Y13, Y6
	VFMADD231PS  Y9, Y13, Y7

d4store:
	MOVQ  accum+48(FP), AX
	TESTQ AX, AX
	JZ    d4over
	VADDPS (DX), Y0, Y0
	VADDPS 32(DX), Y1, Y1
	ADDQ   R8, DX
	VADDPS (DX), Y2, Y2
	VADDPS 32(DX), Y3, Y3
	ADDQ   R8, DX
	VADDPS (DX), Y4, Y4
	VADDPS 32(DX), Y5, Y5
	ADDQ   R8, DX
	VADDPS (DX), Y6, Y6
	VADDPS 32(DX), Y7, Y7
	MOVQ   c+32(FP), DX

d4over:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	ADDQ    R8, DX
	VMOVUPS Y2, (DX)
	VMOVUPS Y3, 32(DX)
	ADDQ    R8, DX
	VMOVUPS Y4, (DX)
	VMOVUPS Y5, 32(DX)
	ADDQ    R8, DX
	VMOVUPS Y6, (DX)
	VMOVUPS Y7, 32(DX)
	VZEROUPPER
	RET
