package opset

import (
	"fmt"
	"sort"

	"github.com/optictl/optictl/pkg/graph"
)

// key is an operator and the opset at which its new definition starts.
type key struct {
	op    string
	since int64
}

// adapter rewrites one node from the previous definition of its op to the
// one starting at since. apply edits s.n in place and returns nil, or
// returns the nodes that replace it (in order, producing its outputs).
type adapter struct {
	op    string
	since int64
	what  string
	apply func(s *step) ([]*graph.Node, error)
}

// Adapter describes one registered operator change.
type Adapter struct {
	Op    string `json:"op"`
	Since int64  `json:"since"`
	What  string `json:"what"`
}

// Adapters lists the operator changes Convert adapts, by version then op.
func Adapters() []Adapter {
	var out []Adapter
	for _, a := range adapters {
		out = append(out, Adapter{Op: a.op, Since: a.since, What: a.what})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Since != out[j].Since {
			return out[i].Since < out[j].Since
		}
		return out[i].Op < out[j].Op
	})
	return out
}

var adapters = map[key]*adapter{}

func register(a *adapter) {
	k := key{a.op, a.since}
	if adapters[k] != nil {
		panic(fmt.Sprintf("opset: adapter %s-%d registered twice", a.op, a.since))
	}
	adapters[k] = a
}

// reductions whose axes attribute became an input at 18 (ReduceSum's did at 13).
var reductions18 = []string{"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSumSquare"}

