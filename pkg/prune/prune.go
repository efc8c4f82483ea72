package prune

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
)

// Options configure Prune.
type Options struct {
	// Fraction of weights (unstructured) or of output channels per prunable
	// layer (structured) to remove, in [0, 1). Structured pruning keeps at
	// least one channel per layer.
	Fraction float64 `json:"fraction"`
	// Mode is "structured" or "unstructured" (required).
	Mode string `json:"mode"`
	// Norm ranks filters in structured mode: "l1" (default) or "l2".
	// Unstructured mode always ranks single weights by magnitude.
	Norm string `json:"norm,omitempty"`
	// Global ranks all layers together (one magnitude threshold, or one
	// channel ranking by per-element norm) instead of layer by layer.
	Global bool `json:"global"`
	// Exclude names nodes to leave untouched: their weights are not pruned,
	// and (structured) channels flowing into them are not pruned either.
	Exclude []string `json:"exclude,omitempty"`
	// Multiple (structured), when above 1, rounds each layer's kept channel
	// count to the nearest multiple of it (at least Multiple; layers with
	// no more channels than Multiple are not rounded, since rounding could
	// only keep them whole: the result would depend on the host's NCHWc
	// block, 8 or 16). ONNX Runtime's CPU
	// convolutions at optimization level "all" use a blocked channel layout
	// (NCHWc, 8 channels a block on AVX2, 16 on AVX-512): a layer whose
	// channel count is off the block falls back to slower kernels, so
	// pruning 16 channels to 11 makes the model slower, not faster. 8 is the
	// value to use for ORT on x86 CPUs; 0 keeps the exact fraction.
	Multiple int `json:"multiple,omitempty"`
	// PerLayer (structured, not Global), when set, gives each tie group its
	// own fraction, looked up by the name of one of its layers (nodes);
	// groups not named are not pruned. Fraction is then only reported.
	PerLayer map[string]float64 `json:"per_layer,omitempty"`
}

// Modes.
const (
	Structured   = "structured"
	Unstructured = "unstructured"
)

// Layer is what happened to one weight.
type Layer struct {
	Node   string `json:"node"`
	Op     string `json:"op"`
	Weight string `json:"weight"`
	// Params is the number of weight elements after pruning.
	Params int64 `json:"params"`
	// Zeros and Sparsity (unstructured): zero elements after pruning.
	Zeros    int64   `json:"zeros,omitempty"`
	Sparsity float64 `json:"sparsity,omitempty"`
	// ChannelsBefore/After (structured): output channels of the layer.
	ChannelsBefore int `json:"channels_before,omitempty"`
	ChannelsAfter  int `json:"channels_after,omitempty"`
	// Group is the tie group (structured): layers with the same group share
	// one keep set.
	Group int `json:"group,omitempty"`
	// Kept lists the output channels kept (structured, pruned layers only),
	// in order.
	Kept []int `json:"kept,omitempty"`
}

// Skip is a layer (or tie group) that was not pruned, and why.
type Skip struct {
	Nodes  []string `json:"nodes"`
	Reason string   `json:"reason"`
}

// Report says what Prune did.
type Report struct {
	Mode     string  `json:"mode"`
	Fraction float64 `json:"fraction"`
	Norm     string  `json:"norm,omitempty"`
	Global   bool    `json:"global"`
	Multiple int     `json:"multiple,omitempty"`
	Layers   []Layer `json:"layers"`
	Skipped  []Skip  `json:"skipped,omitempty"`
	// Sparsity (unstructured) is zeros / elements over all pruned weights.
	Sparsity float64 `json:"sparsity,omitempty"`
	// ChannelsBefore/After (structured) sum the output channels of the
	// prunable layers.
	ChannelsBefore int `json:"channels_before,omitempty"`
	ChannelsAfter  int `json:"channels_after,omitempty"`
	// Parameters (initializers and Constant values) and FLOPs (graph.Cost,
	// dynamic dims taken as 1) before and after pruning.
	ParamsBefore int64 `json:"params_before"`
	ParamsAfter  int64 `json:"params_after"`
	FLOPsBefore  int64 `json:"flops_before"`
	FLOPsAfter   int64 `json:"flops_after"`
	// Notes are remarks for the user (unstructured: zeros do not speed up
	// dense kernels).
	Notes []string `json:"notes,omitempty"`
	// Reconstruction (structured, filled by Reconstruct) is what the
	// least-squares re-fit and the BatchNorm re-estimation did.
	Reconstruction *ReconReport `json:"reconstruction,omitempty"`
	// Accuracy (filled by Auto) is the per-layer sensitivity, the chosen
	// ratios and the held-out accuracy against the unpruned model.
	Accuracy *AutoReport `json:"accuracy,omitempty"`

	// sliced maps {node index, input, dim} of each constant input that
	// structured pruning sliced to the original indices it kept, in order.
	sliced map[[3]int][]int
}

