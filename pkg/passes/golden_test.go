package passes

import (
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.txt")

type goldenCase struct {
	name   string // golden file name
	passes []string
	target string
	// needs lists interp ops the case needs to fire (folding); the case is
	// skipped when interp lacks them.
	needs  []string
	model  func() *graph.Model
	change bool // whether the pass must change the model
	// noRef says why the reference backend cannot check this case.
	noRef string
	// interpDiffers says why the interp cross-check is known to disagree.
	interpDiffers string
	// nchwc is Options.NCHWcBlock.
	nchwc int
}

func goldenCases() []goldenCase {
	return []goldenCase{
		{name: "layout-nchwc", passes: []string{"layout-nchwc"}, target: TargetORTCPU, nchwc: 8, change: true, model: nchwcModel,
			noRef: "testref has no com.microsoft.nchwc kernels (interp below; ONNX Runtime in TestORTTargetRunsOnORT)"},
		{name: "layout-nchwc-off", passes: []string{"layout-nchwc"}, target: TargetORTCPU, change: false, model: nchwcModel},
		{name: "layout-nchwc-elementwise", passes: []string{"layout-nchwc"}, target: TargetORTCPU, nchwc: 8, change: true, model: nchwcElementwiseModel,
			noRef: "testref has no com.microsoft.nchwc kernels (interp below; ONNX Runtime in TestORTTargetRunsOnORT)"},
		{name: "eliminate-noops", passes: []string{"eliminate-noops"}, change: true, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 1, 3, 4, 4)
			b.node("Identity", []string{x}, []string{"a"})
			b.node("Dropout", []string{"a"}, []string{"d"})
			b.node("Cast", []string{"d"}, []string{"c"}, graph.IntAttr("to", int64(graph.Float)))
			b.node("Transpose", []string{"c"}, []string{"t"}, graph.IntsAttr("perm", 0, 1, 2, 3))
			b.node("Reshape", []string{"t", b.ints("shape", 1, 3, 4, 4)}, []string{"r"})
			b.node("Pad", []string{"r", b.ints("pads", 0, 0, 0, 0, 0, 0, 0, 0)}, []string{"p"})
			b.node("Relu", []string{"p"}, []string{"y"})
			b.node("Identity", []string{"y"}, []string{"out"})
			b.output("out", graph.Float, 1, 3, 4, 4)
			return b.m
		}},
		{name: "eliminate-noops-keeps-real-cast", passes: []string{"eliminate-noops"}, change: false, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 2, 2)
			b.node("Cast", []string{x}, []string{"c"}, graph.IntAttr("to", int64(graph.Double)))
			b.node("Transpose", []string{"c"}, []string{"out"}, graph.IntsAttr("perm", 1, 0))
			b.output("out", graph.Double, 2, 2)
			return b.m
		}},
		{name: "fold-shapes", passes: []string{"fold-shapes"}, change: true, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 2, 6)
			y := b.input("y", graph.Float, 3, 4)
			b.node("Shape", []string{x}, []string{"s"})
			b.node("Reshape", []string{y, "s"}, []string{"out"})
			b.output("out", graph.Float, 2, 6)
			return b.m
		}},
		{name: "fold-constants", passes: []string{"fold-constants"}, needs: []string{"Add"}, change: true, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 2, 3)
			b.node("Add", []string{b.floats("c1", []int64{3}, wave), b.floats("c2", []int64{3}, pos)}, []string{"k"})
			b.node("Mul", []string{x, "k"}, []string{"out"})
			b.output("out", graph.Float, 2, 3)
			return b.m
		}},
		{name: "eliminate-common-subexpressions", passes: []string{"eliminate-common-subexpressions"}, change: true, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 2, 3)
			b.node("Relu", []string{x}, []string{"r1"})
			b.node("Relu", []string{x}, []string{"r2"})
			b.node("Add", []string{"r1", "r2"}, []string{"out"})
			b.output("out", graph.Float, 2, 3)
			return b.m
		}},
		{name: "sink-and-merge-transposes", passes: []string{"sink-transposes", "merge-transposes"}, change: true, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 1, 3, 4, 5)
			b.node("Transpose", []string{x}, []string{"t1"}, graph.IntsAttr("perm", 0, 2, 3, 1))
			b.node("Relu", []string{"t1"}, []string{"r"})
			b.node("Mul", []string{"r", b.scalar("two", 2)}, []string{"m"})
			b.node("Transpose", []string{"m"}, []string{"out"}, graph.IntsAttr("perm", 0, 3, 1, 2))
			b.output("out", graph.Float, 1, 3, 4, 5)
			return b.m
		}},
		{name: "merge-transposes", passes: []string{"merge-transposes"}, change: true, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 2, 3, 4)
			b.node("Transpose", []string{x}, []string{"t1"}, graph.IntsAttr("perm", 1, 0, 2))
			b.node("Transpose", []string{"t1"}, []string{"out"}, graph.IntsAttr("perm", 0, 2, 1))
			b.output("out", graph.Float, 3, 4, 2)
			return b.m
		}},
		{name: "merge-reshapes", passes: []string{"merge-reshapes"}, change: true, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 2, 6)
			b.node("Reshape", []string{x, b.ints("s1", 1, 12)}, []string{"r1"})
			b.node("Reshape", []string{"r1", b.ints("s2", 3, -1)}, []string{"out"})
			b.output("out", graph.Float, 3, 4)
			return b.m
		}},
		{name: "cancel-squeeze-unsqueeze", passes: []string{"cancel-squeeze-unsqueeze"}, change: true, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 1, 5)
			ax := b.ints("axes", 0)
			b.node("Squeeze", []string{x, ax}, []string{"s"})
			b.node("Unsqueeze", []string{"s", ax}, []string{"u"})
			b.node("Relu", []string{"u"}, []string{"out"})
			b.output("out", graph.Float, 1, 5)
			return b.m
		}},
		{name: "fuse-pad-into-conv", passes: []string{"fuse-pad-into-conv"}, change: true, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 1, 2, 5, 5)
			b.node("Pad", []string{x, b.ints("pads", 0, 0, 1, 2, 0, 0, 1, 0)}, []string{"p"})
			b.node("Conv", []string{"p", b.floats("w", []int64{3, 2, 3, 3}, wave)}, []string{"out"}, graph.IntsAttr("pads", 0, 1, 0, 1))
			b.output("out", graph.Float, 1, 3, 5, 7)
			return b.m
		}},
		{name: "fuse-conv-batchnorm", passes: []string{"fuse-conv-batchnorm"}, change: true, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 1, 2, 5, 5)
			b.node("Conv", []string{x, b.floats("w", []int64{3, 2, 3, 3}, wave), b.floats("b", []int64{3}, small)}, []string{"c"}, graph.IntsAttr("pads", 1, 1, 1, 1))
			b.node("BatchNormalization", []string{"c", b.floats("s", []int64{3}, pos), b.floats("bb", []int64{3}, small), b.floats("mean", []int64{3}, wave), b.floats("var", []int64{3}, pos)}, []string{"bn"}, graph.FloatAttr("epsilon", 1e-5))
			b.node("Relu", []string{"bn"}, []string{"out"})
			b.output("out", graph.Float, 1, 3, 5, 5)
			return b.m
		}},
		{name: "fuse-conv-batchnorm-tail", passes: []string{"fuse-conv-batchnorm"}, change: true, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 1, 2, 5, 5)
			b.node("Conv", []string{x, b.floats("w", []int64{4, 1, 3, 3}, wave)}, []string{"c"}, graph.IntAttr("group", 2), graph.IntsAttr("strides", 2, 2))
			b.node("BatchNormalization", []string{"c", b.floats("s", []int64{4}, pos), b.floats("bb", []int64{4}, small), b.floats("mean", []int64{4}, wave), b.floats("var", []int64{4}, pos)}, []string{"out"}, graph.FloatAttr("epsilon", 1e-3))
			b.output("out", graph.Float, 1, 4, 2, 2)
			return b.m
		}},
		{name: "fuse-conv-mul-add", passes: []string{"fuse-conv-mul", "fuse-conv-add"}, change: true, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 1, 2, 5, 5)
			b.node("Conv", []string{x, b.floats("w", []int64{3, 2, 3, 3}, wave)}, []string{"c"})
			b.node("Mul", []string{"c", b.floats("scale", []int64{1, 3, 1, 1}, pos)}, []string{"m"})
			b.node("Add", []string{b.floats("bias", []int64{3, 1, 1}, small), "m"}, []string{"out"})
			b.output("out", graph.Float, 1, 3, 3, 3)
			return b.m
		}},
		{name: "fuse-conv-add-not-per-channel", passes: []string{"fuse-conv-add"}, change: false, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 1, 2, 5, 5)
			b.node("Conv", []string{x, b.floats("w", []int64{3, 2, 3, 3}, wave)}, []string{"c"})
			b.node("Add", []string{"c", b.floats("bias", []int64{1, 1, 3, 3}, small)}, []string{"out"})
			b.output("out", graph.Float, 1, 3, 3, 3)
			return b.m
		}},
		{name: "fuse-matmul-add", passes: []string{"fuse-matmul-add"}, change: true, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 2, 4)
			b.node("MatMul", []string{x, b.floats("w", []int64{4, 3}, wave)}, []string{"mm"})
			b.node("Add", []string{"mm", b.floats("b", []int64{3}, small)}, []string{"out"})
			b.output("out", graph.Float, 2, 3)
			return b.m
		}},
		{name: "fuse-matmul-add-3d-left", passes: []string{"fuse-matmul-add"}, change: false, noRef: "testref has 2-D MatMul only", model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 2, 2, 4)
			b.node("MatMul", []string{x, b.floats("w", []int64{4, 3}, wave)}, []string{"mm"})
			b.node("Add", []string{"mm", b.floats("b", []int64{3}, small)}, []string{"out"})
			b.output("out", graph.Float, 2, 2, 3)
			return b.m
		}},
		{name: "fuse-gemm-batchnorm", passes: []string{"fuse-gemm-batchnorm"}, change: true, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 2, 4)
			b.node("Gemm", []string{x, b.floats("w", []int64{3, 4}, wave), b.floats("c", []int64{3}, small)}, []string{"g"}, graph.IntAttr("transB", 1), graph.FloatAttr("beta", 0.5))
			b.node("BatchNormalization", []string{"g", b.floats("s", []int64{3}, pos), b.floats("bb", []int64{3}, small), b.floats("mean", []int64{3}, wave), b.floats("var", []int64{3}, pos)}, []string{"out"})
			b.output("out", graph.Float, 2, 3)
			return b.m
		}},
		{name: "fuse-layernorm", passes: []string{"fuse-layernorm"}, change: true, model: layerNormModel(17)},
		{name: "fuse-layernorm-opset13-left", passes: []string{"fuse-layernorm"}, change: false, model: layerNormModel(13)},
		{name: "fuse-gelu", passes: []string{"fuse-gelu"}, change: true, model: geluModel(20)},
		{name: "fuse-gelu-ort-cpu", passes: []string{"fuse-gelu"}, target: TargetORTCPU, change: true, model: geluModel(13)},
		{name: "fuse-gelu-opset13-left", passes: []string{"fuse-gelu"}, change: false, model: geluModel(13)},
		{name: "fuse-hardswish-opset13", passes: []string{"fuse-hardswish"}, change: true, model: hardSwishModel(13, "div")},
		{name: "fuse-hardswish-opset14", passes: []string{"fuse-hardswish"}, change: true, model: hardSwishModel(14, "mul-sixth")},
		{name: "fuse-hardswish-scale-first", passes: []string{"fuse-hardswish"}, change: true, model: hardSwishModel(11, "scale-first")},
		{name: "fuse-hardswish-other-clip-left", passes: []string{"fuse-hardswish"}, change: false, model: hardSwishModel(11, "relu5")},
		{name: "fuse-ort-conv-activation", passes: []string{"fuse-ort-conv-activation"}, target: TargetORTCPU, change: true, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 1, 2, 5, 5)
			b.node("Conv", []string{x, b.floats("w", []int64{3, 2, 3, 3}, wave), b.floats("b", []int64{3}, small)}, []string{"c1"})
			b.node("Relu", []string{"c1"}, []string{"r"})
			b.node("Conv", []string{"r", b.floats("w2", []int64{3, 3, 1, 1}, wave)}, []string{"c2"})
			b.node("Clip", []string{"c2", b.scalar("lo", 0), b.scalar("hi", 6)}, []string{"out"})
			b.output("out", graph.Float, 1, 3, 3, 3)
			return b.m
		}},
		{name: "fuse-ort-gemm-activation", passes: []string{"fuse-ort-gemm-activation"}, target: TargetORTCPU, change: true,
			model: func() *graph.Model {
				b := newBuilder(13)
				x := b.input("x", graph.Float, 2, 4)
				b.node("Gemm", []string{x, b.floats("w", []int64{4, 3}, wave), b.floats("c", []int64{3}, small)}, []string{"g"})
				b.node("LeakyRelu", []string{"g"}, []string{"out"}, graph.FloatAttr("alpha", 0.1))
				b.output("out", graph.Float, 2, 3)
				return b.m
			}},
		{name: "fuse-ort-attention", passes: []string{"fuse-ort-attention"}, target: TargetORTCPU, change: true, model: attentionModel(false)},
		{name: "fuse-ort-attention-masked-left", passes: []string{"fuse-ort-attention"}, target: TargetORTCPU, change: false, model: attentionModel(true)},
		{name: "fuse-ort-skip-layernorm", passes: []string{"fuse-ort-skip-layernorm"}, target: TargetORTCPU, change: true, model: skipLNModel(13, false)},
		{name: "fuse-ort-skip-layernorm-op17-sum-read", passes: []string{"fuse-ort-skip-layernorm"}, target: TargetORTCPU, change: true,
			model: skipLNModel(17, true)},
		{name: "fuse-ort-skip-layernorm-generic-left", passes: []string{"fuse-ort-skip-layernorm"}, change: false, model: skipLNModel(13, false)},
		{name: "fuse-ort-bias-gelu", passes: []string{"fuse-gelu", "fuse-ort-bias-gelu"}, target: TargetORTCPU, change: true, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 2, 3, 4)
			b.node("MatMul", []string{x, b.floats("w", []int64{4, 8}, wave)}, []string{"mm"})
			b.node("Add", []string{b.floats("bias", []int64{8}, small), "mm"}, []string{"t"})
			b.node("Div", []string{"t", b.scalar("sqrt2", float32(math.Sqrt2))}, []string{"a"})
			b.node("Erf", []string{"a"}, []string{"e"})
			b.node("Add", []string{"e", b.scalar("one", 1)}, []string{"c"})
			b.node("Mul", []string{"t", "c"}, []string{"m"})
			b.node("Mul", []string{"m", b.scalar("half", 0.5)}, []string{"out"})
			b.output("out", graph.Float, 2, 3, 8)
			return b.m
		}},
		{name: "eliminate-dead-nodes", passes: []string{"eliminate-dead-nodes"}, change: true, noRef: "holds a custom-domain op", model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 2, 3)
			b.node("Relu", []string{x}, []string{"unused"})
			b.node("Neg", []string{"unused"}, []string{"unused2"})
			n := b.node("MyOp", []string{x}, []string{"custom_unused"})
			n.Domain = "com.example"
			b.m.SetOpset("com.example", 1)
			b.node("Tanh", []string{x}, []string{"out"})
			b.output("out", graph.Float, 2, 3)
			return b.m
		}},
		{name: "initializers", passes: []string{"dedupe-initializers", "eliminate-unused-initializers"}, change: true, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 2, 3)
			b.floats("never_read", []int64{3}, wave)
			b.node("Add", []string{x, b.floats("k1", []int64{3}, wave)}, []string{"a"})
			b.node("Add", []string{"a", b.floats("k2", []int64{3}, wave)}, []string{"out"})
			b.output("out", graph.Float, 2, 3)
			return b.m
		}},
		{name: "schedule-memory", passes: []string{"schedule-memory"}, change: true, model: func() *graph.Model {
			b := newBuilder(13)
			x := b.input("x", graph.Float, 1, 1000)
			shape := b.ints("big", 100, 1000)
			ax := b.ints("axes", 0)
			b.node("Expand", []string{x, shape}, []string{"e1"})
			b.node("Expand", []string{x, shape}, []string{"e2"})
			b.node("ReduceSum", []string{"e1", ax}, []string{"r1"})
			b.node("ReduceSum", []string{"e2", ax}, []string{"r2"})
			b.node("Add", []string{"r1", "r2"}, []string{"out"})
			b.output("out", graph.Float, 1, 1000)
			return b.m
		}},
	}
}

