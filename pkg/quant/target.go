package quant

import (
	"fmt"
	"sort"
	"strings"
)

// Target is what the QDQ placement (placeQDQ) is shaped for: the
// runtime that will fuse or lower the QuantizeLinear/DequantizeLinear
// pairs, and so which ops are worth running in int8 and where the int8
// region may end. Static takes it by name (StaticOptions.Target).
type Target struct {
	Name string
	// Doc: the first line is the title.
	Doc string
	// RegionOps join the int8 region when all their activation inputs are
	// already int8 (Conv, MatMul and Gemm with constant weights always
	// do). "MatMul" here means MatMul of two activations.
	RegionOps []string
	// FloatOutput lists the weighted ops whose int8 form may end the int8
	// region with a float output (no QuantizeLinear after them).
	FloatOutput []string
	// FoldScales folds Div/Mul by a positive constant into the scale of
	// the DequantizeLinear that reads its int8 input.
	FoldScales bool
	// FoldActivations folds a Relu (or Clip from 0) right after a
	// quantized op into that op's output QuantizeLinear.
	FoldActivations bool

	region, floatOut map[string]bool
}

var targets = map[string]*Target{}

// DefaultTarget is the placement Static uses when StaticOptions.Target is
// empty.
const DefaultTarget = "ort-cpu"

// RegisterTarget adds a placement target; it panics on a duplicate or
// undocumented one (a programming error, caught at init).
func RegisterTarget(t *Target) {
	if t.Name == "" || strings.TrimSpace(t.Doc) == "" {
		panic("quant: a target needs a name and a Doc")
	}
	if targets[t.Name] != nil {
		panic(fmt.Sprintf("quant: target %q registered twice", t.Name))
	}
	t.region, t.floatOut = set(t.RegionOps), set(t.FloatOutput)
	targets[t.Name] = t
}

func set(s []string) map[string]bool {
	m := map[string]bool{}
	for _, x := range s {
		m[x] = true
	}
	return m
}

// Targets lists the registered placement targets by name.
func Targets() []*Target {
	out := make([]*Target, 0, len(targets))
	for _, t := range targets {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// TargetNames lists the registered target names.
func TargetNames() []string {
	var out []string
	for _, t := range Targets() {
		out = append(out, t.Name)
	}
	return out
}

// LookupTarget returns the named target ("" is DefaultTarget), or an
// error that lists the valid names.
func LookupTarget(name string) (*Target, error) {
	if name == "" {
		name = DefaultTarget
	}
	if t := targets[name]; t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("quant: unknown target %q (want one of %s)", name, strings.Join(TargetNames(), ", "))
}

// Title is the first line of Doc.
func (t *Target) Title() string { return firstLine(t.Doc) }

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func init() {
	RegisterTarget(&Target{
		Name: "ort-cpu",
		Doc: `ONNX Runtime's CPU provider: QDQ placed where its QDQ fusions make QLinear kernels.
Conv/MatMul/Gemm, and Add, Mul, GlobalAveragePool, AveragePool, Sigmoid,
LeakyRelu and MatMul of two activations between them (QLinearAdd,
QLinearMul, ...); MatMul and Gemm read by float ops keep a float output
(MatMulIntegerToFloat, QGemm) so ORT's float fusions after them still
apply; Relu/Clip are folded into the preceding Q and Div/Mul by a constant
into the scale.`,
		RegionOps:       []string{"Add", "Mul", "GlobalAveragePool", "AveragePool", "Sigmoid", "LeakyRelu", "MatMul"},
		FloatOutput:     []string{"MatMul", "Gemm"},
		FoldScales:      true,
		FoldActivations: true,
	})
	RegisterTarget(&Target{
		Name: "fpga",
		Doc: `A streaming dataflow accelerator (FINN-style engines): int8 end to end.
Every quantized op's output is quantized (an engine hands int8 to the next;
no float outputs in the middle), and only what maps to an engine joins the
int8 region: weighted Conv/MatMul/Gemm (MVAU/VVAU), the residual Add and
the average pools; Mul, Sigmoid, LeakyRelu and MatMul of two activations
stay float. Relu/Clip fold into the output quantizer (a threshold) and
Div/Mul by a constant into the scale.`,
		RegionOps:       []string{"Add", "GlobalAveragePool", "AveragePool"},
		FoldScales:      true,
		FoldActivations: true,
	})
}