func init() {
	// 6 -> 7
	register(&adapter{op: "Gemm", since: 7, what: "broadcast attribute removed (C broadcasts unidirectionally)", apply: delAttrs("broadcast")})
	register(&adapter{op: "BatchNormalization", since: 7, what: "is_test attribute removed", apply: delAttrs("is_test")})
	register(&adapter{op: "Dropout", since: 7, what: "is_test attribute removed", apply: delAttrs("is_test")})
	for _, op := range []string{"Add", "Sub", "Mul", "Div", "Pow"} {
		register(&adapter{op: op, since: 7, what: "broadcast/axis attributes replaced by numpy broadcasting", apply: broadcast7})
	}
	// 7 -> 9
	register(&adapter{op: "Upsample", since: 9, what: "scales attribute became an input", apply: upsample9})
	register(&adapter{op: "BatchNormalization", since: 9, what: "spatial attribute removed (always per channel)", apply: batchNorm9})
	register(&adapter{op: "Scan", since: 9, what: "batch axis and sequence_lens removed: batch-1 inputs squeezed, outputs unsqueezed", apply: scan9})
	// 9 -> 10
	register(&adapter{op: "Upsample", since: 10, what: "Upsample deprecated: replaced by Resize-10", apply: upsample10})
	register(&adapter{op: "Slice", since: 10, what: "starts/ends/axes attributes became inputs", apply: slice10})
	register(&adapter{op: "TopK", since: 10, what: "k attribute became an input", apply: topK10})
	register(&adapter{op: "Dropout", since: 10, what: "mask output became bool", apply: func(s *step) ([]*graph.Node, error) {
		return nil, s.dropUnusedOutputs(1, "Dropout-10's mask is bool where the old one had the data's type")
	}})
	// ONNX's experimental ops left the standard at opset 10 (onnx 1.5):
	// those with a plain equivalent are written out, the others refused.
	register(&adapter{op: "ImageScaler", since: 10, what: "experimental ImageScaler removed: written as Mul by scale and Add of the per-channel bias", apply: imageScaler10})
	register(&adapter{op: "Scale", since: 10, what: "experimental Scale removed: written as Mul", apply: scaled10(false)})
	register(&adapter{op: "Affine", since: 10, what: "experimental Affine removed: written as Mul and Add", apply: scaled10(true)})
	register(&adapter{op: "ScaledTanh", since: 10, what: "experimental ScaledTanh removed: written as Mul, Tanh, Mul", apply: wrapped10("Tanh")})
	register(&adapter{op: "ParametricSoftplus", since: 10, what: "experimental ParametricSoftplus removed: written as Mul, Softplus, Mul", apply: wrapped10("Softplus")})
	register(&adapter{op: "DynamicSlice", since: 10, what: "experimental DynamicSlice removed: Slice-10 takes the same inputs", apply: func(s *step) ([]*graph.Node, error) {
		s.n.OpType = "Slice"
		return nil, nil
	}})
	for _, op := range []string{"Crop", "GivenTensorFill", "GRUUnit"} {
		register(&adapter{op: op, since: 10, what: "experimental " + op + " removed from the standard", apply: func(s *step) ([]*graph.Node, error) {
			return nil, s.refuse("the experimental op %s left the ONNX standard at opset 10 and this converter writes no equivalent", s.n.OpType)
		}})
	}
	// 10 -> 11
	register(&adapter{op: "Resize", since: 11, what: "roi input added; coordinate_transformation_mode asymmetric and nearest_mode floor keep Resize-10's mapping", apply: resize11})
	register(&adapter{op: "Pad", since: 11, what: "pads/value attributes became inputs", apply: pad11})
	register(&adapter{op: "Clip", since: 11, what: "min/max attributes became inputs", apply: clip11})
	register(&adapter{op: "Scatter", since: 11, what: "Scatter deprecated: replaced by ScatterElements", apply: func(s *step) ([]*graph.Node, error) {
		s.n.OpType = "ScatterElements"
		return nil, nil
	}})
	// 11 -> 12
	register(&adapter{op: "Dropout", since: 12, what: "ratio attribute became an input", apply: dropout12})
	// 12 -> 13
	for _, op := range []string{"Softmax", "LogSoftmax", "Hardmax"} {
		register(&adapter{op: op, since: 13, what: "axis now names the one reduced axis (was: coerce to 2-D at axis)", apply: softmax13})
	}
	register(&adapter{op: "Squeeze", since: 13, what: "axes attribute became an input", apply: attrToInput("axes", 1)})
	register(&adapter{op: "Unsqueeze", since: 13, what: "axes attribute became an input", apply: attrToInput("axes", 1)})
	register(&adapter{op: "ReduceSum", since: 13, what: "axes attribute became an input", apply: attrToInput("axes", 1)})
	register(&adapter{op: "Split", since: 13, what: "split attribute became an input", apply: attrToInput("split", 1)})
	register(&adapter{op: "Resize", since: 13, what: "coordinate_transformation_mode tf_half_pixel_for_nn removed: written as half_pixel with the nearest_mode that picks the same pixels", apply: resize13})
	// 13 -> 14
	register(&adapter{op: "BatchNormalization", since: 14, what: "training outputs only in training_mode", apply: func(s *step) ([]*graph.Node, error) {
		return nil, s.dropUnusedOutputs(1, "BatchNormalization-14 computes running statistics only with training_mode=1")
	}})
	// 15 -> 16
	register(&adapter{op: "RoiAlign", since: 16, what: "coordinate_transformation_mode added; output_half_pixel keeps RoiAlign-10's mapping", apply: func(s *step) ([]*graph.Node, error) {
		if s.n.Attr("coordinate_transformation_mode") == nil {
			s.n.SetAttr(graph.StringAttr("coordinate_transformation_mode", "output_half_pixel"))
		}
		return nil, nil
	}})
	// 17 -> 18
	for _, op := range reductions18 {
		register(&adapter{op: op, since: 18, what: "axes attribute became an input", apply: attrToInput("axes", 1)})
	}
	register(&adapter{op: "Split", since: 18, what: "num_outputs attribute required when split is not given", apply: split18})
	// 19 -> 20
	register(&adapter{op: "GridSample", since: 20, what: "modes bilinear/bicubic renamed linear/cubic", apply: gridSample20})
	register(&adapter{op: "DFT", since: 20, what: "axis attribute became an input", apply: dft20})
	// 20 -> 21
	register(&adapter{op: "GroupNormalization", since: 21, what: "scale and bias are per channel (were per group)", apply: groupNorm21})
}

func delAttrs(names ...string) func(s *step) ([]*graph.Node, error) {
	return func(s *step) ([]*graph.Node, error) {
		for _, a := range names {
			s.n.DelAttr(a)
		}
		s.n.DelAttr("consumed_inputs")
		return nil, nil
	}
}

