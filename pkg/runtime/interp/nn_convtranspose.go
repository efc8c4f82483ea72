package interp

import (
	"fmt"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// ConvTranspose: per group, col = W_gᵀ·X_g on the packed GEMM, then col2im
// scatters col into the output (bias-initialised).

func init() { Register("", "ConvTranspose", nnBuildConvTranspose) }

type nnConvT struct {
	win       nnWindow
	group     int
	outPad    []int64
	outShape  []int64
	geo       nnGeom // in = X spatial, out = Y spatial
	shape     []int64
	xin, win2 nnF32In
	bin       nnF32In
	out       nnF32Out
	gm        nnGemmer
}

func nnBuildConvTranspose(n *graph.Node, bc *BuildContext) (Kernel, error) {
	win, err := nnParseWindow(n)
	if err != nil {
		return nil, err
	}
	ct := &nnConvT{win: win, group: int(n.AttrInt("group", 1)), outPad: n.AttrInts("output_padding"), outShape: n.AttrInts("output_shape")}
	if ct.group <= 0 {
		return nil, fmt.Errorf("group %d must be positive", ct.group)
	}
	return ct.run, nil
}

func (ct *nnConvT) geom(xs, ks []int64) error {
	nd := len(xs)
	g := &ct.geo
	if nd == 0 || nd > nnMaxND || len(ks) != nd {
		return fmt.Errorf("X spatial dims %v and kernel %v do not agree", xs, ks)
	}
	w := &ct.win
	for _, a := range [][]int64{w.strides, w.dilations, ct.outPad} {
		if a != nil && len(a) != nd {
			return fmt.Errorf("attribute %v does not match %d spatial dims", a, nd)
		}
	}
	if w.pads != nil && len(w.pads) != 2*nd {
		return fmt.Errorf("pads %v do not match %d spatial dims", w.pads, nd)
	}
	if ct.outShape != nil && len(ct.outShape) < nd {
		return fmt.Errorf("output_shape %v has fewer than %d dims", ct.outShape, nd)
	}
	g.nd = nd
	for i := 0; i < nd; i++ {
		g.in[i], g.k[i], g.s[i], g.d[i] = int(xs[i]), int(ks[i]), 1, 1
		if w.strides != nil {
			g.s[i] = int(w.strides[i])
		}
		if w.dilations != nil {
			g.d[i] = int(w.dilations[i])
		}
		op := 0
		if ct.outPad != nil {
			op = int(ct.outPad[i])
		}
		ek := (g.k[i]-1)*g.d[i] + 1
		full := g.s[i]*(g.in[i]-1) + op + ek
		same := w.autoPad == "SAME_UPPER" || w.autoPad == "SAME_LOWER"
		switch {
		case ct.outShape != nil || same:
			var out int
			if ct.outShape != nil {
				out = int(ct.outShape[len(ct.outShape)-nd+i])
			} else {
				out = g.in[i] * g.s[i]
			}
			total := full - out
			half := total / 2 // floor division, as the reference (total may be < 0)
			if total < 0 && total%2 != 0 {
				half--
			}
			if w.autoPad == "SAME_UPPER" {
				g.pb[i], g.pe[i] = half, total-half
			} else {
				g.pb[i], g.pe[i] = total-half, half
			}
			g.out[i] = out
		default:
			if w.pads != nil && w.autoPad != "VALID" {
				g.pb[i], g.pe[i] = int(w.pads[i]), int(w.pads[i+nd])
			} else {
				g.pb[i], g.pe[i] = 0, 0
			}
			g.out[i] = full - g.pb[i] - g.pe[i]
		}
		if g.out[i] <= 0 || g.in[i] <= 0 {
			return fmt.Errorf("output spatial size %d is not positive", g.out[i])
		}
	}
	return nil
}

func (ct *nnConvT) run(c *Call) error {
	x, w := c.In[0], c.In[1]
	var b *runtime.Tensor
	if len(c.In) > 2 {
		b = c.In[2]
	}
	if x == nil || w == nil || len(x.Shape) < 3 || len(w.Shape) != len(x.Shape) {
		return fmt.Errorf("interp: %s: X and W must have the same rank ≥ 3", c.Node)
	}
	if !nnIsFloatish(x.DType) || w.DType != x.DType {
		return fmt.Errorf("interp: %s: X is %s and W is %s", c.Node, x.DType, w.DType)
	}
	N, C := int(x.Shape[0]), int(x.Shape[1])
	G := ct.group
	if int(w.Shape[0]) != C || C%G != 0 {
		return fmt.Errorf("interp: %s: W%v does not match X%v with group %d", c.Node, w.Shape, x.Shape, G)
	}
	Mg := int(w.Shape[1])
	M := Mg * G
	if err := ct.geom(x.Shape[2:], w.Shape[2:]); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	g := &ct.geo
	ct.shape = nnShapeWith(ct.shape, []int64{int64(N), int64(M)}, g)
	if err := nnCheckSize("output", ct.shape); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	xd, err := ct.xin.get(x)
	if err != nil {
		return err
	}
	wd, err := ct.win2.get(w)
	if err != nil {
		return err
	}
	var bd []float32
	if b != nil {
		if bd, err = ct.bin.get(b); err != nil {
			return err
		}
		if len(bd) != M {
			return fmt.Errorf("interp: %s: B has %d values, want %d", c.Node, len(bd), M)
		}
	}
	if int64(Mg)*int64(g.kSize())*int64(g.inSize()) > nnMaxScratch {
		return fmt.Errorf("interp: %s: the column buffer is too large", c.Node)
	}
	y, err := c.Out(0, x.DType, ct.shape)
	if err != nil {
		return err
	}
	yd := ct.out.get(y)
	Cg := C / G
	inSz, outSz, kSz := g.inSize(), g.outSize(), g.kSize()
	R := Mg * kSz
	col := c.ScratchF32(2, R*inSz)
	ap := c.ScratchF32(1, nnPackedLenA(R, Cg))
	bp := c.ScratchF32(0, nnPackedLenB(Cg, inSz))
	if ct.gm.par == nil {
		ct.gm.init(c.Parallel)
	}
	gm := &ct.gm
	for n := 0; n < N; n++ {
		for gr := 0; gr < G; gr++ {
			xg := xd[(n*C+gr*Cg)*inSz:]
			wg := wd[gr*Cg*R:]
			gm.packA(ap, wg, 1, R, R, Cg, 1)
			gm.packB(bp, xg, inSz, 1, Cg, inSz)
			gm.gemm(R, inSz, Cg, ap, bp, col, inSz, false)
			yg := yd[(n*M+gr*Mg)*outSz : (n*M+(gr+1)*Mg)*outSz]
			for m := 0; m < Mg; m++ {
				v := float32(0)
				if bd != nil {
					v = bd[gr*Mg+m]
				}
				row := yg[m*outSz : (m+1)*outSz]
				for i := range row {
					row[i] = v
				}
			}
			ct.col2im(col, yg, Mg, kSz, inSz, outSz)
		}
	}
	ct.out.done(y, yd)
	return nil
}

func (ct *nnConvT) col2im(col, y []float32, Mg, kSz, inSz, outSz int) {
	g := &ct.geo
	nd := g.nd
	var kc, ic [nnMaxND]int
	for r := 0; r < Mg*kSz; r++ {
		m, q := r/kSz, r%kSz
		for i := nd - 1; i >= 0; i-- {
			kc[i] = q % g.k[i]
			q /= g.k[i]
		}
		src := col[r*inSz : (r+1)*inSz]
		dst := y[m*outSz : (m+1)*outSz]
		for j, v := range src {
			q := j
			for i := nd - 1; i >= 0; i-- {
				ic[i] = q % g.in[i]
				q /= g.in[i]
			}
			o, ok := 0, true
			for i := 0; i < nd; i++ {
				p := ic[i]*g.s[i] + kc[i]*g.d[i] - g.pb[i]
				if p < 0 || p >= g.out[i] {
					ok = false
					break
				}
				o = o*g.out[i] + p
			}
			if ok {
				dst[o] += v
			}
		}
	}
}
