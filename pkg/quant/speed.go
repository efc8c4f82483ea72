package quant

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Speed is an interleaved A/B latency comparison of a float model and its
// quantized form on one backend.
type Speed struct {
	Backend string        `json:"backend"`
	Threads int           `json:"threads"`
	Rounds  int           `json:"rounds"`
	Float   time.Duration `json:"float_median_ns"`
	Quant   time.Duration `json:"quantized_median_ns"`
	// Speedup is Float / Quant (> 1: the quantized model is faster).
	Speedup float64 `json:"speedup"`
	// QuantFaster counts the interleaved pairs in which the quantized run
	// took less time than the float run next to it.
	QuantFaster int `json:"quantized_faster_pairs"`
	// Significant reports whether the sign of the difference holds beyond
	// timing noise: a two-sided sign test over the pairs at about 2 sigma
	// (QuantFaster is more than 2*sqrt(Rounds)/2 away from Rounds/2).
	Significant bool `json:"significant"`
}

// String says plainly whether the quantized model is faster.
func (s Speed) String() string {
	verdict := "faster"
	switch {
	case !s.Significant:
		verdict = "NOT measurably faster than the float model (within timing noise)"
	case s.Speedup <= 1:
		verdict = "NOT faster than the float model"
	}
	return fmt.Sprintf("speed (%s, %d thread, median of %d interleaved runs, quantized faster in %d): float %v, quantized %v: %.2fx, %s",
		s.Backend, s.Threads, s.Rounds, s.QuantFaster, s.Float.Round(time.Microsecond), s.Quant.Round(time.Microsecond), s.Speedup, verdict)
}

// MeasureSpeed runs the two models alternately on one input set (after a
// warm-up) until rounds pairs are done or budget is spent (at least 5
// pairs), and compares median latencies. Sessions use one intra-op thread
// and the backend's default (full) graph optimizations.
func MeasureSpeed(ref, q *graph.Model, backend string, in []*runtime.Tensor, rounds int, budget time.Duration) (Speed, error) {
	sp := Speed{Backend: backend, Threads: 1}
	opts := runtime.Options{Threads: 1}
	a, err := runtime.Open(backend, ref, opts)
	if err != nil {
		return sp, fmt.Errorf("quant: speed: float model: %w", err)
	}
	defer a.Close()
	b, err := runtime.Open(backend, q, opts)
	if err != nil {
		return sp, fmt.Errorf("quant: speed: quantized model: %w", err)
	}
	defer b.Close()
	ctx := context.Background()
	run := func(s runtime.Session) (time.Duration, error) {
		t0 := time.Now()
		_, err := s.Run(ctx, in)
		return time.Since(t0), err
	}
	for i := 0; i < 3; i++ { // warm-up
		if _, err := run(a); err != nil {
			return sp, fmt.Errorf("quant: speed: float model: %w", err)
		}
		if _, err := run(b); err != nil {
			return sp, fmt.Errorf("quant: speed: quantized model: %w", err)
		}
	}
	var ta, tb []time.Duration
	start := time.Now()
	for i := 0; i < rounds && (i < 5 || time.Since(start) < budget); i++ {
		first, second := a, b
		if i%2 == 1 {
			first, second = b, a
		}
		d1, err := run(first)
		if err != nil {
			return sp, fmt.Errorf("quant: speed: %w", err)
		}
		d2, err := run(second)
		if err != nil {
			return sp, fmt.Errorf("quant: speed: %w", err)
		}
		if i%2 == 1 {
			d1, d2 = d2, d1
		}
		ta, tb = append(ta, d1), append(tb, d2)
		if d2 < d1 {
			sp.QuantFaster++
		}
	}
	sp.Rounds = len(ta)
	half := float64(sp.Rounds) / 2
	sp.Significant = math.Abs(float64(sp.QuantFaster)-half) > math.Sqrt(float64(sp.Rounds))
	sp.Float, sp.Quant = median(ta), median(tb)
	if sp.Quant > 0 {
		sp.Speedup = float64(sp.Float) / float64(sp.Quant)
	}
	return sp, nil
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
