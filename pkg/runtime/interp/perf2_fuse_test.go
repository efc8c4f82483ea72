package interp

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/build"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/testmodels"
)

// perf2Close compares two float32 tensors: same shape, NaN where the other
// has NaN, equal infinities, else within atol + rtol·|want|.
func perf2Close(got, want *runtime.Tensor, atol, rtol float64) error {
	if got.DType != want.DType || !slices.Equal(got.Shape, want.Shape) {
		return fmt.Errorf("got %s%v, want %s%v", got.DType, got.Shape, want.DType, want.Shape)
	}
	if got.DType != graph.Float {
		return nil
	}
	g, w := got.Float32s(), want.Float32s()
	for i := range w {
		a, b := float64(g[i]), float64(w[i])
		switch {
		case math.IsNaN(a) || math.IsNaN(b):
			if math.IsNaN(a) != math.IsNaN(b) {
				return fmt.Errorf("[%d] = %g, want %g", i, a, b)
			}
		case math.IsInf(a, 0) || math.IsInf(b, 0):
			if a != b {
				return fmt.Errorf("[%d] = %g, want %g", i, a, b)
			}
		case math.Abs(a-b) > atol+rtol*math.Abs(b):
			return fmt.Errorf("[%d] = %g, want %g", i, a, b)
		}
	}
	return nil
}

type perf2Case struct {
	name  string
	model func(b *build.Builder, x string) string // returns the output value
	opset int64
	x     *runtime.Tensor
	fused bool // the pattern is expected to leave the schedule
	extra int  // extra graph outputs the model declares
}

// perf2Gelu builds a written-out GELU; variant picks the spelling.
func perf2GeluGraph(variant string) func(b *build.Builder, x string) string {
	return func(b *build.Builder, x string) string {
		var t string
		switch variant {
		case "mul_rsqrt2":
			t = b.Node("Mul", []string{b.Scalar("rs2", float32(1/math.Sqrt2)), x})
		default:
			t = b.Node("Div", []string{x, b.Scalar("s2", float32(math.Sqrt2))})
		}
		e := b.Node("Erf", []string{t})
		a := b.Node("Add", []string{b.Scalar("one", 1), e})
		switch variant {
		case "half_first": // Mul(Mul(x, 0.5), a)
			h := b.Node("Mul", []string{x, b.Scalar("half", 0.5)})
			return b.Node("Mul", []string{a, h})
		case "half_rank3": // a [1,1,1] constant raises the rank: not fused
			m := b.Node("Mul", []string{x, a})
			return b.Node("Mul", []string{m, b.Float32("half", []int64{1, 1, 1}, []float32{0.5})})
		case "erf_output": // an intermediate is a graph output: not fused
			m := b.Node("Mul", []string{x, a})
			b.Output(e, graph.Float, nil)
			return b.Node("Mul", []string{m, b.Scalar("half", 0.5)})
		case "erf_two_uses": // Erf's output has another consumer: not fused
			m := b.Node("Mul", []string{x, a})
			y := b.Node("Mul", []string{m, b.Scalar("half", 0.5)})
			return b.Node("Add", []string{y, e})
		case "wrong_const": // 0.4 instead of 0.5: not GELU
			m := b.Node("Mul", []string{x, a})
			return b.Node("Mul", []string{m, b.Scalar("half", 0.4)})
		}
		m := b.Node("Mul", []string{x, a})
		return b.Node("Mul", []string{b.Scalar("half", 0.5), m})
	}
}

