package pattern

import (
	"github.com/optictl/optictl/pkg/graph"
)

// HardSwish is a written-out hard swish around a Clip:
//
//	A = Add(X, a); C = Clip(A, lo, hi); then
//	Y = Scale(Mul(X, C), d)   (ScaleFirst false), or
//	Y = Mul(X, Scale(C, d))   (ScaleFirst true)
//
// where Scale is Div(·, d) (Div true) or Mul(·, d) in either order. With
// a = 3, lo = 0, hi = 6 and d = 6 (Div) or 1/6 (Mul) this is HardSwish(X);
// the matcher leaves those values to the user.
type HardSwish struct {
	X                     string
	Add, Clip, Mul, Scale *graph.Node
	A, D                  float64
	Bounds                ClipBounds
	Div, ScaleFirst       bool
}

// Nodes lists the pattern's nodes in graph order; the last one produces Y.
func (h *HardSwish) Nodes() []*graph.Node {
	if h.ScaleFirst {
		return []*graph.Node{h.Add, h.Clip, h.Scale, h.Mul}
	}
	return []*graph.Node{h.Add, h.Clip, h.Mul, h.Scale}
}

// Out is the pattern's output Y.
func (h *HardSwish) Out() string { return h.Nodes()[3].Outputs[0] }

// scaleOf matches n as Div(in, d) or Mul(in, d)/Mul(d, in) with d a
// constant scalar.
func scaleOf(v *View, n *graph.Node, in string) (d float64, div, ok bool) {
	if n == nil || len(n.Inputs) != 2 || len(n.Outputs) != 1 {
		return 0, false, false
	}
	switch {
	case n.Is("Div") && n.Inputs[0] == in && n.Inputs[1] != in:
		d, ok = v.Scalar(n.Inputs[1])
		return d, true, ok
	case n.Is("Mul"):
		o := Other(n, in)
		if o == "" {
			return 0, false, false
		}
		d, ok = v.Scalar(o)
		return d, false, ok
	}
	return 0, false, false
}

// MatchHardSwish matches the pattern around clip.
func MatchHardSwish(v *View, clip *graph.Node) (*HardSwish, *Mismatch) {
	if !clip.Is("Clip") || len(clip.Outputs) != 1 || len(clip.Inputs) == 0 {
		return nil, miss(clip, "not a Clip with one output")
	}
	b, mm := Clip(v, clip)
	if mm != nil {
		return nil, mm
	}
	add := v.Producer(clip.Inputs[0])
	if add == nil || !add.Is("Add") || len(add.Inputs) != 2 || len(add.Outputs) != 1 {
		return nil, miss(clip, "its input is not produced by an Add of two inputs")
	}
	if v.Sole(clip.Inputs[0]) != clip {
		return nil, miss(clip, "the Add's output %s", v.readers(clip.Inputs[0]))
	}
	h := &HardSwish{Add: add, Clip: clip, Bounds: b}
	x := ""
	for i := 0; i < 2 && x == ""; i++ {
		if a, ok := v.Scalar(add.Inputs[1-i]); ok && add.Inputs[i] != add.Inputs[1-i] {
			x, h.A = add.Inputs[i], a
		}
	}
	if x == "" {
		return nil, miss(clip, "%s adds no constant scalar", NodeName(add))
	}
	if v.Const(x) != nil {
		return nil, miss(clip, "X (%s) is a constant", x)
	}
	h.X = x
	cv := clip.Outputs[0]
	next := v.Sole(cv)
	if next == nil {
		return nil, miss(clip, "its output %s", v.readers(cv))
	}
	if next.Is("Mul") && Other(next, cv) == x && len(next.Outputs) == 1 {
		// Mul(X, C), then scaled.
		s := v.Sole(next.Outputs[0])
		d, div, ok := scaleOf(v, s, next.Outputs[0])
		if !ok {
			return nil, miss(clip, "x*clip (%s) is not then divided or multiplied by a constant scalar, or has other readers", next.Outputs[0])
		}
		h.Mul, h.Scale, h.D, h.Div = next, s, d, div
		return h, nil
	}
	d, div, ok := scaleOf(v, next, cv)
	if !ok {
		return nil, miss(clip, "its reader %s neither multiplies it by X nor scales it by a constant", NodeName(next))
	}
	m := v.Sole(next.Outputs[0])
	if m == nil || !m.Is("Mul") || Other(m, next.Outputs[0]) != x || len(m.Outputs) != 1 {
		return nil, miss(clip, "the scaled clip (%s) is not multiplied by X alone", next.Outputs[0])
	}
	h.Mul, h.Scale, h.D, h.Div, h.ScaleFirst = m, next, d, div, true
	return h, nil
}
