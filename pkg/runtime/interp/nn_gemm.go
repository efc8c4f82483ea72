package interp

// Blocked float32 GEMM in pure Go.
//
// C[M×N] (+)= A[M×K] · B[K×N]. Both operands are first packed into panels
// the micro-kernel streams through linearly:
//
//   - A is cut into strips of nnMR rows; for every K block of at most nnKC
//     columns, a strip holds kc groups of nnMR values (column k of the strip's
//     rows), so the micro-kernel reads 4 consecutive floats per k.
//   - B is cut into strips of nnNR columns the same way (nnNR values per k).
//
// A packed operand covers the whole matrix: K block pc (its first k) starts
// at pad·pc, and strip s of that block at pad·pc + s·kc, where pad is the
// row (column) count rounded up to the strip width and zero-filled. Constant
// weights are packed once at build time; activations are packed per run into
// session scratch, so the hot loop never allocates.
//
// The work is split into tiles of nnMC rows × nnNC columns, spread over the
// session's threads; within a tile, each B strip (kc·nnNR floats, ~8 KiB)
// stays in L1 while the A strips of the tile stream past it.

// The micro-kernel's tile (nnMR×nnNR) and nnKernel come from
// nn_gemm_scalar.go (default build) or nn_gemm_simd.go (GOEXPERIMENT=simd
// on amd64: AVX2/FMA through simd/archsimd).
const (
	nnKC = 256
	nnMC = 96
	nnNC = 512
)

// nnParFunc splits n work items over threads (Call.Parallel has this shape).
type nnParFunc func(n int, fn func(lo, hi int))

func nnSerial(n int, fn func(lo, hi int)) { fn(0, n) }

func nnRoundUp(x, m int) int { return (x + m - 1) / m * m }

// nnPackedLenA is the number of floats a packed A of M rows and K columns takes.
func nnPackedLenA(M, K int) int { return nnRoundUp(M, nnMR) * K }

// nnPackedLenB is the number of floats a packed B of K rows and N columns takes.
func nnPackedLenB(K, N int) int { return nnRoundUp(N, nnNR) * K }

// nnGemmer runs packing and GEMM for one node. Its work functions are
// closures made once (init), reading their arguments from fields, so that a
// run allocates nothing.
type nnGemmer struct {
	par nnParFunc
	// packing arguments
	pdst, psrc []float32
	prs, pcs   int
	prows, pK  int
	palpha     float32
	packAFn    func(lo, hi int)
	packBFn    func(lo, hi int)
	// gemm arguments
	M, N, K, ldc int
	ap, bp, c    []float32
	accum        bool
	mt, nc       int
	tileFn       func(lo, hi int)
}

func (g *nnGemmer) init(par nnParFunc) {
	if g.tileFn != nil {
		g.par = par
		return
	}
	g.par = par
	g.packAFn = func(lo, hi int) { nnPackAStrips(g.pdst, g.psrc, g.prs, g.pcs, g.prows, g.pK, g.palpha, lo, hi) }
	g.packBFn = func(lo, hi int) { nnPackBStrips(g.pdst, g.psrc, g.prs, g.pcs, g.pK, g.prows, lo, hi) }
	g.tileFn = func(lo, hi int) { nnGemmTiles(g, lo, hi) }
}

// packA packs A (element (i,k) at a[i*rs+k*cs]), scaled by alpha, into dst
// (nnPackedLenA(M,K) floats).
func (g *nnGemmer) packA(dst, a []float32, rs, cs, M, K int, alpha float32) {
	g.pdst, g.psrc, g.prs, g.pcs, g.prows, g.pK, g.palpha = dst, a, rs, cs, M, K, alpha
	strips := nnRoundUp(M, nnMR) / nnMR
	if M*K < 1<<15 || g.par == nil {
		g.packAFn(0, strips)
	} else {
		g.par(strips, g.packAFn)
	}
	g.pdst, g.psrc = nil, nil
}