// NoteDense is the honest note that unstructured pruning carries.
const NoteDense = "unstructured sparsity only zeroes weights: dense kernels (ONNX Runtime CPU, the interp backend) do exactly the same work, so the model is not faster and not smaller on disk unless compressed; use structured pruning for speed"

// NoteBlocked warns that channel counts off ORT's NCHWc block can be slower.
const NoteBlocked = "some pruned layers have channel counts that are not multiples of 8: ONNX Runtime's CPU convolutions (NCHWc layout, level all) then fall back to slower kernels and the model can be slower than the original; round with Multiple 8"

// JSON renders the report as indented JSON.
func (r *Report) JSON() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

// String is a human summary.
func (r *Report) String() string {
	var b strings.Builder
	g := "per-layer"
	if r.Global {
		g = "global"
	}
	fmt.Fprintf(&b, "prune: %s, fraction %.3g (%s", r.Mode, r.Fraction, g)
	if r.Mode == Structured {
		fmt.Fprintf(&b, ", %s norm", r.Norm)
		if r.Multiple > 1 {
			fmt.Fprintf(&b, ", channels rounded to multiples of %d", r.Multiple)
		}
	}
	b.WriteString(")\n")
	for _, l := range r.Layers {
		if r.Mode == Structured {
			fmt.Fprintf(&b, "  %-12s %-6s %-24s channels %d -> %d (tie group %d)\n", l.Node, l.Op, l.Weight, l.ChannelsBefore, l.ChannelsAfter, l.Group)
		} else {
			fmt.Fprintf(&b, "  %-12s %-6s %-24s %d/%d zero (%.1f%%)\n", l.Node, l.Op, l.Weight, l.Zeros, l.Params, 100*l.Sparsity)
		}
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(&b, "  skipped %s: %s\n", strings.Join(s.Nodes, ", "), s.Reason)
	}
	if r.Mode == Structured {
		fmt.Fprintf(&b, "  channels %d -> %d\n", r.ChannelsBefore, r.ChannelsAfter)
	} else {
		fmt.Fprintf(&b, "  overall sparsity %.2f%%\n", 100*r.Sparsity)
	}
	fmt.Fprintf(&b, "  params %d -> %d (%.1f%%), FLOPs %d -> %d (%.1f%%)\n",
		r.ParamsBefore, r.ParamsAfter, pct(r.ParamsAfter, r.ParamsBefore), r.FLOPsBefore, r.FLOPsAfter, pct(r.FLOPsAfter, r.FLOPsBefore))
	if rr := r.Reconstruction; rr != nil {
		ls, bias, bn := 0, 0, 0
		for _, l := range rr.Layers {
			switch {
			case l.Kind == "batchnorm":
				bn++
			case l.Kind == "bias" && l.ErrBefore == 0:
				bias++
			case !(l.ErrAfter < l.ErrBefore):
				fmt.Fprintf(&b, "  left %-12s as pruned (%d rows, layer error %.4f): %s\n", l.Node, l.Rows, l.ErrBefore, l.Note)
			default:
				ls++
				fmt.Fprintf(&b, "  re-fitted %-12s (%s) on %d rows: layer error %.4f -> %.4f\n", l.Node, l.Kind, l.Rows, l.ErrBefore, l.ErrAfter)
			}
		}
		fmt.Fprintf(&b, "  reconstruction on %d calibration samples: %d layers re-fitted by least squares, %d conv biases and %d BatchNorm statistics corrected for drift\n", rr.Samples, ls, bias, bn)
		for _, s := range rr.Skipped {
			fmt.Fprintf(&b, "  not re-fitted %s: %s\n", strings.Join(s.Nodes, ", "), s.Reason)
		}
	}
	if r.Accuracy != nil {
		for _, line := range strings.Split(strings.TrimRight(r.Accuracy.Table(), "\n"), "\n") {
			fmt.Fprintf(&b, "  %s\n", line)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	return b.String()
}

func pct(a, b int64) float64 {
	if b == 0 {
		return 100
	}
	return 100 * float64(a) / float64(b)
}

// Prune prunes m in place as opts says and reports what it did. On error m
// is unchanged.
func Prune(m *graph.Model, opts Options) (rep *Report, err error) {
	defer func() {
		if r := recover(); r != nil {
			rep, err = nil, fmt.Errorf("prune: internal error (model left unchanged): %v", r)
		}
	}()
	if m == nil || m.Graph == nil {
		return nil, fmt.Errorf("prune: model has no graph")
	}
	if math.IsNaN(opts.Fraction) || opts.Fraction < 0 || opts.Fraction >= 1 {
		return nil, fmt.Errorf("prune: fraction %v is not in [0, 1)", opts.Fraction)
	}
	norm := strings.ToLower(opts.Norm)
	if norm == "" {
		norm = "l1"
	}
	if norm != "l1" && norm != "l2" {
		return nil, fmt.Errorf("prune: unknown norm %q (want l1 or l2)", opts.Norm)
	}
	opts.Norm = norm
	mode := strings.ToLower(opts.Mode)
	if mode != Structured && mode != Unstructured {
		return nil, fmt.Errorf("prune: unknown mode %q (want structured or unstructured)", opts.Mode)
	}
	opts.Mode = mode
	for name, f := range opts.PerLayer {
		if math.IsNaN(f) || f < 0 || f >= 1 {
			return nil, fmt.Errorf("prune: fraction %v for layer %q is not in [0, 1)", f, name)
		}
	}
	if opts.Multiple < 0 || opts.Multiple > 1<<16 {
		return nil, fmt.Errorf("prune: channel multiple %d out of range", opts.Multiple)
	}
	work := m.Clone()
	rep = &Report{Mode: mode, Fraction: opts.Fraction, Global: opts.Global}
	if mode == Structured && opts.Multiple > 1 {
		rep.Multiple = opts.Multiple
	}
	if mode == Structured {
		rep.Norm = norm
	}
	rep.ParamsBefore, rep.FLOPsBefore = cost(m)
	if mode == Unstructured {
		err = unstructured(work, opts, rep)
	} else {
		err = structured(work, opts, rep)
	}
	if err != nil {
		return nil, err
	}
	if err := work.Verify(); err != nil {
		return nil, fmt.Errorf("prune: pruned model fails verification: %w", err)
	}
	rep.ParamsAfter, rep.FLOPsAfter = cost(work)
	if mode == Structured && opts.Multiple <= 1 {
		for _, l := range rep.Layers {
			if l.ChannelsAfter != l.ChannelsBefore && l.ChannelsAfter%8 != 0 && l.ChannelsBefore%8 == 0 {
				rep.Notes = append(rep.Notes, NoteBlocked)
				break
			}
		}
	}
	*m = *work
	return rep, nil
}

// cost returns parameters (initializers and Constant node values) and FLOPs
// with dynamic input dims set to 1.
func cost(m *graph.Model) (params, flops int64) {
	c := m.Clone()
	fixed := map[string][]int64{}
	for _, in := range c.Graph.RealInputs() {
		if !in.HasShape || !in.IsTensor() {
			continue
		}
		dims := make([]int64, len(in.Shape))
		dyn := false
		for i, d := range in.Shape {
			dims[i] = d.Size
			if d.Size < 0 {
				dims[i], dyn = 1, true
			}
		}
		if dyn {
			fixed[in.Name] = dims
		}
	}
	c.Graph.ValueInfo = nil
	if _, err := graph.InferShapes(c, graph.InferOptions{Fixed: fixed}); err != nil {
		return 0, 0
	}
	r, err := graph.Cost(c)
	if err != nil {
		return 0, 0
	}
	return r.Params + r.ConstantParams, r.FLOPs
}

// constMap indexes the constants of the main graph by value name:
// initializers that are not also graph inputs (in models of IR version below
// 4, where every initializer had to be listed as an input too, any
// initializer: Prune then keeps the input's declared shape in step), and
// the "value" tensors of Constant nodes.
func constMap(m *graph.Model) map[string]*graph.Tensor {
	g := m.Graph
	out := map[string]*graph.Tensor{}
	for _, t := range g.Initializers {
		if m.IRVersion < 4 || !g.IsGraphInput(t.Name) {
			out[t.Name] = t
		}
	}
	for _, n := range g.Nodes {
		if n.Is("Constant") && len(n.Outputs) == 1 && n.Outputs[0] != "" {
			if t := n.AttrTensor("value"); t != nil && len(n.Attrs) == 1 {
				out[n.Outputs[0]] = t
			}
		}
	}
	return out
}

// constInit returns the constant named name or nil.
func constInit(consts map[string]*graph.Tensor, name string) *graph.Tensor {
	if name == "" {
		return nil
	}
	return consts[name]
}

// getConst finds the current constant of a value: an initializer or a
// Constant node's value.
func getConst(g *graph.Graph, name string) *graph.Tensor {
	if t := g.Initializer(name); t != nil {
		return t
	}
	for _, n := range g.Nodes {
		if n.Is("Constant") && len(n.Outputs) == 1 && n.Outputs[0] == name {
			return n.AttrTensor("value")
		}
	}
	return nil
}

// setConst replaces the constant of a value (initializer or Constant node).
func setConst(g *graph.Graph, name string, t *graph.Tensor) {
	for i, e := range g.Initializers {
		if e.Name == name {
			g.Initializers[i] = t
			return
		}
	}
	for _, n := range g.Nodes {
		if n.Is("Constant") && len(n.Outputs) == 1 && n.Outputs[0] == name {
			c := *t
			c.Name = n.AttrTensor("value").Name
			n.SetAttr(graph.TensorAttr("value", &c))
			return
		}
	}
}

// syncWeightInputs makes graph inputs that name initializers (old IR
// versions) declare the initializers' current shapes, and lists new
// initializers as inputs where the IR version requires it.
func syncWeightInputs(m *graph.Model) {
	g := m.Graph
	inits := g.InitializerMap()
	listed := map[string]bool{}
	for _, in := range g.Inputs {
		listed[in.Name] = true
		if t := inits[in.Name]; t != nil && in.IsTensor() {
			in.Shape, in.HasShape = graph.ShapeOf(t.Dims), true
		}
	}
	if m.IRVersion >= 4 {
		return
	}
	for _, t := range g.Initializers {
		if !listed[t.Name] {
			g.Inputs = append(g.Inputs, &graph.ValueInfo{Name: t.Name, DType: t.DType, Shape: graph.ShapeOf(t.Dims), HasShape: true, HasType: true})
		}
	}
}

// weightInput returns the index of the weight input of a prunable node
// (Conv: 1, Gemm: 1, MatMul: 1) or -1.
func weightInput(n *graph.Node) int {
	switch {
	case n.Is("Conv"), n.Is("Gemm"), n.Is("MatMul"):
		if len(n.Inputs) > 1 {
			return 1
		}
	}
	return -1
}

// ---------------------------------------------------------------------------
// Unstructured magnitude pruning.

type uLayer struct {
	name string
	node *graph.Node
	t    *graph.Tensor
	vals []float32
}

func unstructured(m *graph.Model, opts Options, rep *Report) error {
	g := m.Graph
	inits := constMap(m)
	excl := exclusions(opts)
	seen := map[string]bool{}
	var layers []*uLayer
	for _, n := range g.Nodes {
		wi := weightInput(n)
		if wi < 0 {
			continue
		}
		name := n.Inputs[wi]
		t := constInit(inits, name)
		if t == nil {
			continue
		}
		if excl[n.Name] {
			rep.Skipped = append(rep.Skipped, Skip{Nodes: []string{n.Name}, Reason: "excluded"})
			continue
		}
		if t.DType != graph.Float {
			rep.Skipped = append(rep.Skipped, Skip{Nodes: []string{n.Name}, Reason: fmt.Sprintf("weight %q is %s, only float32 weights are pruned", name, t.DType)})
			continue
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		v, err := t.Float32s()
		if err != nil {
			return fmt.Errorf("prune: %s weight %q: %w", n, name, err)
		}
		if int64(len(v)) != t.Len() {
			return fmt.Errorf("prune: %s weight %q: %d values for shape %v", n, name, len(v), t.Dims)
		}
		layers = append(layers, &uLayer{name: name, node: n, t: t, vals: append([]float32(nil), v...)})
	}
	if opts.Global {
		var total int
		for _, l := range layers {
			total += len(l.vals)
		}
		all := make([]float32, 0, total)
		for _, l := range layers {
			for _, x := range l.vals {
				all = append(all, abs32(x))
			}
		}
		k := roundCount(opts.Fraction, total)
		if k > 0 {
			thr, atThr := threshold(all, k)
			for _, l := range layers {
				for i, x := range l.vals {
					a := abs32(x)
					if a < thr {
						l.vals[i] = 0
					} else if a == thr && atThr > 0 {
						l.vals[i] = 0
						atThr--
					}
				}
			}
		}
	} else {
		for _, l := range layers {
			k := roundCount(opts.Fraction, len(l.vals))
			if k == 0 {
				continue
			}
			a := make([]float32, len(l.vals))
			for i, x := range l.vals {
				a[i] = abs32(x)
			}
			thr, atThr := threshold(a, k)
			for i, x := range l.vals {
				ax := abs32(x)
				if ax < thr {
					l.vals[i] = 0
				} else if ax == thr && atThr > 0 {
					l.vals[i] = 0
					atThr--
				}
			}
		}
	}
	var zeros, total int64
	for _, l := range layers {
		nt := graph.NewFloat32(l.t.Name, l.t.Dims, l.vals)
		nt.Doc = l.t.Doc
		setConst(g, l.name, nt)
		var z int64
		for _, x := range l.vals {
			if x == 0 {
				z++
			}
		}
		zeros += z
		total += int64(len(l.vals))
		rep.Layers = append(rep.Layers, Layer{Node: l.node.Name, Op: l.node.OpType, Weight: l.name,
			Params: int64(len(l.vals)), Zeros: z, Sparsity: ratio(z, int64(len(l.vals)))})
	}
	rep.Sparsity = ratio(zeros, total)
	rep.Notes = append(rep.Notes, NoteDense)
	return nil
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// roundCount is round(f*n), at most n.
func roundCount(f float64, n int) int {
	k := int(math.Round(f * float64(n)))
	if k > n {
		k = n
	}
	if k < 0 {
		k = 0
	}
	return k
}

// threshold returns the k-th smallest value t of a (1 <= k <= len(a)) and
// how many elements equal to t must be zeroed, besides all those below t, to
// zero exactly k. a is reordered. NaN sorts last (never pruned first).
func threshold(a []float32, k int) (float32, int) {
	sort.Slice(a, func(i, j int) bool { return a[i] < a[j] || (a[j] != a[j] && a[i] == a[i]) })
	t := a[k-1]
	below := sort.Search(len(a), func(i int) bool { return !(a[i] < t) })
	return t, k - below
}

func exclusions(opts Options) map[string]bool {
	m := map[string]bool{}
	for _, e := range opts.Exclude {
		m[e] = true
	}
	return m
}

// replaceInit swaps the initializer named name for t.
func replaceInit(g *graph.Graph, name string, t *graph.Tensor) {
	for i, e := range g.Initializers {
		if e.Name == name {
			g.Initializers[i] = t
			return
		}
	}
}
