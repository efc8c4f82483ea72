package interp

import (
	"fmt"
	"math"

	"github.com/optictl/optictl/pkg/graph"
)

// nnAct is a fused activation (com.microsoft FusedConv/FusedGemm:
// "activation" and "activation_params" attributes).
type nnAct struct {
	kind   string
	params []float32
}

func nnParseAct(n *graph.Node) (nnAct, error) {
	a := nnAct{kind: n.AttrString("activation", ""), params: n.AttrFloats("activation_params")}
	// ORT's FusedGemm carries the parameters as activation_alpha/_beta
	// (contrib_ops/cpu/fused_gemm.cc), not activation_params.
	if n.OpType == "FusedGemm" && a.params == nil {
		if al := n.Attr("activation_alpha"); al != nil && al.Type == graph.AttrFloat {
			a.params = append(a.params, al.F)
			if be := n.Attr("activation_beta"); be != nil && be.Type == graph.AttrFloat {
				a.params = append(a.params, be.F)
			}
		}
	}
	need := 0
	switch a.kind {
	case "", "Relu", "Tanh", "Sigmoid":
	case "LeakyRelu":
		if len(a.params) == 0 {
			a.params = []float32{0.01}
		}
		need = 1
	case "Clip", "HardSigmoid":
		if len(a.params) == 0 {
			if a.kind == "Clip" {
				a.params = []float32{float32(math.Inf(-1)), float32(math.Inf(1))}
			} else {
				a.params = []float32{0.2, 0.5}
			}
		}
		need = 2
	default:
		return a, unsupportedf("unsupported fused activation %q", a.kind)
	}
	if len(a.params) < need {
		return a, fmt.Errorf("activation %s needs %d activation_params, got %d", a.kind, need, len(a.params))
	}
	return a, nil
}

func (a *nnAct) apply(y []float32) {
	switch a.kind {
	case "Relu":
		perfClamp(y, 0, float32(math.Inf(1)))
	case "Tanh":
		for i, v := range y {
			y[i] = float32(math.Tanh(float64(v)))
		}
	case "Sigmoid":
		for i, v := range y {
			y[i] = float32(1 / (1 + math.Exp(-float64(v))))
		}
	case "LeakyRelu":
		al := a.params[0]
		for i, v := range y {
			if v < 0 {
				y[i] = v * al
			}
		}
	case "Clip":
		perfClamp(y, a.params[0], a.params[1])
	case "HardSigmoid":
		al, be := a.params[0], a.params[1]
		for i, v := range y {
			y[i] = min(max(al*v+be, 0), 1)
		}
	case "HardSwish":
		// As the HardSwish kernel: x·max(0, min(1, x/6+0.5)) in float64.
		for i, v := range y {
			x := float64(v)
			y[i] = float32(x * max(0, min(1, x/6+0.5)))
		}
	case "perfHardSwishDiv", "perfHardSwishMul":
		// The unfused x·Clip(x+a, lo, hi) then /d (or ·d), op by op in
		// float32 (perf_fuse.go).
		p := a.params
		perfHardSwish(y, p[0], p[1], p[2], p[3], a.kind == "perfHardSwishDiv")
	}
}

// clamp reports the activation as y = min(max(x, lo), hi) when it is one
// (none, Relu, Clip), so that a kernel can apply it while storing.
func (a *nnAct) clamp() (lo, hi float32, ok bool) {
	inf := float32(math.Inf(1))
	switch a.kind {
	case "":
		return -inf, inf, true
	case "Relu":
		return 0, inf, true
	case "Clip":
		return a.params[0], a.params[1], true
	}
	return 0, 0, false
}