// attrToInput moves an ints attribute to input idx (int64 1-D); an absent
// attribute leaves the input absent (the new default means the same).
func attrToInput(name string, idx int) func(s *step) ([]*graph.Node, error) {
	return func(s *step) ([]*graph.Node, error) {
		a := s.n.Attr(name)
		if a == nil {
			return nil, nil
		}
		if len(s.n.Inputs) > idx && s.n.Inputs[idx] != "" {
			return nil, s.refuse("has both a %s attribute and input %d", name, idx)
		}
		v := s.ints(name, a.Ints)
		for len(s.n.Inputs) <= idx {
			s.n.Inputs = append(s.n.Inputs, "")
		}
		s.n.Inputs[idx] = v
		s.n.DelAttr(name)
		return nil, nil
	}
}

// broadcast7: opset-6 Add/Sub/Mul/Div/Pow broadcast B onto A from axis
// (default: aligned to the end, which numpy broadcasting also does).
func broadcast7(s *step) ([]*graph.Node, error) {
	defer s.n.DelAttr("consumed_inputs")
	if s.n.AttrInt("broadcast", 0) != 0 && s.n.Attr("axis") != nil {
		ra, rb := s.rank(s.n.Inputs[0]), s.rank(s.n.Inputs[1])
		axis := s.n.AttrInt("axis", 0)
		if ra >= 0 && axis < 0 {
			axis += int64(ra)
		}
		if ra < 0 || rb < 0 || axis != int64(ra-rb) {
			return nil, s.refuse("broadcast from axis %d (ranks %d and %d) is not numpy broadcasting", s.n.AttrInt("axis", 0), ra, rb)
		}
	}
	s.n.DelAttr("broadcast")
	s.n.DelAttr("axis")
	return nil, nil
}

func upsample9(s *step) ([]*graph.Node, error) {
	a := s.n.Attr("scales")
	if a == nil {
		return nil, s.refuse("has no scales attribute")
	}
	s.n.Inputs = []string{s.n.Inputs[0], s.floats("scales", a.Floats)}
	s.n.DelAttr("scales")
	return nil, nil
}

func upsample10(s *step) ([]*graph.Node, error) {
	switch m := s.n.AttrString("mode", "nearest"); m {
	case "nearest", "linear":
	case "bilinear", "trilinear":
		s.n.SetAttr(graph.StringAttr("mode", "linear"))
	default:
		return nil, s.refuse("unknown mode %q", m)
	}
	s.n.OpType = "Resize"
	return nil, nil
}

func batchNorm9(s *step) ([]*graph.Node, error) {
	if s.n.AttrInt("spatial", 1) == 0 {
		return nil, s.refuse("spatial=0 (statistics per element, not per channel) has no BatchNormalization-9 equivalent")
	}
	s.n.DelAttr("spatial")
	return nil, nil
}

func slice10(s *step) ([]*graph.Node, error) {
	if len(s.n.Inputs) > 1 {
		return nil, nil
	}
	starts, ends := s.n.Attr("starts"), s.n.Attr("ends")
	if starts == nil || ends == nil {
		return nil, s.refuse("needs starts and ends attributes")
	}
	ins := []string{s.n.Inputs[0], s.ints("starts", starts.Ints), s.ints("ends", ends.Ints)}
	if ax := s.n.Attr("axes"); ax != nil {
		ins = append(ins, s.ints("axes", ax.Ints))
	}
	s.n.Inputs = ins
	for _, a := range []string{"starts", "ends", "axes"} {
		s.n.DelAttr(a)
	}
	return nil, nil
}

func topK10(s *step) ([]*graph.Node, error) {
	k := s.n.Attr("k")
	if k == nil {
		return nil, s.refuse("has no k attribute")
	}
	s.n.Inputs = []string{s.n.Inputs[0], s.ints("k", []int64{k.I})}
	s.n.DelAttr("k")
	return nil, nil
}

func resize11(s *step) ([]*graph.Node, error) {
	if len(s.n.Inputs) < 2 {
		return nil, s.refuse("needs a scales input")
	}
	roi := s.addInit(graph.NewFloat32(s.base("roi"), []int64{0}, nil))
	s.n.Inputs = []string{s.n.Inputs[0], roi, s.n.Inputs[1]}
	s.n.SetAttr(graph.StringAttr("coordinate_transformation_mode", "asymmetric"))
	if s.n.AttrString("mode", "nearest") == "nearest" {
		s.n.SetAttr(graph.StringAttr("nearest_mode", "floor"))
	}
	return nil, nil
}

