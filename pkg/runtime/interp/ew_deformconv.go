package interp

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
)

// DeformConv (2-D): each kernel tap samples X bilinearly (zero outside) at
// its offset position, optionally scaled by a mask; groups and offset
// groups as in onnx's reference.

func init() { Register("", "DeformConv", ewBuildDeformConv) }

func ewBuildDeformConv(n *graph.Node, bc *BuildContext) (Kernel, error) {
	group := int(n.AttrInt("group", 1))
	ogroup := int(n.AttrInt("offset_group", 1))
	dilA, padA, strA := n.AttrInts("dilations"), n.AttrInts("pads"), n.AttrInts("strides")
	if group < 1 || ogroup < 1 {
		return nil, ewErr(n, "group and offset_group must be positive")
	}
	return func(c *Call) error {
		x, w, offT := c.In[0], c.In[1], c.In[2]
		if x == nil || w == nil || offT == nil || len(x.Shape) != 4 || len(w.Shape) != 4 || len(offT.Shape) != 4 {
			return ewErr(n, "only 2-D DeformConv is supported: X, W and offset must be 4-D")
		}
		N, IC, IH, IW := int(x.Shape[0]), int(x.Shape[1]), int(x.Shape[2]), int(x.Shape[3])
		OC, ICg, KH, KW := int(w.Shape[0]), int(w.Shape[1]), int(w.Shape[2]), int(w.Shape[3])
		OH, OW := int(offT.Shape[2]), int(offT.Shape[3])
		if IC != ICg*group || OC%group != 0 || IC%ogroup != 0 || int(offT.Shape[1]) != ogroup*KH*KW*2 || int(offT.Shape[0]) != N {
			return ewErr(n, "X %v, W %v and offset %v are inconsistent with group %d, offset_group %d", x.Shape, w.Shape, offT.Shape, group, ogroup)
		}
		get := func(a []int64, i int, def int) int {
			if len(a) > i {
				return int(a[i])
			}
			return def
		}
		dh, dw := get(dilA, 0, 1), get(dilA, 1, 1)
		sh, sw := get(strA, 0, 1), get(strA, 1, 1)
		ph, pw := get(padA, 0, 0), get(padA, 1, 0)
		xv, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		wv, err := ewF64s(w)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		ov, err := ewF64s(offT)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		var bias, mask []float64
		if len(c.In) > 3 && c.In[3] != nil {
			if bias, err = ewF64s(c.In[3]); err != nil || len(bias) != OC {
				return ewErr(n, "B must hold one value per output channel")
			}
		}
		if len(c.In) > 4 && c.In[4] != nil {
			if mask, err = ewF64s(c.In[4]); err != nil || len(mask) != N*ogroup*KH*KW*OH*OW {
				return ewErr(n, "mask must be [N, offset_group*kH*kW, oH, oW]")
			}
		}
		sample := func(plane []float64, y, xx float64) float64 {
			// the reference normalizes then denormalizes through float32
			yn := y/float64(IH-1)*2 - 1
			xn := xx/float64(IW-1)*2 - 1
			y = float64(float32((yn + 1) / 2 * float64(IH-1)))
			xx = float64(float32((xn + 1) / 2 * float64(IW-1)))
			y0, x0 := math.Floor(y), math.Floor(xx)
			fy, fx := y-y0, xx-x0
			at := func(i, j int) float64 {
				if i < 0 || i >= IH || j < 0 || j >= IW {
					return 0
				}
				return plane[i*IW+j]
			}
			iy, ix := int(y0), int(x0)
			return (1-fy)*((1-fx)*at(iy, ix)+fx*at(iy, ix+1)) + fy*((1-fx)*at(iy+1, ix)+fx*at(iy+1, ix+1))
		}
		ocg := OC / group
		icog := IC / ogroup
		res := make([]float64, N*OC*OH*OW)
		for b := 0; b < N; b++ {
			for oc := 0; oc < OC; oc++ {
				g := oc / ocg
				for i := 0; i < OH; i++ {
					for j := 0; j < OW; j++ {
						s := 0.0
						if bias != nil {
							s = bias[oc]
						}
						for icl := 0; icl < ICg; icl++ {
							ic := g*ICg + icl
							og := ic / icog
							plane := xv[(b*IC+ic)*IH*IW:][:IH*IW]
							for ki := 0; ki < KH; ki++ {
								for kj := 0; kj < KW; kj++ {
									tap := (og*KH+ki)*KW + kj
									offY := ov[((b*ogroup*KH*KW*2)+tap*2)*OH*OW+i*OW+j]
									offX := ov[((b*ogroup*KH*KW*2)+tap*2+1)*OH*OW+i*OW+j]
									y := float64(-ph+sh*i+ki*dh) + offY
									xx := float64(-pw+sw*j+kj*dw) + offX
									v := sample(plane, y, xx) * wv[((oc*ICg+icl)*KH+ki)*KW+kj]
									if mask != nil {
										v *= mask[(b*ogroup*KH*KW+tap)*OH*OW+i*OW+j]
									}
									s += v
								}
							}
						}
						res[((b*OC+oc)*OH+i)*OW+j] = s
					}
				}
			}
		}
		o, err := c.Out(0, x.DType, []int64{int64(N), int64(OC), int64(OH), int64(OW)})
		if err != nil {
			return err
		}
		return ewSetF64(o, res)
	}, nil
}
