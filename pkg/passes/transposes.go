package passes

// Consecutive Transposes.
//   Before: T1 = Transpose(X, p1); Y = Transpose(T1, p2)
//   After:  Y = Transpose(X, p) with p[i] = p1[p2[i]]; or readers of Y read
//           X when p is the identity
// Preconditions: both perms given explicitly and of equal length (a missing
// perm reverses the dims, which needs the rank; such nodes are left).
//
// Transpose sinking.
//   Before: T = Transpose(X, p); Y = E(T)             (E unary elementwise)
//   After:  E' = E(X); Y = Transpose(E', p)
//   Before: Y = B(Transpose(X1, p), Transpose(X2, p)) (B binary elementwise)
//   After:  Y = Transpose(B(X1, X2), p)
//   Before: Y = B(Transpose(X1, p), C)                (C a one-element constant)
//   After:  Y = Transpose(B(X1, C), p)
// Preconditions: each moved Transpose is read only by E/B and is not a
// graph output; explicit perm. Moving transposes down brings pairs together
// for the merge above; it never adds a Transpose per path.

import (
	"slices"

	"github.com/optictl/optictl/pkg/graph"
)

var mergeTransposes = &Pass{
	Name:  "merge-transposes",
	Doc:   "Merge consecutive Transposes; drop them when they cancel.",
	Level: O2,
	Run: func(c *Context) (bool, error) {
		g := c.Graph()
		changed := false
		prod := g.Producers()
		dead := map[*graph.Node]bool{}
		for _, n := range g.Nodes {
			if !n.Is("Transpose") || dead[n] {
				continue
			}
			p := producerOf(prod, n.Inputs[0])
			if p == nil || !p.Is("Transpose") || dead[p] {
				continue
			}
			c.At(n)
			p1, p2 := p.AttrInts("perm"), n.AttrInts("perm")
			if p1 == nil || p2 == nil || len(p1) != len(p2) || !validPerm(p1, len(p1)) || !validPerm(p2, len(p2)) {
				continue
			}
			comp := make([]int64, len(p2))
			ident := true
			for i := range p2 {
				comp[i] = p1[p2[i]]
				ident = ident && comp[i] == int64(i)
			}
			if ident {
				if bypass(g, p.Inputs[0], n.Outputs[0]) {
					dead[n] = true
					changed = true
					prod = g.Producers()
				}
				continue
			}
			n.Inputs[0] = p.Inputs[0]
			n.SetAttr(graph.IntsAttr("perm", comp...))
			changed = true
		}
		g.RemoveNodes(dead)
		if changed {
			removeDead(g)
		}
		return changed, nil
	},
}

var unaryElementwise = map[string]bool{
	"Relu": true, "Sigmoid": true, "Tanh": true, "Exp": true, "Log": true, "Sqrt": true, "Neg": true,
	"Abs": true, "Erf": true, "LeakyRelu": true, "HardSigmoid": true, "HardSwish": true, "Reciprocal": true,
	"Floor": true, "Ceil": true, "Elu": true, "Selu": true, "Softplus": true, "Cast": true, "Sin": true, "Cos": true,
}

var binaryElementwise = map[string]bool{"Add": true, "Sub": true, "Mul": true, "Div": true, "Max": true, "Min": true, "Pow": true}

var sinkTransposes = &Pass{
	Name:  "sink-transposes",
	Doc:   "Move Transposes below elementwise ops so that pairs meet and cancel.",
	Level: O2,
	Run: func(c *Context) (bool, error) {
		g := c.Graph()
		changed := false
		for iter := 0; iter < len(g.Nodes)+1; iter++ {
			prod := g.Producers()
			cons := g.Consumers()
			ci := newConstIndex(g)
			done := true
			for _, e := range g.Nodes {
				if !e.IsDefaultDomain() || len(e.Outputs) != 1 {
					continue
				}
				var ts []*graph.Node
				switch {
				case unaryElementwise[e.OpType] && len(e.Inputs) == 1:
					t := producerOf(prod, e.Inputs[0])
					if t == nil || !t.Is("Transpose") {
						continue
					}
					ts = []*graph.Node{t}
				case binaryElementwise[e.OpType] && len(e.Inputs) == 2:
					t0, t1 := producerOf(prod, e.Inputs[0]), producerOf(prod, e.Inputs[1])
					switch {
					case t0 != nil && t1 != nil && t0.Is("Transpose") && t1.Is("Transpose") && t0 != t1:
						ts = []*graph.Node{t0, t1}
					case t0 != nil && t0.Is("Transpose") && isScalarConst(ci.get(e.Inputs[1])):
						ts = []*graph.Node{t0}
					case t1 != nil && t1.Is("Transpose") && isScalarConst(ci.get(e.Inputs[0])):
						ts = []*graph.Node{t1}
					default:
						continue
					}
				default:
					continue
				}
				perm := ts[0].AttrInts("perm")
				ok := perm != nil
				for _, t := range ts {
					ok = ok && slices.Equal(t.AttrInts("perm"), perm) && singleUse(g, cons, t.Outputs[0])
				}
				if !ok {
					continue
				}
				c.At(e)
				// E reads the transposes' inputs and writes a new value; a
				// new Transpose after E produces E's old output.
				y := e.Outputs[0]
				mid := g.UniqueName(y + "_presink")
				for i, in := range e.Inputs {
					for _, t := range ts {
						if in == t.Outputs[0] {
							e.Inputs[i] = t.Inputs[0]
						}
					}
				}
				e.Outputs[0] = mid
				nt := &graph.Node{Name: g.UniqueName(ts[0].Name + "_sunk"), OpType: "Transpose", Inputs: []string{mid}, Outputs: []string{y},
					Attrs: []*graph.Attr{graph.IntsAttr("perm", perm...)}}
				i := slices.Index(g.Nodes, e)
				g.Nodes = slices.Insert(g.Nodes, i+1, nt)
				dead := map[*graph.Node]bool{}
				for _, t := range ts {
					dead[t] = true
				}
				g.RemoveNodes(dead)
				changed = true
				done = false
				break
			}
			if done {
				break
			}
		}
		return changed, nil
	},
}

func isScalarConst(t *graph.Tensor) bool { return t != nil && t.Len() == 1 && len(t.Dims) <= 1 }
