package interp

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// TestPerfSmallNConv compares the transposed few-positions path with the
// naive reference and with the normal packed path, over strides, pads,
// groups, batches, pointwise, a clamp activation and the edges of its
// size limit.
func TestPerfSmallNConv(t *testing.T) {
	r := rand.New(rand.NewPCG(61, 62))
	cases := []struct {
		name                  string
		N, C, H, W, M, KH, KW int
		G, sh, sw             int
		pt, pl, pb, pr        int
		bias                  bool
		relu                  bool
		threads               int
	}{
		{"stft_like_k16_s8", 1, 1, 1, 40, 34, 1, 16, 1, 1, 8, 0, 0, 0, 0, false, false, 1}, // 4 positions
		{"encoder_k3_s2", 1, 20, 1, 4, 17, 1, 3, 1, 1, 2, 0, 1, 0, 1, true, true, 1},       // 2 positions
		{"to_one_position", 2, 9, 1, 2, 33, 1, 3, 1, 1, 2, 0, 1, 0, 1, true, false, 2},     // 1 position, batch 2
		{"pointwise_vector", 1, 40, 1, 1, 5, 1, 1, 1, 1, 1, 0, 0, 0, 0, true, true, 1},
		{"pointwise_8", 3, 7, 2, 4, 19, 1, 1, 1, 1, 1, 0, 0, 0, 0, false, true, 1},
		{"grouped_2d", 1, 8, 3, 3, 12, 3, 3, 4, 1, 1, 1, 1, 1, 1, true, false, 2},   // 9 positions: normal path
		{"grouped_2d_s2", 1, 8, 4, 4, 12, 3, 3, 2, 2, 2, 1, 1, 1, 1, true, true, 1}, // 4 positions
		{"K_over_block", 1, 300, 1, 3, 21, 1, 3, 1, 1, 1, 0, 1, 0, 1, true, false, 1},
		{"eight_positions", 1, 3, 2, 4, 10, 1, 1, 1, 1, 1, 0, 0, 0, 0, true, false, 1},
	}
	for _, tc := range cases {
		x := nnRandF32(r, tc.N*tc.C*tc.H*tc.W)
		w := nnRandF32(r, tc.M*(tc.C/tc.G)*tc.KH*tc.KW)
		var b []float32
		if tc.bias {
			b = nnRandF32(r, tc.M)
		}
		OH := (tc.H+tc.pt+tc.pb-tc.KH)/tc.sh + 1
		OW := (tc.W+tc.pl+tc.pr-tc.KW)/tc.sw + 1
		want := nnNaiveConv2D(x, tc.N, tc.C, tc.H, tc.W, w, tc.M, tc.KH, tc.KW, b, tc.G, tc.sh, tc.sw, 1, 1, tc.pt, tc.pl, OH, OW)
		xs := []int64{int64(tc.N), int64(tc.C), int64(tc.H), int64(tc.W)}
		ws := []int64{int64(tc.M), int64(tc.C / tc.G), int64(tc.KH), int64(tc.KW)}
		m := nnConvModel(xs, ws, tc.bias, true, w, b,
			graph.IntAttr("group", int64(tc.G)),
			graph.IntsAttr("strides", int64(tc.sh), int64(tc.sw)),
			graph.IntsAttr("pads", int64(tc.pt), int64(tc.pl), int64(tc.pb), int64(tc.pr)))
		if tc.relu {
			g := m.Graph
			conv := g.Nodes[len(g.Nodes)-1]
			conv.Outputs[0] = "pre"
			g.Nodes = append(g.Nodes, &graph.Node{OpType: "Relu", Inputs: []string{"pre"}, Outputs: []string{g.Outputs[0].Name}})
			for i, v := range want {
				want[i] = float32(math.Max(float64(v), 0))
			}
		}
		ins := []*runtime.Tensor{runtime.FromFloat32(xs, x)}
		perfCheckConvPath(t, tc.name, m, tc.threads, ins, want, &perfSmallNOn, "transposed and normal")
	}
}

// TestPerfDirectConvShapeChanges runs one session over inputs whose height
// and width change between runs (and back): the direct path keeps its
// padded buffer's zeros across runs, so a stale border would show here.
func TestPerfDirectConvShapeChanges(t *testing.T) {
	r := rand.New(rand.NewPCG(71, 72))
	const C, M = 3, 8
	w := nnRandF32(r, M*C*3*3)
	b := nnRandF32(r, M)
	xs := []int64{1, C, -1, -1}
	m := nnConvModel(xs, []int64{M, C, 3, 3}, true, true, w, b, graph.IntsAttr("pads", 1, 2, 2, 1))
	m.Graph.Inputs[0].Shape = graph.Shape{{Size: 1}, {Size: C}, {Size: -1, Param: "H"}, {Size: -1, Param: "W"}}
	s, err := Open(m, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, hw := range [][2]int{{10, 12}, {7, 5}, {10, 12}, {16, 9}, {7, 5}} {
		H, W := hw[0], hw[1]
		x := nnRandF32(r, C*H*W)
		for i := range x {
			x[i] += 3 // a stale border of old data would be far from zero
		}
		OH, OW := H+3-3+1, W+3-3+1
		want := nnNaiveConv2D(x, 1, C, H, W, w, M, 3, 3, b, 1, 1, 1, 1, 1, 1, 2, OH, OW)
		out, err := s.Run(context.Background(), []*runtime.Tensor{runtime.FromFloat32([]int64{1, C, int64(H), int64(W)}, x)})
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range out[0].Float32s() {
			if math.Abs(float64(v-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
				t.Fatalf("%dx%d: y[%d] = %g, want %g", H, W, i, v, want[i])
			}
		}
	}
}
