package graph_test

import (
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
)

// TestCostHandComputed checks MACs, FLOPs and params against counts worked
// out by hand.
func TestCostHandComputed(t *testing.T) {
	F := graph.Float
	cases := []struct {
		name          string
		build         func() *tb
		macs, flops   int64
		params, bytes int64
	}{
		{"mlp", func() *tb {
			// 784 -> 128 -> 10: MACs 784*128 + 128*10; FLOPs 2*MACs + relu 128 + softmax 5*10.
			return newTB(13).input("x", F, 1, 784).weight("w1", 784, 128).weight("b1", 128).weight("w2", 128, 10).weight("b2", 10).
				node("Gemm", in("x", "w1", "b1"), in("h")).node("Relu", in("h"), in("r")).
				node("Gemm", in("r", "w2", "b2"), in("l")).node("Softmax", in("l"), in("y")).output("y")
		}, 784*128 + 128*10, 2*(784*128+128*10) + 128 + 5*10, 784*128 + 128 + 128*10 + 10, 4 * (784*128 + 128 + 128*10 + 10)},
		{"cnn", func() *tb {
			// conv 3->8 k3 on 32x32: 8*30*30*27; relu 7200; maxpool 2x2: 1800*4;
			// depthwise conv k3 pad 1 group 8: 1800*9; flatten; gemm 1800x10.
			return newTB(13).input("x", F, 1, 3, 32, 32).weight("w", 8, 3, 3, 3).weight("b", 8).weight("dw", 8, 1, 3, 3).weight("fc", 1800, 10).
				node("Conv", in("x", "w", "b"), in("c")).node("Relu", in("c"), in("r")).
				node("MaxPool", in("r"), in("p"), graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2)).
				node("Conv", in("p", "dw"), in("d"), graph.IntAttr("group", 8), graph.IntsAttr("pads", 1, 1, 1, 1)).
				node("Flatten", in("d"), in("f")).node("Gemm", in("f", "fc"), in("y")).output("y")
		}, 8*30*30*27 + 1800*9 + 1800*10, 2*(8*30*30*27+1800*9+1800*10) + 7200 + 1800*4, 8*27 + 8 + 72 + 18000, 4 * (8*27 + 8 + 72 + 18000)},
		{"dilated conv and conv transpose", func() *tb {
			// dilated conv: out 1x4x28x28, 3*9 MACs each; transpose: each of 4*28*28 inputs feeds 2*2*2 (group 2: Cout/g=1... W [4,1,2,2]).
			return newTB(13).input("x", F, 1, 3, 32, 32).weight("w", 4, 3, 3, 3).weight("wt", 4, 1, 2, 2).
				node("Conv", in("x", "w"), in("c"), graph.IntsAttr("dilations", 2, 2)).
				node("ConvTranspose", in("c", "wt"), in("y"), graph.IntsAttr("strides", 2, 2), graph.IntAttr("group", 2)).output("y")
		}, 4*28*28*27 + 4*28*28*4, 2 * (4*28*28*27 + 4*28*28*4), 4*27 + 16, 4 * (4*27 + 16)},
		{"lstm and batched matmul", func() *tb {
			// LSTM T=5 N=2 input 16 hidden 32: 5*2*4*32*(16+32); MatMul [2,4,5]x[5,6]: 2*4*6*5.
			return newTB(13).input("x", F, 5, 2, 16).weight("w", 1, 128, 16).weight("r", 1, 128, 32).
				input("a", F, 2, 4, 5).weight("m", 5, 6).
				node("LSTM", in("x", "w", "r"), in("y"), graph.IntAttr("hidden_size", 32)).
				node("MatMul", in("a", "m"), in("z")).output("y").output("z")
		}, 5*2*4*32*48 + 240, 2 * (5*2*4*32*48 + 240), 128*16 + 128*32 + 30, 4 * (128*16 + 128*32 + 30)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.build()
			r, err := graph.Cost(b.m)
			if err != nil {
				t.Fatal(err)
			}
			if r.MACs != c.macs || r.FLOPs != c.flops {
				t.Errorf("MACs %d FLOPs %d, want %d and %d", r.MACs, r.FLOPs, c.macs, c.flops)
			}
			if r.Params != c.params || r.ParamBytes != c.bytes {
				t.Errorf("params %d (%d bytes), want %d (%d)", r.Params, r.ParamBytes, c.params, c.bytes)
			}
			if len(r.UnknownCost) != 0 {
				t.Errorf("unknown cost: %v", r.UnknownCost)
			}
			if len(r.ByDType) != 1 || r.ByDType[0].DType != "float32" || r.ByDType[0].Params != c.params {
				t.Errorf("by dtype %+v", r.ByDType)
			}
			if len(b.g.ValueInfo) != 0 {
				t.Errorf("Cost changed the model (value_info has %d entries)", len(b.g.ValueInfo))
			}
		})
	}
}

