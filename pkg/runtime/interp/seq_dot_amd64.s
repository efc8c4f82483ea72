//go:build !purego

#include "textflag.h"

// func seqDot4AVX2(m0, m1, m2, m3, x *float32, n int, out *[4]float32)
// out[k] = sum_{j < n&^7} mk[j]*x[j]; the caller adds the n%8 tail.
TEXT ·seqDot4AVX2(SB), NOSPLIT, $0-56
	MOVQ   m0+0(FP), AX
	MOVQ   m1+8(FP), BX
	MOVQ   m2+16(FP), CX
	MOVQ   m3+24(FP), DX
	MOVQ   x+32(FP), SI
	MOVQ   n+40(FP), DI
	MOVQ   out+48(FP), R8
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ   R9, R9
	MOVQ   DI, R10
	SHRQ   $4, R10
	JZ     block8

loop16:
	// Two independent accumulator sets hide the FMA latency.
	VMOVUPS     (SI)(R9*1), Y8
	VMOVUPS     32(SI)(R9*1), Y9
	VFMADD231PS (AX)(R9*1), Y8, Y0
	VFMADD231PS 32(AX)(R9*1), Y9, Y4
	VFMADD231PS (BX)(R9*1), Y8, Y1
	VFMADD231PS 32(BX)(R9*1), Y9, Y5
	VFMADD231PS (CX)(R9*1), Y8, Y2
	VFMADD231PS 32(CX)(R9*1), Y9, Y6
	VFMADD231PS (DX)(R9*1), Y8, Y3
	VFMADD231PS 32(DX)(R9*1), Y9, Y7
	ADDQ        $64, R9
	DECQ        R10
	JNZ         loop16

block8:
	TESTQ $8, DI
	JZ    done
	VMOVUPS     (SI)(R9*1), Y8
	VFMADD231PS (AX)(R9*1), Y8, Y0
	VFMADD231PS (BX)(R9*1), Y8, Y1
	VFMADD231PS (CX)(R9*1), Y8, Y2
	VFMADD231PS (DX)(R9*1), Y8, Y3

done:
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	// Horizontal sums of Y0..Y3 into out[0..3].
	VEXTRACTF128 $1, Y0, X5
	VADDPS       X5, X0, X0
	VEXTRACTF128 $1, Y1, X5
	VADDPS       X5, X1, X1
	VEXTRACTF128 $1, Y2, X5
	VADDPS       X5, X2, X2
	VEXTRACTF128 $1, Y3, X5
	VADDPS       X5, X3, X3
	VHADDPS      X1, X0, X0
	VHADDPS      X3, X2, X2
	VHADDPS      X2, X0, X0
	VMOVUPS      X0, (R8)
	VZEROUPPER
	RET

