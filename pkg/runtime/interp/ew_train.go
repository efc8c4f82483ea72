package interp

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// The ai.onnx.preview.training optimizers: Adagrad, Momentum, Adam. Inputs
// are R (learning rate), T (step), then n tensors each of X, G and the
// optimizer's state; outputs are the new X and states.

const ewTrainDomain = "ai.onnx.preview.training"

func init() {
	Register(ewTrainDomain, "Adagrad", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return ewBuildOptimizer(n, 1) })
	Register(ewTrainDomain, "Momentum", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return ewBuildOptimizer(n, 1) })
	Register(ewTrainDomain, "Adam", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return ewBuildOptimizer(n, 2) })
}

func ewBuildOptimizer(n *graph.Node, states int) (Kernel, error) {
	op := n.OpType
	norm := float64(n.AttrFloat("norm_coefficient", 0))
	decay := float64(n.AttrFloat("decay_factor", 0))
	eps := float64(n.AttrFloat("epsilon", 0))
	if op == "Adam" && n.Attr("epsilon") == nil {
		eps = 1e-6
	}
	alpha := float64(n.AttrFloat("alpha", 0.9))
	beta := float64(n.AttrFloat("beta", 0.999))
	post := float64(n.AttrFloat("norm_coefficient_post", 0))
	nesterov := n.AttrString("mode", "standard") == "nesterov"
	return func(c *Call) error {
		if len(c.In) < 2 || c.In[0] == nil || c.In[1] == nil || (len(c.In)-2)%(2+states) != 0 {
			return ewErr(n, "inputs must be R, T and %d groups of tensors", 2+states)
		}
		rv, err := ewF64s(c.In[0])
		if err != nil || len(rv) != 1 {
			return ewErr(n, "R must be a scalar")
		}
		tv, err := ewF64s(c.In[1])
		if err != nil || len(tv) != 1 {
			return ewErr(n, "T must be a scalar")
		}
		R, T := rv[0], tv[0]
		k := (len(c.In) - 2) / (2 + states)
		get := func(i int) ([]float64, *runtime.Tensor, error) {
			t := c.In[2+i]
			if t == nil {
				return nil, nil, ewErr(n, "input %d is missing", 2+i)
			}
			v, err := ewF64s(t)
			return v, t, err
		}
		for j := 0; j < k; j++ {
			x, xt, err := get(j)
			if err != nil {
				return err
			}
			g, _, err := get(k + j)
			if err != nil || len(g) != len(x) {
				return ewErr(n, "gradient %d does not match its tensor", j)
			}
			s1, _, err := get(2*k + j)
			if err != nil || len(s1) != len(x) {
				return ewErr(n, "state %d does not match its tensor", j)
			}
			var s2 []float64
			if states == 2 {
				if s2, _, err = get(3*k + j); err != nil || len(s2) != len(x) {
					return ewErr(n, "state %d does not match its tensor", j)
				}
			}
			xn := make([]float64, len(x))
			for i := range x {
				gr := norm*x[i] + g[i]
				switch op {
				case "Adagrad":
					r := R / (1 + T*decay)
					s1[i] += gr * gr
					xn[i] = x[i] - r*gr/(math.Sqrt(s1[i])+eps)
				case "Momentum":
					b := beta
					if T == 0 {
						b = 1
					}
					s1[i] = alpha*s1[i] + b*gr
					if nesterov {
						xn[i] = x[i] - R*(gr+alpha*s1[i])
					} else {
						xn[i] = x[i] - R*s1[i]
					}
				case "Adam":
					s1[i] = alpha*s1[i] + (1-alpha)*gr
					s2[i] = beta*s2[i] + (1-beta)*gr*gr
					r := R
					if T > 0 {
						r = R * math.Sqrt(1-math.Pow(beta, T)) / (1 - math.Pow(alpha, T))
					}
					xn[i] = (1 - post) * (x[i] - r*s1[i]/(math.Sqrt(s2[i])+eps))
				}
			}
			for q, vals := range [][]float64{xn, s1, s2} {
				if vals == nil {
					continue
				}
				oi := q*k + j
				if oi >= c.NumOutputs() || !c.HasOutput(oi) {
					continue
				}
				o, err := c.Out(oi, xt.DType, xt.Shape)
				if err != nil {
					return err
				}
				if err := ewSetF64(o, vals); err != nil {
					return ewErr(n, "%v", err)
				}
			}
		}
		return nil
	}, nil
}
