package interp

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
)

// GridSample (nearest/linear/cubic, zeros/border/reflection padding, 2-D
// and 3-D) and AffineGrid, following onnx's reference (which follows
// PyTorch's grid_sampler).

func init() {
	Register("", "GridSample", ewBuildGridSample)
	Register("", "AffineGrid", ewBuildAffineGrid)
}

func ewGsReflect(x, lo, hi float64) float64 {
	rng := hi - lo
	if x < lo {
		dx := lo - x
		n := int(dx / rng)
		r := dx - float64(n)*rng
		if n%2 == 0 {
			return lo + r
		}
		return hi - r
	}
	if x > hi {
		dx := x - hi
		n := int(dx / rng)
		r := dx - float64(n)*rng
		if n%2 == 0 {
			return hi - r
		}
		return lo + r
	}
	return x
}

func ewCubicCoeffs(x float64) [4]float64 {
	const a = -0.75
	x = math.Abs(x)
	return [4]float64{
		((a*(x+1)-5*a)*(x+1)+8*a)*(x+1) - 4*a,
		((a+2)*x-(a+3))*x*x + 1,
		((a+2)*(1-x)-(a+3))*(1-x)*(1-x) + 1,
		((a*(2-x)-5*a)*(2-x)+8*a)*(2-x) - 4*a,
	}
}

func ewBuildGridSample(n *graph.Node, bc *BuildContext) (Kernel, error) {
	mode := n.AttrString("mode", "linear")
	if bc.Opset < 20 {
		switch mode {
		case "bilinear":
			mode = "linear"
		case "bicubic":
			mode = "cubic"
		}
	}
	if mode == "bilinear" {
		mode = "linear"
	}
	if mode == "bicubic" {
		mode = "cubic"
	}
	pad := n.AttrString("padding_mode", "zeros")
	align := n.AttrInt("align_corners", 0) != 0
	return func(c *Call) error {
		x, g := c.In[0], c.In[1]
		if x == nil || g == nil || len(x.Shape) < 3 || len(g.Shape) != len(x.Shape) || g.Shape[0] != x.Shape[0] {
			return ewErr(n, "X [N, C, D...] and grid [N, D_out..., nd] must agree")
		}
		nd := len(x.Shape) - 2
		if int(g.Shape[len(g.Shape)-1]) != nd {
			return ewErr(n, "grid last dim %d, want %d", g.Shape[len(g.Shape)-1], nd)
		}
		N, C := int(x.Shape[0]), int(x.Shape[1])
		dims := x.Shape[2:]
		oshape := append([]int64{int64(N), int64(C)}, g.Shape[1:len(g.Shape)-1]...)
		if err := ewCheckSize(oshape); err != nil {
			return ewErr(n, "%v", err)
		}
		xv, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		gv, err := ewF64s(g)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		P := ewNumel(oshape[2:])
		S := ewNumel(dims)
		st := ewStrides(dims)
		lo := make([]float64, nd)
		hi := make([]float64, nd)
		for i, d := range dims {
			lo[i], hi[i] = -0.5, float64(d)-0.5
			if align {
				lo[i], hi[i] = 0, float64(d)-1
			}
		}
		// index maps an integer coordinate on dim i to a valid one, or -1 (zero).
		index := func(i int, v int) int {
			d := int(dims[i])
			switch pad {
			case "border":
				return min(max(v, 0), d-1)
			case "reflection":
				return int(ewGsReflect(float64(v), lo[i], hi[i]))
			}
			if v < 0 || v >= d {
				return -1
			}
			return v
		}
		res := make([]float64, N*C*P)
		coord := make([]float64, nd)
		taps := 2
		if mode == "cubic" {
			taps = 4
		}
		w := make([][]float64, nd)
		ix := make([][]int, nd)
		for i := range w {
			w[i] = make([]float64, taps)
			ix[i] = make([]int, taps)
		}
		for b := 0; b < N; b++ {
			for p := 0; p < P; p++ {
				gp := gv[(b*P+p)*nd:]
				for i := 0; i < nd; i++ {
					v := gp[nd-1-i]
					d := float64(dims[i])
					var u float64
					if align {
						u = (v + 1) / 2 * (d - 1)
					} else {
						u = ((v+1)*d - 1) / 2
					}
					u = float64(float32(u))
					if mode == "nearest" {
						u = math.RoundToEven(u)
					}
					if u < lo[i] || u > hi[i] {
						switch pad {
						case "border":
							u = min(max(u, 0), d-1)
						case "reflection":
							u = ewGsReflect(u, lo[i], hi[i])
						}
					}
					coord[i] = u
				}
				for i := 0; i < nd; i++ {
					u := coord[i]
					switch mode {
					case "nearest":
						w[i][0], ix[i][0] = 1, index(i, int(u))
						w[i][1], ix[i][1] = 0, -1
					case "cubic":
						x0 := math.Floor(u)
						cf := ewCubicCoeffs(u - x0)
						for k := 0; k < 4; k++ {
							w[i][k], ix[i][k] = cf[k], index(i, int(x0)-1+k)
						}
					default:
						x0 := math.Floor(u)
						f := u - x0
						w[i][0], ix[i][0] = 1-f, index(i, int(x0))
						w[i][1], ix[i][1] = f, index(i, int(x0)+1)
					}
				}
				for ch := 0; ch < C; ch++ {
					base := (b*C + ch) * S
					var sum float64
					// every corner of the taps^nd neighbourhood
					corners := 1
					for i := 0; i < nd; i++ {
						corners *= taps
					}
					for k := 0; k < corners; k++ {
						wt, off, kk := 1.0, 0, k
						for i := nd - 1; i >= 0; i-- {
							t := kk % taps
							kk /= taps
							if ix[i][t] < 0 || w[i][t] == 0 {
								wt = 0
								break
							}
							wt *= w[i][t]
							off += ix[i][t] * st[i]
						}
						if wt != 0 {
							sum += wt * xv[base+off]
						}
					}
					res[(b*C+ch)*P+p] = sum
				}
			}
		}
		o, err := c.Out(0, x.DType, oshape)
		if err != nil {
			return err
		}
		return ewSetF64(o, res)
	}, nil
}

