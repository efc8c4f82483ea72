package testmodels

import (
	"math"
	"strconv"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/build"
)

// sampleDims are realistic sizes for the named dynamic dims of this
// package's models other than the batch. DB detectors see images resized
// to multiples of 32 (PaddleOCR's DetResizeForTest), so that every
// stride-2 stage and every FPN upsampling lines up; with other sizes the
// model itself fails.
var sampleDims = map[string]int64{"p2o.DynamicDimension.0": 64, "p2o.DynamicDimension.1": 96}

// SampleDim is a realistic size for a named dynamic dim of a model of this
// package that is not its batch (dbnet's height and width: 64x96).
func SampleDim(param string) (int64, bool) {
	s, ok := sampleDims[param]
	return s, ok
}

// InputShapes returns the shapes of the inputs of m, a model of this
// package, with the batch (N, or an unnamed dim) set to batch and the other
// dynamic dims to their SampleDim.
func InputShapes(m *graph.Model, batch int64) map[string][]int64 {
	out := map[string][]int64{}
	for _, v := range m.Graph.Inputs {
		dims := make([]int64, len(v.Shape))
		for i, d := range v.Shape {
			dims[i] = d.Size
			if !d.Known() {
				dims[i] = batch
				if s, ok := SampleDim(d.Param); ok {
					dims[i] = s
				}
			}
		}
		out[v.Name] = dims
	}
	return out
}

// DBNet is a small text detector in the form Paddle2ONNX exports
// PaddleOCR's DB models (ch_PP-OCR det: MobileNetV3 backbone, DBFPN neck,
// DBHead) at opset 11:
//
//   - weights and every other constant are Constant nodes (no
//     initializers); convolutions have no bias, each is followed by a
//     BatchNormalization;
//   - HardSwish is written as Paddle2ONNX writes it below opset 14:
//     Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6), with Clip's bounds as scalar
//     Constant inputs; the SE block gates with HardSigmoid(0.2, 0.5);
//   - the backbone has stride-2 stages to 1/32 (channels 8, 16, 24, 40, 48:
//     some not multiples of 8 or 16), depthwise convs, residual Adds and an
//     SE block (GlobalAveragePool, 1x1 convs with bias, Mul);
//   - the neck reduces each stage to 32 channels, adds each coarser map
//     upsampled x2 (opset-11 Resize with roi and scales Constant inputs
//     and an empty sizes input: nearest, asymmetric, floor, as Paddle's
//     nearest_interp_v2 with align_mode 1 exports), smooths each with a
//     3x3 conv to 8 channels, upsamples them x8, x4 (nearest) and x2
//     (linear, half_pixel: bilinear_interp_v2 with align_mode 0) and
//     concatenates them;
//   - the head is Conv+BN+Relu, ConvTranspose(k2,s2)+BN+Relu,
//     ConvTranspose(k2,s2) with bias, and a Sigmoid probability map.
//
// Input "x" float32[N,3,p2o.DynamicDimension.0,p2o.DynamicDimension.1]
// (height and width a multiple of 32), output "sigmoid_0.tmp_0"
// float32[N,1,p2o.DynamicDimension.2,p2o.DynamicDimension.3] (the input's
// height and width), written by the Sigmoid itself as Paddle2ONNX does.
func DBNet() *graph.Model {
	b := build.New("dbnet", 11)
	w := newWeights(b, 8)
	w.constNodes = true
	x := b.Input("x", graph.Float, build.Dims("N", 3, "p2o.DynamicDimension.0", "p2o.DynamicDimension.1"))
	d := &dbBuilder{w: w, b: b}

	// Backbone (MobileNetV3-like, strides 2..32).
	h := d.hswish(d.convBN(x, "conv1", 3, 8, 3, 2, 1))  // 1/2
	r := d.relu(d.convBN(h, "conv2.dw", 8, 8, 3, 1, 8)) // depthwise
	h = b.Node("Add", []string{h, d.convBN(r, "conv2.pw", 8, 8, 1, 1, 1)})
	h = d.hswish(d.convBN(h, "stage1.down", 8, 16, 3, 2, 1)) // 1/4
	r = d.hswish(d.convBN(h, "stage1.conv", 16, 16, 3, 1, 1))
	c2 := b.Node("Add", []string{h, d.convBN(r, "stage1.pw", 16, 16, 1, 1, 1)})
	h = d.hswish(d.convBN(c2, "stage2.dw", 16, 16, 3, 2, 16)) // 1/8
	c3 := d.convBN(h, "stage2.pw", 16, 24, 1, 1, 1)
	h = d.hswish(d.convBN(c3, "stage3.down", 24, 40, 3, 2, 1)) // 1/16
	c4 := d.se(h, "stage3.se", 40, 10)
	c5 := d.hswish(d.convBN(c4, "stage4.down", 40, 48, 3, 2, 1)) // 1/32

	// DBFPN neck.
	in2 := d.conv(c2, "neck.in2", 16, 32, 1, 1, 1, false)
	in3 := d.conv(c3, "neck.in3", 24, 32, 1, 1, 1, false)
	in4 := d.conv(c4, "neck.in4", 40, 32, 1, 1, 1, false)
	in5 := d.conv(c5, "neck.in5", 48, 32, 1, 1, 1, false)
	out4 := b.Node("Add", []string{in4, d.upsample(in5, 2, "nearest")})
	out3 := b.Node("Add", []string{in3, d.upsample(out4, 2, "nearest")})
	out2 := b.Node("Add", []string{in2, d.upsample(out3, 2, "nearest")})
	p5 := d.upsample(d.conv(in5, "neck.p5", 32, 8, 3, 1, 1, false), 8, "nearest")
	p4 := d.upsample(d.conv(out4, "neck.p4", 32, 8, 3, 1, 1, false), 4, "nearest")
	p3 := d.upsample(d.conv(out3, "neck.p3", 32, 8, 3, 1, 1, false), 2, "linear")
	p2 := d.conv(out2, "neck.p2", 32, 8, 3, 1, 1, false)
	fuse := b.Node("Concat", []string{p5, p4, p3, p2}, graph.IntAttr("axis", 1)) // 32 channels, 1/4

	// DBHead.
	h = d.relu(d.convBN(fuse, "head.conv1", 32, 8, 3, 1, 1))
	h = d.relu(w.bn(d.convTranspose(h, "head.conv2", 8, 8, false), "head.conv2.bn", 8)) // 1/2
	h = d.convTranspose(h, "head.conv3", 8, 1, true)                                    // 1/1
	b.Op("Sigmoid", "sigmoid_0", []string{h}, []string{"sigmoid_0.tmp_0"})
	b.Output("sigmoid_0.tmp_0", graph.Float, build.Dims("N", 1, "p2o.DynamicDimension.2", "p2o.DynamicDimension.3"))
	return finish(b, "dbnet")
}

