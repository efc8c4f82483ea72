//go:build !purego && !goexperiment.simd

#include "textflag.h"

// func perfClampAVX2(y *float32, n int, lo, hi float32)
// y[i] = min(max(y[i], lo), hi) for n (a multiple of 8) values; a NaN stays NaN.
TEXT ·perfClampAVX2(SB), NOSPLIT, $0-24
	MOVQ         y+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS lo+16(FP), Y14
	VBROADCASTSS hi+20(FP), Y15
	SHRQ         $3, CX
	JZ           cdone

cloop:
	VMOVUPS (DI), Y0
	VMAXPS  Y0, Y14, Y1
	VMINPS  Y1, Y15, Y1
	VMOVUPS Y1, (DI)
	ADDQ    $32, DI
	DECQ    CX
	JNZ     cloop

cdone:
	VZEROUPPER
	RET

// func perfBiasClampAVX2(dst, src *float32, n int, b, lo, hi float32)
// dst[i] = min(max(src[i]+b, lo), hi) for n (a multiple of 8) values.
TEXT ·perfBiasClampAVX2(SB), NOSPLIT, $0-36
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS b+24(FP), Y13
	VBROADCASTSS lo+28(FP), Y14
	VBROADCASTSS hi+32(FP), Y15
	SHRQ         $3, CX
	JZ           bdone

bloop:
	VMOVUPS (SI), Y0
	VADDPS  Y13, Y0, Y0
	VMAXPS  Y0, Y14, Y1
	VMINPS  Y1, Y15, Y1
	VMOVUPS Y1, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     bloop

bdone:
	VZEROUPPER
	RET

// func perfHardSwishAVX2(y *float32, n int, a, lo, hi, d float32, div int)
// t = min(max(y+a, lo), hi); y = (y·t)/d (div != 0) or (y·t)·d, for n (a
// multiple of 8) values, op by op as the unfused graph computes it.
TEXT ·perfHardSwishAVX2(SB), NOSPLIT, $0-40
	MOVQ         y+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS a+16(FP), Y12
	VBROADCASTSS lo+20(FP), Y13
	VBROADCASTSS hi+24(FP), Y14
	VBROADCASTSS d+28(FP), Y15
	MOVQ         div+32(FP), AX
	SHRQ         $3, CX
	JZ           hdone
	TESTQ        AX, AX
	JZ           hmul

hdiv:
	VMOVUPS (DI), Y0
	VADDPS  Y12, Y0, Y1
	VMAXPS  Y1, Y13, Y1
	VMINPS  Y1, Y14, Y1
	VMULPS  Y1, Y0, Y0
	VDIVPS  Y15, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	DECQ    CX
	JNZ     hdiv
	JMP     hdone

hmul:
	VMOVUPS (DI), Y0
	VADDPS  Y12, Y0, Y1
	VMAXPS  Y1, Y13, Y1
	VMINPS  Y1, Y14, Y1
	VMULPS  Y1, Y0, Y0
	VMULPS  Y15, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	DECQ    CX
	JNZ     hmul

hdone:
	VZEROUPPER
	RET

// func perfMaxIntoAVX2(dst, src *float32, n int)
// dst[i] = src[i] > dst[i] ? src[i] : dst[i] for n (a multiple of 8)
// values: a NaN in src never replaces dst.
TEXT ·perfMaxIntoAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   mdone

mloop:
	VMOVUPS (DI), Y0
	VMOVUPS (SI), Y1
	VMAXPS  Y0, Y1, Y2
	VMOVUPS Y2, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     mloop

mdone:
	VZEROUPPER
	RET

// func perfMaxPool2x2AVX2(out, r0, r1 *float32, n int)
// 2×2 stride-2 max pooling of two input rows: out[i] = max of r0[2i],
// r0[2i+1], r1[2i], r1[2i+1] for n (a multiple of 8) outputs; a NaN never
// wins (an all-NaN window gives -Inf).
TEXT ·perfMaxPool2x2AVX2(SB), NOSPLIT, $0-32
	MOVQ         out+0(FP), DI
	MOVQ         r0+8(FP), SI
	MOVQ         r1+16(FP), DX
	MOVQ         n+24(FP), CX
	MOVL         $0xff800000, AX
	MOVL         AX, X15
	VBROADCASTSS X15, Y15
	SHRQ         $3, CX
	JZ           pdone

ploop:
	VMOVUPS   (SI), Y0
	VMOVUPS   32(SI), Y1
	VMAXPS    Y15, Y0, Y0
	VMAXPS    Y15, Y1, Y1
	VMOVUPS   (DX), Y2
	VMOVUPS   32(DX), Y3
	VMAXPS    Y0, Y2, Y0
	VMAXPS    Y1, Y3, Y1
	VSHUFPS   $0x88, Y1, Y0, Y4
	VSHUFPS   $0xDD, Y1, Y0, Y5
	VMAXPS    Y4, Y5, Y4
	VPERMPD   $0xD8, Y4, Y4
	VMOVUPS   Y4, (DI)
	ADDQ      $64, SI
	ADDQ      $64, DX
	ADDQ      $32, DI
	DECQ      CX
	JNZ       ploop

pdone:
	VZEROUPPER
	RET

// func perfSumAVX2(x *float32, n int) float32
// Σ x[i] over n (a multiple of 32) values, in four 8-lane partial sums.
TEXT ·perfSumAVX2(SB), NOSPLIT, $0-20
	MOVQ   x+0(FP), SI
	MOVQ   n+8(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	SHRQ   $5, CX
	JZ     sdone

sloop:
	VADDPS (SI), Y0, Y0
	VADDPS 32(SI), Y1, Y1
	VADDPS 64(SI), Y2, Y2
	VADDPS 96(SI), Y3, Y3
	ADDQ   $128, SI
	DECQ   CX
	JNZ    sloop

sdone:
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	MOVSS        X0, ret+16(FP)
	VZEROUPPER
	RET