// perf2LNGraph builds a written-out layer norm over axis (attribute before
// opset 18, input from 18); variant picks the spelling.
func perf2LNGraph(variant string, axis int64, H int, opset int64) func(b *build.Builder, x string) string {
	return func(b *build.Builder, x string) string {
		r := rand.New(rand.NewPCG(7, uint64(H)))
		gamma, beta := make([]float32, H), make([]float32, H)
		for i := range gamma {
			gamma[i], beta[i] = 0.5+r.Float32(), r.Float32()-0.5
		}
		reduce := func(v string) string {
			if opset >= 18 {
				return b.Node("ReduceMean", []string{v, b.Int64(v+".axes", []int64{1}, axis)})
			}
			return b.Node("ReduceMean", []string{v}, graph.IntsAttr("axes", axis))
		}
		mean := reduce(x)
		d := b.Node("Sub", []string{x, mean})
		var sq string
		if variant == "mul_square" {
			sq = b.Node("Mul", []string{d, d})
		} else {
			sq = b.Node("Pow", []string{d, b.Scalar("two", 2)})
		}
		v := reduce(sq)
		std := b.Node("Sqrt", []string{b.Node("Add", []string{b.Scalar("eps", 1e-5), v})})
		n := b.Node("Div", []string{d, std})
		switch variant {
		case "no_affine":
			return n
		case "scalar_affine":
			n = b.Node("Mul", []string{b.Scalar("g", 1.5), n})
			return b.Node("Add", []string{n, b.Scalar("b", 0.25)})
		case "d_output":
			b.Output(d, graph.Float, nil)
		}
		n = b.Node("Mul", []string{n, b.Float32("gamma", []int64{int64(H)}, gamma)})
		return b.Node("Add", []string{n, b.Float32("beta", []int64{int64(H)}, beta)})
	}
}

// perf2MMGraph builds Add(MatMul(x, W[K,N]), b) with b of shape bshape
// (variant "w_input": W is a graph input, "two_uses": the MatMul output
// is also used elsewhere, "swap": Add(b, ·)).
func perf2MMGraph(variant string, K, N int, bshape []int64) func(b *build.Builder, x string) string {
	return func(b *build.Builder, x string) string {
		r := rand.New(rand.NewPCG(11, uint64(K*N)))
		w := make([]float32, K*N)
		for i := range w {
			w[i] = float32(r.NormFloat64())
		}
		nb := 1
		for _, d := range bshape {
			nb *= int(d)
		}
		bv := make([]float32, nb)
		for i := range bv {
			bv[i] = float32(r.NormFloat64())
		}
		var wn string
		if variant == "w_input" {
			wn = b.Node("Identity", []string{b.Float32("W", []int64{int64(K), int64(N)}, w)})
			wn = b.Node("Add", []string{wn, x}) // not a constant any more
		} else {
			wn = b.Float32("W", []int64{int64(K), int64(N)}, w)
		}
		bn := b.Float32("bias", bshape, bv)
		if variant == "w_input" {
			x = b.Node("Identity", []string{x})
		}
		mm := b.Node("MatMul", []string{x, wn})
		switch variant {
		case "swap":
			return b.Node("Add", []string{bn, mm})
		case "two_uses":
			y := b.Node("Add", []string{mm, bn})
			return b.Node("Mul", []string{y, mm})
		}
		return b.Node("Add", []string{mm, bn})
	}
}

func perf2Rand(seed uint64, shape ...int64) *runtime.Tensor {
	r := rand.New(rand.NewPCG(seed, 3))
	t := runtime.NewTensor(graph.Float, shape)
	for i := range t.Float32s() {
		t.Float32s()[i] = float32(r.NormFloat64() * 3)
	}
	return t
}

// perf2Special is x with NaN, ±Inf and large values in it.
func perf2Special(shape ...int64) *runtime.Tensor {
	t := perf2Rand(9, shape...)
	v := t.Float32s()
	sp := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 1e30, -1e30, 0, -0.0, 1e-40, 6, -6, 3.99, -4.01}
	for i := range v {
		if i%3 == 0 {
			v[i] = sp[(i/3)%len(sp)]
		}
	}
	return t
}