type dbBuilder struct {
	w *weights
	b *build.Builder
	k int // counter for the names of small constants
}

// constant adds a Constant node holding t (named name) and returns name.
func (d *dbBuilder) constant(t *graph.Tensor) string {
	d.b.Op("Constant", "p2o.Constant."+t.Name, nil, []string{t.Name}, graph.TensorAttr("value", t))
	return t.Name
}

func (d *dbBuilder) scalar(v float32) string {
	d.k++
	return d.constant(graph.NewFloat32("p2o.helper.constant."+strconv.Itoa(d.k), nil, []float32{v}))
}

// conv adds a Conv with a He-initialised weight (and a small bias).
func (d *dbBuilder) conv(x, name string, cin, cout, k, stride, group int64, bias bool) string {
	wt := d.w.he(name+".weight", cin/group*k*k, cout, cin/group, k, k)
	in := []string{x, wt}
	if bias {
		in = append(in, d.w.normal(name+".bias", 0.05, cout))
	}
	p := k / 2
	return d.b.Node("Conv", in, graph.IntsAttr("dilations", 1, 1), graph.IntAttr("group", group),
		graph.IntsAttr("kernel_shape", k, k), graph.IntsAttr("pads", p, p, p, p), graph.IntsAttr("strides", stride, stride))
}

// convBN is a bias-free Conv followed by BatchNormalization.
func (d *dbBuilder) convBN(x, name string, cin, cout, k, stride, group int64) string {
	return d.w.bn(d.conv(x, name, cin, cout, k, stride, group, false), name+".bn", cout)
}

func (d *dbBuilder) relu(x string) string { return d.b.Node("Relu", []string{x}) }

// hswish is Paddle2ONNX's opset-7..13 HardSwish: x * Clip(x + 3, 0, 6) / 6.
func (d *dbBuilder) hswish(x string) string {
	a := d.b.Node("Add", []string{x, d.scalar(3)})
	c := d.b.Node("Clip", []string{a, d.scalar(0), d.scalar(6)})
	m := d.b.Node("Mul", []string{x, c})
	return d.b.Node("Div", []string{m, d.scalar(6)})
}

// se is MobileNetV3's squeeze-excitation: x * HardSigmoid(conv(relu(conv(GAP(x))))).
func (d *dbBuilder) se(x, name string, c, mid int64) string {
	s := d.b.Node("GlobalAveragePool", []string{x})
	s = d.relu(d.conv(s, name+".conv1", c, mid, 1, 1, 1, true))
	s = d.conv(s, name+".conv2", mid, c, 1, 1, 1, true)
	s = d.b.Node("HardSigmoid", []string{s}, graph.FloatAttr("alpha", 0.2), graph.FloatAttr("beta", 0.5))
	return d.b.Node("Mul", []string{x, s})
}

// upsample is an opset-11 Resize by an integer factor as Paddle2ONNX writes
// it: inputs x, roi (eight ones), scales [1, 1, f, f] and an empty sizes.
func (d *dbBuilder) upsample(x string, f float32, mode string) string {
	d.k++
	k := strconv.Itoa(d.k)
	roi := d.constant(graph.NewFloat32("p2o.resize.roi."+k, []int64{8}, []float32{1, 1, 1, 1, 1, 1, 1, 1}))
	scales := d.constant(graph.NewFloat32("p2o.resize.scales."+k, []int64{4}, []float32{1, 1, f, f}))
	attrs := []*graph.Attr{graph.StringAttr("mode", mode)}
	if mode == "nearest" {
		attrs = append(attrs, graph.StringAttr("coordinate_transformation_mode", "asymmetric"), graph.StringAttr("nearest_mode", "floor"))
	} else {
		attrs = append(attrs, graph.StringAttr("coordinate_transformation_mode", "half_pixel"))
	}
	return d.b.Node("Resize", []string{x, roi, scales, ""}, attrs...)
}

// convTranspose is a 2x2 stride-2 ConvTranspose (Paddle's Conv2DTranspose
// in DBHead) with a [cin, cout, 2, 2] weight.
func (d *dbBuilder) convTranspose(x, name string, cin, cout int64, bias bool) string {
	wt := d.w.normal(name+".weight", math.Sqrt(2/float64(cin*4)), cin, cout, 2, 2)
	in := []string{x, wt}
	if bias {
		in = append(in, d.w.normal(name+".bias", 0.05, cout))
	}
	return d.b.Node("ConvTranspose", in, graph.IntsAttr("dilations", 1, 1), graph.IntAttr("group", 1),
		graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("pads", 0, 0, 0, 0), graph.IntsAttr("strides", 2, 2))
}
