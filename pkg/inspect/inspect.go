package inspect

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
)

// Options tune Build.
type Options struct {
	// Shapes fixes dynamic input dims (the --shape flag), see
	// graph.InferOptions.Fixed.
	Shapes map[string][]int64
	// Top is how many of the heaviest nodes to list (default 10).
	Top int
}

// Value describes a graph input or output. Shape holds an int64 for each
// fixed dim and a string for each symbolic one ("?" when unknown); it is
// null when even the rank is unknown.
type Value struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	Shape []any  `json:"shape"`
	Type  string `json:"type"`
}

// CustomOp counts the nodes of one op outside the default ONNX domain.
type CustomOp struct {
	Domain string `json:"domain"`
	Op     string `json:"op"`
	Count  int    `json:"count"`
}

// Report is everything `optictl inspect` shows.
type Report struct {
	Path            string           `json:"path,omitempty"`
	Producer        string           `json:"producer"`
	ProducerVersion string           `json:"producer_version,omitempty"`
	IRVersion       int64            `json:"ir_version"`
	Opsets          map[string]int64 `json:"opsets"`
	GraphName       string           `json:"graph_name,omitempty"`
	Inputs          []Value          `json:"inputs"`
	Outputs         []Value          `json:"outputs"`

	// Nodes counts the main graph's nodes; NodesTotal includes the nodes
	// of subgraphs (If/Loop/Scan bodies), of which there are Subgraphs.
	Nodes        int `json:"nodes"`
	NodesTotal   int `json:"nodes_total"`
	Subgraphs    int `json:"subgraphs"`
	Initializers int `json:"initializers"`
	// Ops is the op histogram over every node, subgraphs included (ops
	// outside the default domain are keyed "domain.Op"), so its counts sum
	// to NodesTotal.
	Ops map[string]int `json:"ops"`

	Params         int64               `json:"params"`
	ParamBytes     int64               `json:"param_bytes"`
	ParamsByDType  []graph.DTypeParams `json:"params_by_dtype"`
	ConstantParams int64               `json:"constant_params"`

	MACs  int64 `json:"macs"`
	FLOPs int64 `json:"flops"`
	// CostShapes are the input shapes MACs, FLOPs and activation memory
	// were computed at when the model has dynamic dims: --shape, or a
	// representative shape (batch 1, other dynamic dims from the model's
	// hints and strides, numerics.VerifyDims). CostShapeNote says which.
	CostShapes    map[string][]int64 `json:"cost_shapes,omitempty"`
	CostShapeNote string             `json:"cost_shape_note,omitempty"`
	Heaviest      []graph.NodeCost   `json:"heaviest"`
	UnknownCost   []string           `json:"unknown_cost"`

	ActivationBytes     int64  `json:"activation_bytes"`
	PeakActivationBytes int64  `json:"peak_activation_bytes"`
	PeakNode            string `json:"peak_node,omitempty"`

	CustomOps []CustomOp `json:"custom_ops"`
	// Notes are remarks worth a reader's attention (ONNX-ML ops, values
	// whose shape inference could not tell, unsupported ops).
	Notes []string `json:"notes"`

	// UnknownValues counts node outputs whose type or rank inference could
	// not work out; UnsupportedOps names the ops it has no rule for.
	UnknownValues  int            `json:"unknown_values"`
	UnsupportedOps map[string]int `json:"unsupported_ops"`
}

// ErrShape is wrapped by errors about the --shape overrides (bad name,
// contradicting the model), which callers report as usage errors.
var ErrShape = errors.New("bad --shape")

// Load reads a model file and builds its report.
func Load(path string, opts Options) (*Report, error) {
	m, err := graph.Load(path)
	if err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	r, err := Build(m, opts)
	if err != nil {
		return nil, err
	}
	r.Path = path
	return r, nil
}

