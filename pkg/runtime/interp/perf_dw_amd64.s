//go:build !purego && !goexperiment.simd

#include "textflag.h"

// func perfDWRowAVX2(out *float32, n int, x *float32, rs int, w *float32, kh, kw, dw int, bias float32)
// Stride-1 depthwise row: out[i] = bias + Σki Σkj w[ki*kw+kj]·x[ki*rs+kj*dw+i]
// for n (a multiple of 8) outputs. Blocks of 16 keep four accumulators
// (even and odd kernel rows apart, summed at the end) so that the FMA
// chains overlap; a last block of 8 uses two.
TEXT ·perfDWRowAVX2(SB), NOSPLIT, $0-68
	MOVQ         out+0(FP), DI
	MOVQ         n+8(FP), CX
	MOVQ         x+16(FP), SI
	MOVQ         rs+24(FP), R8
	SHLQ         $2, R8
	MOVQ         w+32(FP), R9
	MOVQ         kh+40(FP), R10
	MOVQ         kw+48(FP), R11
	MOVQ         dw+56(FP), R12
	SHLQ         $2, R12
	VBROADCASTSS bias+64(FP), Y15
	MOVQ         CX, R15
	SHRQ         $4, CX
	JZ           dw8

dw16:
	VMOVAPS Y15, Y0
	VMOVAPS Y15, Y1
	VXORPS  Y2, Y2, Y2
	VXORPS  Y3, Y3, Y3
	MOVQ    SI, AX
	MOVQ    R9, BX
	MOVQ    R10, DX

dw16row:
	MOVQ AX, R14
	MOVQ R11, R13

dw16a:
	VBROADCASTSS (BX), Y4
	VFMADD231PS  (R14), Y4, Y0
	VFMADD231PS  32(R14), Y4, Y1
	ADDQ         R12, R14
	ADDQ         $4, BX
	DECQ         R13
	JNZ          dw16a
	ADDQ         R8, AX
	DECQ         DX
	JZ           dw16done
	MOVQ         AX, R14
	MOVQ         R11, R13

dw16b:
	VBROADCASTSS (BX), Y4
	VFMADD231PS  (R14), Y4, Y2
	VFMADD231PS  32(R14), Y4, Y3
	ADDQ         R12, R14
	ADDQ         $4, BX
	DECQ         R13
	JNZ          dw16b
	ADDQ         R8, AX
	DECQ         DX
	JNZ          dw16row

dw16done:
	VADDPS  Y2, Y0, Y0
	VADDPS  Y3, Y1, Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ    $64, DI
	ADDQ    $64, SI
	DECQ    CX
	JNZ     dw16

dw8:
	TESTQ $8, R15
	JZ    dwret
	VMOVAPS Y15, Y0
	VXORPS  Y2, Y2, Y2
	MOVQ    SI, AX
	MOVQ    R9, BX
	MOVQ    R10, DX

dw8row:
	MOVQ AX, R14
	MOVQ R11, R13

dw8a:
	VBROADCASTSS (BX), Y4
	VFMADD231PS  (R14), Y4, Y0
	ADDQ         R12, R14
	ADDQ         $4, BX
	DECQ         R13
	JNZ          dw8a
	ADDQ         R8, AX
	DECQ         DX
	JZ           dw8done
	MOVQ         AX, R14
	MOVQ         R11, R13

dw8b:
	VBROADCASTSS (BX), Y4
	VFMADD231PS  (R14), Y4, Y2
	ADDQ         R12, R14
	ADDQ         $4, BX
	DECQ         R13
	JNZ          dw8b
	ADDQ         R8, AX
	DECQ         DX
	JNZ          dw8row

dw8done:
	VADDPS  Y2, Y0, Y0
	VMOVUPS Y0, (DI)

dwret:
	VZEROUPPER
	RET