// a13
DATA seqTanhC<>+0(SB)/4, $0xa59f25c0
DATA seqTanhC<>+4(SB)/4, $0xa59f25c0
DATA seqTanhC<>+8(SB)/4, $0xa59f25c0
DATA seqTanhC<>+12(SB)/4, $0xa59f25c0
DATA seqTanhC<>+16(SB)/4, $0xa59f25c0
DATA seqTanhC<>+20(SB)/4, $0xa59f25c0
DATA seqTanhC<>+24(SB)/4, $0xa59f25c0
DATA seqTanhC<>+28(SB)/4, $0xa59f25c0
// a11
DATA seqTanhC<>+32(SB)/4, $0x2a61337e
DATA seqTanhC<>+36(SB)/4, $0x2a61337e
DATA seqTanhC<>+40(SB)/4, $0x2a61337e
DATA seqTanhC<>+44(SB)/4, $0x2a61337e
DATA seqTanhC<>+48(SB)/4, $0x2a61337e
DATA seqTanhC<>+52(SB)/4, $0x2a61337e
DATA seqTanhC<>+56(SB)/4, $0x2a61337e
DATA seqTanhC<>+60(SB)/4, $0x2a61337e
// a9
DATA seqTanhC<>+64(SB)/4, $0xaebd37ff
DATA seqTanhC<>+68(SB)/4, $0xaebd37ff
DATA seqTanhC<>+72(SB)/4, $0xaebd37ff
DATA seqTanhC<>+76(SB)/4, $0xaebd37ff
DATA seqTanhC<>+80(SB)/4, $0xaebd37ff
DATA seqTanhC<>+84(SB)/4, $0xaebd37ff
DATA seqTanhC<>+88(SB)/4, $0xaebd37ff
DATA seqTanhC<>+92(SB)/4, $0xaebd37ff
// a7
DATA seqTanhC<>+96(SB)/4, $0x335c0041
DATA seqTanhC<>+100(SB)/4, $0x335c0041
DATA seqTanhC<>+104(SB)/4, $0x335c0041
DATA seqTanhC<>+108(SB)/4, $0x335c0041
DATA seqTanhC<>+112(SB)/4, $0x335c0041
DATA seqTanhC<>+116(SB)/4, $0x335c0041
DATA seqTanhC<>+120(SB)/4, $0x335c0041
DATA seqTanhC<>+124(SB)/4, $0x335c0041
// a5
DATA seqTanhC<>+128(SB)/4, $0x3779434a
DATA seqTanhC<>+132(SB)/4, $0x3779434a
DATA seqTanhC<>+136(SB)/4, $0x3779434a
DATA seqTanhC<>+140(SB)/4, $0x3779434a
DATA seqTanhC<>+144(SB)/4, $0x3779434a
DATA seqTanhC<>+148(SB)/4, $0x3779434a
DATA seqTanhC<>+152(SB)/4, $0x3779434a
DATA seqTanhC<>+156(SB)/4, $0x3779434a
// a3
DATA seqTanhC<>+160(SB)/4, $0x3a270ded
DATA seqTanhC<>+164(SB)/4, $0x3a270ded
DATA seqTanhC<>+168(SB)/4, $0x3a270ded
DATA seqTanhC<>+172(SB)/4, $0x3a270ded
DATA seqTanhC<>+176(SB)/4, $0x3a270ded
DATA seqTanhC<>+180(SB)/4, $0x3a270ded
DATA seqTanhC<>+184(SB)/4, $0x3a270ded
DATA seqTanhC<>+188(SB)/4, $0x3a270ded
// a1
DATA seqTanhC<>+192(SB)/4, $0x3ba059dc
DATA seqTanhC<>+196(SB)/4, $0x3ba059dc
DATA seqTanhC<>+200(SB)/4, $0x3ba059dc
DATA seqTanhC<>+204(SB)/4, $0x3ba059dc
DATA seqTanhC<>+208(SB)/4, $0x3ba059dc
DATA seqTanhC<>+212(SB)/4, $0x3ba059dc
DATA seqTanhC<>+216(SB)/4, $0x3ba059dc
DATA seqTanhC<>+220(SB)/4, $0x3ba059dc
// b6
DATA seqTanhC<>+224(SB)/4, $0x35a0d3d8
DATA seqTanhC<>+228(SB)/4, $0x35a0d3d8
DATA seqTanhC<>+232(SB)/4, $0x35a0d3d8
DATA seqTanhC<>+236(SB)/4, $0x35a0d3d8
DATA seqTanhC<>+240(SB)/4, $0x35a0d3d8
DATA seqTanhC<>+244(SB)/4, $0x35a0d3d8
DATA seqTanhC<>+248(SB)/4, $0x35a0d3d8
DATA seqTanhC<>+252(SB)/4, $0x35a0d3d8
// b4
DATA seqTanhC<>+256(SB)/4, $0x38f895d6
DATA seqTanhC<>+260(SB)/4, $0x38f895d6
DATA seqTanhC<>+264(SB)/4, $0x38f895d6
DATA seqTanhC<>+268(SB)/4, $0x38f895d6
DATA seqTanhC<>+272(SB)/4, $0x38f895d6
DATA seqTanhC<>+276(SB)/4, $0x38f895d6
DATA seqTanhC<>+280(SB)/4, $0x38f895d6
DATA seqTanhC<>+284(SB)/4, $0x38f895d6
// b2
DATA seqTanhC<>+288(SB)/4, $0x3b14aa05
DATA seqTanhC<>+292(SB)/4, $0x3b14aa05
DATA seqTanhC<>+296(SB)/4, $0x3b14aa05
DATA seqTanhC<>+300(SB)/4, $0x3b14aa05
DATA seqTanhC<>+304(SB)/4, $0x3b14aa05
DATA seqTanhC<>+308(SB)/4, $0x3b14aa05
DATA seqTanhC<>+312(SB)/4, $0x3b14aa05
DATA seqTanhC<>+316(SB)/4, $0x3b14aa05
// b0
DATA seqTanhC<>+320(SB)/4, $0x3ba059dd
DATA seqTanhC<>+324(SB)/4, $0x3ba059dd
DATA seqTanhC<>+328(SB)/4, $0x3ba059dd
DATA seqTanhC<>+332(SB)/4, $0x3ba059dd
DATA seqTanhC<>+336(SB)/4, $0x3ba059dd
DATA seqTanhC<>+340(SB)/4, $0x3ba059dd
DATA seqTanhC<>+344(SB)/4, $0x3ba059dd
DATA seqTanhC<>+348(SB)/4, $0x3ba059dd
// clamp
DATA seqTanhC<>+352(SB)/4, $0x40fcf84f
DATA seqTanhC<>+356(SB)/4, $0x40fcf84f
DATA seqTanhC<>+360(SB)/4, $0x40fcf84f
DATA seqTanhC<>+364(SB)/4, $0x40fcf84f
DATA seqTanhC<>+368(SB)/4, $0x40fcf84f
DATA seqTanhC<>+372(SB)/4, $0x40fcf84f
DATA seqTanhC<>+376(SB)/4, $0x40fcf84f
DATA seqTanhC<>+380(SB)/4, $0x40fcf84f
// -clamp
DATA seqTanhC<>+384(SB)/4, $0xc0fcf84f
DATA seqTanhC<>+388(SB)/4, $0xc0fcf84f
DATA seqTanhC<>+392(SB)/4, $0xc0fcf84f
DATA seqTanhC<>+396(SB)/4, $0xc0fcf84f
DATA seqTanhC<>+400(SB)/4, $0xc0fcf84f
DATA seqTanhC<>+404(SB)/4, $0xc0fcf84f
DATA seqTanhC<>+408(SB)/4, $0xc0fcf84f
DATA seqTanhC<>+412(SB)/4, $0xc0fcf84f
GLOBL seqTanhC<>(SB), RODATA|NOPTR, $416

