package opset

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics/half"
)

// Oldest is the oldest default-domain opset Convert reads.
const Oldest = 6

// Newest is the newest opset Convert writes: the newest version whose
// every operator change this package's adapter table covers (onnx 1.19,
// opset 24). Later opsets exist (the conformance data goes to 27) but
// their changes are not tabulated here, so converting to them is refused
// rather than guessed.
const Newest = 24

// Change is one node adapted on one version step.
type Change struct {
	Node string `json:"node"`
	Op   string `json:"op"`
	From int64  `json:"from"`
	To   int64  `json:"to"`
	What string `json:"what"`
}

// Report says what Convert did.
type Report struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
	// Nodes counts the default-domain nodes of the input model (all graphs).
	Nodes int `json:"nodes"`
	// Changes lists every adaptation, in step order.
	Changes []Change `json:"changes"`
	// IRVersion is the IR version written (raised when the opset needs it).
	IRVersion int64 `json:"ir_version"`
}

// RefusalError says why a node cannot be converted.
type RefusalError struct {
	Node   string // the node, as graph.Node.String prints it
	Op     string
	From   int64
	To     int64
	Reason string
}

func (e *RefusalError) Error() string {
	return fmt.Sprintf("opset: %s cannot be converted from opset %d to %d: %s", e.Node, e.From, e.To, e.Reason)
}

// ErrRefused is matched (errors.Is) by every *RefusalError.
var ErrRefused = errors.New("opset: node cannot be converted")

// Is makes errors.Is(err, ErrRefused) true for refusals.
func (e *RefusalError) Is(target error) bool { return target == ErrRefused }

// Convert returns a copy of m whose default-domain opset is target, with
// every node adapted; m is not modified. It fails, returning no model, when
// target is not in (current, Newest] (the same version returns an
// unchanged clone) or a node cannot be converted (*RefusalError).
func Convert(m *graph.Model, target int64) (*graph.Model, *Report, error) {
	if m == nil || m.Graph == nil {
		return nil, nil, fmt.Errorf("opset: model has no graph")
	}
	from := m.Opset("")
	switch {
	case from == 0:
		return nil, nil, fmt.Errorf("opset: the model imports no default-domain (ai.onnx) opset")
	case target > Newest:
		return nil, nil, fmt.Errorf("opset: target opset %d is newer than %d, the newest this converter knows", target, Newest)
	case target < from:
		return nil, nil, fmt.Errorf("opset: the model is at opset %d; converting down to %d is not supported", from, target)
	case from < Oldest:
		return nil, nil, fmt.Errorf("opset: the model is at opset %d; converting from opsets older than %d is not supported", from, Oldest)
	}
	if from == target {
		return m.Clone(), &Report{From: from, To: target, IRVersion: m.IRVersion}, nil
	}
	for _, f := range m.Functions {
		for _, o := range f.GetOpsetImport() {
			if (o.GetDomain() == "" || o.GetDomain() == "ai.onnx") && o.GetVersion() != target {
				return nil, nil, fmt.Errorf("opset: model-local function %q imports ai.onnx opset %d; converting inside functions is not supported (the model and its functions must import the same version)", f.GetName(), o.GetVersion())
			}
		}
	}
	c := &conv{orig: m, m: m.Clone()}
	rep := &Report{From: from, To: target}
	c.rep = rep
	_ = c.m.Graph.Walk(func(g *graph.Graph) error {
		for _, n := range g.Nodes {
			if n.IsDefaultDomain() {
				rep.Nodes++
			}
		}
		return nil
	})
	c.collectNames()
	for v := from; v < target; v++ {
		if err := c.step(v, v+1); err != nil {
			return nil, nil, err
		}
	}
	c.m.SetOpset("", target)
	for i := range c.m.Opsets {
		if c.m.Opsets[i].Domain == "ai.onnx" {
			c.m.Opsets[i].Version = target
		}
	}
	if ir := irFor(target); c.m.IRVersion < ir {
		c.m.IRVersion = ir
	}
	rep.IRVersion = c.m.IRVersion
	if err := c.m.Verify(); err != nil {
		return nil, nil, fmt.Errorf("opset: the converted model does not verify (a converter bug): %w", err)
	}
	return c.m, rep, nil
}

