package numerics

import (
	"github.com/optictl/optictl/pkg/graph"
)

// MinSpatial is the smallest value VerifyDims gives a dynamic non-batch
// dim: large enough that pools, strided convs, Resize and ConvTranspose
// work on real windows (a 1x1 image exercises none of them).
const MinSpatial = 64

// VerifyDims chooses the dims of the seeded input sets that check a model
// without data (optimize's verification without --data). When no input has
// a dynamic dim it returns one zero Dims (the declared shapes). Otherwise it
// returns two representative sets:
//
//  1. batch 1, every other dynamic dim S;
//  2. batch 2, other dynamic dims alternating S and S+M (a non-square
//     H x W, so a transposed or swapped axis shows),
//
// where M is the model's total stride (the largest product of strides and
// block sizes of Conv, ConvTranspose, pools and SpaceToDepth along any path
// from an input, capped at 256) and S is the smallest multiple of M that is
// at least MinSpatial and at least the largest fixed dim at position >= 2 of
// a rank >= 3 input (the model's own hint of a realistic size, e.g. 48 in
// [?,3,48,?]). So every stride, pool and x2 Resize in the model divides the
// spatial dims evenly. The sets are shrunk (S by steps of M, then batch 2
// dropped) until one set's inputs take at most maxBytes/64, leaving room for
// activations; maxBytes <= 0 means DefaultMaxMemory.
//
// Callers fall back to all dynamic dims 1 (a zero Dims) only when the
// original model cannot run on any representative set (a model that
// hard-codes batch 1 in a Reshape, say), and say so.
func VerifyDims(m *graph.Model) []Dims {
	return VerifyDimsBounded(m, DefaultMaxMemory)
}

// VerifyDimsBounded is VerifyDims with an explicit memory bound.
func VerifyDimsBounded(m *graph.Model, maxBytes int64) []Dims {
	ins, err := InputsOf(m)
	if err != nil || !HasDynamicDims(ins) {
		return []Dims{{}}
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxMemory
	}
	stride := TotalStride(m.Graph)
	hint := int64(MinSpatial)
	for _, in := range ins {
		if len(in.Shape) < 3 {
			continue
		}
		for _, d := range in.Shape[2:] {
			if d > hint && d <= 4096 {
				hint = d
			}
		}
	}
	s := roundUp(hint, stride)
	budget := maxBytes / 64
	fits := func(d Dims) bool {
		shapes, err := ResolveShapes(ins, d)
		if err != nil {
			return true // the error shows when the set is made
		}
		var total int64
		for i, in := range ins {
			b, err := InputBytes(in.DType, shapes[i])
			if err != nil {
				return false
			}
			total += b
		}
		return total <= budget
	}
	for {
		a := Dims{Batch: 1, Spatial: []int64{s}}
		b := Dims{Batch: 2, Spatial: []int64{s, s + stride}}
		switch {
		case fits(b):
			return []Dims{a, b}
		case fits(a):
			return []Dims{a}
		case s > stride:
			s -= stride
		default:
			return []Dims{{Batch: 1, Spatial: []int64{stride}}}
		}
	}
}

func roundUp(v, m int64) int64 {
	if m <= 1 {
		return v
	}
	return (v + m - 1) / m * m
}

// TotalStride is the largest product of spatial strides (Conv,
// ConvTranspose, MaxPool, AveragePool, LpPool, their quantized forms) and
// SpaceToDepth block sizes along any path through g, at least 1 and capped
// at 256. Subgraphs are not entered.
func TotalStride(g *graph.Graph) int64 {
	const maxStride = 256
	acc := map[string]int64{}
	best := int64(1)
	for _, n := range g.Nodes {
		in := int64(1)
		for _, x := range n.Inputs {
			if v, ok := acc[x]; ok && v > in {
				in = v
			}
		}
		f := int64(1)
		switch n.OpType {
		case "Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "QLinearConv", "ConvInteger", "QLinearAveragePool":
			for _, s := range n.AttrInts("strides") {
				if s > f {
					f = s
				}
			}
		case "SpaceToDepth":
			f = max(n.AttrInt("blocksize", 1), 1)
		}
		out := min(in*f, maxStride)
		best = max(best, out)
		for _, y := range n.Outputs {
			acc[y] = out
		}
	}
	return best
}
