package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestPercentile(t *testing.T) {
	// Hand-computed with definition 7: h = (n-1)q, x[floor h] + frac (x[floor h + 1] - x[floor h]).
	data := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	cases := []struct {
		name string
		x    []float64
		q    float64
		want float64
	}{
		{"median even n", data, 0.5, 5.5}, // h=4.5: 5 + .5*(6-5)
		{"p90", data, 0.9, 9.1},           // h=8.1: 9 + .1*1
		{"p95", data, 0.95, 9.55},         // h=8.55
		{"p99", data, 0.99, 9.91},         // h=8.91
		{"p999", data, 0.999, 9.991},      // h=8.991
		{"p25", data, 0.25, 3.25},         // h=2.25
		{"min", data, 0, 1},               // q=0
		{"max", data, 1, 10},              // q=1
		{"median odd n", []float64{1, 3, 7}, 0.5, 3},
		{"uneven gaps", []float64{0, 10, 100}, 0.75, 55}, // h=1.5: 10 + .5*90
		{"single", []float64{42}, 0.99, 42},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Percentile(c.x, c.q); !near(got, c.want, 1e-12) {
				t.Fatalf("Percentile(%v, %v) = %v, want %v", c.x, c.q, got, c.want)
			}
		})
	}
	if !math.IsNaN(Percentile(nil, 0.5)) {
		t.Fatal("percentile of no data should be NaN")
	}
}

func TestSummarizeStddevCV(t *testing.T) {
	x := []float64{4, 2, 9, 5, 4, 7, 4, 5} // unsorted on purpose
	s := Summarize(x)
	// mean 40/8 = 5; squared deviations 1+9+16+0+1+4+1+0 = 32; sample var 32/7.
	want := Summary{N: 8, Min: 2, Mean: 5, Max: 9, P50: 4.5, Stddev: math.Sqrt(32.0 / 7)}
	if s.N != want.N || s.Min != want.Min || s.Max != want.Max || !near(s.Mean, 5, 1e-12) || !near(s.P50, 4.5, 1e-12) || !near(s.Stddev, want.Stddev, 1e-12) {
		t.Fatalf("Summarize = %+v, want %+v", s, want)
	}
	// sorted: 2 4 4 4 5 5 7 9; p90: h=6.3 -> 7 + .3*2 = 7.6
	if !near(s.P90, 7.6, 1e-12) {
		t.Fatalf("p90 = %v, want 7.6", s.P90)
	}
	if cv := CV(x); !near(cv, math.Sqrt(32.0/7)/5, 1e-12) {
		t.Fatalf("CV = %v", cv)
	}
	if x[0] != 4 {
		t.Fatal("Summarize modified its input")
	}
	cases := []struct {
		name string
		x    []float64
		sd   float64
		cv   float64
	}{
		{"constant", []float64{3, 3, 3}, 0, 0},
		{"one value", []float64{7}, 0, 0},
		{"two values", []float64{1, 3}, math.Sqrt2, math.Sqrt2 / 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if sd := Stddev(c.x); !near(sd, c.sd, 1e-12) {
				t.Fatalf("Stddev = %v, want %v", sd, c.sd)
			}
			if cv := CV(c.x); !near(cv, c.cv, 1e-12) {
				t.Fatalf("CV = %v, want %v", cv, c.cv)
			}
		})
	}
	if !math.IsNaN(CV([]float64{0, 0})) || !math.IsNaN(CV(nil)) {
		t.Fatal("CV of zero mean or no data should be NaN")
	}
}

func TestDurationsMS(t *testing.T) {
	got := DurationsMS([]int64{1_500_000, 250_000})
	if got[0] != 1.5 || got[1] != 0.25 {
		t.Fatalf("DurationsMS = %v", got)
	}
}

// naiveBootstrap draws the same resamples from the same generator as
// BootstrapQuantileCI and sorts each one.
func naiveBootstrap(x []float64, q float64, resamples int, level float64, seed int64) CI {
	r := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	s := slices.Clone(x)
	slices.Sort(s)
	buf := make([]float64, len(s))
	est := make([]float64, resamples)
	for i := range est {
		for j := range buf {
			buf[j] = s[r.IntN(len(s))]
		}
		slices.Sort(buf)
		est[i] = Percentile(buf, q)
	}
	slices.Sort(est)
	return CI{Lo: Percentile(est, (1-level)/2), Hi: Percentile(est, (1+level)/2), Level: level}
}

func TestBootstrapMatchesNaiveAndIsDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	cases := []struct {
		name string
		n    int
		q    float64
	}{{"one", 1, 0.5}, {"two", 2, 0.5}, {"odd", 101, 0.5}, {"even", 100, 0.5}, {"p90", 57, 0.9}, {"p99 small", 10, 0.99}, {"max", 30, 1}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := make([]float64, c.n)
			for i := range x {
				x[i] = math.Round(r.ExpFloat64()*100) / 10 // ties included
			}
			got, err := BootstrapQuantileCI(x, c.q, 300, 0.95, 42)
			if err != nil {
				t.Fatal(err)
			}
			want := naiveBootstrap(x, c.q, 300, 0.95, 42)
			if !near(got.Lo, want.Lo, 1e-12) || !near(got.Hi, want.Hi, 1e-12) {
				t.Fatalf("CI %+v, naive resampling gives %+v", got, want)
			}
			again, _ := BootstrapQuantileCI(x, c.q, 300, 0.95, 42)
			if again != got {
				t.Fatalf("same seed, different CI: %+v vs %+v", again, got)
			}
			med := Percentile(slices.Sorted(slices.Values(x)), c.q)
			if got.Lo > med || got.Hi < med {
				t.Fatalf("CI %+v does not contain the sample quantile %v", got, med)
			}
		})
	}
	x := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	a, _ := BootstrapQuantileCI(x, 0.5, 200, 0.95, 1)
	b, _ := BootstrapQuantileCI(x, 0.5, 200, 0.95, 2)
	if a == b {
		t.Fatalf("different seeds gave the same interval %+v", a)
	}
}

func TestBootstrapCoverage(t *testing.T) {
	// The median of Exp(1) is ln 2. Over many samples of size 200, a 90%
	// bootstrap interval should contain it about 90% of the time.
	const trials, n = 300, 200
	r := rand.New(rand.NewPCG(3, 4))
	hit := 0
	var width float64
	for k := range trials {
		x := make([]float64, n)
		for i := range x {
			x[i] = r.ExpFloat64()
		}
		ci, err := BootstrapQuantileCI(x, 0.5, 200, 0.90, int64(k))
		if err != nil {
			t.Fatal(err)
		}
		if ci.Lo <= math.Ln2 && math.Ln2 <= ci.Hi {
			hit++
		}
		width += ci.Hi - ci.Lo
	}
	cov := float64(hit) / trials
	// Binomial sd at p=.9, n=300 is 1.7%; allow the bootstrap's own bias.
	if cov < 0.82 || cov > 0.97 {
		t.Fatalf("coverage %.3f of a 90%% interval", cov)
	}
	// The asymptotic 90% width is 2*1.645*sqrt(.25/n)/f(median), f = 0.5.
	want := 2 * 1.645 * math.Sqrt(0.25/n) / 0.5
	if w := width / trials; w < 0.6*want || w > 1.4*want {
		t.Fatalf("mean width %.4f, asymptotic %.4f", w, want)
	}
}

func TestBootstrapErrors(t *testing.T) {
	cases := []struct {
		name  string
		x     []float64
		res   int
		level float64
	}{{"no data", nil, 10, 0.95}, {"no resamples", []float64{1}, 0, 0.95}, {"level 1", []float64{1}, 10, 1}, {"level 0", []float64{1}, 10, 0}}
	for _, c := range cases {
		if _, err := BootstrapQuantileCI(c.x, 0.5, c.res, c.level, 1); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

func TestCIOverlaps(t *testing.T) {
	cases := []struct {
		a, b CI
		want bool
	}{
		{CI{Lo: 1, Hi: 2}, CI{Lo: 1.5, Hi: 3}, true},
		{CI{Lo: 1, Hi: 2}, CI{Lo: 2, Hi: 3}, true},
		{CI{Lo: 1, Hi: 2}, CI{Lo: 2.1, Hi: 3}, false},
		{CI{Lo: 3, Hi: 4}, CI{Lo: 1, Hi: 2}, false},
		{CI{Lo: 0, Hi: 10}, CI{Lo: 4, Hi: 5}, true},
	}
	for _, c := range cases {
		if got := c.a.Overlaps(c.b); got != c.want {
			t.Errorf("%+v overlaps %+v = %v", c.a, c.b, got)
		}
	}
}
