package passes

// ONNX Runtime CPU: Conv + activation -> com.microsoft FusedConv.
//   Before: Y = Conv(X, W, B); Z = Act(Y)
//   After:  Z = com.microsoft.FusedConv(X, W, B){conv attrs, activation="Act",
//           activation_params=[...]}
// Activations, as ORT's GetFusedActivationAttr reads them: Relu, Tanh,
// Sigmoid (no params), LeakyRelu [alpha], Clip [min, max], HardSigmoid
// [alpha, beta].
// Preconditions: --target ort-cpu; float32 Conv weights; Y read only by
// the activation and not a graph output; Clip's min/max constant (or
// attributes before opset 11) - absent bounds become -/+ max float32.
//
// ONNX Runtime CPU: Gemm + activation -> com.microsoft FusedGemm.
//   Before: Y = Gemm(A, B, C); Z = Act(Y)
//   After:  Z = com.microsoft.FusedGemm(A, B, C){gemm attrs, activation="Act",
//           activation_alpha=...}
// Activations: Relu, Tanh, Sigmoid, LeakyRelu [activation_alpha].
// Preconditions: --target ort-cpu; Y read only by the activation and not a
// graph output; float32.
//
// Both passes also merge the fused nodes they own that compute the same
// thing (com.microsoft FusedConv/FusedGemm with the same inputs and
// attributes): eliminate-common-subexpressions only merges default-domain
// nodes, and ONNX Runtime 1.24 at "all" does not merge them either (on
// light_inception_v2 69 FusedConv stay 69 nchwc.Conv), so without this a
// Conv+Relu pair duplicated in the graph (typically exposed when
// dedupe-initializers merges equal weights a round after the fusion) would
// be computed twice, where the unfused Conv and Relu would have been merged.
//   Before: A = FusedConv(X, W, B){attrs}; C = FusedConv(X, W, B){attrs}
//   After:  A = FusedConv(X, W, B){attrs}; readers of C read A
// Preconditions: same domain, op, inputs and attributes; not both outputs
// graph outputs.

import (
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/pattern"
	"github.com/optictl/optictl/pkg/runtime"
)

// targetSupports reports whether the target's backend runs an op. For
// ort-cpu it asks the registered "ort" backend when there is one; without
// it, it relies on ONNX Runtime's CPU provider shipping these contrib ops
// (FusedConv, FusedGemm and Gelu have been in com.microsoft since ORT 1.x).
func targetSupports(c *Context, domain, op string) bool {
	if c.Target() != TargetORTCPU {
		return false
	}
	b, err := runtime.Get("ort")
	if err != nil {
		return true
	}
	if s := b.Capabilities().Supports; s != nil {
		return s(domain, op, 1)
	}
	return true
}

var ortConvAct = &Pass{
	Name:    "fuse-ort-conv-activation",
	Doc:     "Fuse Conv + activation into com.microsoft FusedConv (ONNX Runtime CPU).",
	Level:   O3,
	Targets: []string{TargetORTCPU},
	Run: func(c *Context) (bool, error) {
		return fuseActivation(c, "Conv", "FusedConv", setConvActivation)
	},
}

// setConvActivation gives conv (com.microsoft FusedConv or an NCHWc Conv)
// act as its activation and activation_params, if MLAS runs it.
func setConvActivation(act *graph.Node, ci *constIndex, conv *graph.Node) bool {
	var params []float32
	switch {
	case act.Is("Relu"), act.Is("Tanh"), act.Is("Sigmoid"):
	case act.Is("LeakyRelu"):
		params = []float32{act.AttrFloat("alpha", 0.01)}
	case act.Is("HardSigmoid"):
		params = []float32{act.AttrFloat("alpha", 0.2), act.AttrFloat("beta", 0.5)}
	case act.Is("Clip"):
		lo, hi, ok := clipBounds(act, ci)
		if !ok {
			return false
		}
		params = []float32{float32(lo), float32(hi)}
	default:
		return false
	}
	conv.SetAttr(graph.StringAttr("activation", act.OpType))
	if params != nil {
		conv.SetAttr(graph.FloatsAttr("activation_params", params...))
	}
	return true
}

