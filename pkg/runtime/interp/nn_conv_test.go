package interp

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// nnNaiveConv2D is a direct reference convolution (NCHW, groups, pads,
// strides, dilations).
func nnNaiveConv2D(x []float32, N, C, H, W int, w []float32, M, KH, KW int, b []float32, G, sh, sw, dh, dw, pt, pl, OH, OW int) []float32 {
	y := make([]float32, N*M*OH*OW)
	Cg, Mg := C/G, M/G
	for n := 0; n < N; n++ {
		for m := 0; m < M; m++ {
			g := m / Mg
			for oh := 0; oh < OH; oh++ {
				for ow := 0; ow < OW; ow++ {
					var s float64
					if b != nil {
						s = float64(b[m])
					}
					for c := 0; c < Cg; c++ {
						for kh := 0; kh < KH; kh++ {
							for kw := 0; kw < KW; kw++ {
								ih, iw := oh*sh-pt+kh*dh, ow*sw-pl+kw*dw
								if ih < 0 || ih >= H || iw < 0 || iw >= W {
									continue
								}
								s += float64(x[((n*C+g*Cg+c)*H+ih)*W+iw]) * float64(w[((m*Cg+c)*KH+kh)*KW+kw])
							}
						}
					}
					y[((n*M+m)*OH+oh)*OW+ow] = float32(s)
				}
			}
		}
	}
	return y
}

// nnConvModel builds a one-node Conv model; W (and B) are initializers when
// constW is true, else graph inputs.
func nnConvModel(xs, ws []int64, bias bool, constW bool, w, b []float32, attrs ...*graph.Attr) *graph.Model {
	g := &graph.Graph{Name: "conv"}
	g.Inputs = append(g.Inputs, &graph.ValueInfo{Name: "X", DType: graph.Float, HasShape: true, Shape: graph.ShapeOf(xs)})
	in := []string{"X", "W"}
	if constW {
		g.Initializers = append(g.Initializers, graph.NewFloat32("W", ws, w))
	} else {
		g.Inputs = append(g.Inputs, &graph.ValueInfo{Name: "W", DType: graph.Float, HasShape: true, Shape: graph.ShapeOf(ws)})
	}
	if bias {
		in = append(in, "B")
		g.Initializers = append(g.Initializers, graph.NewFloat32("B", []int64{ws[0]}, b))
	}
	g.Nodes = []*graph.Node{{OpType: "Conv", Inputs: in, Outputs: []string{"Y"}, Attrs: attrs}}
	g.Outputs = []*graph.ValueInfo{{Name: "Y", DType: graph.Float}}
	m := &graph.Model{IRVersion: 8, Graph: g}
	m.SetOpset("", 13)
	return m
}

