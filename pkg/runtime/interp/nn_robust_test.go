package interp

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// TestNNNoPanicOnBadInputs feeds every nn op malformed inputs (wrong ranks,
// mismatched shapes and dtypes, empty tensors, out-of-range indices) and
// checks that each run either succeeds or fails with a validation error:
// never a recovered panic ("internal error").
func TestNNNoPanicOnBadInputs(t *testing.T) {
	f := func(shape ...int64) *runtime.Tensor { return runtime.NewTensor(graph.Float, shape) }
	i64 := func(v ...int64) *runtime.Tensor { return runtime.FromInt64([]int64{int64(len(v))}, v) }
	u8 := func(shape ...int64) *runtime.Tensor { return runtime.NewTensor(graph.Uint8, shape) }
	i8 := func(shape ...int64) *runtime.Tensor { return runtime.NewTensor(graph.Int8, shape) }
	ks := graph.IntsAttr("kernel_shape", 2, 2)
	cases := []struct {
		op, domain string
		ins        []*runtime.Tensor
		attrs      []*graph.Attr
	}{
		{"Conv", "", []*runtime.Tensor{f(1, 3, 4, 4), f(2, 3, 3)}, nil},
		{"Conv", "", []*runtime.Tensor{f(1, 3, 4, 4), f(2, 3, 3, 3), f(5)}, nil},
		{"Conv", "", []*runtime.Tensor{f(0, 3, 4, 4), f(2, 3, 3, 3)}, []*graph.Attr{graph.IntsAttr("pads", 1, 1, 1, 1)}},
		{"Conv", "", []*runtime.Tensor{f(1, 3, 4, 4), f(2, 3, 3, 3)}, []*graph.Attr{graph.IntsAttr("strides", 1)}},
		{"Conv", "", []*runtime.Tensor{f(1, 2, 3, 4, 4, 4, 4, 4, 4), f(1, 2, 1, 1, 1, 1, 1, 1, 1)}, nil},
		{"ConvTranspose", "", []*runtime.Tensor{f(1, 3, 4, 4), f(2, 3, 3, 3)}, nil},
		// A dilation far larger than the image with SAME padding: every tap
		// falls in the padding (found by mutating MNIST's dilations).
		{"Conv", "", []*runtime.Tensor{f(1, 1, 28, 28), f(8, 1, 5, 5)}, []*graph.Attr{graph.StringAttr("auto_pad", "SAME_UPPER"), graph.IntsAttr("dilations", 100000, 100000)}},
		{"Conv", "", []*runtime.Tensor{f(1, 8, 14, 14), f(16, 8, 5, 5)}, []*graph.Attr{graph.StringAttr("auto_pad", "SAME_UPPER"), graph.IntsAttr("dilations", 100000, 100000)}},
		{"Conv", "", []*runtime.Tensor{f(1, 3, 9, 9), f(4, 3, 3, 3)}, []*graph.Attr{graph.StringAttr("auto_pad", "SAME_LOWER"), graph.IntsAttr("dilations", 1, 50000)}},
		{"ConvTranspose", "", []*runtime.Tensor{f(1, 2, 4, 4), f(2, 3, 3, 3)}, []*graph.Attr{graph.IntsAttr("output_shape", 1, 1)}},
		{"MatMul", "", []*runtime.Tensor{f(2, 3), f(4, 5)}, nil},
		{"MatMul", "", []*runtime.Tensor{f(2, 2, 3), f(3, 3, 5)}, nil},
		{"MatMul", "", []*runtime.Tensor{f(), f(3)}, nil},
		{"Gemm", "", []*runtime.Tensor{f(2, 3), f(3, 4), f(3, 4)}, nil},
		{"Gemm", "", []*runtime.Tensor{f(2, 3, 1), f(3, 4)}, nil},
		{"MaxPool", "", []*runtime.Tensor{f(1, 1, 1, 1)}, []*graph.Attr{ks}},
		{"MaxPool", "", []*runtime.Tensor{f(1, 4)}, []*graph.Attr{ks}},
		{"AveragePool", "", []*runtime.Tensor{f(1, 1, 4)}, []*graph.Attr{ks}},
		{"LpPool", "", []*runtime.Tensor{f(1, 1, 4, 4)}, []*graph.Attr{ks, graph.IntsAttr("pads", 1)}},
		{"GlobalAveragePool", "", []*runtime.Tensor{f(3)}, nil},
		{"BatchNormalization", "", []*runtime.Tensor{f(1, 3, 2), f(2), f(3), f(3), f(3)}, nil},
		{"BatchNormalization", "", []*runtime.Tensor{f(1, 3, 2), f(3), f(3), f(3)}, nil},
		{"LayerNormalization", "", []*runtime.Tensor{f(2, 3), f(4)}, nil},
		{"LayerNormalization", "", []*runtime.Tensor{f(2, 3), f(3)}, []*graph.Attr{graph.IntAttr("axis", 5)}},
		{"InstanceNormalization", "", []*runtime.Tensor{f(1, 3, 2), f(2), f(3)}, nil},
		{"GroupNormalization", "", []*runtime.Tensor{f(1, 3, 2), f(3), f(3)}, []*graph.Attr{graph.IntAttr("num_groups", 2)}},
		{"LRN", "", []*runtime.Tensor{f(3)}, []*graph.Attr{graph.IntAttr("size", 3)}},
		{"MeanVarianceNormalization", "", []*runtime.Tensor{f(2, 3)}, nil},
		{"QuantizeLinear", "", []*runtime.Tensor{f(2, 3), f(4)}, nil},
		{"QuantizeLinear", "", []*runtime.Tensor{f(2, 4), f(2, 3)}, []*graph.Attr{graph.IntAttr("block_size", 2)}},
		{"DequantizeLinear", "", []*runtime.Tensor{u8(2, 3), f(3), i8(3)}, nil},
		{"DequantizeLinear", "", []*runtime.Tensor{f(2, 3), f(1)}, nil},
		{"DynamicQuantizeLinear", "", []*runtime.Tensor{u8(3)}, nil},
		{"MatMulInteger", "", []*runtime.Tensor{u8(2, 3), i8(4, 2)}, nil},
		{"MatMulInteger", "", []*runtime.Tensor{u8(2, 3), u8(3, 2), i8(1)}, nil},
		{"QLinearMatMul", "", []*runtime.Tensor{u8(2, 3), f(1), u8(1), u8(3, 2), f(1), u8(1)}, nil},
		{"ConvInteger", "", []*runtime.Tensor{u8(1, 3, 4, 4), u8(2, 2, 3, 3)}, nil},
		{"QLinearConv", "", []*runtime.Tensor{u8(1, 3, 4, 4), f(1), u8(1), u8(2, 3, 3, 3), f(2), u8(2), f(1), u8(1), f(2)}, nil},
		{"MaxUnpool", "", []*runtime.Tensor{f(1, 1, 2, 2), i64(0, 1, 99, 2)}, []*graph.Attr{ks}},
		{"MaxUnpool", "", []*runtime.Tensor{f(1, 1, 2, 2), runtime.FromInt64([]int64{1, 1, 2, 2}, []int64{0, 1, 99, 2})}, []*graph.Attr{ks}},
		{"LpNormalization", "", []*runtime.Tensor{f()}, nil},
		{"SkipLayerNormalization", "com.microsoft", []*runtime.Tensor{f(2, 4), f(2, 4), f(3)}, nil},
		{"BiasGelu", "com.microsoft", []*runtime.Tensor{f(2, 4), f(3)}, nil},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%d_%s", i, tc.op), func(t *testing.T) {
			s, err := Open(nnOneNode(tc.domain, tc.op, tc.ins, 1, tc.attrs...), runtime.Options{Threads: 2})
			if err != nil {
				if strings.Contains(err.Error(), "internal error") {
					t.Fatalf("Open: %v", err)
				}
				t.Logf("Open: %v", err)
				return
			}
			_, err = s.Run(context.Background(), tc.ins)
			t.Logf("%v", err)
			if err != nil && strings.Contains(err.Error(), "internal error") {
				t.Fatalf("Run panicked: %v", err)
			}
		})
	}
}
