package fpga

import (
	"context"
	"math"
	"math/rand"
	"os/exec"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
)

// randomMVAU makes a layer with seeded int8 weights and a requantization
// that spreads its outputs over the 8-bit range.
func randomMVAU(t testing.TB, name string, mh, mw, pe, simd int, seed int64, inSigned, relu bool) *MVAU {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	m := &MVAU{Name: name, MH: mh, MW: mw, PE: pe, SIMD: simd, InSigned: inSigned, OutSigned: false}
	m.Weights = make([]int8, mh*mw)
	for i := range m.Weights {
		m.Weights[i] = int8(rng.Intn(255) - 127)
	}
	m.Bias = make([]int64, mh)
	m.Requant = make([]Requant, mh)
	lo := int32(0)
	zero := int32(0)
	if !relu {
		zero = 128
	}
	for c := 0; c < mh; c++ {
		m.Bias[c] = int64(rng.Intn(20001) - 10000)
		alo, ahi := m.AccRange(c)
		// typical |acc| is about sqrt(mw)·73·128: map ±3σ onto the range
		sigma := math.Sqrt(float64(mw)) * 73 * 128
		mult := float64(float32(127 / (3 * sigma) * (0.8 + 0.4*rng.Float64())))
		r, err := NewRequant(mult, zero, lo, 255, alo, ahi)
		if err != nil {
			t.Fatal(err)
		}
		m.Requant[c] = r
	}
	return m
}

func randomFrames(n, mw int, seed int64) [][]int32 {
	rng := rand.New(rand.NewSource(seed))
	f := make([][]int32, n)
	for i := range f {
		f[i] = make([]int32, mw)
		for j := range f[i] {
			f[i][j] = int32(rng.Intn(256))
		}
	}
	return f
}

func needVerilator(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("verilator"); err != nil {
		testutil.Missing(t, "verilator (Debian package verilator; make setup installs it)")
	}
}

// TestFINNFoldingGolden reproduces FINN's folding tutorial: the first
// MVAU of the cybsec MLP (600 inputs, 64 outputs) takes 38,400 cycles per
// frame at PE=SIMD=1 and 3,840 at PE=2, SIMD=5; the simulated RTL must
// measure exactly that and compute what the Go model computes.
func TestFINNFoldingGolden(t *testing.T) {
	needVerilator(t)
	for _, c := range []struct {
		pe, simd, cycles int
	}{{1, 1, 38400}, {2, 5, 3840}} {
		m := randomMVAU(t, "cybsec_fc0", 64, 600, c.pe, c.simd, 7, false, true)
		if got := m.CyclesPerVector(); got != c.cycles {
			t.Fatalf("PE=%d SIMD=%d: analytical %d cycles, FINN says %d", c.pe, c.simd, got, c.cycles)
		}
		chain := &Pipeline{Stages: []Stage{m}}
		frames := randomFrames(3, 600, 1)
		res, err := chain.Simulate(context.Background(), t.TempDir(), frames)
		if err != nil {
			t.Fatal(err)
		}
		if res.II != c.cycles {
			t.Errorf("PE=%d SIMD=%d: simulated II %d cycles, want %d", c.pe, c.simd, res.II, c.cycles)
		}
		if want := c.cycles + PipelineDepth; res.Latency != want {
			t.Errorf("PE=%d SIMD=%d: simulated latency %d cycles, model says %d", c.pe, c.simd, res.Latency, want)
		}
		checkOutputs(t, chain, frames, res)
	}
}

func checkOutputs(t *testing.T, chain *Pipeline, frames [][]int32, res *SimResult) {
	t.Helper()
	var want []int32
	for _, f := range frames {
		y, err := chain.Forward(f)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, y...)
	}
	if len(res.Outputs) != len(want) {
		t.Fatalf("RTL gave %d outputs, Go model %d", len(res.Outputs), len(want))
	}
	distinct := map[int32]bool{}
	for i := range want {
		distinct[want[i]] = true
		if res.Outputs[i] != want[i] {
			t.Fatalf("output %d: RTL %d, Go model %d", i, res.Outputs[i], want[i])
		}
	}
	if len(distinct) < 8 {
		t.Fatalf("only %d distinct output values: the test data does not exercise the requantizer", len(distinct))
	}
}

// TestChainRTLEqualsModel runs a three-layer MLP with mismatched foldings
// (so width converters sit between layers) and signed and unsigned
// streams.
func TestChainRTLEqualsModel(t *testing.T) {
	needVerilator(t)
	l0 := randomMVAU(t, "fc0", 24, 30, 4, 6, 11, false, true)
	l1 := randomMVAU(t, "fc1", 12, 24, 3, 8, 12, false, true)
	l2 := randomMVAU(t, "fc2", 10, 12, 5, 1, 13, false, false)
	chain := &Pipeline{Stages: []Stage{l0, l1, l2}}
	frames := randomFrames(6, 30, 2)
	res, err := chain.Simulate(context.Background(), t.TempDir(), frames)
	if err != nil {
		t.Fatal(err)
	}
	checkOutputs(t, chain, frames, res)
	if est := chain.EstimatedII(); res.II < est || float64(res.II) > 1.05*float64(est) {
		t.Errorf("simulated II %d cycles, analytical %d: more than 5%% apart", res.II, est)
	}
}

func TestFoldingChecksNameValidValues(t *testing.T) {
	m := randomMVAU(t, "fc", 12, 10, 1, 1, 1, false, true)
	m.PE = 5
	err := m.Check()
	if err == nil || !contains(err.Error(), "[1 2 3 4 6 12]") {
		t.Fatalf("PE 5 of MH 12: %v", err)
	}
	m.PE, m.SIMD = 1, 3
	err = m.Check()
	if err == nil || !contains(err.Error(), "[1 2 5 10]") {
		t.Fatalf("SIMD 3 of MW 10: %v", err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