func pad11(s *step) ([]*graph.Node, error) {
	pads := s.n.Attr("pads")
	if pads == nil {
		return nil, s.refuse("has no pads attribute")
	}
	ins := []string{s.n.Inputs[0], s.ints("pads", pads.Ints)}
	if v := s.n.AttrFloat("value", 0); v != 0 && s.n.AttrString("mode", "constant") == "constant" {
		dt := s.dtype(s.n.Inputs[0])
		if dt == graph.Undefined {
			return nil, s.refuse("the element type of input %q is unknown, so its pad value %g cannot be made an input", s.n.Inputs[0], v)
		}
		c, err := s.scalar("pad_value", dt, float64(v))
		if err != nil {
			return nil, s.refuse("pad value: %v", err)
		}
		ins = append(ins, c)
	}
	s.n.Inputs = ins
	s.n.DelAttr("pads")
	s.n.DelAttr("value")
	return nil, nil
}

func clip11(s *step) ([]*graph.Node, error) {
	lo, hi := s.n.Attr("min"), s.n.Attr("max")
	s.n.DelAttr("min")
	s.n.DelAttr("max")
	s.n.DelAttr("consumed_inputs")
	if lo == nil && hi == nil {
		return nil, nil
	}
	dt := s.dtype(s.n.Inputs[0])
	if dt == graph.Undefined {
		return nil, s.refuse("the element type of input %q is unknown, so min/max cannot be made inputs", s.n.Inputs[0])
	}
	ins := []string{s.n.Inputs[0], "", ""}
	var err error
	if lo != nil {
		if ins[1], err = s.scalar("min", dt, float64(lo.F)); err != nil {
			return nil, s.refuse("min: %v", err)
		}
	}
	if hi != nil {
		if ins[2], err = s.scalar("max", dt, float64(hi.F)); err != nil {
			return nil, s.refuse("max: %v", err)
		}
	} else {
		ins = ins[:2]
	}
	s.n.Inputs = ins
	return nil, nil
}

func dropout12(s *step) ([]*graph.Node, error) {
	r := s.n.Attr("ratio")
	s.n.DelAttr("ratio")
	if r == nil {
		return nil, nil
	}
	c, err := s.scalar("ratio", graph.Float, float64(r.F))
	if err != nil {
		return nil, s.refuse("%v", err)
	}
	s.n.Inputs = []string{s.n.Inputs[0], c}
	return nil, nil
}

// softmax13: before 13 the input was coerced to 2-D at axis and the op
// applied to each row; from 13 it applies along axis alone. Where axis is
// known to be the last one both agree; elsewhere the old form is written
// out as Flatten(axis) -> op(axis=-1) -> Reshape(Shape(x)).
func softmax13(s *step) ([]*graph.Node, error) {
	axis := s.n.AttrInt("axis", 1)
	x := s.n.Inputs[0]
	if r := s.rank(x); axis == -1 || r > 0 && axis == int64(r-1) {
		s.n.SetAttr(graph.IntAttr("axis", -1))
		return nil, nil
	}
	flat, soft, shape := s.base("flat"), s.base("2d"), s.base("shape")
	out := s.n.Outputs[0]
	s.n.Inputs = []string{flat}
	s.n.Outputs = []string{soft}
	s.n.SetAttr(graph.IntAttr("axis", -1))
	return []*graph.Node{
		s.node("Flatten", []string{x}, []string{flat}, graph.IntAttr("axis", axis)),
		s.n,
		s.node("Shape", []string{x}, []string{shape}),
		s.node("Reshape", []string{soft, shape}, []string{out}),
	}, nil
}

func split18(s *step) ([]*graph.Node, error) {
	if len(s.n.Inputs) > 1 && s.n.Inputs[1] != "" {
		return nil, nil
	}
	if s.n.Attr("num_outputs") == nil {
		s.n.SetAttr(graph.IntAttr("num_outputs", int64(len(s.n.Outputs))))
	}
	return nil, nil
}

func gridSample20(s *step) ([]*graph.Node, error) {
	switch s.n.AttrString("mode", "") {
	case "bilinear":
		s.n.SetAttr(graph.StringAttr("mode", "linear"))
	case "bicubic":
		s.n.SetAttr(graph.StringAttr("mode", "cubic"))
	case "":
		// GridSample-16's default (bilinear) is GridSample-20's (linear).
	}
	return nil, nil
}

