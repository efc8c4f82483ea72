package quant

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// CalibUse says whether a recipe reads calibration samples.
type CalibUse int

// Calibration needs.
const (
	CalibNone     CalibUse = iota // never reads calibration samples
	CalibOptional                 // uses them when given
	CalibRequired                 // cannot run without them
)

// RecipeOptions are the knobs a caller (optictl optimize) sets once; each
// recipe maps them to its own options and ignores none it documents.
type RecipeOptions struct {
	// Calib are the calibration samples (each: the model's real inputs).
	Calib [][]*runtime.Tensor
	// Calibrate and Percentile pick the calibrator (static int8).
	Calibrate  string
	Percentile float64
	// PerChannel gives weights one scale per output channel (int8).
	PerChannel bool
	// Asymmetric: uint8 activations with a zero point (static int8).
	Asymmetric bool
	// FullRange: 8-bit weights instead of 7 (int8).
	FullRange bool
	// OpTypes restricts the ops quantized (Recipe.OpTypes lists the valid ones).
	OpTypes []string
	// ExcludeNodes are node names left in float.
	ExcludeNodes []string
	// Backend runs calibration.
	Backend string
	// Target shapes the QDQ placement (recipes with PlacesQDQ).
	Target string
	// KeepIO keeps float32 graph inputs and outputs (fp16).
	KeepIO bool
	// Deadline (the time budget) and Progress reach int8-mixed's
	// per-layer profile.
	Deadline time.Time
	Progress Progress
}

func (o RecipeOptions) static() StaticOptions {
	return StaticOptions{Calibrate: o.Calibrate, Percentile: o.Percentile, PerChannel: o.PerChannel, Asymmetric: o.Asymmetric,
		FullRange: o.FullRange, OpTypes: o.OpTypes, ExcludeNodes: o.ExcludeNodes, Backend: o.Backend, Target: o.Target}
}

func (o RecipeOptions) dynamic() DynamicOptions {
	return DynamicOptions{OpTypes: o.OpTypes, ExcludeNodes: o.ExcludeNodes, FullRange: o.FullRange, PerTensor: !o.PerChannel}
}

// Recipe is a named quantization recipe, declared like a pass: optictl
// lists the registry (optimize --quantize list) and dispatches from it.
type Recipe struct {
	// Name is the kebab-case name --quantize takes.
	Name string
	// Doc: the first line is the title.
	Doc string
	// Calib says whether it reads calibration samples.
	Calib CalibUse
	// Int8 reports that it writes int8 (QDQ or integer ops).
	Int8 bool
	// PlacesQDQ reports that RecipeOptions.Target shapes its output.
	PlacesQDQ bool
	// OpTypes are the op types RecipeOptions.OpTypes may name.
	OpTypes []string
	// Quantize runs the recipe on m (not modified). Exactly one of
	// Quantize and Variants is set.
	Quantize func(m *graph.Model, o RecipeOptions) (*graph.Model, *Report, error)
	// Variants, for a search recipe, are the recipes it tries (Search
	// picks the fastest within the accuracy limit on evaluation samples).
	Variants func(m *graph.Model, o RecipeOptions) []Variant
	// SameInputs reports whether the result reads the same input types
	// as the float model (so both can run, and be timed, on one sample);
	// nil means always.
	SameInputs func(o RecipeOptions) bool
}

// Title is the first line of Doc.
func (r *Recipe) Title() string { return firstLine(r.Doc) }

// Search reports whether the recipe is a search over variants.
func (r *Recipe) Search() bool { return r.Variants != nil }

var recipes = map[string]*Recipe{}

// RegisterRecipe adds a recipe. It panics on a programming error (empty
// name or Doc, duplicate, not exactly one of Quantize and Variants).
func RegisterRecipe(r *Recipe) {
	if r.Name == "" || strings.TrimSpace(r.Doc) == "" {
		panic("quant: a recipe needs a name and a Doc")
	}
	if recipes[r.Name] != nil {
		panic(fmt.Sprintf("quant: recipe %q registered twice", r.Name))
	}
	if (r.Quantize == nil) == (r.Variants == nil) {
		panic(fmt.Sprintf("quant: recipe %q needs exactly one of Quantize and Variants", r.Name))
	}
	recipes[r.Name] = r
}

