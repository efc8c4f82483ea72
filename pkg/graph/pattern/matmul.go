package pattern

import (
	"github.com/optictl/optictl/pkg/graph"
)

// MatMulAdd is a MatMul by a constant matrix followed by a constant bias:
//
//	Z = MatMul(X, W); Y = Add(Z, B) (either order)
//
// with W a rank-2 float32 constant, B a float32 constant, X not a
// constant, and Z read only by the Add.
type MatMulAdd struct {
	MatMul, Add *graph.Node
	X, W, Bias  string
	WT, BT      *graph.Tensor
}

// MatchMatMulAdd matches the pattern ending at add.
func MatchMatMulAdd(v *View, add *graph.Node) (*MatMulAdd, *Mismatch) {
	if !add.Is("Add") || len(add.Inputs) != 2 || len(add.Outputs) != 1 {
		return nil, miss(add, "not an Add of two inputs")
	}
	m := &MatMulAdd{Add: add}
	for i, in := range add.Inputs {
		if p := v.Producer(in); p != nil && p.Is("MatMul") {
			m.MatMul, m.Bias = p, add.Inputs[1-i]
		}
	}
	mm := m.MatMul
	if mm == nil {
		return nil, miss(add, "no input is produced by a MatMul")
	}
	if len(mm.Inputs) != 2 || len(mm.Outputs) != 1 {
		return nil, miss(add, "%s is not a MatMul of two inputs", NodeName(mm))
	}
	if v.Sole(mm.Outputs[0]) != add {
		return nil, miss(add, "%s's output %s", NodeName(mm), v.readers(mm.Outputs[0]))
	}
	m.X, m.W = mm.Inputs[0], mm.Inputs[1]
	if v.Const(m.X) != nil {
		return nil, miss(add, "%s's input %s is a constant", NodeName(mm), m.X)
	}
	if _, m.WT = v.Float32s(m.W); m.WT == nil || len(m.WT.Dims) != 2 {
		return nil, miss(add, "%s's weight %s is not a 2-D float32 constant", NodeName(mm), m.W)
	}
	if _, m.BT = v.Float32s(m.Bias); m.BT == nil {
		return nil, miss(add, "the bias %s is not a float32 constant", m.Bias)
	}
	return m, nil
}
