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

func fuseActivation(c *Context, op, fusedOp string, set func(act *graph.Node, ci *constIndex, fused *graph.Node) bool) (bool, error) {
	if !targetSupports(c, "com.microsoft", fusedOp) {
		c.Note("target backend does not run com.microsoft.%s: skipped", fusedOp)
		return false, nil
	}
	g := c.Graph()
	prod := g.Producers()
	cons := g.Consumers()
	ci := newConstIndex(g)
	shapes := staticShapes(c.Model)
	dead := map[*graph.Node]bool{}
	for _, act := range g.Nodes {
		if !act.IsDefaultDomain() || len(act.Inputs) == 0 || dead[act] {
			continue
		}
		p := producerOf(prod, act.Inputs[0])
		if p == nil || !p.Is(op) || dead[p] || len(p.Outputs) != 1 || !singleUse(g, cons, p.Outputs[0]) {
			continue
		}
		if t, ok := shapes[p.Inputs[0]]; !ok || t.dt != graph.Float {
			if w := ci.get(p.Inputs[1]); w == nil || w.DType != graph.Float {
				continue
			}
		}
		c.At(act)
		fused := p.Clone()
		fused.Domain = "com.microsoft"
		fused.OpType = fusedOp
		fused.Outputs = []string{act.Outputs[0]}
		if !set(act, ci, fused) {
			continue
		}
		if fused.Name == "" {
			fused.Name = g.UniqueName(fusedOp + "_" + act.Outputs[0])
		}
		*act = *fused
		dead[p] = true
	}
	g.RemoveNodes(dead)
	if len(dead) > 0 && c.Model.Opset("com.microsoft") == 0 {
		c.Model.SetOpset("com.microsoft", 1)
	}
	merged := mergeDuplicateFused(c, fusedOp)
	return len(dead) > 0 || merged > 0, nil
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
