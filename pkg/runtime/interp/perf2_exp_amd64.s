//go:build !purego && !goexperiment.simd

#include "textflag.h"

DATA perf2expc<>+0(SB)/4, $1.9875691500e-4
DATA perf2expc<>+4(SB)/4, $1.9875691500e-4
DATA perf2expc<>+8(SB)/4, $1.9875691500e-4
DATA perf2expc<>+12(SB)/4, $1.9875691500e-4
DATA perf2expc<>+16(SB)/4, $1.9875691500e-4
DATA perf2expc<>+20(SB)/4, $1.9875691500e-4
DATA perf2expc<>+24(SB)/4, $1.9875691500e-4
DATA perf2expc<>+28(SB)/4, $1.9875691500e-4
DATA perf2expc<>+32(SB)/4, $1.3981999507e-3
DATA perf2expc<>+36(SB)/4, $1.3981999507e-3
DATA perf2expc<>+40(SB)/4, $1.3981999507e-3
DATA perf2expc<>+44(SB)/4, $1.3981999507e-3
DATA perf2expc<>+48(SB)/4, $1.3981999507e-3
DATA perf2expc<>+52(SB)/4, $1.3981999507e-3
DATA perf2expc<>+56(SB)/4, $1.3981999507e-3
DATA perf2expc<>+60(SB)/4, $1.3981999507e-3
DATA perf2expc<>+64(SB)/4, $8.3334519073e-3
DATA perf2expc<>+68(SB)/4, $8.3334519073e-3
DATA perf2expc<>+72(SB)/4, $8.3334519073e-3
DATA perf2expc<>+76(SB)/4, $8.3334519073e-3
DATA perf2expc<>+80(SB)/4, $8.3334519073e-3
DATA perf2expc<>+84(SB)/4, $8.3334519073e-3
DATA perf2expc<>+88(SB)/4, $8.3334519073e-3
DATA perf2expc<>+92(SB)/4, $8.3334519073e-3
DATA perf2expc<>+96(SB)/4, $4.1665795894e-2
DATA perf2expc<>+100(SB)/4, $4.1665795894e-2
DATA perf2expc<>+104(SB)/4, $4.1665795894e-2
DATA perf2expc<>+108(SB)/4, $4.1665795894e-2
DATA perf2expc<>+112(SB)/4, $4.1665795894e-2
DATA perf2expc<>+116(SB)/4, $4.1665795894e-2
DATA perf2expc<>+120(SB)/4, $4.1665795894e-2
DATA perf2expc<>+124(SB)/4, $4.1665795894e-2
DATA perf2expc<>+128(SB)/4, $1.6666665459e-1
DATA perf2expc<>+132(SB)/4, $1.6666665459e-1
DATA perf2expc<>+136(SB)/4, $1.6666665459e-1
DATA perf2expc<>+140(SB)/4, $1.6666665459e-1
DATA perf2expc<>+144(SB)/4, $1.6666665459e-1
DATA perf2expc<>+148(SB)/4, $1.6666665459e-1
DATA perf2expc<>+152(SB)/4, $1.6666665459e-1
DATA perf2expc<>+156(SB)/4, $1.6666665459e-1
DATA perf2expc<>+160(SB)/4, $5.0000001201e-1
DATA perf2expc<>+164(SB)/4, $5.0000001201e-1
DATA perf2expc<>+168(SB)/4, $5.0000001201e-1
DATA perf2expc<>+172(SB)/4, $5.0000001201e-1
DATA perf2expc<>+176(SB)/4, $5.0000001201e-1
DATA perf2expc<>+180(SB)/4, $5.0000001201e-1
DATA perf2expc<>+184(SB)/4, $5.0000001201e-1
DATA perf2expc<>+188(SB)/4, $5.0000001201e-1
DATA perf2expc<>+192(SB)/4, $1.0
DATA perf2expc<>+196(SB)/4, $1.0
DATA perf2expc<>+200(SB)/4, $1.0
DATA perf2expc<>+204(SB)/4, $1.0
DATA perf2expc<>+208(SB)/4, $1.0
DATA perf2expc<>+212(SB)/4, $1.0
DATA perf2expc<>+216(SB)/4, $1.0
DATA perf2expc<>+220(SB)/4, $1.0
DATA perf2expc<>+224(SB)/4, $1.44269504088896341
DATA perf2expc<>+228(SB)/4, $0.693359375
DATA perf2expc<>+232(SB)/4, $-2.12194440e-4
DATA perf2expc<>+236(SB)/4, $88.0
DATA perf2expc<>+240(SB)/4, $-87.0
DATA perf2expc<>+244(SB)/4, $127
GLOBL perf2expc<>(SB), RODATA|NOPTR, $248

// func perf2ExpSubAVX2(d, s *float32, n int, m float32)
// d[i] = exp(s[i]-m) for n (a multiple of 8) values, for s[i]-m <= 88
// (softmax rows: s[i]-m <= 0; larger values are clamped to 88). Cephes' expf: n = round(x·log2e),
// r = x - n·ln2 (two parts), e^r by a degree-7 polynomial, times 2^n.
// Results below exp(-87) are flushed to 0 (exp(-Inf) = 0); NaN stays NaN.
TEXT ·perf2ExpSubAVX2(SB), NOSPLIT, $0-28
	MOVQ         d+0(FP), DI
	MOVQ         s+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS m+24(FP), Y15
	VBROADCASTSS perf2expc<>+236(SB), Y14
	VBROADCASTSS perf2expc<>+240(SB), Y13
	VBROADCASTSS perf2expc<>+224(SB), Y12
	VBROADCASTSS perf2expc<>+228(SB), Y11
	VBROADCASTSS perf2expc<>+232(SB), Y10
	VPBROADCASTD perf2expc<>+244(SB), Y9
	SHRQ         $3, CX
	JZ           xdone

xloop:
	VMOVUPS      (SI), Y0
	VSUBPS       Y15, Y0, Y0
	VCMPPS       $1, Y13, Y0, Y1
	VMINPS       Y0, Y14, Y0
	VMAXPS       Y0, Y13, Y0
	VMULPS       Y12, Y0, Y2
	VROUNDPS     $0, Y2, Y2
	VFNMADD231PS Y2, Y11, Y0
	VFNMADD231PS Y2, Y10, Y0
	VMOVUPS      perf2expc<>+0(SB), Y3
	VFMADD213PS  perf2expc<>+32(SB), Y0, Y3
	VFMADD213PS  perf2expc<>+64(SB), Y0, Y3
	VFMADD213PS  perf2expc<>+96(SB), Y0, Y3
	VFMADD213PS  perf2expc<>+128(SB), Y0, Y3
	VFMADD213PS  perf2expc<>+160(SB), Y0, Y3
	VMULPS       Y0, Y0, Y4
	VFMADD213PS  Y0, Y4, Y3
	VADDPS       perf2expc<>+192(SB), Y3, Y3
	VCVTPS2DQ    Y2, Y5
	VPADDD       Y9, Y5, Y5
	VPSLLD       $23, Y5, Y5
	VMULPS       Y5, Y3, Y3
	VANDNPS      Y3, Y1, Y3
	VMOVUPS      Y3, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DI
	DECQ         CX
	JNZ          xloop

xdone:
	VZEROUPPER
	RET