func layerNormModel(opset int64) func() *graph.Model {
	return func() *graph.Model {
		b := newBuilder(opset)
		x := b.input("x", graph.Float, 2, 8)
		axes := graph.IntsAttr("axes", -1)
		b.node("ReduceMean", []string{x}, []string{"m"}, axes)
		b.node("Sub", []string{x, "m"}, []string{"d"})
		b.node("Pow", []string{"d", b.scalar("two", 2)}, []string{"p"})
		b.node("ReduceMean", []string{"p"}, []string{"v"}, axes)
		b.node("Add", []string{"v", b.scalar("eps", 1e-5)}, []string{"e"})
		b.node("Sqrt", []string{"e"}, []string{"s"})
		b.node("Div", []string{"d", "s"}, []string{"n"})
		b.node("Mul", []string{"n", b.floats("gamma", []int64{8}, pos)}, []string{"gm"})
		b.node("Add", []string{"gm", b.floats("beta", []int64{8}, small)}, []string{"out"})
		b.output("out", graph.Float, 2, 8)
		return b.m
	}
}

func geluModel(opset int64) func() *graph.Model {
	return func() *graph.Model {
		b := newBuilder(opset)
		x := b.input("x", graph.Float, 2, 8)
		b.node("Div", []string{x, b.scalar("sqrt2", float32(math.Sqrt2))}, []string{"a"})
		b.node("Erf", []string{"a"}, []string{"e"})
		b.node("Add", []string{"e", b.scalar("one", 1)}, []string{"c"})
		b.node("Mul", []string{x, "c"}, []string{"m"})
		b.node("Mul", []string{"m", b.scalar("half", 0.5)}, []string{"out"})
		b.output("out", graph.Float, 2, 8)
		return b.m
	}
}

