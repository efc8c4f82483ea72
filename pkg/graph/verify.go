package graph

import (
	"errors"
	"fmt"
)

// VerifyError lists every problem Verify found.
type VerifyError struct{ Problems []string }

func (e *VerifyError) Error() string {
	if len(e.Problems) == 1 {
		return "graph: verify: " + e.Problems[0]
	}
	return fmt.Sprintf("graph: verify: %s (and %d more problems)", e.Problems[0], len(e.Problems)-1)
}

const maxProblems = 50

// Verify checks the structural invariants every pass must keep:
//   - each value has exactly one producer (graph input, initializer or node
//     output) and no name is produced twice;
//   - nodes are in topological order: every input is produced earlier in the
//     same graph or in an enclosing graph (for subgraphs);
//   - graph outputs are produced;
//   - nodes have an op type and, for ops optictl knows, a valid number of
//     inputs and outputs;
//   - initializer data agrees with its dtype and shape.
func (m *Model) Verify() error {
	v := &verifier{m: m}
	if m.Graph == nil {
		return &VerifyError{[]string{"model has no graph"}}
	}
	v.graph(m.Graph, nil, "")
	if len(v.problems) > 0 {
		return &VerifyError{Problems: v.problems}
	}
	return nil
}

// IsVerifyError reports whether err came from Verify.
func IsVerifyError(err error) bool {
	var ve *VerifyError
	return errors.As(err, &ve)
}

type verifier struct {
	m        *Model
	problems []string
}

func (v *verifier) add(format string, args ...any) {
	if len(v.problems) < maxProblems {
		v.problems = append(v.problems, fmt.Sprintf(format, args...))
	}
}

type scope struct {
	names  map[string]bool
	parent *scope
}

func (s *scope) has(n string) bool {
	for ; s != nil; s = s.parent {
		if s.names[n] {
			return true
		}
	}
	return false
}

func (v *verifier) graph(g *Graph, parent *scope, where string) {
	if where == "" {
		where = "graph"
		if g.Name != "" {
			where = fmt.Sprintf("graph %q", g.Name)
		}
	}
	sc := &scope{names: map[string]bool{}, parent: parent}
	define := func(name, what string) {
		if name == "" {
			return
		}
		if sc.names[name] {
			v.add("%s: value %q is produced more than once (again by %s)", where, name, what)
			return
		}
		sc.names[name] = true
	}
	for _, in := range g.Inputs {
		if in.Name == "" {
			v.add("%s: graph input with an empty name", where)
		}
		define(in.Name, "graph input")
	}
	seenInit := map[string]bool{}
	for _, t := range g.Initializers {
		if seenInit[t.Name] {
			v.add("%s: duplicate initializer %q", where, t.Name)
			continue
		}
		seenInit[t.Name] = true
		if !sc.names[t.Name] {
			define(t.Name, "initializer")
		}
		if t.Raw == nil && t.External != nil && t.DType != String {
			continue // weights not read (LoadOptions.SkipExternal)
		}
		if err := t.Validate(); err != nil {
			v.add("%s: initializer: %v", where, err)
		}
	}
	for i, n := range g.Nodes {
		if n == nil {
			v.add("%s: node %d is nil", where, i)
			continue
		}
		if n.OpType == "" {
			v.add("%s: node %d (%q) has no op_type", where, i, n.Name)
		}
		for k, in := range n.Inputs {
			if in != "" && !sc.has(in) {
				v.add("%s: node %s input %d reads %q, which no earlier node, input or initializer produces", where, n, k, in)
			}
		}
		if n.IsDefaultDomain() {
			if ar, ok := arity[n.OpType]; ok {
				if len(n.Inputs) < ar[0] || (ar[1] >= 0 && len(n.Inputs) > ar[1]) {
					v.add("%s: node %s has %d inputs, %s takes %s", where, n, len(n.Inputs), n.OpType, rangeText(ar[0], ar[1]))
				}
				if len(n.Outputs) < ar[2] || (ar[3] >= 0 && len(n.Outputs) > ar[3]) {
					v.add("%s: node %s has %d outputs, %s gives %s", where, n, len(n.Outputs), n.OpType, rangeText(ar[2], ar[3]))
				}
			}
		}
		for _, a := range n.Attrs {
			if a.T != nil && a.T.Raw != nil {
				if err := a.T.Validate(); err != nil {
					v.add("%s: node %s attribute %q: %v", where, n, a.Name, err)
				}
			}
			if a.G != nil {
				v.graph(a.G, sc, fmt.Sprintf("%s / node %s attribute %q", where, n, a.Name))
			}
			for j, sg := range a.Graphs {
				v.graph(sg, sc, fmt.Sprintf("%s / node %s attribute %q[%d]", where, n, a.Name, j))
			}
		}
		for _, o := range n.Outputs {
			define(o, "node "+n.String())
		}
	}
	for _, out := range g.Outputs {
		if out.Name == "" {
			v.add("%s: graph output with an empty name", where)
			continue
		}
		if !sc.has(out.Name) {
			v.add("%s: graph output %q is not produced by anything", where, out.Name)
		}
	}
}