func dft20(s *step) ([]*graph.Node, error) {
	axis := s.n.AttrInt("axis", 1)
	s.n.DelAttr("axis")
	for len(s.n.Inputs) < 2 {
		s.n.Inputs = append(s.n.Inputs, "")
	}
	s.n.Inputs = append(s.n.Inputs[:2], s.intScalar("axis", axis))
	return nil, nil
}

// groupNorm21 repeats GroupNormalization-18's per-group scale and bias
// (constants) to the per-channel form of 21; C comes from shape inference.
func groupNorm21(s *step) ([]*graph.Node, error) {
	groups := s.n.AttrInt("num_groups", 0)
	v := s.c.valueInfo(s.n.Inputs[0])
	if v == nil || !v.HasShape || len(v.Shape) < 2 || !v.Shape[1].Known() {
		return nil, s.refuse("its channel count is unknown, so the per-group scale and bias cannot be widened to per channel")
	}
	ch := v.Shape[1].Size
	if groups <= 0 || ch%groups != 0 {
		return nil, s.refuse("num_groups %d does not divide %d channels", groups, ch)
	}
	for i := 1; i <= 2 && i < len(s.n.Inputs); i++ {
		t := s.g.Initializer(s.n.Inputs[i])
		if t == nil || t.DType != graph.Float || t.Len() != groups {
			return nil, s.refuse("input %d %q is not a float32 constant of %d values", i, s.n.Inputs[i], groups)
		}
		f, err := t.Float32s()
		if err != nil {
			return nil, s.refuse("input %d: %v", i, err)
		}
		w := make([]float32, 0, ch)
		for _, x := range f {
			for k := int64(0); k < ch/groups; k++ {
				w = append(w, x)
			}
		}
		s.n.Inputs[i] = s.floats([]string{"", "scale", "bias"}[i], w)
	}
	return nil, nil
}

// resize13: tf_half_pixel_for_nn (x_in = (x_out+0.5)/scale) is gone from
// Resize-13. For nearest sampling it equals half_pixel (x_in - 0.5) with a
// rounding shifted by half a pixel: floor(x+0.5) is round_prefer_ceil(x)
// and round_prefer_floor(x+0.5) is ceil(x). The other combinations have no
// equivalent.
func resize13(s *step) ([]*graph.Node, error) {
	if s.n.AttrString("coordinate_transformation_mode", "half_pixel") != "tf_half_pixel_for_nn" {
		return nil, nil
	}
	if m := s.n.AttrString("mode", "nearest"); m != "nearest" {
		return nil, s.refuse("coordinate_transformation_mode tf_half_pixel_for_nn with mode %q has no Resize-13 equivalent", m)
	}
	var nm string
	switch m := s.n.AttrString("nearest_mode", "round_prefer_floor"); m {
	case "floor":
		nm = "round_prefer_ceil"
	case "round_prefer_floor":
		nm = "ceil"
	default:
		return nil, s.refuse("coordinate_transformation_mode tf_half_pixel_for_nn with nearest_mode %q has no Resize-13 equivalent", m)
	}
	s.n.SetAttr(graph.StringAttr("coordinate_transformation_mode", "half_pixel"))
	s.n.SetAttr(graph.StringAttr("nearest_mode", nm))
	return nil, nil
}

// imageScaler10: y[n,c,...] = scale*x[n,c,...] + bias[c].
func imageScaler10(s *step) ([]*graph.Node, error) {
	bias := s.n.AttrFloats("bias")
	scale := s.n.AttrFloat("scale", 1)
	dt := s.dtype(s.n.Inputs[0])
	if dt != graph.Float {
		return nil, s.refuse("only float32 input is converted (input %q is %s)", s.n.Inputs[0], dt)
	}
	r := s.rank(s.n.Inputs[0])
	if r < 2 {
		return nil, s.refuse("the rank of input %q is unknown or below 2", s.n.Inputs[0])
	}
	dims := make([]int64, r)
	for i := range dims {
		dims[i] = 1
	}
	dims[1] = int64(len(bias))
	sc, err := s.scalar("scale", graph.Float, float64(scale))
	if err != nil {
		return nil, s.refuse("%v", err)
	}
	b := s.addInit(graph.NewFloat32(s.base("bias"), dims, append([]float32(nil), bias...)))
	mid := s.base("scaled")
	return []*graph.Node{
		s.node("Mul", []string{s.n.Inputs[0], sc}, []string{mid}),
		s.node("Add", []string{mid, b}, []string{s.n.Outputs[0]}),
	}, nil
}

