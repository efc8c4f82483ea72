package bench

import (
	"fmt"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
)

// maxInputBytes bounds one stacked input tensor (4 GiB), so an
// absurd --shape or --batch fails cleanly instead of exhausting memory.
const maxInputBytes = 4 << 30

// seededInputs makes one seeded tensor per input info, in order, with
// numerics' range policy and shape resolution: shapes[name] when given,
// else a dynamic first dim of batch and other dynamic dims of 1. maxBytes
// bounds the set (numerics.SeedOptions.MaxBytes).
func seededInputs(infos []runtime.IOInfo, shapes map[string][]int64, batch int, seed, maxBytes int64) ([]*runtime.Tensor, error) {
	if batch < 1 {
		return nil, fmt.Errorf("bench: batch %d is not positive", batch)
	}
	ts, err := numerics.Seeded(numerics.InputsFromInfos(infos), numerics.SeedOptions{Seed: uint64(seed), Dims: numerics.Dims{Shapes: shapes, Batch: int64(batch)}, MaxBytes: maxBytes})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return ts, nil
}

// Stack concatenates samples along the first axis into one batch: every
// sample of one input must have the same dtype and the same dims after the
// first. It returns an error naming the input otherwise.
func Stack(name string, samples []*runtime.Tensor) (*runtime.Tensor, error) {
	if len(samples) == 0 {
		return nil, fmt.Errorf("bench: input %q: nothing to stack", name)
	}
	first := samples[0]
	if len(first.Shape) == 0 {
		return nil, fmt.Errorf("bench: input %q is a scalar and cannot be stacked into a batch", name)
	}
	var rows int64
	var bytes int64
	for i, s := range samples {
		if s.DType != first.DType || len(s.Shape) != len(first.Shape) {
			return nil, fmt.Errorf("bench: input %q: sample %d is %s%v, sample 0 is %s%v", name, i, s.DType, s.Shape, first.DType, first.Shape)
		}
		for k := 1; k < len(s.Shape); k++ {
			if s.Shape[k] != first.Shape[k] {
				return nil, fmt.Errorf("bench: input %q: sample %d has shape %v, sample 0 has %v", name, i, s.Shape, first.Shape)
			}
		}
		rows += s.Shape[0]
		bytes += int64(len(s.Raw))
		if bytes > maxInputBytes {
			return nil, fmt.Errorf("bench: input %q: the stacked batch would exceed %d bytes", name, int64(maxInputBytes))
		}
	}
	shape := append([]int64{rows}, first.Shape[1:]...)
	out := runtime.NewTensor(first.DType, shape)
	if first.DType == graph.String {
		out.Strings = out.Strings[:0]
		for _, s := range samples {
			out.Strings = append(out.Strings, s.Strings...)
		}
		return out, nil
	}
	off := 0
	for _, s := range samples {
		off += copy(out.Raw[off:], s.Raw)
	}
	return out, nil
}
