package pattern

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
)

// GeluTol is how close (relative) the constants √2 or 1/√2 must be.
const GeluTol = 1e-4

// Gelu is a written-out exact GELU around an Erf:
//
//	T = Div(X, √2) (or Mul(X, 1/√2), either order); E = Erf(T);
//	A = Add(E, 1); then Y = Mul(Mul(X, A), 0.5) or Y = Mul(Mul(X, 0.5), A)
type Gelu struct {
	X string
	// K is the constant X is divided (Div) or multiplied (Mul) by.
	K float64
	// Scale (Div or Mul), Erf, Add, Mul (the one reading A), Half (the
	// Mul by 0.5: after Mul, or before it reading X).
	Scale, Erf, Add, Mul, Half *graph.Node
	HalfFirst                  bool
}

// Nodes lists the pattern's nodes; Last is the one producing Y.
func (m *Gelu) Nodes() []*graph.Node {
	return []*graph.Node{m.Scale, m.Erf, m.Add, m.Mul, m.Half}
}

// Last is the node that produces Y.
func (m *Gelu) Last() *graph.Node {
	if m.HalfFirst {
		return m.Mul
	}
	return m.Half
}

// MatchGelu matches the pattern around erf.
func MatchGelu(v *View, erf *graph.Node) (*Gelu, *Mismatch) {
	if !erf.Is("Erf") || len(erf.Inputs) != 1 || len(erf.Outputs) != 1 {
		return nil, miss(erf, "not an Erf")
	}
	a := v.Producer(erf.Inputs[0])
	if a == nil || !(a.Is("Div") || a.Is("Mul")) || len(a.Inputs) != 2 || len(a.Outputs) != 1 {
		return nil, miss(erf, "its input is not produced by a Div or Mul")
	}
	if v.Sole(a.Outputs[0]) != erf {
		return nil, miss(erf, "%s's output %s", NodeName(a), v.readers(a.Outputs[0]))
	}
	x := a.Inputs[0]
	k, ok := v.Scalar(a.Inputs[1])
	if a.Is("Mul") && !ok {
		x = a.Inputs[1]
		k, ok = v.Scalar(a.Inputs[0])
	}
	if !ok || !(a.Is("Div") && Near(k, math.Sqrt2, GeluTol) || a.Is("Mul") && Near(k, 1/math.Sqrt2, GeluTol)) {
		return nil, miss(erf, "%s does not divide by √2 (or multiply by 1/√2)", NodeName(a))
	}
	if v.Const(x) != nil {
		return nil, miss(erf, "X (%s) is a constant", x)
	}
	m := &Gelu{X: x, K: k, Scale: a, Erf: erf}
	isHalf := func(n *graph.Node, in string) bool {
		h, ok := v.Scalar(Other(n, in))
		return ok && h == 0.5
	}
	e := erf.Outputs[0]
	add := v.Sole(e)
	if add == nil || !add.Is("Add") || len(add.Outputs) != 1 {
		return nil, miss(erf, "its output %s is not read by one Add alone", e)
	}
	if one, ok := v.Scalar(Other(add, e)); !ok || one != 1 {
		return nil, miss(erf, "%s does not add 1", NodeName(add))
	}
	mul := v.Sole(add.Outputs[0])
	if mul == nil || !mul.Is("Mul") || len(mul.Outputs) != 1 {
		return nil, miss(erf, "1+erf (%s) is not read by one Mul alone", add.Outputs[0])
	}
	m.Add, m.Mul = add, mul
	q := Other(mul, add.Outputs[0])
	if q == "" {
		return nil, miss(erf, "%s squares 1+erf", NodeName(mul))
	}
	if q == x {
		// Y = Mul(Mul(X, A), 0.5)
		half := v.Sole(mul.Outputs[0])
		if half == nil || !half.Is("Mul") || len(half.Outputs) != 1 || !isHalf(half, mul.Outputs[0]) {
			return nil, miss(erf, "x*(1+erf) (%s) is not then multiplied by 0.5 alone", mul.Outputs[0])
		}
		m.Half = half
		return m, nil
	}
	// Y = Mul(Mul(X, 0.5), A)
	half := v.Producer(q)
	if half == nil || !half.Is("Mul") || len(half.Outputs) != 1 || v.Sole(q) != mul || Other(half, x) == "" || !isHalf(half, x) {
		return nil, miss(erf, "the other factor of %s is neither X nor X*0.5 read only there", NodeName(mul))
	}
	m.Half, m.HalfFirst = half, true
	return m, nil
}