// func seqTanhAVX2(x *float32, n int, scale, outScale, outBias float32)
// x[i] = outScale*tanh(scale*x[i]) + outBias for i < n&^7, with the same
// rational approximation as seqTanh (clamped to +-7.9053).
TEXT ·seqTanhAVX2(SB), NOSPLIT, $0-28
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS scale+16(FP), Y4
	VBROADCASTSS outScale+20(FP), Y5
	VBROADCASTSS outBias+24(FP), Y6
	VMOVUPS      seqTanhC<>+352(SB), Y7
	VMOVUPS      seqTanhC<>+384(SB), Y8
	SHRQ         $3, CX
	JZ           tdone

tloop:
	VMOVUPS     (DI), Y0
	VMULPS      Y4, Y0, Y0
	VMINPS      Y7, Y0, Y0
	VMAXPS      Y8, Y0, Y0
	VMULPS      Y0, Y0, Y1
	VMOVUPS     seqTanhC<>+0(SB), Y2
	VFMADD213PS seqTanhC<>+32(SB), Y1, Y2
	VFMADD213PS seqTanhC<>+64(SB), Y1, Y2
	VFMADD213PS seqTanhC<>+96(SB), Y1, Y2
	VFMADD213PS seqTanhC<>+128(SB), Y1, Y2
	VFMADD213PS seqTanhC<>+160(SB), Y1, Y2
	VFMADD213PS seqTanhC<>+192(SB), Y1, Y2
	VMULPS      Y0, Y2, Y2
	VMOVUPS     seqTanhC<>+224(SB), Y3
	VFMADD213PS seqTanhC<>+256(SB), Y1, Y3
	VFMADD213PS seqTanhC<>+288(SB), Y1, Y3
	VFMADD213PS seqTanhC<>+320(SB), Y1, Y3
	VDIVPS      Y3, Y2, Y2
	VFMADD213PS Y6, Y5, Y2
	VMOVUPS     Y2, (DI)
	ADDQ        $32, DI
	DECQ        CX
	JNZ         tloop

