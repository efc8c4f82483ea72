//go:build !purego && !goexperiment.simd

#include "textflag.h"

DATA perf2erfc<>+0(SB)/8, $-2.72614225801306e-10
DATA perf2erfc<>+8(SB)/8, $-2.72614225801306e-10
DATA perf2erfc<>+16(SB)/8, $-2.72614225801306e-10
DATA perf2erfc<>+24(SB)/8, $-2.72614225801306e-10
DATA perf2erfc<>+32(SB)/8, $2.77068142495902e-08
DATA perf2erfc<>+40(SB)/8, $2.77068142495902e-08
DATA perf2erfc<>+48(SB)/8, $2.77068142495902e-08
DATA perf2erfc<>+56(SB)/8, $2.77068142495902e-08
DATA perf2erfc<>+64(SB)/8, $-2.10102402082508e-06
DATA perf2erfc<>+72(SB)/8, $-2.10102402082508e-06
DATA perf2erfc<>+80(SB)/8, $-2.10102402082508e-06
DATA perf2erfc<>+88(SB)/8, $-2.10102402082508e-06
DATA perf2erfc<>+96(SB)/8, $-5.69250639462346e-05
DATA perf2erfc<>+104(SB)/8, $-5.69250639462346e-05
DATA perf2erfc<>+112(SB)/8, $-5.69250639462346e-05
DATA perf2erfc<>+120(SB)/8, $-5.69250639462346e-05
DATA perf2erfc<>+128(SB)/8, $-7.34990630326855e-04
DATA perf2erfc<>+136(SB)/8, $-7.34990630326855e-04
DATA perf2erfc<>+144(SB)/8, $-7.34990630326855e-04
DATA perf2erfc<>+152(SB)/8, $-7.34990630326855e-04
DATA perf2erfc<>+160(SB)/8, $-2.95459980854025e-03
DATA perf2erfc<>+168(SB)/8, $-2.95459980854025e-03
DATA perf2erfc<>+176(SB)/8, $-2.95459980854025e-03
DATA perf2erfc<>+184(SB)/8, $-2.95459980854025e-03
DATA perf2erfc<>+192(SB)/8, $-1.60960333262415e-02
DATA perf2erfc<>+200(SB)/8, $-1.60960333262415e-02
DATA perf2erfc<>+208(SB)/8, $-1.60960333262415e-02
DATA perf2erfc<>+216(SB)/8, $-1.60960333262415e-02
DATA perf2erfc<>+224(SB)/8, $-1.45660718464996e-05
DATA perf2erfc<>+232(SB)/8, $-1.45660718464996e-05
DATA perf2erfc<>+240(SB)/8, $-1.45660718464996e-05
DATA perf2erfc<>+248(SB)/8, $-1.45660718464996e-05
DATA perf2erfc<>+256(SB)/8, $-2.13374055278905e-04
DATA perf2erfc<>+264(SB)/8, $-2.13374055278905e-04
DATA perf2erfc<>+272(SB)/8, $-2.13374055278905e-04
DATA perf2erfc<>+280(SB)/8, $-2.13374055278905e-04
DATA perf2erfc<>+288(SB)/8, $-1.68282697438203e-03
DATA perf2erfc<>+296(SB)/8, $-1.68282697438203e-03
DATA perf2erfc<>+304(SB)/8, $-1.68282697438203e-03
DATA perf2erfc<>+312(SB)/8, $-1.68282697438203e-03
DATA perf2erfc<>+320(SB)/8, $-7.37332916720468e-03
DATA perf2erfc<>+328(SB)/8, $-7.37332916720468e-03
DATA perf2erfc<>+336(SB)/8, $-7.37332916720468e-03
DATA perf2erfc<>+344(SB)/8, $-7.37332916720468e-03
DATA perf2erfc<>+352(SB)/8, $-1.42647390514189e-02
DATA perf2erfc<>+360(SB)/8, $-1.42647390514189e-02
DATA perf2erfc<>+368(SB)/8, $-1.42647390514189e-02
DATA perf2erfc<>+376(SB)/8, $-1.42647390514189e-02
DATA perf2erfc<>+384(SB)/8, $4.0
DATA perf2erfc<>+392(SB)/8, $4.0
DATA perf2erfc<>+400(SB)/8, $4.0
DATA perf2erfc<>+408(SB)/8, $4.0
DATA perf2erfc<>+416(SB)/8, $-4.0
DATA perf2erfc<>+424(SB)/8, $-4.0
DATA perf2erfc<>+432(SB)/8, $-4.0
DATA perf2erfc<>+440(SB)/8, $-4.0
DATA perf2erfc<>+448(SB)/8, $0.7071067811865476
DATA perf2erfc<>+456(SB)/8, $0.7071067811865476
DATA perf2erfc<>+464(SB)/8, $0.7071067811865476
DATA perf2erfc<>+472(SB)/8, $0.7071067811865476
DATA perf2erfc<>+480(SB)/8, $0.5
DATA perf2erfc<>+488(SB)/8, $0.5
DATA perf2erfc<>+496(SB)/8, $0.5
DATA perf2erfc<>+504(SB)/8, $0.5
DATA perf2erfc<>+512(SB)/8, $1.0
DATA perf2erfc<>+520(SB)/8, $1.0
DATA perf2erfc<>+528(SB)/8, $1.0
DATA perf2erfc<>+536(SB)/8, $1.0
GLOBL perf2erfc<>(SB), RODATA|NOPTR, $544

