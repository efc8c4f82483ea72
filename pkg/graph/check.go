package graph

import (
	"fmt"
	"strings"
)

// Check is the model checker ONNX Runtime's own loader lacks. ORT trusts a
// model's attributes and ranks in places and aborts the whole process
// (a libstdc++ assertion, a division by a zero stride, a negative pad used
// as an index) where it should return an error. Check refuses those models
// first, naming the node:
//
//   - the operator schema (CheckSchema: input/output counts, required inputs);
//   - convolution, pooling and Col2Im attributes: strides, dilations,
//     kernel_shape and group positive, pads non-negative, and their
//     lengths consistent with each other and with the spatial rank;
//     GroupNormalization's num_groups positive; Col2Im's constant
//     image_shape and block_shape positive;
//   - ranks, where known (declared, an initializer, or inferred): a
//     convolution's input at least 3-D and its weight of the same rank, a
//     pool's input at least 3-D, Gemm's operands 2-D, LSTM/GRU/RNN's
//     operands 3-D (biases 2-D), a convolution weight whose spatial dims
//     match kernel_shape and whose channels match the input's.
//
// Load runs the parts that need no shapes (the schema and attributes).
//
// CheckORT adds what only ONNX Runtime trips on.
//
// Check is conservative: what it cannot tell (an unknown rank, a symbolic
// dim) it lets through; every ONNX node conformance model passes it. It
// does not modify m.
func (m *Model) Check() error { return m.check(false) }

// CheckORT is Check plus what only ONNX Runtime trips on although the
// schema allows it (a com.microsoft Attention without its optional bias).
// The ort backend runs it before creating a session.
func (m *Model) CheckORT() error { return m.check(true) }

func (m *Model) check(ort bool) error {
	if err := m.CheckSchema(); err != nil {
		return err
	}
	c := &checker{m: m, ort: ort}
	// Ranks come from shape inference on a copy (Clone shares the weights).
	work := m.Clone()
	if _, err := InferShapes(work, InferOptions{}); err == nil {
		c.vi = work.Graph.ValueInfoMap()
	} else {
		c.vi = m.Graph.ValueInfoMap()
	}
	c.inits = m.Graph.InitializerMap()
	return c.graph(m.Graph, true, 0)
}

// checkAttrs is the part of Check that needs no shapes (attribute values
// and lengths), cheap enough for Load to run on every model.
func (m *Model) checkAttrs() error {
	return (&checker{m: m, inits: m.Graph.InitializerMap()}).graph(m.Graph, false, 0)
}

type checker struct {
	m     *Model
	ort   bool // add ONNX Runtime's own hazards
	vi    map[string]*ValueInfo
	inits map[string]*Tensor
}

// CheckError is a node Check refuses.
type CheckError struct {
	Node   string // `Conv "conv1"`
	Reason string
}

func (e *CheckError) Error() string { return fmt.Sprintf("graph: node %s: %s", e.Node, e.Reason) }

// graph checks g's nodes; top: g is the model's graph and shapes are
// known (c.vi), so ranks are checked too.
func (c *checker) graph(g *Graph, top bool, depth int) error {
	if depth > maxSubgraphDepth {
		return fmt.Errorf("graph: subgraphs nested more than %d deep", maxSubgraphDepth)
	}
	for _, n := range g.Nodes {
		if n == nil {
			continue
		}
		if err := c.node(n, top); err != nil {
			return err
		}
		for _, sg := range n.Subgraphs() {
			if sg != nil {
				if err := c.graph(sg, false, depth+1); err != nil { // ranks: top level only
					return err
				}
			}
		}
	}
	return nil
}

// shapeOf returns what is known of a top-level value's shape.
func (c *checker) shapeOf(name string) (Shape, bool) {
	if name == "" {
		return nil, false
	}
	if t, ok := c.inits[name]; ok {
		return ShapeOf(t.Dims), true
	}
	if v, ok := c.vi[name]; ok && v.IsTensor() && v.HasShape {
		return v.Shape, true
	}
	return nil, false
}

// spatialOps: ops with kernel/stride/pad attributes, and the index of the
// weight input (-1: none).
var spatialOps = map[string]int{
	"Conv": 1, "ConvTranspose": 1, "ConvInteger": 1, "QLinearConv": 3, "DeformConv": 1,
	"com.microsoft.FusedConv": 1,
	"MaxPool":                 -1, "AveragePool": -1, "LpPool": -1, "MaxUnpool": -1,
	"Col2Im": -1, // its spatial rank is image_shape's length, not the input's
}