// hardSwishModel writes x*Clip(x+3,0,6)/6 after a Conv in one of its
// exported forms: "div" (Div by 6), "mul-sixth" (Mul by 1/6), "scale-first"
// (x * (Clip/6)); "relu5" clips at 5, which is not hard swish.
func hardSwishModel(opset int64, form string) func() *graph.Model {
	return func() *graph.Model {
		b := newBuilder(opset)
		x := b.input("x", graph.Float, 1, 2, 4, 4)
		b.node("Conv", []string{x, b.floats("w", []int64{3, 2, 1, 1}, func(i int) float32 { return 4 * wave(i) })}, []string{"c"})
		b.node("Add", []string{"c", b.scalar("three", 3)}, []string{"a"})
		hi := float32(6)
		if form == "relu5" {
			hi = 5
		}
		if opset < 11 {
			b.node("Clip", []string{"a"}, []string{"clip"}, graph.FloatAttr("min", 0), graph.FloatAttr("max", hi))
		} else {
			b.node("Clip", []string{"a", b.scalar("lo", 0), b.scalar("hi", hi)}, []string{"clip"})
		}
		switch form {
		case "scale-first":
			b.node("Div", []string{"clip", b.scalar("six", 6)}, []string{"s"})
			b.node("Mul", []string{"c", "s"}, []string{"out"})
		case "mul-sixth":
			b.node("Mul", []string{"clip", "c"}, []string{"m"})
			b.node("Mul", []string{"m", b.scalar("sixth", float32(1.0/6))}, []string{"out"})
		default:
			b.node("Mul", []string{"c", "clip"}, []string{"m"})
			b.node("Div", []string{"m", b.scalar("six", 6)}, []string{"out"})
		}
		b.output("out", graph.Float, 1, 3, 4, 4)
		return b.m
	}
}