// irFor is the IR version onnx pairs with an opset (onnx/helper.py's
// VERSION_TABLE): the oldest IR that may import it.
func irFor(opset int64) int64 {
	switch {
	case opset <= 8:
		return 3
	case opset == 9:
		return 4
	case opset == 10:
		return 5
	case opset == 11:
		return 6
	case opset <= 14:
		return 7
	case opset <= 18:
		return 8
	case opset <= 20:
		return 9
	case opset <= 22:
		return 10
	default:
		return 11
	}
}

type conv struct {
	orig  *graph.Model
	m     *graph.Model
	rep   *Report
	used  map[string]bool
	types map[string]*graph.ValueInfo // from inference on orig, built on first use
}

func (c *conv) collectNames() {
	c.used = map[string]bool{"": true}
	_ = c.m.Graph.Walk(func(g *graph.Graph) error {
		for _, vs := range [][]*graph.ValueInfo{g.Inputs, g.Outputs, g.ValueInfo} {
			for _, v := range vs {
				c.used[v.Name] = true
			}
		}
		for _, t := range g.Initializers {
			c.used[t.Name] = true
		}
		for _, n := range g.Nodes {
			c.used[n.Name] = true
			for _, o := range n.Outputs {
				c.used[o] = true
			}
			for _, i := range n.Inputs {
				c.used[i] = true
			}
		}
		return nil
	})
}

func (c *conv) name(base string) string {
	if base == "" {
		base = "opset"
	}
	if !c.used[base] {
		c.used[base] = true
		return base
	}
	for i := 1; ; i++ {
		s := fmt.Sprintf("%s_%d", base, i)
		if !c.used[s] {
			c.used[s] = true
			return s
		}
	}
}

// valueInfo returns what shape inference on the original model knows about
// a value (names the adapters keep are the original ones), or nil.
func (c *conv) valueInfo(name string) *graph.ValueInfo {
	if c.types == nil {
		c.types = map[string]*graph.ValueInfo{}
		cl := c.orig.Clone()
		if _, err := graph.InferShapes(cl, graph.InferOptions{}); err == nil {
			_ = cl.Graph.Walk(func(g *graph.Graph) error {
				for _, vs := range [][]*graph.ValueInfo{g.Inputs, g.ValueInfo, g.Outputs} {
					for _, v := range vs {
						if v.IsTensor() {
							c.types[v.Name] = v
						}
					}
				}
				for _, t := range g.Initializers {
					c.types[t.Name] = &graph.ValueInfo{Name: t.Name, DType: t.DType, HasShape: true, Shape: graph.ShapeOf(t.Dims)}
				}
				return nil
			})
		}
	}
	return c.types[name]
}

// readers reports whether any node (in any graph) reads name or a graph
// output is name.
func (c *conv) readers(name string) bool {
	found := false
	_ = c.m.Graph.Walk(func(g *graph.Graph) error {
		for _, o := range g.Outputs {
			if o.Name == name {
				found = true
			}
		}
		for _, n := range g.Nodes {
			for _, i := range n.Inputs {
				if i == name {
					found = true
				}
			}
		}
		return nil
	})
	return found
}

func (c *conv) step(from, to int64) error {
	var graphs []*graph.Graph
	_ = c.m.Graph.Walk(func(g *graph.Graph) error {
		graphs = append(graphs, g)
		return nil
	})
	for _, g := range graphs {
		out := make([]*graph.Node, 0, len(g.Nodes))
		for _, n := range g.Nodes {
			if !n.IsDefaultDomain() {
				out = append(out, n)
				continue
			}
			a := adapters[key{n.OpType, to}]
			if a == nil {
				out = append(out, n)
				continue
			}
			s := &step{c: c, g: g, n: n, from: from, to: to}
			desc, before := n.String(), signature(n)
			repl, err := a.apply(s)
			if err != nil {
				var re *RefusalError
				if errors.As(err, &re) {
					return err
				}
				return s.refuse("%v", err)
			}
			if repl == nil {
				repl = []*graph.Node{n}
				if signature(n) == before {
					out = append(out, n)
					continue // the old form is already valid in the new version
				}
			}
			out = append(out, repl...)
			c.rep.Changes = append(c.rep.Changes, Change{Node: desc, Op: a.op, From: from, To: to, What: a.what})
		}
		g.Nodes = out
	}
	return nil
}

// step is one node on one version step, with the helpers adapters use.
type step struct {
	c        *conv
	g        *graph.Graph
	n        *graph.Node
	from, to int64
}

func (s *step) refuse(format string, args ...any) error {
	return &RefusalError{Node: s.n.String(), Op: s.n.OpType, From: s.from, To: s.to, Reason: fmt.Sprintf(format, args...)}
}

