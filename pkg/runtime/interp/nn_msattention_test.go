package interp

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// attnModel is one com.microsoft.Attention node; names maps input slots to
// tensors (a nil entry is an omitted optional input).
func attnModel(ins []*runtime.Tensor, attrs ...*graph.Attr) *graph.Model {
	g := &graph.Graph{Name: "attn"}
	n := &graph.Node{OpType: "Attention", Domain: "com.microsoft", Outputs: []string{"y"}, Attrs: attrs}
	for i, t := range ins {
		if t == nil {
			n.Inputs = append(n.Inputs, "")
			continue
		}
		name := string(rune('a' + i))
		n.Inputs = append(n.Inputs, name)
		g.Inputs = append(g.Inputs, &graph.ValueInfo{Name: name, DType: t.DType, HasShape: true, Shape: graph.ShapeOf(t.Shape)})
	}
	g.Outputs = []*graph.ValueInfo{{Name: "y"}}
	g.Nodes = []*graph.Node{n}
	m := &graph.Model{IRVersion: 8, Graph: g}
	m.SetOpset("", 17)
	m.SetOpset("com.microsoft", 1)
	return m
}

// refAttn computes Attention in float64 from its definition.
func refAttn(x, w, b []float32, bias []float32, B, S, D, H int, scale float64, causal bool) []float64 {
	T := len(w) / D
	hid := T / 3
	dh := hid / H
	qkv := make([]float64, B*S*T)
	for r := 0; r < B*S; r++ {
		for j := 0; j < T; j++ {
			s := float64(b[j])
			for k := 0; k < D; k++ {
				s += float64(x[r*D+k]) * float64(w[k*T+j])
			}
			qkv[r*T+j] = s
		}
	}
	out := make([]float64, B*S*hid)
	for bi := 0; bi < B; bi++ {
		for h := 0; h < H; h++ {
			for i := 0; i < S; i++ {
				p := make([]float64, S)
				mx := math.Inf(-1)
				for j := 0; j < S; j++ {
					if causal && j > i {
						p[j] = math.Inf(-1)
						continue
					}
					var s float64
					for d := 0; d < dh; d++ {
						s += qkv[(bi*S+i)*T+h*dh+d] * qkv[(bi*S+j)*T+hid+h*dh+d]
					}
					p[j] = s * scale
					if bias != nil {
						p[j] += float64(bias[(h*S+i)*S+j]) // bias shaped [1,H,S,S]
					}
					mx = math.Max(mx, p[j])
				}
				var sum float64
				for j := range p {
					p[j] = math.Exp(p[j] - mx)
					sum += p[j]
				}
				for d := 0; d < dh; d++ {
					var s float64
					for j := range p {
						s += p[j] / sum * qkv[(bi*S+j)*T+2*hid+h*dh+d]
					}
					out[(bi*S+i)*hid+h*dh+d] = s
				}
			}
		}
	}
	return out
}

func TestNNMSAttention(t *testing.T) {
	const B, S, D, H = 2, 3, 4, 2
	fill := func(n int, k float32) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32((i*37)%11)/11*k - k/2
		}
		return v
	}
	x, w, b := fill(B*S*D, 2), fill(D*3*D, 1), fill(3*D, 0.5)
	ab := fill(H*S*S, 3)
	X := runtime.FromFloat32([]int64{B, S, D}, x)
	W := runtime.FromFloat32([]int64{D, 3 * D}, w)
	Bv := runtime.FromFloat32([]int64{3 * D}, b)
	AB := runtime.FromFloat32([]int64{1, H, S, S}, ab)
	heads := graph.IntAttr("num_heads", H)
	good := []struct {
		name   string
		ins    []*runtime.Tensor
		attrs  []*graph.Attr
		scale  float64
		causal bool
		bias   []float32
	}{
		{"default scale", []*runtime.Tensor{X, W, Bv}, []*graph.Attr{heads}, 1 / math.Sqrt(D/H), false, nil},
		{"scale", []*runtime.Tensor{X, W, Bv}, []*graph.Attr{heads, graph.FloatAttr("scale", 0.3)}, float64(float32(0.3)), false, nil},
		{"causal", []*runtime.Tensor{X, W, Bv}, []*graph.Attr{heads, graph.IntAttr("unidirectional", 1)}, 1 / math.Sqrt(D/H), true, nil},
		{"attention bias", []*runtime.Tensor{X, W, Bv, nil, nil, AB}, []*graph.Attr{heads}, 1 / math.Sqrt(D/H), false, ab},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(attnModel(tc.ins, tc.attrs...), runtime.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			var feed []*runtime.Tensor
			for _, in := range tc.ins {
				if in != nil {
					feed = append(feed, in)
				}
			}
			out, err := s.Run(context.Background(), feed)
			if err != nil {
				t.Fatal(err)
			}
			want := refAttn(x, w, b, tc.bias, B, S, D, H, tc.scale, tc.causal)
			got := out[0].Float32s()
			if len(got) != len(want) {
				t.Fatalf("%d values, want %d", len(got), len(want))
			}
			for i := range want {
				if math.Abs(float64(got[i])-want[i]) > 1e-5*(1+math.Abs(want[i])) {
					t.Fatalf("value %d: got %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
	bad := []struct {
		name    string
		ins     []*runtime.Tensor
		attrs   []*graph.Attr
		openErr bool
		want    string
	}{
		{"no heads", []*runtime.Tensor{X, W, Bv}, nil, true, "num_heads"},
		{"mask index", []*runtime.Tensor{X, W, Bv, runtime.FromInt32([]int64{B}, []int32{3, 3})}, []*graph.Attr{heads}, true, "mask_index"},
		{"rank 2 input", []*runtime.Tensor{runtime.FromFloat32([]int64{S, D}, x[:S*D]), W, Bv}, []*graph.Attr{heads}, false, "[B,S,D]"},
		{"weights mismatch", []*runtime.Tensor{X, runtime.FromFloat32([]int64{D + 1, 3 * D}, fill((D+1)*3*D, 1)), Bv}, []*graph.Attr{heads}, false, "do not match"},
		{"heads do not divide", []*runtime.Tensor{X, W, Bv}, []*graph.Attr{graph.IntAttr("num_heads", 3)}, false, "heads"},
		{"bias length", []*runtime.Tensor{X, W, runtime.FromFloat32([]int64{5}, fill(5, 1))}, []*graph.Attr{heads}, false, "bias has 5"},
		{"attention bias shape", []*runtime.Tensor{X, W, Bv, nil, nil, runtime.FromFloat32([]int64{1, H, S, S + 1}, fill(H*S*(S+1), 1))}, []*graph.Attr{heads}, false, "attention_bias"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(attnModel(tc.ins, tc.attrs...), runtime.Options{Threads: 1})
			if err == nil {
				var feed []*runtime.Tensor
				for _, in := range tc.ins {
					if in != nil {
						feed = append(feed, in)
					}
				}
				_, err = s.Run(context.Background(), feed)
			} else if !tc.openErr {
				t.Fatalf("Open failed: %v", err)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
}
