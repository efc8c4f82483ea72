package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
)

// DefaultBackendATol bounds |interp - ort| on a quantized model, as a
// fraction of the largest absolute fp32 output value.
const DefaultBackendATol = 0.02

// Skip records a node that was left in float and why.
type Skip struct {
	Node   string `json:"node"`
	Reason string `json:"reason"`
}

// Report summarises a quantization.
type Report struct {
	Mode string `json:"mode"`
	// Target is the QDQ placement target (static int8 only).
	Target    string   `json:"target,omitempty"`
	Quantized []string `json:"quantized"`
	Skipped   []Skip   `json:"skipped,omitempty"`
	Notes     []string `json:"notes,omitempty"`
	// Int8Ops and FloatOps count compute nodes (Conv, MatMul, Gemm and
	// their integer forms) by precision after the rewrite.
	Int8Ops  int `json:"int8_ops"`
	FloatOps int `json:"float_ops"`
	// LeftInFloat lists nodes put back in float by accuracy control.
	LeftInFloat []string `json:"left_in_float,omitempty"`
	// Profile is int8-mixed's per-layer timing on the target and the
	// decision for each layer (Mixed).
	Profile []LayerProfile `json:"layer_profile,omitempty"`

	// done holds (node name, output value) of each quantized node.
	done [][2]string
}

func (r *Report) quantized(n *graph.Node) {
	r.Quantized = append(r.Quantized, n.String())
	r.done = append(r.done, [2]string{n.Name, n.Outputs[0]})
}

// String is a short human summary.
func (r *Report) String() string {
	var b strings.Builder
	verb := "quantized"
	if r.Mode == "fp16" {
		verb = "converted to float16"
	}
	fmt.Fprintf(&b, "quantize %s: %d nodes %s, %d int8 / %d float compute ops\n", r.Mode, len(r.Quantized), verb, r.Int8Ops, r.FloatOps)
	for _, s := range r.Skipped {
		fmt.Fprintf(&b, "  left in float: %s: %s\n", s.Node, s.Reason)
	}
	if len(r.LeftInFloat) > 0 {
		fmt.Fprintf(&b, "  put back in float by accuracy control: %s\n", strings.Join(r.LeftInFloat, ", "))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	if len(r.Profile) > 0 {
		b.WriteString("  per-layer profile (each layer alone on the target, 1 thread, interleaved medians; kernel: float/int8 kernel; in plan: with the Q/DQ it pays):\n")
		b.WriteString(ProfileTable(r.Profile))
	}
	return b.String()
}

func (r *Report) skip(n *graph.Node, format string, args ...any) {
	r.Skipped = append(r.Skipped, Skip{Node: n.String(), Reason: fmt.Sprintf(format, args...)})
}

// countOps fills Int8Ops/FloatOps from the main graph.
func (r *Report) countOps(g *graph.Graph) {
	r.Int8Ops, r.FloatOps = 0, 0
	dq := map[string]bool{}
	for _, n := range g.Nodes {
		if n.Is("DequantizeLinear") {
			dq[n.Outputs[0]] = true
		}
	}
	for _, n := range g.Nodes {
		switch {
		case n.Is("MatMulInteger"), n.Is("ConvInteger"), n.Is("QLinearConv"), n.Is("QLinearMatMul"):
			r.Int8Ops++
		case n.Is("Conv"), n.Is("MatMul"), n.Is("Gemm"):
			if len(n.Inputs) > 1 && dq[n.Inputs[0]] && dq[n.Inputs[1]] {
				r.Int8Ops++
			} else {
				r.FloatOps++
			}
		}
	}
}

// namer hands out value/node names unused in a graph.
type namer struct{ used map[string]bool }

func newNamer(g *graph.Graph) *namer {
	u := map[string]bool{"": true}
	var walk func(g *graph.Graph)
	walk = func(g *graph.Graph) {
		for _, v := range g.Inputs {
			u[v.Name] = true
		}
		for _, v := range g.Outputs {
			u[v.Name] = true
		}
		for _, t := range g.Initializers {
			u[t.Name] = true
		}
		for _, n := range g.Nodes {
			u[n.Name] = true
			for _, o := range n.Outputs {
				u[o] = true
			}
			for _, in := range n.Inputs {
				u[in] = true
			}
			for _, sg := range n.Subgraphs() {
				walk(sg)
			}
		}
	}
	walk(g)
	return &namer{used: u}
}

func (nm *namer) name(base string) string {
	if !nm.used[base] {
		nm.used[base] = true
		return base
	}
	for i := 1; ; i++ {
		s := fmt.Sprintf("%s_%d", base, i)
		if !nm.used[s] {
			nm.used[s] = true
			return s
		}
	}
}

// floatInit returns the float32 data of a constant initializer, or nil.
func floatInit(inits map[string]*graph.Tensor, name string) (*graph.Tensor, []float32) {
	t := inits[name]
	if t == nil || t.DType != graph.Float || t.External != nil && len(t.Raw) == 0 {
		return nil, nil
	}
	if t.Validate() != nil {
		return nil, nil
	}
	f, err := t.Float32s()
	if err != nil {
		return nil, nil
	}
	for _, v := range f {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, nil
		}
	}
	return t, f
}

