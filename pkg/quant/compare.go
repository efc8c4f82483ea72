package quant

import (
	"context"
	"fmt"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
)

// Compare runs the float model ref and its quantized form q on the same
// samples through one backend and measures q's agreement with ref (top-1
// agreement, cosine, SQNR; top-1 accuracy too when labels are given, one
// per row of the first output; refTop1 is then the float model's top-1
// accuracy on the same rows, else nil).
func Compare(ref, q *graph.Model, backend string, samples [][]*runtime.Tensor, labels []int) (acc numerics.Accuracy, refTop1 *float64, err error) {
	return CompareAt(ref, q, backend, samples, labels, 0)
}

// CompareAt is Compare with the first output's masks binarized at
// iouThreshold for IoU (0: numerics.DefaultIoUThreshold).
func CompareAt(ref, q *graph.Model, backend string, samples [][]*runtime.Tensor, labels []int, iouThreshold float64) (acc numerics.Accuracy, refTop1 *float64, err error) {
	rs, err := runtime.Open(backend, ref, runtime.Options{Threads: 1})
	if err != nil {
		return acc, nil, fmt.Errorf("quant: compare: float model: %w", err)
	}
	defer rs.Close()
	qs, err := runtime.Open(backend, q, runtime.Options{Threads: 1})
	if err != nil {
		return acc, nil, fmt.Errorf("quant: compare: quantized model: %w", err)
	}
	defer qs.Close()
	var fp32 numerics.AccuracyMeter
	int8 := numerics.AccuracyMeter{IoUThreshold: iouThreshold}
	for i, in := range samples {
		ro, err := rs.Run(context.Background(), in)
		if err != nil {
			return acc, nil, fmt.Errorf("quant: compare: sample %d, float model: %w", i, err)
		}
		rc := make([]*runtime.Tensor, len(ro))
		for k := range ro {
			rc[k] = ro[k].Clone()
		}
		qo, err := qs.Run(context.Background(), in)
		if err != nil {
			return acc, nil, fmt.Errorf("quant: compare: sample %d, quantized model: %w", i, err)
		}
		var lab []int
		if labels != nil {
			rows := 1
			if sh := rc[0].Shape; len(sh) >= 2 {
				rows = int(sh[0])
			}
			if (i+1)*rows > len(labels) {
				return acc, nil, fmt.Errorf("quant: compare: %d labels for more samples", len(labels))
			}
			lab = labels[i*rows : (i+1)*rows]
			if err := fp32.Add(rc, rc, lab); err != nil {
				return acc, nil, err
			}
		}
		if err := int8.Add(rc, qo, lab); err != nil {
			return acc, nil, err
		}
	}
	return int8.Result(), fp32.Result().Top1Accuracy, nil
}

// SeededSamples makes n seeded input sets for a model with numerics'
// range policy (floats in [-1, 1), ...). dims gives the dynamic dims: the
// shapes of the data the caller has (--calib), or representative ones
// (numerics.VerifyDims); a zero Dims sets them to 1. maxBytes bounds one
// set (numerics.SeedOptions.MaxBytes).
func SeededSamples(m *graph.Model, n int, seed int64, dims numerics.Dims, maxBytes int64) ([][]*runtime.Tensor, error) {
	ins, err := numerics.InputsOf(m)
	if err != nil {
		return nil, fmt.Errorf("quant: %w", err)
	}
	var out [][]*runtime.Tensor
	for i := 0; i < n; i++ {
		in, err := numerics.Seeded(ins, numerics.SeedOptions{Seed: uint64(seed + int64(i)), Dims: dims, MaxBytes: maxBytes})
		if err != nil {
			return nil, fmt.Errorf("quant: %w", err)
		}
		out = append(out, in)
	}
	return out, nil
}
