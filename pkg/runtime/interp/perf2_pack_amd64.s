//go:build !purego && !goexperiment.simd

#include "textflag.h"

// func perf2PackA4AVX2(dst, a *float32, rs, n int, alpha float32)
// Packs a strip of 4 rows of A (row r at a[r*rs:], n columns, n a multiple
// of 8), scaled by alpha, column by column: dst[k*4+r] = a[r*rs+k]·alpha
// (nnPackAStrips' layout for nnMR = 4).
TEXT ·perf2PackA4AVX2(SB), NOSPLIT, $0-36
	MOVQ         dst+0(FP), DI
	MOVQ         a+8(FP), SI
	MOVQ         rs+16(FP), R8
	MOVQ         n+24(FP), CX
	VBROADCASTSS alpha+32(FP), Y15
	SHLQ         $2, R8
	LEAQ         (R8)(R8*2), R9
	SHRQ         $3, CX
	JZ           pdone

ploop:
	VMULPS     (SI), Y15, Y0
	VMULPS     (SI)(R8*1), Y15, Y1
	VMULPS     (SI)(R8*2), Y15, Y2
	VMULPS     (SI)(R9*1), Y15, Y3
	VUNPCKLPS  Y1, Y0, Y4
	VUNPCKHPS  Y1, Y0, Y5
	VUNPCKLPS  Y3, Y2, Y6
	VUNPCKHPS  Y3, Y2, Y7
	VUNPCKLPD  Y6, Y4, Y8
	VUNPCKHPD  Y6, Y4, Y9
	VUNPCKLPD  Y7, Y5, Y10
	VUNPCKHPD  Y7, Y5, Y11
	VPERM2F128 $0x20, Y9, Y8, Y0
	VPERM2F128 $0x20, Y11, Y10, Y1
	VPERM2F128 $0x31, Y9, Y8, Y2
	VPERM2F128 $0x31, Y11, Y10, Y3
	VMOVUPS    Y0, (DI)
	VMOVUPS    Y1, 32(DI)
	VMOVUPS    Y2, 64(DI)
	VMOVUPS    Y3, 96(DI)
	ADDQ       $32, SI
	ADDQ       $128, DI
	DECQ       CX
	JNZ        ploop

pdone:
	VZEROUPPER
	RET
