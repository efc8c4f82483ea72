package passes

// ONNX Runtime CPU: multi-head self-attention -> com.microsoft Attention.
//   Before: for P in q, k, v: L_P = MatMul(X, W_P) [+ Add(b_P)];
//           R_P = Reshape(L_P, [0, 0, H, Dh]);
//           Q = Transpose(R_q, [0,2,1,3]); K = Transpose(R_k, [0,2,3,1]);
//           V = Transpose(R_v, [0,2,1,3]);
//           S = MatMul(Q, K) [then Div(S, c) or Mul(S, c)];
//           P = Softmax(S, axis=-1); C = MatMul(P, V);
//           Y = Reshape(Transpose(C, [0,2,1,3]), [0, 0, H*Dh])
//   After:  Y = com.microsoft.Attention(X, [W_q|W_k|W_v], [b_q|b_k|b_v])
//           {num_heads=H, scale=1/c, c or 1}
// Preconditions: --target ort-cpu and the backend runs com.microsoft
// Attention; X float32 of rank 3 (the op's [batch, sequence, hidden]);
// W_P float32 constants of one shape [D, H*Dh], b_P constants [H*Dh] (a
// missing bias is zeros); reshape targets constant with 0 (copy) or the
// matching size in the leading dims and allowzero unset; c a scalar
// constant; no mask (a masked pattern is left alone); every intermediate
// read only inside the pattern and not a graph output.

import (
	"math"
	"slices"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/pattern"
)

var ortAttention = &Pass{
	Name:    "fuse-ort-attention",
	Doc:     "Fuse multi-head self-attention (Q/K/V projections to the merged heads) into com.microsoft Attention (ONNX Runtime CPU).",
	Level:   O3,
	Targets: []string{TargetORTCPU},
	Run: func(c *Context) (bool, error) {
		return runORTFusion(c, "Attention", func(e *fusionEnv, out *graph.Node) bool {
			if !out.Is("Reshape") {
				return false
			}
			m, ok := matchAttention(c.Model.Opset(""), e, out)
			if !ok {
				return false
			}
			g, ci := e.g, e.ci
			D, hid := m.d, m.h*m.dh
			w := make([]float32, D*3*hid)
			bias := make([]float32, 3*hid)
			for p := 0; p < 3; p++ {
				src := floatConst(ci.get(m.w[p]))
				for r := 0; r < D; r++ {
					copy(w[r*3*hid+p*hid:][:hid], src[r*hid:][:hid])
				}
				if m.b[p] != "" {
					copy(bias[p*hid:][:hid], floatConst(ci.get(m.b[p])))
				}
			}
			wName := addInitializer(g, "attn_qkv_weight", graph.NewFloat32("", []int64{int64(D), int64(3 * hid)}, w))
			bName := addInitializer(g, "attn_qkv_bias", graph.NewFloat32("", []int64{int64(3 * hid)}, bias))
			att := &graph.Node{Name: g.UniqueName("Attention_" + out.Outputs[0]), OpType: "Attention", Domain: "com.microsoft",
				Inputs: []string{m.x, wName, bName}, Outputs: []string{out.Outputs[0]},
				Attrs: []*graph.Attr{graph.IntAttr("num_heads", int64(m.h)), graph.FloatAttr("scale", float32(m.scale))}}
			for _, n := range m.inner {
				e.dead[n] = true
			}
			*out = *att
			return true
		})
	},
}

type attnMatch struct {
	x     string
	w, b  [3]string // q, k, v weights and biases ("" for none)
	d     int       // input hidden size
	h, dh int
	scale float64
	inner []*graph.Node
}