func TestCostPeakActivation(t *testing.T) {
	// x(400B) -> a=Relu(x) -> b=Relu(a) -> c=Add(a,b): at the Add, a, b and c
	// are live: 1200 bytes; x dies after the first Relu.
	b := newTB(13).input("x", graph.Float, 1, 100).
		node("Relu", in("x"), in("a")).node("Relu", in("a"), in("b")).node("Add", in("a", "b"), in("c")).output("c")
	r, err := graph.Cost(b.m)
	if err != nil {
		t.Fatal(err)
	}
	if r.PeakActivationBytes != 1200 || !strings.Contains(r.PeakNode, "Add") {
		t.Errorf("peak %d at %s, want 1200 at the Add", r.PeakActivationBytes, r.PeakNode)
	}
	if r.ActivationBytes != 1200 {
		t.Errorf("activation sum %d, want 1200", r.ActivationBytes)
	}
	if r.FLOPs != 300 {
		t.Errorf("FLOPs %d, want 300", r.FLOPs)
	}

	// Reordering so that a long-lived value overlaps more raises the peak.
	b = newTB(13).input("x", graph.Float, 1, 100).
		node("Relu", in("x"), in("a")).node("Relu", in("x"), in("b")).node("Relu", in("x"), in("d")).
		node("Sum", in("a", "b", "d"), in("c")).output("c")
	r, err = graph.Cost(b.m)
	if err != nil {
		t.Fatal(err)
	}
	if r.PeakActivationBytes != 1600 {
		t.Errorf("peak %d, want 1600 (a, b, d, c live at the Sum; x is dead)", r.PeakActivationBytes)
	}
}

func TestCostUnknownDims(t *testing.T) {
	b := newTB(13).input("x", graph.Float, "N", 784).weight("w", 784, 10).
		node("Gemm", in("x", "w"), in("y")).node("Relu", in("y"), in("z")).
		domainNode("com.example", "Mystery", in("z"), in("q")).output("q")
	r, err := graph.Cost(b.m)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.UnknownCost) != 3 || r.MACs != 0 {
		t.Errorf("unknown cost %v, MACs %d", r.UnknownCost, r.MACs)
	}
	if len(r.UnknownSize) == 0 {
		t.Errorf("no values of unknown size reported")
	}
	// With the batch fixed, the Gemm and Relu count.
	if _, err := graph.InferShapes(b.m, graph.InferOptions{Fixed: map[string][]int64{"x": {2, 784}}}); err != nil {
		t.Fatal(err)
	}
	r, err = graph.Cost(b.m)
	if err != nil {
		t.Fatal(err)
	}
	if r.MACs != 2*784*10 || r.FLOPs != 2*2*784*10+20 || len(r.UnknownCost) != 1 {
		t.Errorf("MACs %d FLOPs %d unknown %v", r.MACs, r.FLOPs, r.UnknownCost)
	}
	if h := r.Heaviest(10); len(h) != 2 || h[0].OpType != "Gemm" {
		t.Errorf("heaviest %+v", h)
	}
}