func rangeText(lo, hi int) string {
	switch {
	case hi < 0:
		return fmt.Sprintf("at least %d", lo)
	case lo == hi:
		return fmt.Sprintf("exactly %d", lo)
	}
	return fmt.Sprintf("%d to %d", lo, hi)
}

// arity: min inputs, max inputs (-1 unbounded), min outputs, max outputs.
var arity = map[string][4]int{
	"Abs": {1, 1, 1, 1}, "Neg": {1, 1, 1, 1}, "Relu": {1, 1, 1, 1}, "Sigmoid": {1, 1, 1, 1},
	"Tanh": {1, 1, 1, 1}, "Exp": {1, 1, 1, 1}, "Log": {1, 1, 1, 1}, "Sqrt": {1, 1, 1, 1},
	"Reciprocal": {1, 1, 1, 1}, "Floor": {1, 1, 1, 1}, "Ceil": {1, 1, 1, 1}, "Erf": {1, 1, 1, 1},
	"Identity": {1, 1, 1, 1}, "Softmax": {1, 1, 1, 1}, "LogSoftmax": {1, 1, 1, 1},
	"LeakyRelu": {1, 1, 1, 1}, "HardSigmoid": {1, 1, 1, 1}, "HardSwish": {1, 1, 1, 1},
	"Add": {2, 2, 1, 1}, "Sub": {2, 2, 1, 1}, "Mul": {2, 2, 1, 1}, "Div": {2, 2, 1, 1},
	"Pow": {2, 2, 1, 1}, "MatMul": {2, 2, 1, 1}, "Equal": {2, 2, 1, 1}, "Less": {2, 2, 1, 1},
	"Greater": {2, 2, 1, 1}, "Where": {3, 3, 1, 1}, "PRelu": {2, 2, 1, 1},
	"Conv": {2, 3, 1, 1}, "ConvTranspose": {2, 3, 1, 1}, "Gemm": {2, 3, 1, 1},
	"BatchNormalization": {5, 5, 1, 3}, "MaxPool": {1, 1, 1, 2}, "AveragePool": {1, 1, 1, 1},
	"GlobalAveragePool": {1, 1, 1, 1}, "GlobalMaxPool": {1, 1, 1, 1},
	"Reshape": {1, 2, 1, 1}, "Transpose": {1, 1, 1, 1}, "Flatten": {1, 1, 1, 1},
	"Concat": {1, -1, 1, 1}, "Split": {1, 2, 1, -1}, "Gather": {2, 2, 1, 1},
	"Shape": {1, 1, 1, 1}, "Size": {1, 1, 1, 1}, "Cast": {1, 1, 1, 1},
	"Squeeze": {1, 2, 1, 1}, "Unsqueeze": {1, 2, 1, 1}, "Slice": {1, 5, 1, 1},
	"Constant": {0, 0, 1, 1}, "Dropout": {1, 3, 1, 2}, "Clip": {1, 3, 1, 1},
	"LayerNormalization": {2, 3, 1, 3}, "LSTM": {3, 8, 0, 3}, "GRU": {3, 6, 0, 2}, "RNN": {3, 6, 0, 2},
	"If": {1, 1, 1, -1}, "Loop": {2, -1, 1, -1}, "Scan": {1, -1, 1, -1},
	"QuantizeLinear": {2, 3, 1, 1}, "DequantizeLinear": {2, 3, 1, 1}, "DynamicQuantizeLinear": {1, 1, 3, 3},
	"MatMulInteger": {2, 4, 1, 1}, "ConvInteger": {2, 4, 1, 1}, "QLinearConv": {8, 9, 1, 1},
	"QLinearMatMul": {8, 8, 1, 1}, "Resize": {1, 4, 1, 1}, "Pad": {1, 4, 1, 1},
	"Expand": {2, 2, 1, 1}, "Tile": {2, 2, 1, 1}, "ConstantOfShape": {1, 1, 1, 1},
	"ReduceMean": {1, 2, 1, 1}, "ReduceSum": {1, 2, 1, 1}, "ReduceMax": {1, 2, 1, 1},
	"Sum": {1, -1, 1, 1}, "Max": {1, -1, 1, 1}, "Min": {1, -1, 1, 1}, "Mean": {1, -1, 1, 1},
}
