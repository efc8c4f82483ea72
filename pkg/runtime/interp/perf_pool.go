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