// matchAttention matches the pattern in the file comment at its last
// Reshape.
func matchAttention(opset int64, e *fusionEnv, out *graph.Node) (attnMatch, bool) {
	g, prod, cons, ci, infos := e.g, e.prod, e.cons, e.ci, e.infos
	var no attnMatch
	var inner []*graph.Node
	// one returns the producer of v when v is read only by its consumer in
	// the pattern, and records it as replaced.
	one := func(v, op string) *graph.Node {
		p := producerOf(prod, v)
		if p == nil || !p.Is(op) || len(p.Outputs) != 1 || !singleUse(g, cons, v) {
			return nil
		}
		inner = append(inner, p)
		return p
	}
	perm := func(n *graph.Node, want ...int64) bool { return equalInts(n.AttrInts("perm"), want) }
	if len(out.Inputs) != 2 || out.AttrInt("allowzero", 0) != 0 {
		return no, e.miss(out, "it is not a Reshape with allowzero 0 and a shape input")
	}
	outShape, ok := intsConst(ci.get(out.Inputs[1]))
	if !ok || len(outShape) != 3 {
		return no, e.miss(out, "its target shape is not a rank-3 constant")
	}
	tr := one(out.Inputs[0], "Transpose")
	if tr == nil || !perm(tr, 0, 2, 1, 3) {
		return no, e.miss(out, "its input is not a Transpose(0,2,1,3) read only here")
	}
	ctx := one(tr.Inputs[0], "MatMul")
	if ctx == nil || len(ctx.Inputs) != 2 {
		return no, e.miss(out, "the Transpose does not read a MatMul (attention x V) read only there")
	}
	sm := one(ctx.Inputs[0], "Softmax")
	if sm == nil {
		return no, e.miss(out, "the context MatMul does not read a Softmax read only there")
	}
	// Softmax over the last axis. Before opset 13 the default axis is 1
	// (and the op flattens from the axis on, so 3 of a rank-4 input is
	// the last axis either way).
	defAxis := int64(-1)
	if opset < 13 {
		defAxis = 1
	}
	if ax := sm.AttrInt("axis", defAxis); ax != -1 && ax != 3 {
		return no, e.miss(out, "the Softmax is not over the last axis")
	}
	scale := 1.0
	s := producerOf(prod, sm.Inputs[0])
	if s != nil && (s.Is("Div") || s.Is("Mul")) && len(s.Inputs) == 2 {
		k, ok := scalarFloat(ci.get(s.Inputs[1]))
		if !ok || k == 0 || math.IsInf(k, 0) || math.IsNaN(k) || !singleUse(g, cons, s.Outputs[0]) {
			return no, e.miss(out, "the scores are scaled by %s, which is not a finite non-zero scalar read only there", s.Inputs[1])
		}
		if s.Is("Div") {
			k = 1 / k
		}
		scale = k
		inner = append(inner, s)
		s = one(s.Inputs[0], "MatMul")
	} else {
		s = one(sm.Inputs[0], "MatMul")
	}
	if s == nil || len(s.Inputs) != 2 {
		return no, e.miss(out, "the Softmax does not read a MatMul (Q x K) read only there")
	}
	var m attnMatch
	m.scale = scale
	// head returns the projection feeding a Transpose(Reshape(.)) branch.
	head := func(v string, p ...int64) (x, w, b string, h, dh int, ok bool) {
		t := one(v, "Transpose")
		if t == nil || !perm(t, p...) {
			return
		}
		r := one(t.Inputs[0], "Reshape")
		if r == nil || len(r.Inputs) != 2 || r.AttrInt("allowzero", 0) != 0 {
			return
		}
		sh, okc := intsConst(ci.get(r.Inputs[1]))
		if !okc || len(sh) != 4 || sh[2] <= 0 || sh[3] <= 0 || sh[0] != 0 || sh[1] != 0 {
			return
		}
		lin := r.Inputs[0]
		if a := producerOf(prod, lin); a != nil && a.Is("Add") && len(a.Inputs) == 2 {
			i := slices.IndexFunc(a.Inputs, func(in string) bool {
				mm := producerOf(prod, in)
				bt := ci.get(a.Inputs[1-slices.Index(a.Inputs, in)])
				return mm != nil && mm.Is("MatMul") && floatConst(bt) != nil && len(bt.Dims) == 1
			})
			if i < 0 || a.Inputs[0] == a.Inputs[1] || one(lin, "Add") == nil {
				return
			}
			b, lin = a.Inputs[1-i], a.Inputs[i]
		}
		mm := one(lin, "MatMul")
		if mm == nil || len(mm.Inputs) != 2 {
			return
		}
		wt := ci.get(mm.Inputs[1])
		if floatConst(wt) == nil || len(wt.Dims) != 2 || wt.Dims[1] != sh[2]*sh[3] {
			return
		}
		if b != "" && ci.get(b).Dims[0] != wt.Dims[1] {
			return
		}
		return mm.Inputs[0], mm.Inputs[1], b, int(sh[2]), int(sh[3]), true
	}
	xq, wq, bq, hq, dq, okq := head(s.Inputs[0], 0, 2, 1, 3)
	xk, wk, bk, hk, dk, okk := head(s.Inputs[1], 0, 2, 3, 1)
	xv, wv, bv, hv, dv, okv := head(ctx.Inputs[1], 0, 2, 1, 3)
	if !okq || !okk || !okv || xq != xk || xq != xv || hq != hk || hq != hv || dq != dk || dq != dv {
		return no, e.miss(out, "the Q, K and V branches are not Transpose(Reshape(MatMul(X, W) [+ b])) of one X, heads and head size")
	}
	if ci.get(xq) != nil {
		return no, e.miss(out, "X (%s) is a constant", xq)
	}
	wts := [3]*graph.Tensor{ci.get(wq), ci.get(wk), ci.get(wv)}
	for _, t := range wts[1:] {
		if !equalInts(t.Dims, wts[0].Dims) {
			return no, e.miss(out, "the Q, K and V weights differ in shape")
		}
	}
	hid := int64(hq * dq)
	if !((outShape[0] == 0) && (outShape[1] == 0) && (outShape[2] == hid || outShape[2] == -1)) {
		return no, e.miss(out, "its target shape is not [0, 0, heads*head size]")
	}
	vi := infos[xq]
	if vi == nil || !vi.HasShape || len(vi.Shape) != 3 || vi.DType != graph.Float {
		return no, e.miss(out, "X (%s) is not a float32 of known rank 3", xq)
	}
	if d := vi.Shape[2]; d.Known() && d.Size != wts[0].Dims[0] {
		return no, e.miss(out, "X's hidden size does not match the weights")
	}
	m.x = xq
	m.w = [3]string{wq, wk, wv}
	m.b = [3]string{bq, bk, bv}
	m.d, m.h, m.dh = int(wts[0].Dims[0]), hq, dq
	// The final Reshape is replaced in place; the rest go.
	m.inner = inner
	return m, true
}

