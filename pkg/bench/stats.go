package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Summary is the distribution of one set of latencies, in milliseconds.
type Summary struct {
	N      int     `json:"-"`
	Min    float64 `json:"min"`
	Mean   float64 `json:"mean"`
	P50    float64 `json:"p50"`
	P90    float64 `json:"p90"`
	P95    float64 `json:"p95"`
	P99    float64 `json:"p99"`
	P999   float64 `json:"p999"`
	Max    float64 `json:"max"`
	Stddev float64 `json:"stddev"`
}

// Percentile returns the q-quantile (0 <= q <= 1) of sorted data by linear
// interpolation between closest ranks: with n values x[0] <= ... <= x[n-1],
// h = (n-1)q and the result is x[floor(h)] + (h-floor(h)) (x[floor(h)+1] -
// x[floor(h)]). This is Hyndman and Fan's definition 7, the default of
// NumPy's percentile and R's quantile. It returns NaN for no data.
func Percentile(sorted []float64, q float64) float64 {
	n := len(sorted)
	if n == 0 || math.IsNaN(q) {
		return math.NaN()
	}
	if q <= 0 {
		return sorted[0]
	}
	if q >= 1 {
		return sorted[n-1]
	}
	h := float64(n-1) * q
	lo := int(math.Floor(h))
	if lo >= n-1 {
		return sorted[n-1]
	}
	f := h - float64(lo)
	return sorted[lo] + f*(sorted[lo+1]-sorted[lo])
}

// Mean is the arithmetic mean (NaN for no data).
func Mean(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// Stddev is the sample standard deviation (n-1 in the denominator; 0 for a
// single value, NaN for none).
func Stddev(x []float64) float64 {
	switch len(x) {
	case 0:
		return math.NaN()
	case 1:
		return 0
	}
	m := Mean(x)
	var ss float64
	for _, v := range x {
		d := v - m
		ss += d * d
	}
	return math.Sqrt(ss / float64(len(x)-1))
}

// CV is the coefficient of variation, Stddev/Mean (NaN when the mean is 0
// or there is no data).
func CV(x []float64) float64 {
	m := Mean(x)
	if m == 0 || math.IsNaN(m) {
		return math.NaN()
	}
	return Stddev(x) / m
}

// Summarize sorts a copy of ms (milliseconds) and computes its summary.
func Summarize(ms []float64) Summary {
	s := slices.Clone(ms)
	slices.Sort(s)
	if len(s) == 0 {
		return Summary{}
	}
	return Summary{
		N:      len(s),
		Min:    s[0],
		Mean:   Mean(s),
		P50:    Percentile(s, 0.50),
		P90:    Percentile(s, 0.90),
		P95:    Percentile(s, 0.95),
		P99:    Percentile(s, 0.99),
		P999:   Percentile(s, 0.999),
		Max:    s[len(s)-1],
		Stddev: Stddev(s),
	}
}

// DurationsMS converts nanosecond latencies to milliseconds.
func DurationsMS(ns []int64) []float64 {
	out := make([]float64, len(ns))
	for i, v := range ns {
		out[i] = float64(v) / float64(time.Millisecond)
	}
	return out
}

// CI is a confidence interval.
type CI struct {
	Lo    float64 `json:"lo"`
	Hi    float64 `json:"hi"`
	Level float64 `json:"level"`
}

// Overlaps reports whether two intervals share a point.
func (c CI) Overlaps(o CI) bool { return c.Lo <= o.Hi && o.Lo <= c.Hi }

// BootstrapQuantileCI is the percentile-bootstrap confidence interval of the
// q-quantile of x: it draws resamples of len(x) values with replacement
// from a PCG generator seeded with seed, takes the q-quantile (Percentile)
// of each, and returns the (1-level)/2 and (1+level)/2 quantiles of those
// estimates. The same data, seed and resample count give the same interval.
func BootstrapQuantileCI(x []float64, q float64, resamples int, level float64, seed int64) (CI, error) {
	if len(x) == 0 {
		return CI{}, fmt.Errorf("bench: bootstrap of no data")
	}
	if resamples < 1 {
		return CI{}, fmt.Errorf("bench: bootstrap needs at least 1 resample, got %d", resamples)
	}
	if !(level > 0 && level < 1) {
		return CI{}, fmt.Errorf("bench: confidence level %v is not in (0, 1)", level)
	}
	r := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	sorted := slices.Clone(x)
	slices.Sort(sorted)
	n := len(sorted)
	// A resample of sorted data is sorted[i] repeated counts[i] times, so
	// its order statistics come from a walk over the counts: O(n) per
	// resample, no sort.
	counts := make([]int32, n)
	h := float64(n-1) * q
	lo := int(math.Floor(h))
	frac := h - float64(lo)
	if lo >= n-1 {
		lo, frac = n-1, 0
	}
	est := make([]float64, resamples)
	for i := range est {
		clear(counts)
		for range n {
			counts[r.IntN(n)]++
		}
		var a, b float64
		seen, found := 0, false
		for k, c := range counts {
			if c == 0 {
				continue
			}
			seen += int(c)
			if !found && seen > lo {
				a, found = sorted[k], true
			}
			if seen > lo+1 || (found && lo == n-1) {
				b = sorted[k]
				break
			}
		}
		est[i] = a + frac*(b-a)
	}
	slices.Sort(est)
	return CI{
		Lo:    Percentile(est, (1-level)/2),
		Hi:    Percentile(est, (1+level)/2),
		Level: level,
	}, nil
}