// packB packs B (element (k,j) at b[k*rs+j*cs]) into dst
// (nnPackedLenB(K,N) floats).
func (g *nnGemmer) packB(dst, b []float32, rs, cs, K, N int) {
	g.pdst, g.psrc, g.prs, g.pcs, g.prows, g.pK = dst, b, rs, cs, N, K
	strips := nnRoundUp(N, nnNR) / nnNR
	if K*N < 1<<15 || g.par == nil {
		g.packBFn(0, strips)
	} else {
		g.par(strips, g.packBFn)
	}
	g.pdst, g.psrc = nil, nil
}

// nnPackA packs without a node context (build-time weight packing, tests).
func nnPackA(dst, a []float32, rs, cs, M, K int, alpha float32) {
	nnPackAStrips(dst, a, rs, cs, M, K, alpha, 0, nnRoundUp(M, nnMR)/nnMR)
}

// nnPackB packs without a node context.
func nnPackB(dst, b []float32, rs, cs, K, N int) {
	nnPackBStrips(dst, b, rs, cs, K, N, 0, nnRoundUp(N, nnNR)/nnNR)
}

func nnPackAStrips(dst, a []float32, rs, cs, M, K int, alpha float32, lo, hi int) {
	mpad := nnRoundUp(M, nnMR)
	for pc := 0; pc < K; pc += nnKC {
		kc := min(nnKC, K-pc)
		for s := lo; s < hi; s++ {
			d := dst[mpad*pc+s*nnMR*kc : mpad*pc+(s+1)*nnMR*kc]
			i0 := s * nnMR
			if i0+nnMR <= M && cs == 1 {
				for r := 0; r < nnMR; r++ {
					row := a[(i0+r)*rs+pc : (i0+r)*rs+pc+kc]
					q := d[r:]
					for k, v := range row {
						q[k*nnMR] = v * alpha
					}
				}
				continue
			}
			for k := 0; k < kc; k++ {
				for r := 0; r < nnMR; r++ {
					i := i0 + r
					if i < M {
						d[k*nnMR+r] = a[i*rs+(pc+k)*cs] * alpha
					} else {
						d[k*nnMR+r] = 0
					}
				}
			}
		}
	}
}

func nnPackBStrips(dst, b []float32, rs, cs, K, N int, lo, hi int) {
	npad := nnRoundUp(N, nnNR)
	for pc := 0; pc < K; pc += nnKC {
		kc := min(nnKC, K-pc)
		for s := lo; s < hi; s++ {
			d := dst[npad*pc+s*nnNR*kc : npad*pc+(s+1)*nnNR*kc]
			j0 := s * nnNR
			if j0+nnNR <= N && cs == 1 {
				for k := 0; k < kc; k++ {
					src := b[(pc+k)*rs+j0 : (pc+k)*rs+j0+nnNR]
					copy(d[k*nnNR:k*nnNR+nnNR], src)
				}
				continue
			}
			if j0+nnNR <= N && rs == 1 {
				// B is column-major (B = Wᵀ of a row-major W).
				for c := 0; c < nnNR; c++ {
					col := b[(j0+c)*cs+pc : (j0+c)*cs+pc+kc]
					for k, v := range col {
						d[k*nnNR+c] = v
					}
				}
				continue
			}
			for k := 0; k < kc; k++ {
				for c := 0; c < nnNR; c++ {
					j := j0 + c
					if j < N {
						d[k*nnNR+c] = b[(pc+k)*rs+j*cs]
					} else {
						d[k*nnNR+c] = 0
					}
				}
			}
		}
	}
}

// gemm computes C (+)= A·B from packed operands. C's element (i,j) is
// c[i*ldc+j]. With accum false C is overwritten, else added to.
func (g *nnGemmer) gemm(M, N, K int, ap, bp []float32, c []float32, ldc int, accum bool) {
	if M == 0 || N == 0 {
		return
	}
	if K == 0 {
		if !accum {
			for i := 0; i < M; i++ {
				clear(c[i*ldc : i*ldc+N])
			}
		}
		return
	}
	mt := (M + nnMC - 1) / nnMC
	nc := nnNC
	if nt := (N + nc - 1) / nc; mt*nt < 16 && N > 8*nnNR {
		// Few tiles: cut N finer so that every thread gets work.
		want := (16 + mt - 1) / mt
		nc = max(8*nnNR, nnRoundUp((N+want-1)/want, nnNR))
	}
	nt := (N + nc - 1) / nc
	g.M, g.N, g.K, g.ap, g.bp, g.c, g.ldc, g.accum, g.mt, g.nc = M, N, K, ap, bp, c, ldc, accum, mt, nc
	if mt*nt == 1 || M*N*K < 1<<16 || g.par == nil {
		g.tileFn(0, mt*nt)
	} else {
		g.par(mt*nt, g.tileFn)
	}
	g.ap, g.bp, g.c = nil, nil, nil
}

