package passes

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/runtime/ort"
	"github.com/optictl/optictl/testmodels"
)

// TestLayoutNCHWcPaddleDetector runs -O3 --target ort-cpu with the NCHWc
// layout (block 8 and 16) over testmodels' dbnet, a text detector in the
// form Paddle2ONNX exports (opset 11, Constant weights, dynamic H/W,
// Conv+BN+HardSwish, an SE block, residual Adds, FPN Resizes, a
// ConvTranspose head). The model is verified on a realistic 64x96 image
// (and, as verification does by default today, on dynamic dims of 1): no
// pass may be rolled back;
// the result must then agree with the original on interp, and on ONNX
// Runtime for this CPU's block size, at other realistic sizes too: square
// and not, batch 1 and 2.
//
// It failed before the fix: the SE block's Mul of x [N,40,H/16,W/16] by
// its per-channel gate [N,40,1,1] was taken for an elementwise Mul of
// equal shapes, because the shape probes (all dynamic dims 2, then 3)
// shrink H/16 to 1 as well.
func TestLayoutNCHWcPaddleDetector(t *testing.T) {
	m := testmodels.DBNet()
	verifyShape := testmodels.InputShapes(m, 1)["x"] // 1x3x64x96
	// Realistic sizes, square and not, batch 1 and 2; and 1x1, where the
	// original's FPN Adds broadcast (a blocked Add could not).
	shapes := [][]int64{{1, 3, 64, 96}, {2, 3, 96, 128}, {1, 3, 160, 160}, {1, 3, 32, 32}, {1, 3, 1, 1}}
	// Image-like inputs in [-1, 1) (made here, not by the verifier's
	// generator, so the test does not move with it).
	inputs := func(shape []int64, seed int64) map[string]*runtime.Tensor {
		rng := rand.New(rand.NewSource(seed))
		x := runtime.NewTensor(graph.Float, shape)
		for i := range x.Float32s() {
			x.Float32s()[i] = float32(rng.Float64()*2 - 1)
		}
		return map[string]*runtime.Tensor{"x": x}
	}
	hostBlock := runtime.HostNCHWcBlock()
	for _, tc := range []struct {
		block int
		data  bool // verify on a 64x96 input too, else on seeded inputs only (dynamic dims 1)
	}{{8, true}, {16, true}, {16, false}} {
		block := tc.block
		t.Run(fmt.Sprintf("block%d/data=%v", block, tc.data), func(t *testing.T) {
			opts := Options{Level: O3, Target: TargetORTCPU, NCHWcBlock: block, Verify: true, VerifyEachPass: true}
			if tc.data {
				opts.Inputs = inputs(verifyShape, 7)
			}
			out, rep, err := Optimize(m, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Rollbacks) > 0 {
				t.Fatalf("rolled back: %+v", rep.Rollbacks)
			}
			blocked, convs := 0, 0
			for _, n := range out.Graph.Nodes {
				switch {
				case n.Domain == NCHWcDomain && n.OpType == "Conv":
					blocked++
				case n.Is("Conv") || n.OpType == "FusedConv":
					convs++
				}
			}
			if blocked == 0 || convs > 0 {
				t.Fatalf("%d convs in NCHWc layout, %d left plain:\n%s", blocked, convs, out.Format())
			}
			// The SE gate multiplies by a [N,C,1,1] tensor: that Mul must
			// read plain tensors.
			prod := out.Graph.Producers()
			for _, n := range out.Graph.Nodes {
				if !n.Is("Mul") {
					continue
				}
				for _, in := range n.Inputs {
					if p := prod[in]; p != nil && p.Domain == NCHWcDomain && p.OpType == "Conv" && p.AttrString("activation", "") == "HardSigmoid" {
						t.Errorf("the SE block's broadcast Mul reads the blocked gate %s directly", in)
					}
				}
			}
			check := func(backend string, ropts runtime.Options) {
				t.Helper()
				orig, err := runtime.Open(backend, m, runtime.Options{Threads: 1})
				if err != nil {
					t.Fatal(err)
				}
				defer orig.Close()
				opt, err := runtime.Open(backend, out, ropts)
				if err != nil {
					t.Fatal(err)
				}
				defer opt.Close()
				for i, sh := range shapes {
					in := inputs(sh, int64(i+1))
					want, err := runtime.RunNamed(context.Background(), orig, in)
					if err != nil {
						t.Fatal(err)
					}
					got, err := runtime.RunNamed(context.Background(), opt, in)
					if err != nil {
						t.Fatalf("%s %v: %v", backend, sh, err)
					}
					for k, w := range want {
						g := got[k]
						if g == nil || !slices.Equal(g.Shape, w.Shape) {
							t.Fatalf("%s, input %v: output %s missing or of another shape", backend, sh, k)
						}
						gv, wv := g.Float32s(), w.Float32s()
						for j := range wv {
							if d := math.Abs(float64(gv[j] - wv[j])); !(d <= 1e-4+1e-3*math.Abs(float64(wv[j]))) {
								t.Errorf("%s, input %v: output %s element %d is %g, want %g", backend, sh, k, j, gv[j], wv[j])
								break
							}
						}
					}
				}
			}
			check("interp", runtime.Options{Threads: 1})
			if block != hostBlock {
				return // ORT's NCHWc kernels on this CPU use the other block size
			}
			if len(ort.Candidates("")) == 0 {
				testutil.Missing(t, "ONNX Runtime shared library (run `make setup`)")
				return
			}
			check("ort", runtime.Options{Threads: 1, OptLevel: "off"})
		})
	}
}