func TestNNConvPaths(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	cases := []struct {
		name                  string
		N, C, H, W, M, KH, KW int
		G, sh, sw, dh, dw     int
		pt, pl, pb, pr        int
		bias, constW          bool
		threads               int
	}{
		{"general3x3", 1, 3, 9, 11, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, true, 1},
		{"general_stride2_dil", 2, 4, 13, 10, 6, 3, 2, 1, 2, 2, 2, 1, 2, 0, 1, 2, false, false, 2},
		{"pointwise", 1, 16, 12, 24, 24, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, true, true, 2},
		{"pointwise_big", 1, 72, 24, 48, 40, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, true, true, 2},
		{"depthwise3x3", 1, 8, 24, 96, 8, 3, 3, 8, 1, 1, 1, 1, 1, 1, 1, 1, true, true, 2},
		{"depthwise5x5_s2", 2, 6, 23, 31, 6, 5, 5, 6, 2, 2, 1, 1, 2, 2, 2, 2, true, false, 1},
		{"depthwise_dil_asym", 1, 4, 10, 12, 4, 3, 3, 4, 1, 2, 2, 1, 0, 3, 1, 0, false, true, 1},
		{"grouped", 1, 8, 10, 10, 12, 3, 3, 4, 1, 1, 1, 1, 1, 1, 1, 1, true, true, 2},
		{"depth_multiplier", 1, 4, 8, 8, 8, 3, 3, 4, 1, 1, 1, 1, 1, 1, 1, 1, true, true, 1},
		{"im2col_big_K", 1, 40, 14, 14, 33, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, true, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			x := nnRandF32(r, tc.N*tc.C*tc.H*tc.W)
			w := nnRandF32(r, tc.M*(tc.C/tc.G)*tc.KH*tc.KW)
			var b []float32
			if tc.bias {
				b = nnRandF32(r, tc.M)
			}
			OH := (tc.H+tc.pt+tc.pb-((tc.KH-1)*tc.dh+1))/tc.sh + 1
			OW := (tc.W+tc.pl+tc.pr-((tc.KW-1)*tc.dw+1))/tc.sw + 1
			want := nnNaiveConv2D(x, tc.N, tc.C, tc.H, tc.W, w, tc.M, tc.KH, tc.KW, b, tc.G, tc.sh, tc.sw, tc.dh, tc.dw, tc.pt, tc.pl, OH, OW)
			xs := []int64{int64(tc.N), int64(tc.C), int64(tc.H), int64(tc.W)}
			ws := []int64{int64(tc.M), int64(tc.C / tc.G), int64(tc.KH), int64(tc.KW)}
			m := nnConvModel(xs, ws, tc.bias, tc.constW, w, b,
				graph.IntAttr("group", int64(tc.G)),
				graph.IntsAttr("strides", int64(tc.sh), int64(tc.sw)),
				graph.IntsAttr("dilations", int64(tc.dh), int64(tc.dw)),
				graph.IntsAttr("pads", int64(tc.pt), int64(tc.pl), int64(tc.pb), int64(tc.pr)))
			s, err := Open(m, runtime.Options{Threads: tc.threads})
			if err != nil {
				t.Fatal(err)
			}
			ins := []*runtime.Tensor{runtime.FromFloat32(xs, x)}
			if !tc.constW {
				ins = append(ins, runtime.FromFloat32(ws, w))
			}
			for run := 0; run < 2; run++ { // second run reuses buffers
				out, err := s.Run(context.Background(), ins)
				if err != nil {
					t.Fatal(err)
				}
				got := out[0]
				if fmt.Sprint(got.Shape) != fmt.Sprint([]int64{int64(tc.N), int64(tc.M), int64(OH), int64(OW)}) {
					t.Fatalf("shape %v, want [%d %d %d %d]", got.Shape, tc.N, tc.M, OH, OW)
				}
				for i, v := range got.Float32s() {
					if math.Abs(float64(v-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("run %d: y[%d] = %g, want %g", run, i, v, want[i])
					}
				}
			}
		})
	}
}

// TestNNBadInputs checks that malformed shapes give errors, not panics.
func TestNNBadInputs(t *testing.T) {
	cases := []struct {
		name   string
		xs, ws []int64
		attrs  []*graph.Attr
	}{
		{"channel_mismatch", []int64{1, 3, 8, 8}, []int64{4, 2, 3, 3}, nil},
		{"kernel_too_big", []int64{1, 1, 2, 2}, []int64{1, 1, 5, 5}, nil},
		{"rank_mismatch", []int64{1, 1, 8}, []int64{1, 1, 3, 3}, nil},
		{"bad_group", []int64{1, 3, 8, 8}, []int64{3, 1, 3, 3}, []*graph.Attr{graph.IntAttr("group", 2)}},
		{"pads_wrong_len", []int64{1, 1, 8, 8}, []int64{1, 1, 3, 3}, []*graph.Attr{graph.IntsAttr("pads", 1, 1)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := nnConvModel(tc.xs, tc.ws, false, false, nil, nil, tc.attrs...)
			s, err := Open(m, runtime.Options{Threads: 1})
			if err != nil {
				return // refused at Open: fine
			}
			x := runtime.NewTensor(graph.Float, tc.xs)
			w := runtime.NewTensor(graph.Float, tc.ws)
			_, err = s.Run(context.Background(), []*runtime.Tensor{x, w})
			if err == nil {
				t.Fatal("no error")
			}
			if msg := err.Error(); len(msg) < 8 || msg[:8] != "interp: " || nnContains(msg, "internal error") {
				t.Fatalf("error %q: want a validation error, not a recovered panic", msg)
			}
		})
	}
}

func nnContains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
