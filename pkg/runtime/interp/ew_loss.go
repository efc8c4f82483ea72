package interp

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
)

// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss, following onnx's
// reference: weights gathered by target, ignore_index zeroes both loss and
// weight, "mean" divides by the sum of the gathered weights when weights or
// ignore_index are in play, else by the element count.

func init() {
	Register("", "NegativeLogLikelihoodLoss", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return ewBuildLoss(n, false) })
	Register("", "SoftmaxCrossEntropyLoss", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return ewBuildLoss(n, true) })
}

func ewBuildLoss(n *graph.Node, softmax bool) (Kernel, error) {
	red := n.AttrString("reduction", "mean")
	switch red {
	case "none", "sum", "mean":
	default:
		return nil, ewErr(n, "unknown reduction %q", red)
	}
	ign := n.Attr("ignore_index")
	return func(c *Call) error {
		x, tg := c.In[0], c.In[1]
		if x == nil || tg == nil || len(x.Shape) < 2 || !x.DType.IsFloat() {
			return ewErr(n, "needs float input of rank >= 2 and a target")
		}
		var w []float64
		if len(c.In) > 2 && c.In[2] != nil {
			var err error
			if w, err = ewF64s(c.In[2]); err != nil {
				return ewErr(n, "weight: %v", err)
			}
		}
		N, C := int(x.Shape[0]), int(x.Shape[1])
		D := ewNumel(x.Shape[2:])
		if len(tg.Shape) != len(x.Shape)-1 || ewNumel(tg.Shape) != N*D {
			return ewErr(n, "target shape %v does not match input %v", tg.Shape, x.Shape)
		}
		xv, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		tv, err := ewInts(tg)
		if err != nil {
			return ewErr(n, "target: %v", err)
		}
		if softmax {
			for i := 0; i < N; i++ {
				for d := 0; d < D; d++ {
					mx := math.Inf(-1)
					for k := 0; k < C; k++ {
						mx = max(mx, xv[(i*C+k)*D+d])
					}
					s := 0.0
					for k := 0; k < C; k++ {
						s += math.Exp(xv[(i*C+k)*D+d] - mx)
					}
					ls := math.Log(s)
					for k := 0; k < C; k++ {
						xv[(i*C+k)*D+d] = xv[(i*C+k)*D+d] - mx - ls
					}
				}
			}
		}
		loss := make([]float64, N*D)
		gw := make([]float64, N*D)
		useW := w != nil || ign != nil
		for i := 0; i < N; i++ {
			for d := 0; d < D; d++ {
				t := tv[i*D+d]
				if ign != nil && t == ign.I {
					continue
				}
				if t < 0 || t >= int64(C) {
					return ewErr(n, "target %d out of range [0, %d)", t, C)
				}
				wt := 1.0
				if w != nil {
					wt = w[t]
				}
				gw[i*D+d] = wt
				loss[i*D+d] = -xv[(i*C+int(t))*D+d] * wt
			}
		}
		var out []float64
		var shape []int64
		switch red {
		case "none":
			out, shape = loss, tg.Shape
		default:
			s, sw := 0.0, 0.0
			for i, v := range loss {
				s += v
				sw += gw[i]
			}
			if red == "mean" {
				if useW {
					s /= sw
				} else {
					s /= float64(len(loss))
				}
			}
			out, shape = []float64{s}, []int64{}
		}
		o, err := c.Out(0, x.DType, shape)
		if err != nil {
			return err
		}
		if err := ewSetF64(o, out); err != nil {
			return ewErr(n, "%v", err)
		}
		if softmax && c.HasOutput(1) {
			lp, err := c.Out(1, x.DType, x.Shape)
			if err != nil {
				return err
			}
			return ewSetF64(lp, xv)
		}
		return nil
	}, nil
}
