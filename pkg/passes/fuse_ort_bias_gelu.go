package passes

// ONNX Runtime CPU: bias + Gelu -> com.microsoft BiasGelu.
//   Before: T = Add(X, bias); Y = Gelu(T) (com.microsoft, or opset-20 Gelu
//           with approximate="none")
//   After:  Y = com.microsoft.BiasGelu(X, bias)
// Preconditions: --target ort-cpu; bias a float32 constant of one dim equal
// to X's known last dim; T read only by the Gelu and not a graph output.

import (
	"github.com/optictl/optictl/pkg/graph"
)

var ortBiasGelu = &Pass{
	Name:     "fuse-ort-bias-gelu",
	Doc:      "Fuse a bias Add followed by Gelu into com.microsoft BiasGelu (ONNX Runtime CPU).",
	Level:    O3,
	Targets:  []string{TargetORTCPU},
	Requires: []string{"fuse-gelu"},
	Run: func(c *Context) (bool, error) {
		return runORTFusion(c, "BiasGelu", func(e *fusionEnv, n *graph.Node) bool {
			g, prod, cons, ci, infos, dead := e.g, e.prod, e.cons, e.ci, e.infos, e.dead
			isGelu := n.Domain == "com.microsoft" && n.OpType == "Gelu" ||
				n.Is("Gelu") && n.AttrString("approximate", "none") == "none"
			if !isGelu || len(n.Inputs) != 1 {
				return false
			}
			add := producerOf(prod, n.Inputs[0])
			if add == nil || !add.Is("Add") || len(add.Inputs) != 2 || dead[add] || !singleUse(g, cons, n.Inputs[0]) {
				return e.miss(n, "its input is not an Add read only by it")
			}
			for j := 0; j < 2; j++ {
				x, bias := add.Inputs[j], add.Inputs[1-j]
				bt := ci.get(bias)
				vi := infos[x]
				if floatConst(bt) == nil || len(bt.Dims) != 1 || ci.get(x) != nil || vi == nil || !vi.HasShape || len(vi.Shape) == 0 ||
					vi.DType != graph.Float || vi.Shape[len(vi.Shape)-1].Size != bt.Dims[0] {
					continue
				}
				n.Domain, n.OpType = "com.microsoft", "BiasGelu"
				n.Inputs = []string{x, bias}
				n.Attrs = nil
				dead[add] = true
				return true
			}
			return e.miss(n, "%s adds no float32 constant vector of X's known last dim", add.Name)
		})
	},
}
