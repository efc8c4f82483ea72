package fpga

import (
	"context"
	"math/rand"
	"testing"
)

// naiveConv is an integer NCHW-free reference: input (h, w, c) order,
// weights [m][ky][kx][c], output (oy, ox, m) accumulators.
func naiveConv(in []int32, H, W, C, M, K, S, P int, pad int32, w []int8, bias []int64) []int64 {
	oh, ow := (H+2*P-K)/S+1, (W+2*P-K)/S+1
	out := make([]int64, oh*ow*M)
	for oy := 0; oy < oh; oy++ {
		for ox := 0; ox < ow; ox++ {
			for m := 0; m < M; m++ {
				acc := bias[m]
				for ky := 0; ky < K; ky++ {
					for kx := 0; kx < K; kx++ {
						for c := 0; c < C; c++ {
							y, x := oy*S+ky-P, ox*S+kx-P
							v := pad
							if y >= 0 && y < H && x >= 0 && x < W {
								v = in[(y*W+x)*C+c]
							}
							acc += int64(v) * int64(w[((m*K+ky)*K+kx)*C+c])
						}
					}
				}
				out[(oy*ow+ox)*M+m] = acc
			}
		}
	}
	return out
}

func TestSWGMatchesNaiveConvolution(t *testing.T) {
	for _, g := range []struct{ H, W, C, M, K, S, P, simd int }{
		{7, 6, 3, 4, 3, 1, 1, 3},  // channel-parallel
		{7, 6, 3, 4, 3, 2, 1, 27}, // parallel window, stride 2
		{5, 5, 2, 3, 5, 1, 2, 1},  // one element per beat, big pad
		{9, 8, 4, 2, 2, 2, 0, 2},  // no pad, even kernel
	} {
		rng := rand.New(rand.NewSource(int64(g.H*100 + g.K)))
		in := make([]int32, g.H*g.W*g.C)
		for i := range in {
			in[i] = int32(rng.Intn(256))
		}
		s := &SWG{Name: "s", C: g.C, H: g.H, W: g.W, K: g.K, S: g.S, P: g.P, SIMD: g.simd, Pad: 7}
		m := randomMVAU(t, "c", g.M, g.K*g.K*g.C, 1, 1, 3, false, false)
		m.Requant = nil
		m.Vectors = s.OH() * s.OW()
		win, err := s.Forward(in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Forward(win)
		if err != nil {
			t.Fatal(err)
		}
		want := naiveConv(in, g.H, g.W, g.C, g.M, g.K, g.S, g.P, 7, m.Weights, m.Bias)
		for i := range want {
			if int64(got[i]) != want[i] {
				t.Fatalf("%+v: output %d: %d, want %d", g, i, got[i], want[i])
			}
		}
	}
}

func TestMaxPoolModel(t *testing.T) {
	p := &MaxPool{Name: "p", C: 2, H: 5, W: 4, K: 2}
	in := make([]int32, 5*4*2)
	for i := range in {
		in[i] = int32((i * 37) % 256)
	}
	out, err := p.Forward(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2*2*2 {
		t.Fatalf("%d outputs, want 8", len(out))
	}
	// (0,0) channel 0: max of pixels (0,0),(0,1),(1,0),(1,1)
	want := int32(0)
	for _, yx := range [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}} {
		if v := in[(yx[0]*4+yx[1])*2]; v > want {
			want = v
		}
	}
	if out[0] != want {
		t.Fatalf("pool (0,0,0) = %d, want %d", out[0], want)
	}
}

// TestCNNPipelineRTLEqualsModel: a small CNN (parallel-window conv, max
// pool, channel-folded conv, pool, dense with raw accumulator outputs)
// through Verilator equals the Go model bit for bit, frame after frame.
func TestCNNPipelineRTLEqualsModel(t *testing.T) {
	needVerilator(t)
	s0 := &SWG{Name: "conv0_swg", C: 1, H: 10, W: 10, K: 3, S: 1, P: 1, SIMD: 9, Pad: 0}
	c0 := randomMVAU(t, "conv0", 4, 9, 2, 9, 21, false, true)
	c0.Vectors = s0.OH() * s0.OW()
	p0 := &MaxPool{Name: "pool0", C: 4, H: 10, W: 10, K: 2}
	s1 := &SWG{Name: "conv1_swg", C: 4, H: 5, W: 5, K: 3, S: 1, P: 1, SIMD: 2, Pad: 0}
	c1 := randomMVAU(t, "conv1", 6, 36, 3, 2, 22, false, true)
	c1.Vectors = s1.OH() * s1.OW()
	p1 := &MaxPool{Name: "pool1", C: 6, H: 5, W: 5, K: 2}
	fc := randomMVAU(t, "fc", 5, 24, 5, 6, 23, false, false)
	fc.Requant = nil
	pipe := &Pipeline{Stages: []Stage{s0, c0, p0, s1, c1, p1, fc}}
	frames := randomFrames(4, 100, 5)
	res, err := pipe.Simulate(context.Background(), t.TempDir(), frames)
	if err != nil {
		t.Fatal(err)
	}
	var want []int32
	for _, f := range frames {
		y, err := pipe.Forward(f)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, y...)
	}
	if len(res.Outputs) != len(want) {
		t.Fatalf("RTL gave %d outputs, Go model %d", len(res.Outputs), len(want))
	}
	for i := range want {
		if res.Outputs[i] != want[i] {
			t.Fatalf("output %d: RTL %d, Go model %d", i, res.Outputs[i], want[i])
		}
	}
	t.Logf("II %d cycles (estimate %d), latency %d", res.II, pipe.EstimatedII(), res.Latency)
}
