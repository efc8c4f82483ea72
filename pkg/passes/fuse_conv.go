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
// Matching: pattern.MatchConvFollower, pattern.InferenceBN and
// pattern.PerChannel (shared with interp's open-time Conv fusion).

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/pattern"
)

var convBN = &Pass{
	Name:  "fuse-conv-batchnorm",
	Doc:   "Fold BatchNormalization that follows a Conv into the Conv's weights and bias.",
	Level: O2,
	Run: func(c *Context) (bool, error) {
		return foldIntoConv(c, "BatchNormalization", func(v *pattern.View, cf *pattern.ConvFollower) ([]float32, []float32, *pattern.Mismatch) {
			bn, why := pattern.InferenceBN(v, cf.F, cf.M)
			if why != nil {
				return nil, nil, why
			}
			scale := make([]float32, cf.M)
			shift := make([]float32, cf.M)
			for i := range scale {
				k := float64(bn.Scale[i]) / math.Sqrt(float64(bn.Var[i])+bn.Eps)
				scale[i] = float32(k)
				shift[i] = float32(float64(bn.Bias[i]) - float64(bn.Mean[i])*k)
			}
			return scale, shift, nil
		}), nil
	},
}

var convMul = &Pass{
	Name:  "fuse-conv-mul",
	Doc:   "Fold a per-output-channel constant Mul after a Conv into its weights and bias.",
	Level: O2,
	Run: func(c *Context) (bool, error) {
		return foldIntoConv(c, "Mul", func(v *pattern.View, cf *pattern.ConvFollower) ([]float32, []float32, *pattern.Mismatch) {
			s, why := perChannelOperand(v, cf)
			if why != nil {
				return nil, nil, why
			}
			return s, make([]float32, cf.M), nil
		}), nil
	},
}

var convAdd = &Pass{
	Name:  "fuse-conv-add",
	Doc:   "Fold a per-output-channel constant Add after a Conv into its bias.",
	Level: O2,
	Run: func(c *Context) (bool, error) {
		return foldIntoConv(c, "Add", func(v *pattern.View, cf *pattern.ConvFollower) ([]float32, []float32, *pattern.Mismatch) {
			b, why := perChannelOperand(v, cf)
			if why != nil {
				return nil, nil, why
			}
			one := make([]float32, cf.M)
			for i := range one {
				one[i] = 1
			}
			return one, b, nil
		}), nil
	},
}

// perChannelOperand reads the follower's other operand as one value per
// output channel.
func perChannelOperand(v *pattern.View, cf *pattern.ConvFollower) ([]float32, *pattern.Mismatch) {
	t := v.Const(cf.Other)
	if t == nil {
		return nil, missf(cf.F, "its other operand %s is not a constant", cf.Other)
	}
	p := pattern.PerChannel(t, cf.M, cf.Spatial)
	if p == nil {
		return nil, missf(cf.F, "constant %s (%s %v) is not one float32 value per output channel (%d)", cf.Other, t.DType, t.Dims, cf.M)
	}
	return p, nil
}

// convFold is a Conv and the follower folded into it: W' = W*scale[oc],
// B' = B*scale + shift.
type convFold struct {
	*pattern.ConvFollower
	scale, shift []float32
}

// foldIntoConv folds each node of type op that follows a Conv (matched by
// pattern.MatchConvFollower) into the Conv, with the per-channel scale and
// shift params computes.
func foldIntoConv(c *Context, op string, params func(v *pattern.View, cf *pattern.ConvFollower) (scale, shift []float32, why *pattern.Mismatch)) bool {
	return runRule(c, rule[convFold]{
		Anchors: []string{op},
		Match: func(c *Context, v *pattern.View, f *graph.Node) (convFold, *pattern.Mismatch) {
			cf, why := pattern.MatchConvFollower(v, f)
			if why != nil {
				return convFold{}, why
			}
			scale, shift, why := params(v, cf)
			if why != nil {
				return convFold{}, why
			}
			if !allFinite(scale) || !allFinite(shift) {
				return convFold{}, missf(f, "the folded scale or shift is not finite")
			}
			return convFold{cf, scale, shift}, nil
		},
		Apply: func(c *Context, v *pattern.View, m convFold) []*graph.Node {
			g := c.Graph()
			conv, f, w, wv, bv := m.Conv, m.F, m.W, m.WData, m.Bias
			per := int64(len(wv)) / m.M
			nw := make([]float32, len(wv))
			for o := int64(0); o < m.M; o++ {
				for k := int64(0); k < per; k++ {
					nw[o*per+k] = wv[o*per+k] * m.scale[o]
				}
			}
			nb := make([]float32, m.M)
			for o := range nb {
				base := float32(0)
				if bv != nil {
					base = bv[o]
				}
				nb[o] = base*m.scale[o] + m.shift[o]
			}
			wName := addInitializer(g, conv.Inputs[1]+"_fused", graph.WrapFloat32("", w.Dims, nw))
			bName := addInitializer(g, wName+"_bias", graph.WrapFloat32("", []int64{m.M}, nb))
			conv.Inputs = []string{conv.Inputs[0], wName, bName}
			// The Conv now produces f's output in f's place.
			conv.Outputs = []string{f.Outputs[0]}
			// Keep topological order: the Conv moves to where f was.
			moveAfter(g, conv, f)
			return []*graph.Node{f}
		},
	})
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