tdone:
	VZEROUPPER
	RET

// func seqMatVecAVX2(y, m, x *float32, groups, k int)
// y[r] += dot(m[r*k:(r+1)*k], x) for r < 4*groups; k is a multiple of 8.
TEXT ·seqMatVecAVX2(SB), NOSPLIT, $0-40
	MOVQ y+0(FP), R8
	MOVQ m+8(FP), AX
	MOVQ x+16(FP), SI
	MOVQ groups+24(FP), R11
	MOVQ k+32(FP), DI
	MOVQ DI, R12
	SHLQ $2, R12
	TESTQ R11, R11
	JZ    mvend

mvrow:
	LEAQ   (AX)(R12*1), BX
	LEAQ   (BX)(R12*1), CX
	LEAQ   (CX)(R12*1), DX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ   R9, R9
	MOVQ   DI, R10
	SHRQ   $4, R10
	JZ     mvblock8

mvloop16:
	VMOVUPS     (SI)(R9*1), Y8
	VMOVUPS     32(SI)(R9*1), Y9
	VFMADD231PS (AX)(R9*1), Y8, Y0
	VFMADD231PS 32(AX)(R9*1), Y9, Y4
	VFMADD231PS (BX)(R9*1), Y8, Y1
	VFMADD231PS 32(BX)(R9*1), Y9, Y5
	VFMADD231PS (CX)(R9*1), Y8, Y2
	VFMADD231PS 32(CX)(R9*1), Y9, Y6
	VFMADD231PS (DX)(R9*1), Y8, Y3
	VFMADD231PS 32(DX)(R9*1), Y9, Y7
	ADDQ        $64, R9
	DECQ        R10
	JNZ         mvloop16

mvblock8:
	TESTQ $8, DI
	JZ    mvsum
	VMOVUPS     (SI)(R9*1), Y8
	VFMADD231PS (AX)(R9*1), Y8, Y0
	VFMADD231PS (BX)(R9*1), Y8, Y1
	VFMADD231PS (CX)(R9*1), Y8, Y2
	VFMADD231PS (DX)(R9*1), Y8, Y3

mvsum:
	VADDPS       Y4, Y0, Y0
	VADDPS       Y5, Y1, Y1
	VADDPS       Y6, Y2, Y2
	VADDPS       Y7, Y3, Y3
	VEXTRACTF128 $1, Y0, X5
	VADDPS       X5, X0, X0
	VEXTRACTF128 $1, Y1, X5
	VADDPS       X5, X1, X1
	VEXTRACTF128 $1, Y2, X5
	VADDPS       X5, X2, X2
	VEXTRACTF128 $1, Y3, X5
	VADDPS       X5, X3, X3
	VHADDPS      X1, X0, X0
	VHADDPS      X3, X2, X2
	VHADDPS      X2, X0, X0
	VMOVUPS      (R8), X1
	VADDPS       X1, X0, X0
	VMOVUPS      X0, (R8)
	ADDQ         $16, R8
	LEAQ         (DX)(R12*1), AX
	DECQ         R11
	JNZ          mvrow

mvend:
	VZEROUPPER
	RET
