package quant

import (
	"math"
	"math/rand"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/build"
)

// wideCNN is the test CNN's shape with 64-128 channels instead of 16-32
// (stem, a residual block, MaxPool, a wider conv, GlobalAveragePool,
// Flatten, Gemm), with He-initialised random weights and no
// BatchNormalization: a model large enough for int8 convolution kernels to
// matter, used to show where the int8 forms pay off.
func wideCNN() *graph.Model {
	b := build.New("wide_cnn", 13)
	r := rand.New(rand.NewSource(5))
	he := func(name string, fanIn int64, dims ...int64) string {
		n := int64(1)
		for _, d := range dims {
			n *= d
		}
		f := make([]float32, n)
		std := math.Sqrt(2 / float64(fanIn))
		for i := range f {
			f[i] = float32(r.NormFloat64() * std)
		}
		return b.Float32(name, dims, f)
	}
	bias := func(name string, n int64) string {
		f := make([]float32, n)
		for i := range f {
			f[i] = float32(r.NormFloat64() * 0.05)
		}
		return b.Float32(name, []int64{n}, f)
	}
	conv := func(x, name string, cin, cout int64) string {
		return b.Node("Conv", []string{x, he(name+".w", cin*9, cout, cin, 3, 3), bias(name+".b", cout)},
			graph.IntsAttr("kernel_shape", 3, 3), graph.IntsAttr("pads", 1, 1, 1, 1))
	}
	relu := func(x string) string { return b.Node("Relu", []string{x}) }
	x := b.Input("input", graph.Float, build.Dims("N", 3, 32, 32))
	stem := relu(conv(x, "stem", 3, 64))
	h := relu(conv(stem, "block.conv1", 64, 64))
	h = conv(h, "block.conv2", 64, 64)
	h = relu(b.Node("Add", []string{h, stem}))
	h = b.Node("MaxPool", []string{h}, graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2))
	h = relu(conv(h, "wide", 64, 128))
	h = b.Node("GlobalAveragePool", []string{h})
	h = b.Node("Flatten", []string{h}, graph.IntAttr("axis", 1))
	y := b.Node("Gemm", []string{h, he("head.w", 128, 10, 128), bias("head.b", 10)}, graph.IntAttr("transB", 1))
	b.Op("Identity", "logits", []string{y}, []string{"logits"})
	b.Output("logits", graph.Float, build.Dims("N", 10))
	m, err := b.Model()
	if err != nil {
		panic(err)
	}
	return m
}
