package passes

// Conv + BatchNormalization.
//   Before: Y = Conv(X, W, B?); Z = BatchNormalization(Y, s, b, mean, var)
//   After:  Z = Conv(X, W', B') with W' = W*f per output channel,
//           B' = (B - mean)*f + b, f = s / sqrt(var + epsilon)
// Preconditions: default domain; Y read only by the BN and not a graph
// output; W, B, s, b, mean, var constant float32; BN has one used output and
// training_mode 0; W's first dim equals the channel count.
//
// Conv + Mul (scale) and Conv + Add (bias).
//   Before: Y = Conv(X, W, B?); Z = Mul(Y, S)   After: Z = Conv(X, W*S, B*S)
//   Before: Y = Conv(X, W, B?); Z = Add(Y, C)   After: Z = Conv(X, W, B+C)
// Preconditions: as above; S/C constant float32 holding one value per output
// channel (shape [M,1,..,1], [1,M,1,..,1] or one element), rank no larger
// than Conv's output.

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
)

var convBN = &Pass{
	Name:  "fuse-conv-batchnorm",
	Doc:   "Fold BatchNormalization that follows a Conv into the Conv's weights and bias.",
	Level: O2,
	Run: func(c *Context) (bool, error) {
		return rewriteConvFollower(c, func(n *graph.Node) bool { return n.Is("BatchNormalization") }, func(g *graph.Graph, ci *constIndex, cons map[string][]*graph.Node, f *graph.Node, m int64, spatial int) ([]float32, []float32, bool) {
			if len(f.Inputs) != 5 || f.AttrInt("training_mode", 0) != 0 {
				return nil, nil, false
			}
			for _, o := range f.Outputs[1:] {
				if o != "" && (len(cons[o]) > 0 || g.IsGraphOutput(o)) {
					return nil, nil, false
				}
			}
			s, b, mean, vr := floatConst(ci.get(f.Inputs[1])), floatConst(ci.get(f.Inputs[2])), floatConst(ci.get(f.Inputs[3])), floatConst(ci.get(f.Inputs[4]))
			if int64(len(s)) != m || int64(len(b)) != m || int64(len(mean)) != m || int64(len(vr)) != m {
				return nil, nil, false
			}
			eps := float64(f.AttrFloat("epsilon", 1e-5))
			scale := make([]float32, m)
			shift := make([]float32, m)
			for i := range scale {
				k := float64(s[i]) / math.Sqrt(float64(vr[i])+eps)
				scale[i] = float32(k)
				shift[i] = float32(float64(b[i]) - float64(mean[i])*k)
			}
			return scale, shift, true
		})
	},
}

var convMul = &Pass{
	Name:  "fuse-conv-mul",
	Doc:   "Fold a per-output-channel constant Mul after a Conv into its weights and bias.",
	Level: O2,
	Run: func(c *Context) (bool, error) {
		return rewriteConvFollower(c, func(n *graph.Node) bool { return n.Is("Mul") }, func(g *graph.Graph, ci *constIndex, _ map[string][]*graph.Node, f *graph.Node, m int64, spatial int) ([]float32, []float32, bool) {
			s, ok := perChannel(ci, f, m, spatial)
			if !ok {
				return nil, nil, false
			}
			return s, make([]float32, m), true
		})
	},
}

var convAdd = &Pass{
	Name:  "fuse-conv-add",
	Doc:   "Fold a per-output-channel constant Add after a Conv into its bias.",
	Level: O2,
	Run: func(c *Context) (bool, error) {
		return rewriteConvFollower(c, func(n *graph.Node) bool { return n.Is("Add") }, func(g *graph.Graph, ci *constIndex, _ map[string][]*graph.Node, f *graph.Node, m int64, spatial int) ([]float32, []float32, bool) {
			b, ok := perChannel(ci, f, m, spatial)
			if !ok {
				return nil, nil, false
			}
			one := make([]float32, m)
			for i := range one {
				one[i] = 1
			}
			return one, b, true
		})
	},
}