// ERFPD computes Y4 = erf(Y0) (4 float64 lanes) with the rational
// approximation of perf2_erf.go; clobbers Y0, Y2, Y5. A NaN lane stays NaN
// (x is the second source of VMINPD/VMAXPD).
#define ERFPD \
	VMINPD       Y0, Y12, Y0 \
	VMAXPD       Y0, Y13, Y0 \
	VMULPD       Y0, Y0, Y2 \
	VMOVUPD      perf2erfc<>+0(SB), Y4 \
	VFMADD213PD  perf2erfc<>+32(SB), Y2, Y4 \
	VFMADD213PD  perf2erfc<>+64(SB), Y2, Y4 \
	VFMADD213PD  perf2erfc<>+96(SB), Y2, Y4 \
	VFMADD213PD  perf2erfc<>+128(SB), Y2, Y4 \
	VFMADD213PD  perf2erfc<>+160(SB), Y2, Y4 \
	VFMADD213PD  perf2erfc<>+192(SB), Y2, Y4 \
	VMULPD       Y0, Y4, Y4 \
	VMOVUPD      perf2erfc<>+224(SB), Y5 \
	VFMADD213PD  perf2erfc<>+256(SB), Y2, Y5 \
	VFMADD213PD  perf2erfc<>+288(SB), Y2, Y5 \
	VFMADD213PD  perf2erfc<>+320(SB), Y2, Y5 \
	VFMADD213PD  perf2erfc<>+352(SB), Y2, Y5 \
	VDIVPD       Y5, Y4, Y4

// func perf2ErfAVX2(d, s *float32, n int)
// d[i] = erf(s[i]) for n (a multiple of 4) values, computed in float64.
TEXT ·perf2ErfAVX2(SB), NOSPLIT, $0-24
	MOVQ    d+0(FP), DI
	MOVQ    s+8(FP), SI
	MOVQ    n+16(FP), CX
	VMOVUPD perf2erfc<>+384(SB), Y12
	VMOVUPD perf2erfc<>+416(SB), Y13
	SHRQ    $2, CX
	JZ      edone

eloop:
	VCVTPS2PD (SI), Y0
	ERFPD
	VCVTPD2PSY Y4, X4
	VMOVUPS X4, (DI)
	ADDQ    $16, SI
	ADDQ    $16, DI
	DECQ    CX
	JNZ     eloop

edone:
	VZEROUPPER
	RET

// func perf2GeluAVX2(d, s *float32, n int)
// d[i] = 0.5·x·(1+erf(x/√2)), x = s[i], for n (a multiple of 4) values,
// computed in float64 with erf rounded to float32 (so that it saturates to
// ±1 exactly, as the written-out float32 GELU does: GELU(-Inf) is NaN).
TEXT ·perf2GeluAVX2(SB), NOSPLIT, $0-24
	MOVQ    d+0(FP), DI
	MOVQ    s+8(FP), SI
	MOVQ    n+16(FP), CX
	VMOVUPD perf2erfc<>+384(SB), Y12
	VMOVUPD perf2erfc<>+416(SB), Y13
	VMOVUPD perf2erfc<>+448(SB), Y14
	VMOVUPD perf2erfc<>+480(SB), Y15
	SHRQ    $2, CX
	JZ      gdone

gloop:
	VCVTPS2PD (SI), Y10
	VMULPD  Y14, Y10, Y0
	ERFPD
	VCVTPD2PSY Y4, X4
	VCVTPS2PD X4, Y4
	VADDPD  perf2erfc<>+512(SB), Y4, Y4
	VMULPD  Y10, Y4, Y4
	VMULPD  Y15, Y4, Y4
	VCVTPD2PSY Y4, X4
	VMOVUPS X4, (DI)
	ADDQ    $16, SI
	ADDQ    $16, DI
	DECQ    CX
	JNZ     gloop

gdone:
	VZEROUPPER
	RET
