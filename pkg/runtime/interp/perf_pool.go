package interp

import "math"

// perfMaxPlane2D is MaxPool of one plane without dilation or indices, in
// two passes per output row: the window rows are folded column-wise into
// tmp (vectorised, a NaN never wins), then each output takes the max of
// its KW columns of tmp. tmp must hold W floats.
func perfMaxPlane2D(g *nnGeom, x, y, tmp []float32) {
	H, W, OH, OW := g.in[0], g.in[1], g.out[0], g.out[1]
	KH, KW := g.k[0], g.k[1]
	ninf := float32(math.Inf(-1))
	tmp = tmp[:W]
	plain2x2 := KH == 2 && KW == 2 && g.s[0] == 2 && g.s[1] == 2 && g.pb[0] == 0 && g.pb[1] == 0 &&
		2*OH <= H && 2*OW <= W
	if W < 16 && !plain2x2 {
		// Short rows: the vectorised column pass costs more in calls
		// than it saves; take each window directly.
		perfMaxPlaneDirect(g, x, y)
		return
	}
	for oh := 0; oh < OH; oh++ {
		if plain2x2 && perfMaxPool2x2Row(y[oh*OW:(oh+1)*OW], x[2*oh*W:(2*oh+1)*W], x[(2*oh+1)*W:(2*oh+2)*W]) {
			continue
		}
		h0 := oh*g.s[0] - g.pb[0]
		hlo, hhi := max(h0, 0), min(h0+KH, H)
		for i := range tmp {
			tmp[i] = ninf
		}
		for h := hlo; h < hhi; h++ {
			perfMaxInto(tmp, x[h*W:(h+1)*W])
		}
		out := y[oh*OW : (oh+1)*OW]
		for ow := range out {
			w0 := ow*g.s[1] - g.pb[1]
			wlo, whi := max(w0, 0), min(w0+KW, W)
			best := ninf
			if wlo < whi {
				for _, v := range tmp[wlo:whi] {
					best = max(best, v) // branch-free; NaN redone below
				}
				if best != best {
					best = ninf
					for _, v := range tmp[wlo:whi] {
						if v > best {
							best = v
						}
					}
				}
			}
			out[ow] = best
		}
	}
}

// perfPoolOn enables perfMaxPlane2D; tests turn it off to compare.
var perfPoolOn = true

// perfMaxPlaneDirect is perfMaxPlane2D window by window (a NaN never wins;
// a window of only NaN or only padding gives -Inf, as perfMaxPlane2D).
// Four unclipped windows go together so that their max chains overlap.
func perfMaxPlaneDirect(g *nnGeom, x, y []float32) {
	H, W, OH, OW := g.in[0], g.in[1], g.out[0], g.out[1]
	KW, sw := g.k[1], g.s[1]
	ninf := float32(math.Inf(-1))
	for oh := 0; oh < OH; oh++ {
		h0 := oh*g.s[0] - g.pb[0]
		hlo, hhi := max(h0, 0), min(h0+g.k[0], H)
		out := y[oh*OW : (oh+1)*OW]
		for ow := 0; ow < OW; {
			w0 := ow*sw - g.pb[1]
			if ow+4 <= OW && w0 >= 0 && w0+3*sw+KW <= W {
				b0, b1, b2, b3 := ninf, ninf, ninf, ninf
				for h := hlo; h < hhi; h++ {
					r := x[h*W+w0 : h*W+w0+3*sw+KW]
					for k := 0; k < KW; k++ {
						b0 = max(b0, r[k])
						b1 = max(b1, r[sw+k])
						b2 = max(b2, r[2*sw+k])
						b3 = max(b3, r[3*sw+k])
					}
				}
				if b0 == b0 && b1 == b1 && b2 == b2 && b3 == b3 {
					out[ow], out[ow+1], out[ow+2], out[ow+3] = b0, b1, b2, b3
					ow += 4
					continue
				}
			}
			out[ow] = perfMaxWindow(x, W, hlo, hhi, max(w0, 0), min(w0+KW, W))
			ow++
		}
	}
}

// perfMaxWindow is the max of rows [hlo, hhi) × columns [wlo, whi) of a
// W-wide plane; a NaN never wins (-Inf when nothing else is there).
func perfMaxWindow(x []float32, W, hlo, hhi, wlo, whi int) float32 {
	best := float32(math.Inf(-1))
	for h := hlo; h < hhi; h++ {
		for _, v := range x[h*W+wlo : h*W+whi] {
			if v > best {
				best = v
			}
		}
	}
	return best
}