var ortGemmAct = &Pass{
	Name:     "fuse-ort-gemm-activation",
	Doc:      "Fuse Gemm + activation into com.microsoft FusedGemm (ONNX Runtime CPU).",
	Level:    O3,
	Targets:  []string{TargetORTCPU},
	Requires: []string{"fuse-matmul-add"},
	Run: func(c *Context) (bool, error) {
		return fuseActivation(c, "Gemm", "FusedGemm", func(act *graph.Node, _ *constIndex, fused *graph.Node) bool {
			switch act.OpType {
			case "Relu", "Tanh", "Sigmoid":
			case "LeakyRelu":
				fused.SetAttr(graph.FloatAttr("activation_alpha", act.AttrFloat("alpha", 0.01)))
			default:
				return false
			}
			fused.SetAttr(graph.StringAttr("activation", act.OpType))
			return true
		})
	},
}

// actFusion is an activation and the fused node that replaces it and its
// producer.
type actFusion struct {
	act, prod, fused *graph.Node
}

func fuseActivation(c *Context, op, fusedOp string, set func(act *graph.Node, ci *constIndex, fused *graph.Node) bool) (bool, error) {
	if !targetSupports(c, "com.microsoft", fusedOp) {
		c.Note("target backend does not run com.microsoft.%s: skipped", fusedOp)
		return false, nil
	}
	shapes := staticShapes(c.Model)
	var ci *constIndex
	changed := runRule(c, rule[actFusion]{
		Anchors: []string{"Relu", "Tanh", "Sigmoid", "LeakyRelu", "HardSigmoid", "Clip"},
		Match: func(c *Context, v *pattern.View, act *graph.Node) (actFusion, *pattern.Mismatch) {
			if len(act.Inputs) == 0 {
				return actFusion{}, missf(act, "no input")
			}
			p := v.Producer(act.Inputs[0])
			if p == nil || !p.Is(op) {
				return actFusion{}, missf(act, "its input is not produced by a %s", op)
			}
			if len(p.Outputs) != 1 || v.Sole(p.Outputs[0]) != act {
				return actFusion{}, missf(act, "%s's output is read elsewhere or is a graph output", pattern.NodeName(p))
			}
			if t, ok := shapes[p.Inputs[0]]; !ok || t.dt != graph.Float {
				if w := v.Const(inputAt(p, 1)); w == nil || w.DType != graph.Float {
					return actFusion{}, missf(act, "%s is not known to compute in float32", pattern.NodeName(p))
				}
			}
			fused := p.Clone()
			fused.Domain = "com.microsoft"
			fused.OpType = fusedOp
			fused.Outputs = []string{act.Outputs[0]}
			if ci == nil || ci.g != c.Graph() {
				ci = newConstIndex(c.Graph())
			}
			if !set(act, ci, fused) {
				return actFusion{}, missf(act, "com.microsoft.%s does not take %s with these parameters", fusedOp, act.OpType)
			}
			return actFusion{act, p, fused}, nil
		},
		Apply: func(c *Context, v *pattern.View, m actFusion) []*graph.Node {
			if m.fused.Name == "" {
				m.fused.Name = c.Graph().UniqueName(fusedOp + "_" + m.act.Outputs[0])
			}
			*m.act = *m.fused
			ci = nil
			return []*graph.Node{m.prod}
		},
	})
	if changed && c.Model.Opset("com.microsoft") == 0 {
		c.Model.SetOpset("com.microsoft", 1)
	}
	merged := mergeDuplicateFused(c, fusedOp)
	return changed || merged > 0, nil
}

// mergeDuplicateFused merges com.microsoft fusedOp nodes that read the same
// inputs with the same attributes into the first of them (see the file
// comment) and returns how many it removed. Walking the nodes in order
// with the readers renamed as it goes merges a chain of duplicates in one
// sweep.
func mergeDuplicateFused(c *Context, fusedOp string) int {
	g := c.Graph()
	seen := map[string]*graph.Node{}
	dead := map[*graph.Node]bool{}
	for _, n := range g.Nodes {
		if n.Domain != "com.microsoft" || n.OpType != fusedOp || len(n.Outputs) != 1 || n.Outputs[0] == "" {
			continue
		}
		c.At(n)
		k := nodeKey(n)
		first, ok := seen[k]
		if !ok {
			seen[k] = n
			continue
		}
		if g.IsGraphOutput(n.Outputs[0]) && g.IsGraphOutput(first.Outputs[0]) {
			continue
		}
		if bypass(g, first.Outputs[0], n.Outputs[0]) {
			dead[n] = true
		}
	}
	g.RemoveNodes(dead)
	return len(dead)
}