// attentionModel is multi-head self-attention as PyTorch exports it
// (batch 2, sequence 3, hidden 8, 2 heads): Q and V projections with bias,
// K without, scores divided by sqrt(head size). masked adds an additive
// mask input to the scores, which the fusion must leave alone.
func attentionModel(masked bool) func() *graph.Model {
	return func() *graph.Model {
		b := newBuilder(13)
		x := b.input("x", graph.Float, 2, 3, 8)
		split := b.ints("split", 0, 0, 2, 4)
		for _, p := range []struct {
			name string
			bias bool
			perm []int64
		}{{"q", true, []int64{0, 2, 1, 3}}, {"k", false, []int64{0, 2, 3, 1}}, {"v", true, []int64{0, 2, 1, 3}}} {
			lin := p.name + "_mm"
			b.node("MatMul", []string{x, b.floats("w_"+p.name, []int64{8, 8}, func(i int) float32 { return wave(i*int(p.name[0]-'o') + 1) })}, []string{lin})
			if p.bias {
				b.node("Add", []string{lin, b.floats("b_"+p.name, []int64{8}, small)}, []string{p.name + "_lin"})
				lin = p.name + "_lin"
			}
			b.node("Reshape", []string{lin, split}, []string{p.name + "_r"})
			b.node("Transpose", []string{p.name + "_r"}, []string{p.name + "_t"}, graph.IntsAttr("perm", p.perm...))
		}
		b.node("MatMul", []string{"q_t", "k_t"}, []string{"qk"})
		b.node("Div", []string{"qk", b.scalar("sqrt_dh", 2)}, []string{"scores"})
		scores := "scores"
		if masked {
			mask := b.input("mask", graph.Float, 2, 1, 1, 3)
			b.node("Add", []string{"scores", mask}, []string{"masked"})
			scores = "masked"
		}
		b.node("Softmax", []string{scores}, []string{"probs"}, graph.IntAttr("axis", -1))
		b.node("MatMul", []string{"probs", "v_t"}, []string{"ctx"})
		b.node("Transpose", []string{"ctx"}, []string{"ctx_t"}, graph.IntsAttr("perm", 0, 2, 1, 3))
		b.node("Reshape", []string{"ctx_t", b.ints("merge", 0, 0, 8)}, []string{"out"})
		b.output("out", graph.Float, 2, 3, 8)
		return b.m
	}
}