// rankRules: input index -> required rank, for ops whose kernels assume
// it (ORT asserts on an LSTM weight of rank 2).
var rankRules = map[string]map[int]int{
	"Gemm":                    {0: 2, 1: 2},
	"com.microsoft.FusedGemm": {0: 2, 1: 2},
	"LSTM":                    {0: 3, 1: 3, 2: 3, 3: 2, 5: 3, 6: 3, 7: 2},
	"GRU":                     {0: 3, 1: 3, 2: 3, 3: 2, 5: 3},
	"RNN":                     {0: 3, 1: 3, 2: 3, 3: 2, 5: 3},
}

// ranks checks the inputs of n whose rank the op fixes.
func (c *checker) ranks(n *Node, key string) error {
	rules := rankRules[key]
	for i := 0; i < len(n.Inputs); i++ {
		want, ok := rules[i]
		if !ok {
			continue
		}
		if s, ok := c.shapeOf(n.Inputs[i]); ok && len(s) != want {
			return fmt.Errorf("input %d (%q) has rank %d, %s takes rank %d there", i, n.Inputs[i], len(s), n.OpType, want)
		}
	}
	return nil
}

// nnMaxDims bounds the spatial axes Col2Im's shape operands may name.
const nnMaxDims = 16

// col2im checks Col2Im's image_shape and block_shape when they are
// initializers of the model's graph: ORT divides by block_shape (SIGFPE
// on 0).
func (c *checker) col2im(n *Node, spatialRank int, fail func(string, ...any) error) error {
	var lens [2]int
	for k, what := range []string{"image_shape", "block_shape"} {
		if k+1 >= len(n.Inputs) {
			return nil
		}
		t := c.inits[n.Inputs[k+1]]
		if t == nil {
			return nil
		}
		if len(t.Dims) != 1 || t.Dims[0] > nnMaxDims {
			return fail("%s (%q) has shape %v, not [1..%d]", what, n.Inputs[k+1], t.Dims, nnMaxDims)
		}
		v, err := t.AsInt64s()
		if err != nil {
			return nil
		}
		for _, d := range v {
			if d < 1 {
				return fail("%s (%q) is %v: every value must be >= 1", what, n.Inputs[k+1], v)
			}
		}
		lens[k] = len(v)
	}
	if lens[0] != lens[1] || (spatialRank >= 0 && spatialRank != lens[0]) {
		return fail("image_shape has %d values, block_shape %d, the attributes give %d axes", lens[0], lens[1], spatialRank)
	}
	return nil
}

var poolNeedsKernel = map[string]bool{"MaxPool": true, "AveragePool": true, "LpPool": true, "MaxUnpool": true}

func opKeyOf(n *Node) string {
	switch {
	case n.IsDefaultDomain():
		return n.OpType
	case n.Domain == "com.microsoft":
		return "com.microsoft." + n.OpType
	}
	return ""
}

