package fpga

import (
	"context"
	"math/rand"
	"strings"
	"testing"
)

// naiveDepthwise is an integer reference depthwise convolution: input
// (h, w, c), weights [c][ky][kx], output (oy, ox, c) accumulators.
func naiveDepthwise(in []int32, H, W, C, K, S, P int, pad int32, w []int8, bias []int64) []int64 {
	oh, ow := (H+2*P-K)/S+1, (W+2*P-K)/S+1
	out := make([]int64, oh*ow*C)
	for oy := 0; oy < oh; oy++ {
		for ox := 0; ox < ow; ox++ {
			for c := 0; c < C; c++ {
				acc := bias[c]
				for ky := 0; ky < K; ky++ {
					for kx := 0; kx < K; kx++ {
						y, x := oy*S+ky-P, ox*S+kx-P
						v := pad
						if y >= 0 && y < H && x >= 0 && x < W {
							v = in[(y*W+x)*C+c]
						}
						acc += int64(v) * int64(w[(c*K+ky)*K+kx])
					}
				}
				out[(oy*ow+ox)*C+c] = acc
			}
		}
	}
	return out
}

// randomVVAU is a depthwise unit over C channels and a K×K window fed
// by its own sliding-window generator (lanes PE·SIMD).
func randomVVAU(t testing.TB, name string, C, H, W, K, S, P, pe, simd int, seed int64, relu bool) (*SWG, *VVAU) {
	t.Helper()
	s := &SWG{Name: name + "_swg", C: C, H: H, W: W, K: K, S: S, P: P, SIMD: pe * simd, Pad: 5, Depthwise: true}
	m := randomMVAU(t, name, C, K*K, pe, simd, seed, false, relu)
	m.Vectors = s.OH() * s.OW()
	return s, &VVAU{MVAU: *m}
}

func TestVVAUMatchesNaiveDepthwise(t *testing.T) {
	for _, g := range []struct{ H, W, C, K, S, P, pe, simd int }{
		{7, 6, 4, 3, 1, 1, 1, 1}, // fully folded
		{7, 6, 4, 3, 2, 1, 2, 1}, // two channels per beat, stride 2
		{5, 5, 3, 3, 1, 1, 3, 3}, // all channels, three taps per beat
		{6, 6, 2, 2, 2, 0, 2, 4}, // whole window per beat, even kernel
	} {
		s, v := randomVVAU(t, "dw", g.C, g.H, g.W, g.K, g.S, g.P, g.pe, g.simd, int64(g.H*10+g.pe), false)
		v.Requant = nil
		if err := (&Pipeline{Stages: []Stage{s, v}}).Check(); err != nil {
			t.Fatalf("%+v: %v", g, err)
		}
		rng := rand.New(rand.NewSource(int64(g.C)))
		in := make([]int32, g.H*g.W*g.C)
		for i := range in {
			in[i] = int32(rng.Intn(256))
		}
		win, err := s.Forward(in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.Forward(win)
		if err != nil {
			t.Fatal(err)
		}
		want := naiveDepthwise(in, g.H, g.W, g.C, g.K, g.S, g.P, 5, v.Weights, v.Bias)
		if len(got) != len(want) {
			t.Fatalf("%+v: %d outputs, want %d", g, len(got), len(want))
		}
		for i := range want {
			if int64(got[i]) != want[i] {
				t.Fatalf("%+v: output %d: %d, want %d", g, i, got[i], want[i])
			}
		}
		if want := s.OH() * s.OW() * g.C * g.K * g.K / (g.pe * g.simd); v.EstCycles() != want {
			t.Errorf("%+v: estimate %d cycles, FINN's formula %d", g, v.EstCycles(), want)
		}
	}
}

func TestVVAUFoldingChecks(t *testing.T) {
	for _, c := range []struct {
		pe, simd int
		want     string
	}{
		{3, 1, "PE 3 does not divide MH 4 (valid: [1 2 4])"},
		{2, 3, "SIMD 3 needs PE = 4"},
		{4, 2, "SIMD 2 does not divide MW 9 (valid: [1 3 9])"},
	} {
		_, v := randomVVAU(t, "dw", 4, 5, 5, 3, 1, 1, 1, 1, 1, true)
		v.PE, v.SIMD = c.pe, c.simd
		err := v.Check()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("PE %d SIMD %d: %v, want %q", c.pe, c.simd, err, c.want)
		}
	}
	s := &SWG{Name: "s", C: 4, H: 5, W: 5, K: 3, S: 1, P: 1, SIMD: 8, Depthwise: true}
	if err := s.Check(); err == nil || !strings.Contains(err.Error(), "[1 2 4 12 36]") {
		t.Errorf("depthwise generator with 8 lanes: %v", err)
	}
}

// TestVVAUPipelineRTLEqualsModel: two depthwise layers with different
// foldings (channel-folded; all channels, three taps per beat, stride 2)
// and a pointwise MVAU through Verilator equal the Go model bit for bit;
// then a VVAU alone measures FINN's cycles per frame.
func TestVVAUPipelineRTLEqualsModel(t *testing.T) {
	needVerilator(t)
	s0, v0 := randomVVAU(t, "dw0", 4, 6, 6, 3, 1, 1, 2, 1, 31, true)
	s0.Pad = 0
	s1, v1 := randomVVAU(t, "dw1", 4, 6, 6, 3, 2, 1, 4, 3, 32, false)
	s1.Pad = 0
	s2 := &SWG{Name: "pw_swg", C: 4, H: 3, W: 3, K: 1, S: 1, P: 0, SIMD: 4}
	pw := randomMVAU(t, "pw", 6, 4, 3, 4, 33, false, true)
	pw.Vectors = 9
	pipe := &Pipeline{Stages: []Stage{s0, v0, s1, v1, s2, pw}}
	frames := randomFrames(4, 6*6*4, 8)
	res, err := pipe.Simulate(context.Background(), t.TempDir(), frames)
	if err != nil {
		t.Fatal(err)
	}
	checkOutputs(t, pipe, frames, res)
	t.Logf("pipeline: II %d cycles (estimate %d), latency %d", res.II, pipe.EstimatedII(), res.Latency)

	// the VVAU alone, fed windows back to back: II is FINN's
	// (C/PE)·(K·K/SIMD)·OH·OW
	_, v := randomVVAU(t, "dw_alone", 4, 6, 6, 3, 1, 1, 2, 1, 34, false)
	alone := &Pipeline{Stages: []Stage{v}}
	wins := randomFrames(3, v.InFrame(), 9)
	res, err = alone.Simulate(context.Background(), t.TempDir(), wins)
	if err != nil {
		t.Fatal(err)
	}
	checkOutputs(t, alone, wins, res)
	t.Logf("VVAU alone (C=4, 3x3, 6x6, PE=2, SIMD=1): II %d cycles simulated, %d estimated", res.II, v.EstCycles())
	if res.II != v.EstCycles() {
		t.Errorf("VVAU alone: simulated II %d cycles, FINN's formula %d", res.II, v.EstCycles())
	}
}