// skipLNModel is a residual block: out = LN(x + (x*W + bias)), with the
// layer normalization written out (opset 13) or as the opset-17 op; with
// sumRead the residual sum is also a graph output.
func skipLNModel(opset int64, sumRead bool) func() *graph.Model {
	return func() *graph.Model {
		b := newBuilder(opset)
		x := b.input("x", graph.Float, 2, 3, 4)
		b.node("MatMul", []string{x, b.floats("w", []int64{4, 4}, wave)}, []string{"mm"})
		b.node("Add", []string{"mm", b.floats("bias", []int64{4}, small)}, []string{"lin"})
		b.node("Add", []string{x, "lin"}, []string{"sum"})
		gamma, beta := b.floats("gamma", []int64{4}, pos), b.floats("beta", []int64{4}, small)
		if opset >= 17 {
			b.node("LayerNormalization", []string{"sum", gamma, beta}, []string{"out"}, graph.IntAttr("axis", -1), graph.FloatAttr("epsilon", 1e-5))
		} else {
			axes := graph.IntsAttr("axes", -1)
			b.node("ReduceMean", []string{"sum"}, []string{"mean"}, axes)
			b.node("Sub", []string{"sum", "mean"}, []string{"d"})
			b.node("Pow", []string{"d", b.scalar("two", 2)}, []string{"sq"})
			b.node("ReduceMean", []string{"sq"}, []string{"var"}, axes)
			b.node("Add", []string{"var", b.scalar("eps", 1e-5)}, []string{"ve"})
			b.node("Sqrt", []string{"ve"}, []string{"std"})
			b.node("Div", []string{"d", "std"}, []string{"n"})
			b.node("Mul", []string{"n", gamma}, []string{"g"})
			b.node("Add", []string{"g", beta}, []string{"out"})
		}
		b.output("out", graph.Float, 2, 3, 4)
		if sumRead {
			b.output("sum", graph.Float, 2, 3, 4)
		}
		return b.m
	}
}