// quantWeights quantizes w (rows x cols, row-major) symmetrically to int8,
// with one scale per channel along axis (0: per row, 1: per column, -1:
// one scale for the whole tensor). qmax is 127 (or 63 with reduce-range).
func quantWeights(w []float32, rows, cols int, axis int, qmax float64) (q []byte, scales []float32) {
	nch := 1
	switch axis {
	case 0:
		nch = rows
	case 1:
		nch = cols
	}
	amax := make([]float64, nch)
	ch := func(i int) int {
		switch axis {
		case 0:
			return i / cols
		case 1:
			return i % cols
		}
		return 0
	}
	for i, v := range w {
		c := ch(i)
		if a := math.Abs(float64(v)); a > amax[c] {
			amax[c] = a
		}
	}
	scales = make([]float32, nch)
	for c, a := range amax {
		s := a / qmax
		if s == 0 || float32(s) == 0 {
			s = 1
		}
		scales[c] = float32(s)
	}
	q = make([]byte, len(w))
	for i, v := range w {
		x := math.RoundToEven(float64(v) / float64(scales[ch(i)]))
		x = math.Max(-qmax, math.Min(qmax, x))
		q[i] = byte(int8(x))
	}
	return q, scales
}

func f32Bytes(f []float32) []byte {
	b := make([]byte, 4*len(f))
	for i, v := range f {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func i32Bytes(v []int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

// addInit adds an initializer under a fresh name and returns that name.
func addInit(g *graph.Graph, nm *namer, base string, dt graph.DType, dims []int64, raw []byte) string {
	name := nm.name(base)
	g.Initializers = append(g.Initializers, graph.NewRaw(name, dt, dims, raw))
	return name
}

// dropUnusedInits removes initializers nothing reads any more (and their
// graph-input entries in IR < 4 files).
func dropUnusedInits(g *graph.Graph) {
	used := map[string]bool{}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			used[in] = true
		}
		for _, sg := range n.Subgraphs() {
			for name := range sg.OuterReads() {
				used[name] = true
			}
		}
	}
	for _, v := range g.Outputs {
		used[v.Name] = true
	}
	var keep []*graph.Tensor
	dropped := map[string]bool{}
	for _, t := range g.Initializers {
		if used[t.Name] {
			keep = append(keep, t)
		} else {
			dropped[t.Name] = true
		}
	}
	g.Initializers = keep
	var ins []*graph.ValueInfo
	for _, v := range g.Inputs {
		if !dropped[v.Name] {
			ins = append(ins, v)
		}
	}
	g.Inputs = ins
}

// alreadyQuantized lists the quantization ops a graph already holds.
func alreadyQuantized(g *graph.Graph) []string {
	seen := map[string]bool{}
	for _, n := range g.Nodes {
		switch n.OpType {
		case "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
			"QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QGemm", "DynamicQuantizeMatMul", "MatMulIntegerToFloat":
			seen[n.OpType] = true
		}
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// commonChecks notes subgraphs and existing quantization in the report.
func commonChecks(g *graph.Graph, rep *Report) {
	for _, n := range g.Nodes {
		if len(n.Subgraphs()) > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s holds subgraphs: left in float (subgraphs are not quantized)", n))
		}
	}
	if q := alreadyQuantized(g); len(q) > 0 {
		rep.Notes = append(rep.Notes, "model already contains "+strings.Join(q, ", ")+": those nodes are kept as they are")
	}
}

// selected reports whether a node passes the op allow list and the
// exclusion list.
func selected(n *graph.Node, ops []string, exclude []string) (bool, string) {
	for _, e := range exclude {
		if e != "" && n.Name == e {
			return false, "excluded by name"
		}
	}
	if len(ops) > 0 {
		for _, o := range ops {
			if strings.EqualFold(o, n.OpType) {
				return true, ""
			}
		}
		return false, "op type not in the allow list"
	}
	return true, ""
}

// constantsToInits turns Constant nodes holding a tensor ("value") into
// initializers, so weights stored that way (paddle2onnx exports, say) can
// be quantized. Values that are graph outputs stay Constant nodes.
func constantsToInits(g *graph.Graph) {
	var keep []*graph.Node
	for _, n := range g.Nodes {
		if n.Is("Constant") && len(n.Outputs) == 1 && !g.IsGraphOutput(n.Outputs[0]) {
			if t := n.AttrTensor("value"); t != nil && len(n.Attrs) == 1 {
				c := t.Clone()
				c.Name = n.Outputs[0]
				g.Initializers = append(g.Initializers, c)
				continue
			}
		}
		keep = append(keep, n)
	}
	g.Nodes = keep
}

// foldConstReshapes turns Reshape(constant float tensor, constant shape)
// into an initializer, so a weight stored reshaped (the MNIST model's
// MatMul weight, say) is seen as the constant it is. Values that are graph
// outputs, and shapes that do not fit the data, are left alone.
func foldConstReshapes(g *graph.Graph) {
	inits := g.InitializerMap()
	var keep []*graph.Node
	for _, n := range g.Nodes {
		if n.Is("Reshape") && len(n.Inputs) == 2 && len(n.Outputs) == 1 && !g.IsGraphOutput(n.Outputs[0]) {
			if dims, ok := constReshape(inits, n); ok {
				c := inits[n.Inputs[0]].Clone()
				c.Name = n.Outputs[0]
				c.Dims = dims
				g.Initializers = append(g.Initializers, c)
				inits[c.Name] = c
				continue
			}
		}
		keep = append(keep, n)
	}
	g.Nodes = keep
	dropUnusedInits(g)
}

// constReshape computes the output dims of a Reshape of a float
// initializer by a constant shape.
func constReshape(inits map[string]*graph.Tensor, n *graph.Node) ([]int64, bool) {
	t, f := floatInit(inits, n.Inputs[0])
	st := inits[n.Inputs[1]]
	if t == nil || st == nil || st.DType != graph.Int64 || n.AttrInt("allowzero", 0) != 0 {
		return nil, false
	}
	shape, err := st.Int64s()
	if err != nil || len(shape) == 0 || len(shape) > 8 {
		return nil, false
	}
	dims := make([]int64, len(shape))
	known, infer := int64(1), -1
	for i, d := range shape {
		switch {
		case d == 0 && i < len(t.Dims):
			dims[i] = t.Dims[i]
		case d == -1 && infer < 0:
			infer = i
			continue
		case d > 0:
			dims[i] = d
		default:
			return nil, false
		}
		if dims[i] > int64(len(f)) {
			return nil, false
		}
		known *= dims[i]
	}
	if known <= 0 {
		return nil, false
	}
	if infer >= 0 {
		if int64(len(f))%known != 0 {
			return nil, false
		}
		dims[infer] = int64(len(f)) / known
		known *= dims[infer]
	}
	if known != int64(len(f)) {
		return nil, false
	}
	return dims, true
}