// scaled10: Scale is x*scale; Affine is alpha*x + beta.
func scaled10(affine bool) func(s *step) ([]*graph.Node, error) {
	return func(s *step) ([]*graph.Node, error) {
		dt := s.dtype(s.n.Inputs[0])
		if dt == graph.Undefined {
			return nil, s.refuse("the element type of input %q is unknown", s.n.Inputs[0])
		}
		mulBy, addBy := float64(s.n.AttrFloat("scale", 1)), 0.0
		if affine {
			mulBy, addBy = float64(s.n.AttrFloat("alpha", 1)), float64(s.n.AttrFloat("beta", 0))
		}
		m, err := s.scalar("alpha", dt, mulBy)
		if err != nil {
			return nil, s.refuse("%v", err)
		}
		if !affine {
			return []*graph.Node{s.node("Mul", []string{s.n.Inputs[0], m}, s.n.Outputs)}, nil
		}
		a, err := s.scalar("beta", dt, addBy)
		if err != nil {
			return nil, s.refuse("%v", err)
		}
		mid := s.base("scaled")
		return []*graph.Node{
			s.node("Mul", []string{s.n.Inputs[0], m}, []string{mid}),
			s.node("Add", []string{mid, a}, s.n.Outputs),
		}, nil
	}
}

// wrapped10: alpha * op(beta * x) (ScaledTanh, ParametricSoftplus).
func wrapped10(op string) func(s *step) ([]*graph.Node, error) {
	return func(s *step) ([]*graph.Node, error) {
		dt := s.dtype(s.n.Inputs[0])
		if dt == graph.Undefined {
			return nil, s.refuse("the element type of input %q is unknown", s.n.Inputs[0])
		}
		alpha, err := s.scalar("alpha", dt, float64(s.n.AttrFloat("alpha", 1)))
		if err != nil {
			return nil, s.refuse("%v", err)
		}
		beta, err := s.scalar("beta", dt, float64(s.n.AttrFloat("beta", 1)))
		if err != nil {
			return nil, s.refuse("%v", err)
		}
		in, act := s.base("in"), s.base("act")
		return []*graph.Node{
			s.node("Mul", []string{s.n.Inputs[0], beta}, []string{in}),
			s.node(op, []string{in}, []string{act}),
			s.node("Mul", []string{act, alpha}, s.n.Outputs),
		}, nil
	}
}

// scan9: Scan-8 runs its body over a batch axis (axis 0 of every input and
// output, the sequence axis 1 of scan inputs) with optional per-batch
// sequence_lens; Scan-9 has neither. A batch of 1 without sequence_lens
// is the same as Squeeze(axis 0) -> Scan-9 -> Unsqueeze(axis 0), the
// body unchanged (directions become scan_input_directions). The helper
// Squeeze/Unsqueeze are written in their opset-9 form; later steps adapt
// them like any node.
func scan9(s *step) ([]*graph.Node, error) {
	n := s.n
	if len(n.Inputs) > 0 && n.Inputs[0] != "" {
		return nil, s.refuse("sequence_lens (input 0) has no Scan-9 equivalent")
	}
	var pre []*graph.Node
	ins := make([]string, 0, len(n.Inputs))
	for i, in := range n.Inputs[1:] {
		v := s.c.valueInfo(in)
		if v == nil || !v.HasShape || len(v.Shape) == 0 || v.Shape[0].Size != 1 {
			return nil, s.refuse("input %d %q does not have a known batch size of 1; Scan-9 has no batch axis", i+1, in)
		}
		sq := s.base("unbatched")
		pre = append(pre, s.node("Squeeze", []string{in}, []string{sq}, graph.IntsAttr("axes", 0)))
		ins = append(ins, sq)
	}
	var post []*graph.Node
	outs := make([]string, len(n.Outputs))
	for i, o := range n.Outputs {
		if o == "" {
			continue
		}
		outs[i] = s.base("unbatched")
		post = append(post, s.node("Unsqueeze", []string{outs[i]}, []string{o}, graph.IntsAttr("axes", 0)))
	}
	n.Inputs, n.Outputs = ins, outs
	if d := n.Attr("directions"); d != nil {
		n.SetAttr(graph.IntsAttr("scan_input_directions", d.Ints...))
		n.DelAttr("directions")
	}
	return append(append(pre, n), post...), nil
}