// interpRuns reports whether interp has a kernel for every node of the models.
func interpRuns(ms ...*graph.Model) bool {
	be, err := runtime.Get("interp")
	if err != nil {
		return false
	}
	sup := be.Capabilities().Supports
	for _, m := range ms {
		for _, n := range m.Graph.Nodes {
			if sup != nil && !sup(n.Domain, n.OpType, 0) {
				return false
			}
		}
	}
	return true
}

func interpSupports(ops []string) (string, bool) {
	be, err := runtime.Get("interp")
	if err != nil {
		return "interp backend not registered", false
	}
	sup := be.Capabilities().Supports
	for _, op := range ops {
		if sup != nil && !sup("", op, 0) {
			return "interp has no " + op + " kernel yet", false
		}
	}
	return "", true
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			if why, ok := interpSupports(tc.needs); !ok {
				t.Skip(why)
			}
			m := tc.model()
			if err := m.Verify(); err != nil {
				t.Fatalf("test model is invalid: %v", err)
			}
			before := m.Format()
			// Verified on the test-only reference backend (refbackend_test.go),
			// which runs every op of these cases; interp is tried as well below.
			out, rep, err := Optimize(m, Options{Passes: tc.passes, Target: tc.target, Verify: true, Backend: "testref", NCHWcBlock: tc.nchwc})
			if err != nil {
				t.Fatal(err)
			}
			if m.Format() != before {
				t.Fatal("Optimize modified its input model")
			}
			if len(rep.Rollbacks) > 0 {
				t.Fatalf("rolled back: %+v", rep.Rollbacks)
			}
			changed := 0
			for _, st := range rep.Passes {
				changed += st.Changed
			}
			if (changed > 0) != tc.change {
				t.Fatalf("changed=%d, want change=%v\n%s", changed, tc.change, out.Format())
			}
			if tc.noRef != "" {
				t.Logf("not checked numerically: %s", tc.noRef)
			} else if !strings.HasPrefix(rep.Numeric, "outputs match on testref") || len(rep.NumericSkips) > 0 {
				t.Fatalf("not verified numerically: %s %v", rep.Numeric, rep.NumericSkips)
			}
			if tc.interpDiffers != "" {
				t.Logf("interp cross-check not run: %s", tc.interpDiffers)
			} else if interpRuns(m, out) {
				_, irep, err := Optimize(m, Options{Passes: tc.passes, Target: tc.target, Verify: true, NCHWcBlock: tc.nchwc})
				if err != nil || len(irep.Rollbacks) > 0 || !strings.HasPrefix(irep.Numeric, "outputs match on interp") {
					t.Fatalf("interp runs every op of this model, yet: %v %+v %s", err, irep.Rollbacks, irep.Numeric)
				}
			}
			got := "# passes: " + strings.Join(tc.passes, ",") + "\n# before\n" + before + "# after\n" + out.Format()
			path := filepath.Join("testdata", "golden", tc.name+".txt")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./pkg/passes -run TestGolden -update)", err)
			}
			if string(want) != got {
				t.Errorf("golden mismatch for %s (rerun with -update after checking):\n--- got\n%s\n--- want\n%s", path, got, want)
			}
		})
	}
}

