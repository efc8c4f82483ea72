package interp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// BenchmarkNNConv times single Conv nodes (constant weights, bias) on
// ppocr-cls-like (MobileNetV3, 1x3x48x192 input) and ResNet-like shapes, at
// 1 thread and at 2, and reports GFLOP/s (2·MACs).
func BenchmarkNNConv(b *testing.B) {
	cases := []struct {
		name                   string
		C, H, W, M, K, G, S, P int
	}{
		{"stem3x3s2_3to8_48x192", 3, 48, 192, 8, 3, 1, 2, 1},
		{"dw3x3_16ch_24x96", 16, 24, 96, 16, 3, 16, 1, 1},
		{"dw5x5s2_72ch_12x48", 72, 12, 48, 72, 5, 72, 2, 2},
		{"pw_16to48_24x96", 16, 24, 96, 48, 1, 1, 1, 0},
		{"pw_96to576_3x12", 96, 3, 12, 576, 1, 1, 1, 0},
		{"conv3x3_64to64_56x56", 64, 56, 56, 64, 3, 1, 1, 1},
	}
	for _, tc := range cases {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/t%d", tc.name, threads), func(b *testing.B) {
				r := rand.New(rand.NewPCG(7, 8))
				xs := []int64{1, int64(tc.C), int64(tc.H), int64(tc.W)}
				ws := []int64{int64(tc.M), int64(tc.C / tc.G), int64(tc.K), int64(tc.K)}
				w := nnRandF32(r, nnNumel(ws))
				bias := nnRandF32(r, tc.M)
				m := nnConvModel(xs, ws, true, true, w, bias, graph.IntAttr("group", int64(tc.G)),
					graph.IntsAttr("strides", int64(tc.S), int64(tc.S)),
					graph.IntsAttr("pads", int64(tc.P), int64(tc.P), int64(tc.P), int64(tc.P)))
				s, err := Open(m, runtime.Options{Threads: threads})
				if err != nil {
					b.Fatal(err)
				}
				in := []*runtime.Tensor{runtime.FromFloat32(xs, nnRandF32(r, nnNumel(xs)))}
				out, err := s.Run(context.Background(), in)
				if err != nil {
					b.Fatal(err)
				}
				flops := 2 * float64(out[0].Len()) * float64(tc.C/tc.G*tc.K*tc.K)
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if _, err := s.Run(context.Background(), in); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