func ewBuildAffineGrid(n *graph.Node, bc *BuildContext) (Kernel, error) {
	align := n.AttrInt("align_corners", 0) != 0
	return func(c *Call) error {
		th, sz := c.In[0], c.In[1]
		if th == nil || sz == nil || len(th.Shape) != 3 {
			return ewErr(n, "needs theta [N, nd, nd+1] and size")
		}
		size, err := ewInts(sz)
		if err != nil || (len(size) != 4 && len(size) != 5) {
			return ewErr(n, "size must be [N, C, H, W] or [N, C, D, H, W]")
		}
		nd := len(size) - 2
		N := int(size[0])
		if int(th.Shape[0]) != N || int(th.Shape[1]) != nd || int(th.Shape[2]) != nd+1 {
			return ewErr(n, "theta shape %v does not match size %v", th.Shape, size)
		}
		sp := size[2:]
		oshape := append(append([]int64{int64(N)}, sp...), int64(nd))
		if err := ewCheckSize(oshape); err != nil {
			return ewErr(n, "%v", err)
		}
		tv, err := ewF64s(th)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		lin := func(i, d int64) float64 {
			if align {
				if d == 1 {
					return -1
				}
				return -1 + float64(i)*2/float64(d-1)
			}
			return -1 + (2*float64(i)+1)/float64(d)
		}
		P := ewNumel(sp)
		res := make([]float64, N*P*nd)
		hom := make([]float64, nd+1)
		for b := 0; b < N; b++ {
			t := tv[b*nd*(nd+1):]
			ewForEach(sp, func(p int, ix []int64) {
				// homogeneous point: (x, y[, z], 1) with x along the last dim
				for i := 0; i < nd; i++ {
					hom[i] = lin(ix[nd-1-i], sp[nd-1-i])
				}
				hom[nd] = 1
				for r := 0; r < nd; r++ {
					s := 0.0
					for k := 0; k <= nd; k++ {
						s += t[r*(nd+1)+k] * hom[k]
					}
					res[(b*P+p)*nd+r] = s
				}
			})
		}
		o, err := c.Out(0, th.DType, oshape)
		if err != nil {
			return err
		}
		return ewSetF64(o, res)
	}, nil
}