func (c *checker) node(n *Node, top bool) error {
	fail := func(format string, args ...any) error {
		return &CheckError{Node: n.String(), Reason: fmt.Sprintf(format, args...)}
	}
	key := opKeyOf(n)
	if c.ort && key == "com.microsoft.Attention" && (len(n.Inputs) < 3 || n.Inputs[2] == "") {
		// The schema marks bias optional, but ONNX Runtime 1.24's CPU
		// kernel dereferences it (SIGSEGV).
		return fail("has no bias (input 2); ONNX Runtime's Attention kernel needs one")
	}
	if key == "GroupNormalization" {
		// ORT divides by it (SIGFPE on 0).
		if a := n.Attr("num_groups"); a != nil && (a.Type != AttrInt || a.I < 1) {
			return fail("attribute num_groups=%d must be >= 1", a.I)
		}
	}
	if top {
		if err := c.ranks(n, key); err != nil {
			return fail("%v", err)
		}
	}
	wIdx, spatial := spatialOps[key]
	if !spatial {
		return nil
	}
	// Attribute values and lengths.
	spatialRank := -1
	lenOf := map[string]int{}
	for _, a := range []struct {
		name string
		min  int64
		half bool // pads: 2 values per spatial axis
	}{{"kernel_shape", 1, false}, {"strides", 1, false}, {"dilations", 1, false}, {"pads", 0, true}, {"output_padding", 0, false}} {
		at := n.Attr(a.name)
		if at == nil {
			continue
		}
		if at.Type != AttrInts {
			return fail("attribute %s is %s, not INTS", a.name, at.Type)
		}
		if len(at.Ints) == 0 {
			continue // empty means the default, as ONNX Runtime reads it
		}
		for _, v := range at.Ints {
			if v < a.min {
				return fail("attribute %s=%v: every value must be >= %d", a.name, at.Ints, a.min)
			}
			if v > maxSpatial {
				return fail("attribute %s=%v: value %d is absurd (> %d)", a.name, at.Ints, v, int64(maxSpatial))
			}
		}
		k := len(at.Ints)
		if a.half {
			if k%2 != 0 {
				return fail("attribute pads=%v has an odd length", at.Ints)
			}
			k /= 2
		}
		if a.name == "output_padding" {
			continue
		}
		lenOf[a.name] = k
		if spatialRank < 0 {
			spatialRank = k
		} else if k != spatialRank {
			return fail("attribute lengths disagree: %s", attrLens(lenOf))
		}
	}
	if g := n.Attr("group"); g != nil && (g.Type != AttrInt || g.I < 1) {
		return fail("attribute group=%d must be >= 1", g.I)
	}
	if poolNeedsKernel[key] && len(n.AttrInts("kernel_shape")) == 0 {
		return fail("has no kernel_shape attribute, which %s requires", n.OpType)
	}
	if key == "Col2Im" {
		return c.col2im(n, spatialRank, fail)
	}
	if !top {
		return nil
	}
	// Ranks.
	x, xok := c.shapeOf(firstInput(n))
	if xok {
		if len(x) < 3 {
			return fail("input %q has rank %d, %s takes an N x C x D1 x ... input (rank >= 3)", firstInput(n), len(x), n.OpType)
		}
		if spatialRank >= 0 && spatialRank != len(x)-2 {
			return fail("input %q has %d spatial axes but the attributes give %d (%s)", firstInput(n), len(x)-2, spatialRank, attrLens(lenOf))
		}
	}
	if wIdx < 0 || wIdx >= len(n.Inputs) {
		return nil
	}
	w, wok := c.shapeOf(n.Inputs[wIdx])
	if !wok {
		return nil
	}
	if xok && len(w) != len(x) {
		return fail("weight %q has rank %d for a rank-%d input %q (%s needs them equal)", n.Inputs[wIdx], len(w), len(x), firstInput(n), n.OpType)
	}
	if len(w) < 3 {
		return fail("weight %q has rank %d, %s needs rank >= 3", n.Inputs[wIdx], len(w), n.OpType)
	}
	if spatialRank >= 0 && len(w)-2 != spatialRank {
		return fail("weight %q has %d spatial axes but the attributes give %d (%s)", n.Inputs[wIdx], len(w)-2, spatialRank, attrLens(lenOf))
	}
	if ks := n.AttrInts("kernel_shape"); len(ks) == len(w)-2 {
		for i, k := range ks {
			if d := w[2+i]; d.Known() && d.Size != k {
				return fail("kernel_shape=%v disagrees with weight %q of shape %s", ks, n.Inputs[wIdx], w)
			}
		}
	}
	group := n.AttrInt("group", 1)
	if xok && x[1].Known() && group >= 1 {
		ch := x[1].Size
		switch key {
		case "ConvTranspose":
			if w[0].Known() && w[0].Size != ch {
				return fail("weight %q of shape %s has %d input channels, input %q has %d", n.Inputs[wIdx], w, w[0].Size, firstInput(n), ch)
			}
		case "Conv", "ConvInteger", "QLinearConv", "com.microsoft.FusedConv":
			if w[1].Known() && w[1].Size*group != ch {
				return fail("weight %q of shape %s with group %d reads %d channels, input %q has %d", n.Inputs[wIdx], w, group, w[1].Size*group, firstInput(n), ch)
			}
		}
	}
	return nil
}

// maxSpatial bounds a kernel, stride, dilation or pad: no real tensor has an
// axis of 2^31 elements, and ORT computes with these in 32-bit places.
const maxSpatial = 1<<31 - 1

func firstInput(n *Node) string {
	if len(n.Inputs) == 0 {
		return ""
	}
	return n.Inputs[0]
}

func attrLens(lens map[string]int) string {
	var parts []string
	for _, k := range []string{"kernel_shape", "strides", "dilations", "pads"} {
		if v, ok := lens[k]; ok {
			if k == "pads" {
				parts = append(parts, fmt.Sprintf("pads for %d axes", v))
			} else {
				parts = append(parts, fmt.Sprintf("%s of %d", k, v))
			}
		}
	}
	return strings.Join(parts, ", ")
}
