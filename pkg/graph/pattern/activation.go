package pattern

import (
	"github.com/optictl/optictl/pkg/graph"
)

// ClipBounds are a Clip's constant bounds; a bound the node leaves out is
// unset (Has* false) and the user picks its stand-in (±Inf, ±MaxFloat32).
type ClipBounds struct {
	Lo, Hi       float64
	HasLo, HasHi bool
}

// Clip reads a Clip's bounds: attributes before opset 11, constant scalar
// inputs from opset 11 on.
func Clip(v *View, n *graph.Node) (ClipBounds, *Mismatch) {
	var b ClipBounds
	if !n.Is("Clip") || len(n.Inputs) == 0 || len(n.Inputs) > 3 {
		return b, miss(n, "not a Clip with 1 to 3 inputs")
	}
	if v.Opset("") < 11 {
		if len(n.Inputs) != 1 {
			return b, miss(n, "Clip below opset 11 has %d inputs", len(n.Inputs))
		}
		if a := n.Attr("min"); a != nil {
			b.Lo, b.HasLo = float64(a.F), true
		}
		if a := n.Attr("max"); a != nil {
			b.Hi, b.HasHi = float64(a.F), true
		}
		return b, nil
	}
	for i, in := range n.Inputs[1:] {
		if in == "" {
			continue
		}
		x, ok := v.Scalar(in)
		if !ok {
			return b, miss(n, "Clip bound %s is not a constant scalar", in)
		}
		if i == 0 {
			b.Lo, b.HasLo = x, true
		} else {
			b.Hi, b.HasHi = x, true
		}
	}
	return b, nil
}

// Act is an elementwise activation a producer can apply to its output.
type Act struct {
	Kind   string    // the op type: Relu, Tanh, Sigmoid, LeakyRelu, HardSigmoid, HardSwish, Clip
	Params []float32 // LeakyRelu [alpha]; HardSigmoid [alpha, beta]
	Clip   ClipBounds
}

// Activation matches a default-domain activation node of one data input.
func Activation(v *View, n *graph.Node) (Act, *Mismatch) {
	if !n.IsDefaultDomain() || len(n.Outputs) != 1 {
		return Act{}, miss(n, "%s is not an activation", n.OpType)
	}
	if n.OpType != "Clip" && len(n.Inputs) != 1 {
		return Act{}, miss(n, "%s has %d inputs", n.OpType, len(n.Inputs))
	}
	switch n.OpType {
	case "Relu", "Sigmoid", "Tanh", "HardSwish":
		return Act{Kind: n.OpType}, nil
	case "LeakyRelu":
		return Act{Kind: n.OpType, Params: []float32{n.AttrFloat("alpha", 0.01)}}, nil
	case "HardSigmoid":
		return Act{Kind: n.OpType, Params: []float32{n.AttrFloat("alpha", 0.2), n.AttrFloat("beta", 0.5)}}, nil
	case "Clip":
		b, m := Clip(v, n)
		if m != nil {
			return Act{}, m
		}
		return Act{Kind: "Clip", Clip: b}, nil
	}
	return Act{}, miss(n, "%s is not a fusable activation", n.OpType)
}
