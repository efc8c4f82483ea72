package prune

import (
	"context"
	"fmt"
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Fidelity is how closely a pruned model follows the original on a set of
// samples.
type Fidelity struct {
	Samples int `json:"samples"`
	// Cosine is the mean over samples of the cosine similarity of all float
	// outputs (flattened together); MinCosine the worst sample.
	Cosine    float64 `json:"cosine"`
	MinCosine float64 `json:"min_cosine"`
	// Top1 is the fraction of rows whose argmax agrees, for a first output
	// shaped [N, K] (K > 1); nil for other outputs.
	Top1 *float64 `json:"top1_agreement,omitempty"`
	// Zero is set when every output value of the pruned model is zero on
	// every sample while the original's are not (a collapsed model).
	Zero bool `json:"all_zero,omitempty"`
}

func (f Fidelity) String() string {
	s := fmt.Sprintf("cosine %.4f (min %.4f)", f.Cosine, f.MinCosine)
	if f.Top1 != nil {
		s += fmt.Sprintf(", top-1 agreement %.2f%%", 100**f.Top1)
	}
	if f.Zero {
		s += ", output all zeros"
	}
	return s + fmt.Sprintf(" on %d samples", f.Samples)
}

// runOutputs runs m on every sample and returns its outputs.
func runOutputs(m *graph.Model, samples [][]*runtime.Tensor, backend string) ([][]*runtime.Tensor, error) {
	if backend == "" {
		backend = "interp"
	}
	s, err := runtime.Open(backend, m, runtime.Options{Threads: 1})
	if err != nil {
		return nil, fmt.Errorf("prune: session (%s): %w", backend, err)
	}
	defer s.Close()
	var out [][]*runtime.Tensor
	for k, in := range samples {
		if err := runtime.CheckInputs(s.Inputs(), in); err != nil {
			return nil, fmt.Errorf("prune: sample %d: %w", k, err)
		}
		res, err := s.Run(context.Background(), in)
		if err != nil {
			return nil, fmt.Errorf("prune: sample %d: %w", k, err)
		}
		cl := make([]*runtime.Tensor, len(res))
		for i, t := range res {
			cl[i] = t.Clone()
		}
		out = append(out, cl)
	}
	return out, nil
}

// Measure runs ref and cand (same inputs and outputs) on samples and
// compares their outputs.
func Measure(ref, cand *graph.Model, samples [][]*runtime.Tensor, backend string) (Fidelity, error) {
	ro, err := runOutputs(ref, samples, backend)
	if err != nil {
		return Fidelity{}, err
	}
	return measureAgainst(ro, cand, samples, backend)
}

func measureAgainst(ro [][]*runtime.Tensor, cand *graph.Model, samples [][]*runtime.Tensor, backend string) (Fidelity, error) {
	co, err := runOutputs(cand, samples, backend)
	if err != nil {
		return Fidelity{}, err
	}
	return fidelity(ro, co)
}

func fidelity(ro, co [][]*runtime.Tensor) (Fidelity, error) {
	f := Fidelity{Samples: len(ro), MinCosine: 1}
	if len(ro) == 0 {
		return f, fmt.Errorf("prune: no samples to measure accuracy on")
	}
	agree, rows := 0, 0
	refNZ, candNZ := false, false
	for s := range ro {
		if len(ro[s]) != len(co[s]) {
			return f, fmt.Errorf("prune: the models have %d and %d outputs", len(ro[s]), len(co[s]))
		}
		var dot, na, nb float64
		for i := range ro[s] {
			a, b := ro[s][i], co[s][i]
			if a.DType != graph.Float || b.DType != graph.Float {
				continue
			}
			av, bv := a.Float32s(), b.Float32s()
			if len(av) != len(bv) {
				return f, fmt.Errorf("prune: output %d has %d values in the original and %d pruned", i, len(av), len(bv))
			}
			for k := range av {
				x, y := float64(av[k]), float64(bv[k])
				dot += x * y
				na += x * x
				nb += y * y
			}
			if i == 0 && len(a.Shape) == 2 && a.Shape[1] > 1 {
				k := int(a.Shape[1])
				for r := 0; r+k <= len(av); r += k {
					rows++
					if argmax(av[r:r+k]) == argmax(bv[r:r+k]) {
						agree++
					}
				}
			}
		}
		refNZ = refNZ || na > 0
		candNZ = candNZ || nb > 0
		c := 1.0
		switch {
		case na == 0 && nb == 0:
		case na == 0 || nb == 0:
			c = 0
		default:
			c = dot / math.Sqrt(na*nb)
		}
		if math.IsNaN(c) {
			c = 0
		}
		f.Cosine += c / float64(len(ro))
		f.MinCosine = math.Min(f.MinCosine, c)
	}
	if rows > 0 {
		t := float64(agree) / float64(rows)
		f.Top1 = &t
	}
	f.Zero = refNZ && !candNZ
	return f, nil
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
