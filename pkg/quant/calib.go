package quant

import (
	"context"
	"fmt"
	"math"
	"sort"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Calibration methods.
const (
	MinMax     = "minmax"
	Percentile = "percentile"
	Entropy    = "entropy"
)

// histBins is the resolution of the |x| histograms used by the Percentile
// and Entropy calibrators.
const histBins = 2048

// tensorStats accumulates one activation's observed values.
type tensorStats struct {
	min, max float64
	absmax   float64
	hist     []float64 // |x| histogram over [0, absmax], histBins bins
	float    bool
	seen     bool
}

// collect runs the model with names added as outputs over every sample and
// feeds each value to fn. It returns an error naming the sample on failure.
func collect(m *graph.Model, names []string, calib [][]*runtime.Tensor, backend string, fn func(name string, v []float32)) error {
	c := m.Clone()
	g := c.Graph
	idx := map[string]int{}
	for _, n := range names {
		if !g.IsGraphOutput(n) {
			g.Outputs = append(g.Outputs, &graph.ValueInfo{Name: n, DType: graph.Float, HasType: true})
		}
	}
	s, err := runtime.Open(backend, c, runtime.Options{Threads: 1})
	if err != nil {
		return fmt.Errorf("quant: calibration session (%s): %w", backend, err)
	}
	defer s.Close()
	for i, o := range s.Outputs() {
		idx[o.Name] = i
	}
	for k, in := range calib {
		if err := runtime.CheckInputs(s.Inputs(), in); err != nil {
			return fmt.Errorf("quant: calibration sample %d: %w", k, err)
		}
		outs, err := s.Run(context.Background(), in)
		if err != nil {
			return fmt.Errorf("quant: calibration sample %d: %w", k, err)
		}
		for _, n := range names {
			t := outs[idx[n]]
			if t.DType != graph.Float {
				fn(n, nil)
				continue
			}
			fn(n, t.Float32s())
		}
	}
	return nil
}

// calibrate returns, for each name, the [lo, hi] range to quantize over.
// Names whose values are not float32 are missing from the result.
func calibrate(m *graph.Model, names []string, calib [][]*runtime.Tensor, o StaticOptions) (map[string][2]float64, error) {
	st := map[string]*tensorStats{}
	for _, n := range names {
		st[n] = &tensorStats{min: math.Inf(1), max: math.Inf(-1), float: true}
	}
	err := collect(m, names, calib, o.Backend, func(name string, v []float32) {
		s := st[name]
		if v == nil {
			s.float = false
			return
		}
		for _, x := range v {
			f := float64(x)
			if math.IsNaN(f) || math.IsInf(f, 0) {
				continue
			}
			s.seen = true
			s.min = math.Min(s.min, f)
			s.max = math.Max(s.max, f)
		}
	})
	if err != nil {
		return nil, err
	}
	for _, s := range st {
		if s.seen {
			s.absmax = math.Max(math.Abs(s.min), math.Abs(s.max))
		}
	}
	if o.Calibrate == Percentile || o.Calibrate == Entropy {
		for _, s := range st {
			s.hist = make([]float64, histBins)
		}
		err := collect(m, names, calib, o.Backend, func(name string, v []float32) {
			s := st[name]
			if v == nil || !s.seen || s.absmax == 0 {
				return
			}
			w := s.absmax / histBins
			for _, x := range v {
				a := math.Abs(float64(x))
				// exact zeros (half of every Relu output) quantize
				// exactly whatever the range; counting them would pull
				// the entropy threshold down.
				if a == 0 || math.IsNaN(a) || math.IsInf(a, 0) {
					continue
				}
				b := int(a / w)
				if b >= histBins {
					b = histBins - 1
				}
				s.hist[b]++
			}
		})
		if err != nil {
			return nil, err
		}
	}
	out := map[string][2]float64{}
	for _, n := range names {
		s := st[n]
		if !s.float || !s.seen {
			continue
		}
		lo, hi := s.min, s.max
		var t float64
		switch o.Calibrate {
		case Percentile:
			t = percentileThreshold(s.hist, s.absmax, o.Percentile)
		case Entropy:
			t = entropyThreshold(s.hist, s.absmax)
		}
		if t > 0 {
			lo, hi = math.Max(lo, -t), math.Min(hi, t)
		}
		out[n] = [2]float64{lo, hi}
	}
	return out, nil
}

// percentileThreshold is the |x| below which pct percent of the values lie.
func percentileThreshold(hist []float64, absmax, pct float64) float64 {
	total := 0.0
	for _, h := range hist {
		total += h
	}
	if total == 0 {
		return absmax
	}
	w := absmax / float64(len(hist))
	want := total * pct / 100
	cum := 0.0
	for i, h := range hist {
		cum += h
		if cum >= want {
			return float64(i+1) * w
		}
	}
	return absmax
}

// entropyThreshold picks the clipping threshold whose 128-level
// quantization of the |x| histogram has the least KL divergence from the
// clipped reference distribution (TensorRT's entropy calibration).
func entropyThreshold(hist []float64, absmax float64) float64 {
	const levels = 128
	n := len(hist)
	w := absmax / float64(n)
	best, bestI := math.Inf(1), n
	for i := levels; i <= n; i += 16 {
		p := make([]float64, i)
		copy(p, hist[:i])
		for _, h := range hist[i:] {
			p[i-1] += h
		}
		// quantize hist[:i] into levels groups, spread each back over the
		// group's non-empty bins
		q := make([]float64, i)
		per := float64(i) / levels
		for l := 0; l < levels; l++ {
			a, b := int(float64(l)*per), int(float64(l+1)*per)
			if l == levels-1 {
				b = i
			}
			sum, nz := 0.0, 0
			for j := a; j < b; j++ {
				sum += hist[j]
				if hist[j] != 0 {
					nz++
				}
			}
			for j := a; j < b; j++ {
				if hist[j] != 0 {
					q[j] = sum / float64(nz)
				}
			}
		}
		kl := klDiv(p, q)
		if kl < best {
			best, bestI = kl, i
		}
	}
	return float64(bestI) * w
}

func klDiv(p, q []float64) float64 {
	sp, sq := 0.0, 0.0
	for i := range p {
		sp += p[i]
		sq += q[i]
	}
	if sp == 0 || sq == 0 {
		return math.Inf(1)
	}
	d := 0.0
	for i := range p {
		if p[i] == 0 {
			continue
		}
		pi := p[i] / sp
		qi := q[i] / sq
		if qi == 0 {
			qi = 1e-12
		}
		d += pi * math.Log(pi/qi)
	}
	return d
}

// sortedKeys returns a map's keys in order (deterministic output).
func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}
