package pattern

import (
	"github.com/optictl/optictl/pkg/graph"
)

// ConvFollower is a Conv whose output only f reads:
//
//	Y = Conv(X, W, B?); Z = f(Y, ...)
//
// W is a float32 constant of rank >= 3 (M output channels); B, when
// present, a float32 constant of M values.
type ConvFollower struct {
	Conv, F *graph.Node
	W       *graph.Tensor
	WData   []float32
	Bias    []float32 // nil when the Conv has no bias
	M       int64
	Spatial int    // rank of W - 2
	Other   string // f's other operand (binary f only)
}

// MatchConvFollower matches the Conv that feeds node f (a binary op, or
// BatchNormalization through its input 0).
func MatchConvFollower(v *View, f *graph.Node) (*ConvFollower, *Mismatch) {
	if len(f.Inputs) == 0 {
		return nil, miss(f, "no inputs")
	}
	var conv *graph.Node
	slot := 0
	for i, in := range f.Inputs[:min(len(f.Inputs), 2)] {
		if p := v.Producer(in); p != nil && p.Is("Conv") {
			conv, slot = p, i
		}
	}
	if conv == nil {
		return nil, miss(f, "no input is produced by a Conv")
	}
	if f.Is("BatchNormalization") && slot != 0 {
		return nil, miss(f, "the Conv feeds a parameter, not the data input")
	}
	if len(conv.Outputs) != 1 {
		return nil, miss(f, "%s has %d outputs", NodeName(conv), len(conv.Outputs))
	}
	if v.Sole(conv.Outputs[0]) != f {
		return nil, miss(f, "%s's output %s", NodeName(conv), v.readers(conv.Outputs[0]))
	}
	if len(conv.Inputs) < 2 {
		return nil, miss(f, "%s has no weight", NodeName(conv))
	}
	wv, w := v.Float32s(conv.Inputs[1])
	if wv == nil {
		return nil, miss(f, "%s's weight %s is not a float32 constant", NodeName(conv), conv.Inputs[1])
	}
	if len(w.Dims) < 3 {
		return nil, miss(f, "%s's weight has rank %d", NodeName(conv), len(w.Dims))
	}
	m := &ConvFollower{Conv: conv, F: f, W: w, WData: wv, M: w.Dims[0], Spatial: len(w.Dims) - 2}
	if len(conv.Inputs) > 2 && conv.Inputs[2] != "" {
		m.Bias, _ = v.Float32s(conv.Inputs[2])
		if int64(len(m.Bias)) != m.M || m.Bias == nil {
			return nil, miss(f, "%s's bias %s is not a float32 constant of %d values", NodeName(conv), conv.Inputs[2], m.M)
		}
	}
	if len(f.Inputs) == 2 {
		m.Other = Other(f, conv.Outputs[0])
	}
	return m, nil
}

// BN is an inference-mode BatchNormalization's parameters.
type BN struct {
	Scale, Bias, Mean, Var []float32
	Eps                    float64
}

// InferenceBN matches a BatchNormalization in inference mode whose extra
// outputs nobody reads, with float32 constant parameters of m values.
func InferenceBN(v *View, bn *graph.Node, m int64) (BN, *Mismatch) {
	var r BN
	if !bn.Is("BatchNormalization") || len(bn.Inputs) != 5 {
		return r, miss(bn, "not a BatchNormalization with 5 inputs")
	}
	if bn.AttrInt("training_mode", 0) != 0 {
		return r, miss(bn, "training_mode is set")
	}
	if bn.AttrInt("spatial", 1) != 1 {
		return r, miss(bn, "spatial is 0 (per-activation statistics)")
	}
	for _, o := range bn.Outputs[1:] {
		if o != "" && (len(v.Consumers(o)) > 0 || v.G.IsGraphOutput(o)) {
			return r, miss(bn, "its training output %s is used", o)
		}
	}
	var p [4][]float32
	for i := range p {
		p[i], _ = v.Float32s(bn.Inputs[i+1])
		if int64(len(p[i])) != m || p[i] == nil {
			return r, miss(bn, "parameter %s is not a float32 constant of %d values", bn.Inputs[i+1], m)
		}
	}
	return BN{Scale: p[0], Bias: p[1], Mean: p[2], Var: p[3], Eps: float64(bn.AttrFloat("epsilon", 1e-5))}, nil
}

// PerChannel returns t's values as m per-channel values when t broadcasts
// against a tensor of rank 2+spatial (N, M, spatial...) along the channel
// axis only: one element, or shape [M,1,..,1] / [1,M,1,..,1] and so on,
// of rank at most 2+spatial. It returns nil otherwise.
func PerChannel(t *graph.Tensor, m int64, spatial int) []float32 {
	if t == nil || t.DType != graph.Float || len(t.Dims) > spatial+2 {
		return nil
	}
	d, err := t.Float32s()
	if err != nil || int64(len(d)) != t.Len() {
		return nil
	}
	if len(d) == 1 {
		out := make([]float32, m)
		for i := range out {
			out[i] = d[0]
		}
		return out
	}
	// The channel axis 1 of the output is axis len-spatial-1 of t.
	ax := len(t.Dims) - spatial - 1
	if ax < 0 || t.Dims[ax] != m {
		return nil
	}
	for i, s := range t.Dims {
		if i != ax && s != 1 {
			return nil
		}
	}
	return d
}