// miss records why candidate n was not fused (when explaining) and
// returns false.
func (e *fusionEnv) miss(n *graph.Node, format string, args ...any) bool {
	e.c.Miss(n, format, args...)
	return false
}

// fusionEnv is what an ORT fusion's visitor reads and marks.
type fusionEnv struct {
	g     *graph.Graph
	prod  map[string]*graph.Node
	cons  map[string][]*graph.Node
	ci    *constIndex
	infos map[string]*graph.ValueInfo
	v     *pattern.View        // matchers' view, indexed with prod and cons
	dead  map[*graph.Node]bool // replaced nodes, removed after the walk
	c     *Context             // records why candidates did not match
}

// runORTFusion walks the graph once for a fusion that writes the
// com.microsoft op: visit rewrites at n (in place; nodes it replaces go in
// e.dead) and reports whether it did. Skipped with a note when the target
// backend does not run op.
func runORTFusion(c *Context, op string, visit func(e *fusionEnv, n *graph.Node) bool) (bool, error) {
	if !targetSupports(c, "com.microsoft", op) {
		c.Note("target backend does not run com.microsoft.%s: skipped", op)
		return false, nil
	}
	g := c.Graph()
	e := &fusionEnv{g: g, prod: g.Producers(), cons: g.Consumers(), ci: newConstIndex(g), infos: inferredInfos(c.Model), dead: map[*graph.Node]bool{}}
	e.v = pattern.NewView(g, e.ci.get, c.Model.Opset)
	e.c = c
	changed := false
	for _, n := range g.Nodes {
		if e.dead[n] {
			continue
		}
		c.At(n)
		if visit(e, n) {
			changed = true
		}
	}
	g.RemoveNodes(e.dead)
	if changed && c.Model.Opset("com.microsoft") == 0 {
		c.Model.SetOpset("com.microsoft", 1)
	}
	return changed, nil
}

// inferredInfos returns the value infos graph.InferShapes works out on a
// copy of the model (symbolic dims kept), or the declared ones when
// inference fails.
func inferredInfos(m *graph.Model) map[string]*graph.ValueInfo {
	c := m.Clone()
	if _, err := graph.InferShapes(c, graph.InferOptions{}); err != nil {
		return m.Graph.ValueInfoMap()
	}
	return c.Graph.ValueInfoMap()
}