// TestPerf2Fuse runs written-out GELU and LayerNorm graphs with the
// fusion on and off: the outputs must agree (NaN and Inf included), and
// the fused schedule must be shorter exactly when the pattern applies.
func TestPerf2Fuse(t *testing.T) {
	cases := []perf2Case{
		{"gelu", perf2GeluGraph(""), 13, perf2Rand(1, 2, 3, 37), true, 0},
		{"gelu_special", perf2GeluGraph(""), 13, perf2Special(5, 29), true, 0},
		{"gelu_mul_rsqrt2", perf2GeluGraph("mul_rsqrt2"), 13, perf2Rand(2, 4, 9), true, 0},
		{"gelu_half_first", perf2GeluGraph("half_first"), 13, perf2Special(3, 11), true, 0},
		{"gelu_rank0_fallback", perf2GeluGraph(""), 13, runtime.FromFloat32(nil, []float32{1.5}), true, 0},
		{"gelu_1d", perf2GeluGraph(""), 13, perf2Rand(4, 7), true, 0},
		{"gelu_half_rank3_not_fused", perf2GeluGraph("half_rank3"), 13, perf2Rand(5, 2, 6), false, 0},
		{"gelu_erf_output_not_fused", perf2GeluGraph("erf_output"), 13, perf2Rand(6, 2, 6), false, 1},
		{"gelu_erf_two_uses_not_fused", perf2GeluGraph("erf_two_uses"), 13, perf2Rand(7, 2, 6), false, 0},
		{"gelu_wrong_const_not_fused", perf2GeluGraph("wrong_const"), 13, perf2Rand(8, 2, 6), false, 0},
		{"ln", perf2LNGraph("", -1, 64, 13), 13, perf2Rand(10, 1, 16, 64), true, 0},
		{"ln_special", perf2LNGraph("", -1, 8, 13), 13, perf2Special(6, 8), true, 0},
		{"ln_axis_positive_last", perf2LNGraph("", 2, 33, 13), 13, perf2Rand(11, 2, 3, 33), true, 0},
		{"ln_opset18_axes_input", perf2LNGraph("", -1, 16, 18), 18, perf2Rand(12, 4, 16), true, 0},
		{"ln_mul_square", perf2LNGraph("mul_square", -1, 16, 13), 13, perf2Rand(13, 4, 16), true, 0},
		{"ln_no_affine", perf2LNGraph("no_affine", -1, 5, 13), 13, perf2Rand(14, 3, 5), true, 0},
		{"ln_scalar_affine", perf2LNGraph("scalar_affine", -1, 5, 13), 13, perf2Rand(15, 3, 5), true, 0},
		// Fused, but the shapes send the step to its fallback program.
		{"ln_axis_not_last_fallback", perf2LNGraph("", 0, 6, 13), 13, perf2Rand(16, 3, 6), true, 0},
		{"ln_broadcast_gamma_fallback", perf2LNGraph("", -1, 6, 13), 13, perf2Rand(17, 3, 1), true, 0},
		{"ln_d_output_not_fused", perf2LNGraph("d_output", -1, 8, 13), 13, perf2Rand(18, 3, 8), false, 1},
		{"matmul_bias", perf2MMGraph("", 64, 48, []int64{48}), 13, perf2Rand(19, 1, 16, 64), true, 0},
		{"matmul_bias_swap", perf2MMGraph("swap", 8, 5, []int64{5}), 13, perf2Special(3, 8), true, 0},
		{"matmul_bias_scalar", perf2MMGraph("", 8, 5, nil), 13, perf2Rand(20, 2, 3, 8), true, 0},
		{"matmul_bias_one", perf2MMGraph("", 8, 5, []int64{1}), 13, perf2Rand(21, 8), true, 0},
		{"matmul_bias_1d_x", perf2MMGraph("", 8, 5, []int64{5}), 13, perf2Rand(22, 8), true, 0},
		{"matmul_bias_big_threads", perf2MMGraph("", 96, 80, []int64{80}), 13, perf2Rand(23, 4, 300, 96), true, 0},
		{"matmul_bias_rank2_not_fused", perf2MMGraph("", 8, 5, []int64{3, 5}), 13, perf2Rand(24, 3, 8), false, 0},
		{"matmul_bias_two_uses_not_fused", perf2MMGraph("two_uses", 8, 5, []int64{5}), 13, perf2Rand(25, 3, 8), false, 0},
		{"matmul_w_not_const_not_fused", perf2MMGraph("w_input", 8, 8, []int64{8}), 13, perf2Rand(26, 8, 8), false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := build.New(tc.name, tc.opset)
			x := b.Input("x", graph.Float, nil)
			y := tc.model(b, x)
			b.Output(y, graph.Float, nil)
			m, err := b.Model()
			if err != nil {
				t.Fatal(err)
			}
			ins := []*runtime.Tensor{tc.x}
			for _, threads := range []int{1, 2} {
				got, steps := perfRun(t, m, threads, ins)
				var want []*runtime.Tensor
				var ref int
				perfWithout(&perf2FuseOn, func() { want, ref = perfRun(t, m, threads, ins) })
				if fused := steps < ref; fused != tc.fused {
					t.Fatalf("threads %d: %d steps fused, %d unfused; want fused=%v", threads, steps, ref, tc.fused)
				}
				if len(got) != 1+tc.extra || len(want) != len(got) {
					t.Fatalf("%d and %d outputs", len(got), len(want))
				}
				for i := range got {
					if err := perf2Close(got[i], want[i], 1e-6, 1e-5); err != nil {
						t.Errorf("threads %d: output %d: %v", threads, i, err)
					}
				}
			}
		})
	}
}

