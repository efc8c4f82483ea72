package interp

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
)

// RoiAlign (avg/max, half_pixel or output_half_pixel), following onnx's
// reference, including its bilinear weights for max mode.

func init() { Register("", "RoiAlign", ewBuildRoiAlign) }

func ewBuildRoiAlign(n *graph.Node, bc *BuildContext) (Kernel, error) {
	halfPixel := n.AttrString("coordinate_transformation_mode", "half_pixel") == "half_pixel"
	if bc.Opset < 16 {
		halfPixel = false
	}
	isMax := n.AttrString("mode", "avg") == "max"
	oh := int(n.AttrInt("output_height", 1))
	ow := int(n.AttrInt("output_width", 1))
	ratio := int(n.AttrInt("sampling_ratio", 0))
	scale := float64(n.AttrFloat("spatial_scale", 1))
	if oh < 1 || ow < 1 || ratio < 0 {
		return nil, ewErr(n, "output sizes must be positive and sampling_ratio non-negative")
	}
	return func(c *Call) error {
		x, rois, bi := c.In[0], c.In[1], c.In[2]
		if x == nil || rois == nil || bi == nil || len(x.Shape) != 4 || len(rois.Shape) != 2 || rois.Shape[1] != 4 {
			return ewErr(n, "needs X [N, C, H, W], rois [R, 4] and batch_indices [R]")
		}
		C, H, W := int(x.Shape[1]), int(x.Shape[2]), int(x.Shape[3])
		xv, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		rv, err := ewF64s(rois)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		bv, err := ewInts(bi)
		if err != nil || len(bv) != int(rois.Shape[0]) {
			return ewErr(n, "batch_indices must hold one index per roi")
		}
		R := len(bv)
		res := make([]float64, R*C*oh*ow)
		type tap struct {
			pos [4]int
			w   [4]float64
		}
		off := 0.0
		if halfPixel {
			off = 0.5
		}
		for r := 0; r < R; r++ {
			if bv[r] < 0 || bv[r] >= x.Shape[0] {
				return ewErr(n, "batch index %d out of range", bv[r])
			}
			sw, sh := rv[r*4]*scale-off, rv[r*4+1]*scale-off
			ew, eh := rv[r*4+2]*scale-off, rv[r*4+3]*scale-off
			rw, rh := ew-sw, eh-sh
			if !halfPixel {
				rw, rh = max(rw, 1), max(rh, 1)
			}
			bh, bw := rh/float64(oh), rw/float64(ow)
			gh, gw := ratio, ratio
			if ratio == 0 {
				gh, gw = int(math.Ceil(rh/float64(oh))), int(math.Ceil(rw/float64(ow)))
			}
			count := max(gh*gw, 1)
			taps := make([]tap, 0, oh*ow*gh*gw)
			for ph := 0; ph < oh; ph++ {
				for pw := 0; pw < ow; pw++ {
					for iy := 0; iy < gh; iy++ {
						y := sh + float64(ph)*bh + (float64(iy)+0.5)*bh/float64(gh)
						for ix := 0; ix < gw; ix++ {
							xx := sw + float64(pw)*bw + (float64(ix)+0.5)*bw/float64(gw)
							yy := y
							if yy < -1 || yy > float64(H) || xx < -1 || xx > float64(W) {
								taps = append(taps, tap{})
								continue
							}
							yy, xx = max(yy, 0), max(xx, 0)
							yl, xl := int(yy), int(xx)
							var yh, xh int
							if yl >= H-1 {
								yl, yh = H-1, H-1
								yy = float64(yl)
							} else {
								yh = yl + 1
							}
							if xl >= W-1 {
								xl, xh = W-1, W-1
								xx = float64(xl)
							} else {
								xh = xl + 1
							}
							ly, lx := yy-float64(yl), xx-float64(xl)
							hy, hx := 1-ly, 1-lx
							taps = append(taps, tap{
								pos: [4]int{yl*W + xl, yl*W + xh, yh*W + xl, yh*W + xh},
								w:   [4]float64{hy * hx, hy * lx, ly * hx, ly * lx},
							})
						}
					}
				}
			}
			for ch := 0; ch < C; ch++ {
				base := (int(bv[r])*C + ch) * H * W
				ti := 0
				for p := 0; p < oh*ow; p++ {
					out := 0.0
					for g := 0; g < gh*gw; g++ {
						t := taps[ti]
						ti++
						if isMax {
							v := t.w[0] * xv[base+t.pos[0]]
							for k := 1; k < 4; k++ {
								v = max(v, t.w[k]*xv[base+t.pos[k]])
							}
							if g == 0 {
								out = v
							} else {
								out = max(out, v)
							}
						} else {
							for k := 0; k < 4; k++ {
								out += t.w[k] * xv[base+t.pos[k]]
							}
						}
					}
					if !isMax {
						out /= float64(count)
					}
					res[(r*C+ch)*oh*ow+p] = out
				}
			}
		}
		o, err := c.Out(0, x.DType, []int64{int64(R), int64(C), int64(oh), int64(ow)})
		if err != nil {
			return err
		}
		return ewSetF64(o, res)
	}, nil
}