// base names new values after the node's first output.
func (s *step) base(suffix string) string {
	b := s.n.Name
	if len(s.n.Outputs) > 0 && s.n.Outputs[0] != "" {
		b = s.n.Outputs[0]
	}
	return s.c.name(b + "_" + suffix)
}

func (s *step) addInit(t *graph.Tensor) string {
	s.g.Initializers = append(s.g.Initializers, t)
	return t.Name
}

func (s *step) ints(suffix string, v []int64) string {
	return s.addInit(graph.NewInt64(s.base(suffix), []int64{int64(len(v))}, append([]int64(nil), v...)))
}

func (s *step) intScalar(suffix string, v int64) string {
	return s.addInit(graph.NewInt64(s.base(suffix), nil, []int64{v}))
}

func (s *step) floats(suffix string, v []float32) string {
	return s.addInit(graph.NewFloat32(s.base(suffix), []int64{int64(len(v))}, append([]float32(nil), v...)))
}

// scalar adds a 0-d constant of the given element type holding v.
func (s *step) scalar(suffix string, dt graph.DType, v float64) (string, error) {
	raw, err := encodeScalar(dt, v)
	if err != nil {
		return "", err
	}
	return s.addInit(graph.NewRaw(s.base(suffix), dt, nil, raw)), nil
}

// dtype is the element type of a value (Undefined when unknown).
func (s *step) dtype(name string) graph.DType {
	if t := s.g.Initializer(name); t != nil {
		return t.DType
	}
	if v := s.c.valueInfo(name); v != nil {
		return v.DType
	}
	return graph.Undefined
}

// rank is the rank of a value (-1 when unknown).
func (s *step) rank(name string) int {
	if v := s.c.valueInfo(name); v != nil && v.HasShape {
		return len(v.Shape)
	}
	return -1
}

// node makes a helper node named after the adapted one.
func (s *step) node(op string, ins, outs []string, attrs ...*graph.Attr) *graph.Node {
	return &graph.Node{Name: s.c.name(s.n.Name + "_" + strings.ToLower(op)), OpType: op, Domain: s.n.Domain, Inputs: ins, Outputs: outs, Attrs: attrs}
}

// dropUnusedOutputs trims trailing optional outputs from index keep on,
// refusing when one of them is read.
func (s *step) dropUnusedOutputs(keep int, why string) error {
	for i := keep; i < len(s.n.Outputs); i++ {
		if o := s.n.Outputs[i]; o != "" && s.c.readers(o) {
			return s.refuse("output %d %q is read, but %s", i, o, why)
		}
	}
	if len(s.n.Outputs) > keep {
		s.n.Outputs = s.n.Outputs[:keep]
	}
	return nil
}

func encodeScalar(dt graph.DType, v float64) ([]byte, error) {
	var b []byte
	switch dt {
	case graph.Float:
		b = binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(v)))
	case graph.Double:
		b = binary.LittleEndian.AppendUint64(nil, math.Float64bits(v))
	case graph.Float16:
		b = binary.LittleEndian.AppendUint16(nil, half.Float32ToFloat16(float32(v)))
	case graph.BFloat16:
		b = binary.LittleEndian.AppendUint16(nil, uint16(math.Float32bits(float32(v))>>16))
	case graph.Int8, graph.Uint8:
		b = []byte{byte(int64(v))}
	case graph.Int16, graph.Uint16:
		b = binary.LittleEndian.AppendUint16(nil, uint16(int64(v)))
	case graph.Int32, graph.Uint32:
		b = binary.LittleEndian.AppendUint32(nil, uint32(int64(v)))
	case graph.Int64, graph.Uint64:
		b = binary.LittleEndian.AppendUint64(nil, uint64(int64(v)))
	case graph.Bool:
		if v != 0 {
			b = []byte{1}
		} else {
			b = []byte{0}
		}
	default:
		return nil, fmt.Errorf("no scalar constant of element type %s", dt)
	}
	return b, nil
}

// signature prints what an adapter may change in a node.
func signature(n *graph.Node) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%q|%q", n.OpType, n.Inputs, n.Outputs)
	for _, a := range n.Attrs {
		fmt.Fprintf(&b, "|%s:%d:%d:%g:%q:%v:%v", a.Name, a.Type, a.I, a.F, a.S, a.Ints, a.Floats)
	}
	return b.String()
}
