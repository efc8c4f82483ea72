package interp

// Depthwise convolution (one input and one output channel per group) with
// stride 1 along W, from a zero-padded copy of each plane: every output is
// then an interior one, and a row of outputs is a register-blocked sum of
// KH·KW shifted input rows (perfDWRow) instead of one pass over the row
// per tap plus scalar edge columns.

// perfDWOn enables the padded-plane depthwise path; tests turn it off.
var perfDWOn = true

// perfDWFits reports whether the path applies to geometry g, and the
// padded plane size.
func perfDWFits(g *nnGeom) (int, bool) {
	if !perfDWOn || g.nd != 2 || g.s[1] != 1 || g.out[1] < 8 {
		return 0, false
	}
	hp := int64(g.in[0]) + int64(g.pb[0]) + int64(g.pe[0])
	wp := int64(g.in[1]) + int64(g.pb[1]) + int64(g.pe[1])
	if hp <= 0 || wp <= 0 || hp*wp > 1<<26 {
		return 0, false
	}
	return int(hp*wp) + nnNR, true
}

func perfDWRowGo(out, x []float32, rs int, w []float32, kh, kw, dw int, bias float32) {
	for i := range out {
		out[i] = bias
	}
	for ki := 0; ki < kh; ki++ {
		for kj := 0; kj < kw; kj++ {
			wv := w[ki*kw+kj]
			src := x[ki*rs+kj*dw : ki*rs+kj*dw+len(out)]
			for i, v := range src {
				out[i] += wv * v
			}
		}
	}
}

// perfDWPlane convolves one plane xp (H×W) with kernel wk into yp (OH×OW)
// through the padded buffer pad (perfDWFits' size).
func perfDWPlane(g *nnGeom, xp, yp, wk, pad []float32, bias float32) {
	H, W := g.in[0], g.in[1]
	Wp := W + g.pb[1] + g.pe[1]
	Hp := H + g.pb[0] + g.pe[0]
	pt, pl := g.pb[0], g.pb[1]
	clear(pad[:pt*Wp])
	for h := 0; h < H; h++ {
		row := pad[(pt+h)*Wp : (pt+h+1)*Wp]
		clear(row[:pl])
		copy(row[pl:pl+W], xp[h*W:(h+1)*W])
		clear(row[pl+W:])
	}
	clear(pad[(pt+H)*Wp : Hp*Wp])
	OH, OW := g.out[0], g.out[1]
	rs := g.d[0] * Wp
	for oh := 0; oh < OH; oh++ {
		perfDWRow(yp[oh*OW:(oh+1)*OW], pad[oh*g.s[0]*Wp:], rs, wk, g.k[0], g.k[1], g.d[1], bias)
	}
}