// TestPerf2MatMulAddErrors checks that the fused MatMul+bias reports what
// MatMul reports for inputs it rejects.
func TestPerf2MatMulAddErrors(t *testing.T) {
	b := build.New("mm_err", 13)
	x := b.Input("x", graph.Float, nil)
	y := perf2MMGraph("", 4, 3, []int64{3})(b, x)
	b.Output(y, graph.Float, nil)
	m, err := b.Model()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(m, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []*runtime.Tensor{
		perf2Rand(1, 2, 5),                     // inner dims differ
		runtime.FromFloat32(nil, []float32{1}), // rank 0
	} {
		if _, err := s.Run(t.Context(), []*runtime.Tensor{in}); err == nil || !strings.Contains(err.Error(), "interp: ") {
			t.Errorf("input %s%v: err = %v, want an interp error", in.DType, in.Shape, err)
		}
	}
}

// TestPerf2FuseTransformer checks the fusions on testmodels' transformer
// (two written-out layer norms, a GELU and six MatMul+bias; the ln17
// variant has the GELU and the MatMul+bias only): the schedule loses those nodes and the output is unchanged.
func TestPerf2FuseTransformer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		removed int
	}{{"transformer", 2*(9-1) + (5 - 1) + 6}, {"transformer_ln17", 5 - 1 + 6}} {
		t.Run(tc.name, func(t *testing.T) {
			m := testmodels.All()[tc.name]()
			ins := []*runtime.Tensor{perf2Rand(30, 2, 16, 64)}
			got, steps := perfRun(t, m, 1, ins)
			var want []*runtime.Tensor
			var ref int
			perfWithout(&perf2FuseOn, func() { want, ref = perfRun(t, m, 1, ins) })
			if ref-steps != tc.removed {
				t.Errorf("%d steps fused, %d unfused: removed %d, want %d", steps, ref, ref-steps, tc.removed)
			}
			if err := perf2Close(got[0], want[0], 1e-5, 1e-5); err != nil {
				t.Error(err)
			}
			// Against the schedule before any perf2 change (math.Erf,
			// math.Exp, scalar packing, no fusion).
			var orig []*runtime.Tensor
			perfWithout(&perf2FastOn, func() {
				perfWithout(&perf2FuseOn, func() { orig, _ = perfRun(t, m, 1, ins) })
			})
			if err := perf2Close(got[0], orig[0], 1e-5, 1e-4); err != nil {
				t.Errorf("against the original kernels: %v", err)
			}
		})
	}
}

// BenchmarkPerf2Transformer runs testmodels' transformer at 1 thread with
// every fast path on (for profiles of the fused schedule alone):
//
//	go test -run XXX -bench Perf2Transformer -cpuprofile cpu.out ./pkg/runtime/interp
func BenchmarkPerf2Transformer(b *testing.B) {
	for _, name := range []string{"transformer", "transformer_ln17"} {
		b.Run(name, func(b *testing.B) {
			m := testmodels.All()[name]()
			x := runtime.NewTensor(graph.Float, []int64{1, 16, 64})
			for i := range x.Float32s() {
				x.Float32s()[i] = float32(i%17)/8 - 1
			}
			s, err := Open(m, runtime.Options{Threads: 1})
			if err != nil {
				b.Fatal(err)
			}
			ins := []*runtime.Tensor{x}
			for b.Loop() {
				if _, err := s.Run(b.Context(), ins); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