// nchwcModel covers layout-nchwc's cases at block 8: a first conv on 4
// channels (plain NCHW input, OIHWBo filter) with 12 outputs (padded to
// 16), a conv on those 12 (input channels padded), a residual Add that
// becomes the Sum input of the 1x1 conv beside it, the Relu after it as
// that conv's activation, BatchNormalization as a depthwise 1x1 conv, a
// MaxPool and a GlobalAveragePool in NCHWc, a channel Concat of aligned
// inputs, and a plain-layout reader (Flatten) behind a ReorderOutput.
func nchwcModel() *graph.Model {
	b := newBuilder(13)
	x := b.input("x", graph.Float, 1, 4, 8, 8)
	b.node("Conv", []string{x, b.floats("w1", []int64{12, 4, 3, 3}, wave), b.floats("b1", []int64{12}, small)}, []string{"c1"}, graph.IntsAttr("pads", 1, 1, 1, 1))
	b.node("Relu", []string{"c1"}, []string{"r1"})
	b.node("Conv", []string{"r1", b.floats("w2", []int64{16, 12, 3, 3}, wave)}, []string{"c2"}, graph.IntsAttr("pads", 1, 1, 1, 1))
	b.node("Conv", []string{"r1", b.floats("w3", []int64{16, 12, 1, 1}, pos), b.floats("b3", []int64{16}, small)}, []string{"c3"})
	b.node("Add", []string{"c2", "c3"}, []string{"s"})
	b.node("Relu", []string{"s"}, []string{"r2"})
	b.node("BatchNormalization", []string{"r2", b.floats("g", []int64{16}, pos), b.floats("be", []int64{16}, small),
		b.floats("mu", []int64{16}, wave), b.floats("var", []int64{16}, pos)}, []string{"bn"})
	b.node("MaxPool", []string{"bn"}, []string{"p"}, graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2))
	b.node("Concat", []string{"p", "p"}, []string{"cat"}, graph.IntAttr("axis", 1))
	b.node("GlobalAveragePool", []string{"cat"}, []string{"gap"})
	b.node("Flatten", []string{"gap"}, []string{"out"})
	b.output("out", graph.Float, 1, 32)
	return b.m
}