func nnGemmTiles(g *nnGemmer, lo, hi int) {
	var tmp [nnMR * nnNR]float32
	M, N, K, ap, bp, c, ldc := g.M, g.N, g.K, g.ap, g.bp, g.c, g.ldc
	mpad := nnRoundUp(M, nnMR)
	npad := nnRoundUp(N, nnNR)
	for t := lo; t < hi; t++ {
		it, jt := t%g.mt, t/g.mt
		i0, i1 := it*nnMC, min((it+1)*nnMC, M)
		j0, j1 := jt*g.nc, min((jt+1)*g.nc, N)
		for pc := 0; pc < K; pc += nnKC {
			kc := min(nnKC, K-pc)
			acc := g.accum || pc > 0
			for j := j0; j < j1; j += nnNR {
				bs := bp[npad*pc+j*kc : npad*pc+(j+nnNR)*kc]
				nr := min(nnNR, j1-j)
				for i := i0; i < i1; i += nnMR {
					as := ap[mpad*pc+i*kc : mpad*pc+(i+nnMR)*kc]
					mr := min(nnMR, i1-i)
					if mr == nnMR && nr == nnNR {
						nnKernel(kc, as, bs, c[i*ldc+j:], ldc, acc)
						continue
					}
					// Edge tile (M or N not a multiple of the tile; M = 1
					// for a vector-matrix product): the full kernel over
					// the zero-padded strips into tmp, then the rows and
					// columns that exist. One row kernel per row would
					// read the B strip mr times, and its single FMA chain
					// per column waits on the FMA latency.
					nnKernel(kc, as, bs, tmp[:], nnNR, false)
					for r := 0; r < mr; r++ {
						row := c[(i+r)*ldc+j : (i+r)*ldc+j+nr]
						src := tmp[r*nnNR : r*nnNR+nr]
						if acc {
							for q := range row {
								row[q] += src[q]
							}
						} else {
							copy(row, src)
						}
					}
				}
			}
		}
	}
}

// nnSgemm is the convenience entry: C (+)= alpha·A·B with strided A and B,
// packing into the given scratch (at least nnPackedLenA(M,K)+nnPackedLenB(K,N)
// floats).
func nnSgemm(g *nnGemmer, M, N, K int, alpha float32, a []float32, ars, acs int, b []float32, brs, bcs int, c []float32, ldc int, accum bool, scratch []float32) {
	la := nnPackedLenA(M, K)
	ap := scratch[:la]
	bp := scratch[la : la+nnPackedLenB(K, N)]
	g.packA(ap, a, ars, acs, M, K, alpha)
	g.packB(bp, b, brs, bcs, K, N)
	g.gemm(M, N, K, ap, bp, c, ldc, accum)
}

// nnGoPar is a goroutine splitter for code that runs outside a Call
// (benchmarks, tests).
func nnGoPar(threads int) nnParFunc {
	wp := &workerPool{}
	return func(n int, fn func(lo, hi int)) { wp.run(n, threads, fn) }
}

// nnGemv computes y[:N] (+)= alpha·a·B for one row a (element k at
// a[k*acs]) and a row-major B (element (k,j) at b[k*brs+j]) without
// packing: K axpys over B's rows. Every output sums in k order, the same
// for all columns.
func nnGemv(y, a []float32, acs int, b []float32, brs, N, K int, alpha float32, accum bool) {
	y = y[:N]
	if !accum {
		clear(y)
	}
	for k := 0; k < K; k++ {
		nnAxpy(y, b[k*brs:k*brs+N], alpha*a[k*acs])
	}
}
