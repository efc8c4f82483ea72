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
		if err := v.m.checkNodeSchema(n); err != nil {
			var se *SchemaError
			if errors.As(err, &se) {
				v.add("%s: node %s %s", where, se.Node, se.Reason)
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