// perChannel reads the constant operand of a binary node f (the other
// operand being the Conv output, checked by the caller) as M values.
func perChannel(ci *constIndex, f *graph.Node, m int64, spatial int) ([]float32, bool) {
	if len(f.Inputs) != 2 {
		return nil, false
	}
	var t *graph.Tensor
	for _, in := range f.Inputs {
		if x := ci.get(in); x != nil {
			t = x
		}
	}
	v := floatConst(t)
	if v == nil || len(t.Dims) > spatial+2 {
		return nil, false
	}
	if len(v) == 1 {
		out := make([]float32, m)
		for i := range out {
			out[i] = v[0]
		}
		return out, true
	}
	if int64(len(v)) != m {
		return nil, false
	}
	// Shape [M,1,..,1] or [1,M,1,..,1]: the channel dim lines up with
	// the Conv output's dim 1.
	d := t.Dims
	ones := 0
	for i := len(d) - 1; i >= 0 && d[i] == 1; i-- {
		ones++
	}
	if ones != spatial || len(d)-ones < 1 || d[len(d)-ones-1] != m {
		return nil, false
	}
	for i := 0; i < len(d)-ones-1; i++ {
		if d[i] != 1 {
			return nil, false
		}
	}
	return v, true
}

// rewriteConvFollower folds a follower node into the Conv before it:
// W' = W*scale[oc], B' = B*scale + shift.
func rewriteConvFollower(c *Context, match func(*graph.Node) bool,
	params func(g *graph.Graph, ci *constIndex, cons map[string][]*graph.Node, f *graph.Node, m int64, spatial int) (scale, shift []float32, ok bool)) (bool, error) {
	g := c.Graph()
	changed := false
	cons := g.Consumers()
	prod := g.Producers()
	ci := newConstIndex(g)
	dead := map[*graph.Node]bool{}
	for _, f := range g.Nodes {
		if !match(f) || dead[f] || len(f.Inputs) == 0 {
			continue
		}
		// The Conv output is f's non-constant input.
		var conv *graph.Node
		for _, in := range f.Inputs[:min(len(f.Inputs), 2)] {
			if p := producerOf(prod, in); p != nil && p.Is("Conv") && !dead[p] {
				conv = p
			}
		}
		if conv == nil || f.Is("BatchNormalization") && prod[f.Inputs[0]] != conv {
			continue
		}
		c.At(f)
		y := conv.Outputs[0]
		if !singleUse(g, cons, y) || len(conv.Outputs) != 1 {
			continue
		}
		w := ci.get(conv.Inputs[1])
		wv := floatConst(w)
		if wv == nil || len(w.Dims) < 3 {
			continue
		}
		m := w.Dims[0]
		var bv []float32
		if len(conv.Inputs) > 2 && conv.Inputs[2] != "" {
			bv = floatConst(ci.get(conv.Inputs[2]))
			if int64(len(bv)) != m {
				continue
			}
		}
		scale, shift, ok := params(g, ci, cons, f, m, len(w.Dims)-2)
		if !ok || !allFinite(scale) || !allFinite(shift) {
			continue
		}
		per := int64(len(wv)) / m
		nw := make([]float32, len(wv))
		for o := int64(0); o < m; o++ {
			for k := int64(0); k < per; k++ {
				nw[o*per+k] = wv[o*per+k] * scale[o]
			}
		}
		nb := make([]float32, m)
		for o := range nb {
			base := float32(0)
			if bv != nil {
				base = bv[o]
			}
			nb[o] = base*scale[o] + shift[o]
		}
		wName := addInitializer(g, conv.Inputs[1]+"_fused", graph.WrapFloat32("", w.Dims, nw))
		bName := addInitializer(g, wName+"_bias", graph.WrapFloat32("", []int64{m}, nb))
		conv.Inputs = []string{conv.Inputs[0], wName, bName}
		// The Conv now produces f's output in f's place.
		conv.Outputs = []string{f.Outputs[0]}
		dead[f] = true
		changed = true
		// Keep topological order: the Conv moves to where f was.
		moveAfter(g, conv, f)
		ci = newConstIndex(g)
		cons = g.Consumers()
		prod = g.Producers()
	}
	g.RemoveNodes(dead)
	return changed, nil
}

// moveAfter moves node a to just after node b (b later in the list).
func moveAfter(g *graph.Graph, a, b *graph.Node) {
	ia, ib := -1, -1
	for i, n := range g.Nodes {
		if n == a {
			ia = i
		}
		if n == b {
			ib = i
		}
	}
	if ia < 0 || ib < 0 || ia > ib {
		return
	}
	copy(g.Nodes[ia:], g.Nodes[ia+1:ib+1])
	g.Nodes[ib] = a
}