// Recipes lists the registered recipes by name.
func Recipes() []*Recipe {
	out := make([]*Recipe, 0, len(recipes))
	for _, r := range recipes {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// RecipeNames lists the registered recipe names.
func RecipeNames() []string {
	var out []string
	for _, r := range Recipes() {
		out = append(out, r.Name)
	}
	return out
}

// LookupRecipe returns the named recipe or an error listing the valid names.
func LookupRecipe(name string) (*Recipe, error) {
	if r := recipes[name]; r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("quant: unknown recipe %q (want one of %s)", name, strings.Join(RecipeNames(), ", "))
}

func init() {
	RegisterRecipe(&Recipe{
		Name: "int8-dynamic",
		Doc: `int8 MatMul/Gemm weights, activations quantized at run time (no calibration).
DynamicQuantizeLinear + MatMulInteger: the pattern ONNX Runtime fuses into
DynamicQuantizeMatMul; Conv stays float.`,
		Calib:   CalibNone,
		Int8:    true,
		OpTypes: []string{"MatMul", "Gemm"},
		Quantize: func(m *graph.Model, o RecipeOptions) (*graph.Model, *Report, error) {
			return Dynamic(m, o.dynamic())
		},
	})
	RegisterRecipe(&Recipe{
		Name: "int8-static",
		Doc: `int8 QDQ with activation ranges calibrated on samples (needs calibration data).
Weights int8 (per channel), activations uint8 (or int8 with symmetric),
placed for the target (ort-cpu by default; see the targets).`,
		Calib:     CalibRequired,
		Int8:      true,
		PlacesQDQ: true,
		OpTypes:   QuantizableOps(),
		Quantize: func(m *graph.Model, o RecipeOptions) (*graph.Model, *Report, error) {
			return Static(m, o.Calib, o.static())
		},
	})
	RegisterRecipe(&Recipe{
		Name: "int8-auto",
		Doc: `Try every int8 recipe under accuracy control and keep the fastest (needs evaluation or calibration data).
The static variants and mixed (int8-mixed) run only with calibration data; each variant's
accuracy is measured on the evaluation samples (without them, on
calibration samples held out from calibration) and its speed on ONNX
Runtime against the float model.`,
		Calib:     CalibOptional,
		Int8:      true,
		PlacesQDQ: true,
		OpTypes:   QuantizableOps(),
		Variants: func(m *graph.Model, o RecipeOptions) []Variant {
			// --op-types restricts the static variants; the dynamic
			// one quantizes MatMul/Gemm whatever they name.
			d := o.dynamic()
			d.OpTypes = nil
			vs := Int8Variants(m, o.Calib, o.static(), d)
			if len(o.Calib) > 0 {
				// int8 only on the layers that pay (int8-mixed)
				vs = append(vs, Variant{Name: "mixed", Quantize: func(ex []string) (*graph.Model, *Report, error) {
					so := o.static()
					so.ExcludeNodes = append(append([]string(nil), so.ExcludeNodes...), ex...)
					return Mixed(m, o.Calib, MixedOptions{Static: so, Profile: ProfileOptions{Deadline: o.Deadline, Progress: o.Progress}})
				}})
			}
			return vs
		},
	})
	RegisterRecipe(&Recipe{
		Name: "int8-mixed",
		Doc: `int8 only on the layers where it is faster on ONNX Runtime (needs calibration data).
Each Conv/MatMul/Gemm is timed alone on ORT (1 thread) in float and in
int8 with the QuantizeLinear/DequantizeLinear it pays at a float
neighbour; only the layers faster in int8 by 10% are quantized (uint8
activations, QDQ), the rest (depthwise, narrow convs) stay float.`,
		Calib:     CalibRequired,
		Int8:      true,
		PlacesQDQ: true,
		OpTypes:   QuantizableOps(),
		Quantize: func(m *graph.Model, o RecipeOptions) (*graph.Model, *Report, error) {
			return Mixed(m, o.Calib, MixedOptions{Static: o.static(), Profile: ProfileOptions{Deadline: o.Deadline, Progress: o.Progress}})
		},
	})
	RegisterRecipe(&Recipe{
		Name: "fp16",
		Doc: `float16 weights and compute, numerically sensitive ops kept in float32.
Softmax, reductions, normalizations, Exp/Log/Pow stay float32 with Casts
around them; graph inputs and outputs stay float32 with keep-io.`,
		Calib: CalibNone,
		Quantize: func(m *graph.Model, o RecipeOptions) (*graph.Model, *Report, error) {
			return FP16(m, FP16Options{KeepIO: o.KeepIO, ExcludeNodes: o.ExcludeNodes})
		},
		SameInputs: func(o RecipeOptions) bool { return o.KeepIO },
	})
}