// Build makes the report of a model without changing it.
func Build(m *graph.Model, opts Options) (*Report, error) {
	if m == nil || m.Graph == nil {
		return nil, fmt.Errorf("inspect: model has no graph")
	}
	if opts.Top <= 0 {
		opts.Top = 10
	}
	orig := m
	m = m.Clone()
	res, err := graph.InferShapes(m, graph.InferOptions{Fixed: opts.Shapes})
	if err != nil {
		return nil, fmt.Errorf("inspect: %w: %w", ErrShape, err)
	}
	costShapes, costNote := representative(orig, opts.Shapes)
	costModel := m
	if costShapes != nil {
		// Dynamic dims count 0 MACs: cost the model at a stated shape.
		c := orig.Clone()
		if _, err := graph.InferShapes(c, graph.InferOptions{Fixed: costShapes}); err == nil {
			costModel = c
		} else {
			costShapes, costNote = nil, ""
		}
	}
	cost, err := graph.Cost(costModel)
	if err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	g := m.Graph
	r := &Report{
		Producer:        m.ProducerName,
		ProducerVersion: m.ProducerVersion,
		IRVersion:       m.IRVersion,
		Opsets:          map[string]int64{},
		GraphName:       g.Name,
		Nodes:           len(g.Nodes),
		Ops:             map[string]int{},
		Params:          cost.Params,
		ParamBytes:      cost.ParamBytes,
		ParamsByDType:   cost.ByDType,
		ConstantParams:  cost.ConstantParams,
		MACs:            cost.MACs,
		FLOPs:           cost.FLOPs,
		CostShapes:      costShapes,
		CostShapeNote:   costNote,
		Heaviest:        cost.Heaviest(opts.Top),
		UnknownCost:     cost.UnknownCost,
		ActivationBytes: cost.ActivationBytes,

		PeakActivationBytes: cost.PeakActivationBytes,
		PeakNode:            cost.PeakNode,
		UnknownValues:       len(res.Unknown),
		UnsupportedOps:      res.UnsupportedOps,
	}
	if r.UnknownCost == nil {
		r.UnknownCost = []string{}
	}
	for _, o := range m.Opsets {
		d := o.Domain
		if d == "" {
			d = "ai.onnx"
		}
		r.Opsets[d] = o.Version
	}
	for _, v := range g.RealInputs() {
		r.Inputs = append(r.Inputs, describe(v))
	}
	for _, v := range g.Outputs {
		r.Outputs = append(r.Outputs, describe(v))
	}
	custom := map[[2]string]int{}
	_ = g.Walk(func(s *graph.Graph) error {
		if s != g {
			r.Subgraphs++
		}
		r.Initializers += len(s.Initializers)
		r.NodesTotal += len(s.Nodes)
		for _, n := range s.Nodes {
			key := n.OpType
			if !n.IsDefaultDomain() {
				key = n.Domain + "." + n.OpType
				custom[[2]string{n.Domain, n.OpType}]++
			}
			r.Ops[key]++
		}
		return nil
	})
	r.CustomOps = []CustomOp{}
	ml := 0
	for k, c := range custom {
		r.CustomOps = append(r.CustomOps, CustomOp{Domain: k[0], Op: k[1], Count: c})
		if k[0] == "ai.onnx.ml" {
			ml += c
		}
	}
	sort.Slice(r.CustomOps, func(i, j int) bool {
		a, b := r.CustomOps[i], r.CustomOps[j]
		if a.Domain != b.Domain {
			return a.Domain < b.Domain
		}
		return a.Op < b.Op
	})
	r.Notes = []string{}
	if ml > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d ai.onnx.ml (ONNX-ML, classical machine learning) nodes: a standard domain, but many runtimes and optimizers do not support it", ml))
	}
	if n := len(r.CustomOps) - countDomain(r.CustomOps, "ai.onnx.ml"); n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d custom-domain op types: only runtimes that implement them can run this model", n))
	}
	if r.UnknownValues > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("shape inference could not work out %d values; FLOPs and memory count only what is known", r.UnknownValues))
	}
	if len(r.UnknownCost) > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d nodes have unknown or partial cost", len(r.UnknownCost)))
	}
	if len(opts.Shapes) == 0 {
		var dyn []string
		for _, v := range g.RealInputs() {
			if _, static := v.Shape.Static(); v.HasShape && !static {
				dyn = append(dyn, v.Name)
			}
		}
		switch {
		case len(dyn) > 0 && r.CostShapes != nil:
			r.Notes = append(r.Notes, fmt.Sprintf("inputs %s have dynamic dims: MACs, FLOPs and activation memory are computed at %s; pass --shape NAME=DIMS for another size", strings.Join(dyn, ", "), r.CostShapeNote))
		case len(dyn) > 0:
			r.Notes = append(r.Notes, fmt.Sprintf("inputs %s have dynamic dims: MACs, FLOPs and memory count only what fixed dims allow; pass --shape NAME=DIMS (e.g. --shape %s=1x...) for a real size", strings.Join(dyn, ", "), dyn[0]))
		}
	}
	if r.Params == 0 && r.ConstantParams > 0 {
		r.Notes = append(r.Notes, "the weights live in Constant nodes, not initializers: see constant_params")
	}
	if r.UnsupportedOps == nil {
		r.UnsupportedOps = map[string]int{}
	}
	return r, nil
}

// representative gives the input shapes costs are computed at: the
// --shape overrides when given (nil when the model has no dynamic dims
// left), else batch 1 and the other dynamic dims from the model's hints
// and strides (numerics.VerifyDims), with a note saying which.
func representative(m *graph.Model, given map[string][]int64) (map[string][]int64, string) {
	ins, err := numerics.InputsOf(m)
	if err != nil || !numerics.HasDynamicDims(ins) {
		return nil, ""
	}
	d := numerics.VerifyDims(m)[0]
	d.Shapes = given
	shapes, err := numerics.ResolveShapes(ins, d)
	if err != nil {
		return nil, ""
	}
	out := make(map[string][]int64, len(ins))
	parts := make([]string, len(ins))
	for i, in := range ins {
		out[in.Name] = shapes[i]
		parts[i] = in.Name + "=" + runtime.ShapeString(shapes[i])
	}
	how := d.String() + ", a size every stride of the model divides"
	switch covered := 0; {
	case len(given) == 0:
	default:
		for _, in := range ins {
			if _, ok := given[in.Name]; ok {
				covered++
			}
		}
		if covered == len(ins) {
			how = "--shape"
		} else {
			how = "--shape; inputs without one: " + how
		}
	}
	return out, strings.Join(parts, ", ") + " (" + how + ")"
}

func countDomain(ops []CustomOp, domain string) int {
	n := 0
	for _, o := range ops {
		if o.Domain == domain {
			n++
		}
	}
	return n
}

func describe(v *graph.ValueInfo) Value {
	out := Value{Name: v.Name, Type: v.TypeString()}
	if v.HasType && v.IsTensor() {
		out.DType = v.DType.String()
	} else if v.HasType {
		out.DType = v.TypeString()
	} else {
		out.DType = "?"
	}
	if v.HasType && v.IsTensor() && v.HasShape {
		out.Shape = make([]any, len(v.Shape))
		for i, d := range v.Shape {
			if d.Known() {
				out.Shape[i] = d.Size
			} else {
				out.Shape[i] = d.String()
			}
		}
	}
	return out
}