// nchwcElementwiseModel covers the elementwise ops layout-nchwc keeps in
// the blocked layout: HardSwish (unary, f(0) finite), a scalar Mul and Div,
// a Clip that becomes the conv's activation with its bounds, and Resize
// (nearest asymmetric/floor by scales, linear half_pixel by sizes) as
// nchwc.Upsample; a Div of a scalar by the tensor stays out (padding 0).
func nchwcElementwiseModel() *graph.Model {
	b := newBuilder(14)
	x := b.input("x", graph.Float, 1, 4, 6, 6)
	b.node("Conv", []string{x, b.floats("w1", []int64{16, 4, 3, 3}, wave)}, []string{"c1"}, graph.IntsAttr("pads", 1, 1, 1, 1))
	b.node("Relu", []string{"c1"}, []string{"r1"})
	b.node("HardSwish", []string{"r1"}, []string{"h"})
	b.node("Mul", []string{"h", b.scalar("half", 0.5)}, []string{"m"})
	b.node("Resize", []string{"m", "", b.floats("sc", []int64{4}, func(i int) float32 { return []float32{1, 1, 2, 2}[i] })}, []string{"up"},
		graph.StringAttr("mode", "nearest"), graph.StringAttr("coordinate_transformation_mode", "asymmetric"), graph.StringAttr("nearest_mode", "floor"))
	b.node("Conv", []string{"up", b.floats("w2", []int64{16, 16, 3, 3}, wave), b.floats("b2", []int64{16}, small)}, []string{"c2"}, graph.IntsAttr("pads", 1, 1, 1, 1))
	b.node("Clip", []string{"c2", b.scalar("lo", 0), b.scalar("hi", 6)}, []string{"k"})
	b.node("Div", []string{"k", b.scalar("six", 6)}, []string{"d"})
	b.node("Resize", []string{"d", "", "", b.ints("sizes", 1, 16, 24, 24)}, []string{"up2"},
		graph.StringAttr("mode", "linear"), graph.StringAttr("coordinate_transformation_mode", "half_pixel"))
	b.node("Div", []string{b.scalar("one", 1), "up2"}, []string{"inv"})
	b.output("inv", graph.Float, 1, 16, 24, 24)
	return b.m
}
