//go:build ortbench

package interp

// Cross-check of the com.microsoft.nchwc kernels against ONNX Runtime's
// own (MLAS) kernels. It links the cgo ort backend and needs libonnxruntime
// on an AVX2 CPU without AVX-512F (block size 8), so it lives behind the
// ortbench build tag:
//
//	go test -tags ortbench ./pkg/runtime/interp -run Nchwc -v

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"

	"golang.org/x/sys/cpu"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	_ "github.com/optictl/optictl/pkg/runtime/ort"
)

// ncOrtBuilder assembles a small NCHWc graph.
type ncOrtBuilder struct {
	g *graph.Graph
	r *rand.Rand
	b int
}

func (nb *ncOrtBuilder) init(name string, dims []int64, data []float32) string {
	nb.g.Initializers = append(nb.g.Initializers, graph.NewFloat32(name, dims, data))
	return name
}

func (nb *ncOrtBuilder) node(op, out string, ins []string, attrs ...*graph.Attr) string {
	nb.g.Nodes = append(nb.g.Nodes, &graph.Node{Name: out, OpType: op, Domain: nchwcDomain, Inputs: ins, Outputs: []string{out}, Attrs: attrs})
	return out
}

// conv adds an nchwc Conv of a plain ONNX conv with M outputs and Cg
// inputs per group (random weights and bias), in the given form.
func (nb *ncOrtBuilder) conv(out, x, sum string, form, M, Cg, K, group int, attrs ...*graph.Attr) string {
	w := ncRand(nb.r, M*Cg*K*K)
	bias := ncRand(nb.r, M)
	Mp := ncRoundUp(M, nb.b)
	var wb []float32
	var ws []int64
	if form == nchwcConvBlocked {
		wb, ws = ncFilterBiBo(w, M, Cg, K, K, nb.b)
	} else {
		wb, ws = ncFilterBo(w, M, Cg, K, K, nb.b)
	}
	bp := make([]float32, Mp)
	copy(bp, bias)
	ins := []string{x, nb.init(out+".w", ws, wb), nb.init(out+".b", []int64{int64(Mp)}, bp)}
	if sum != "" {
		ins = append(ins, sum)
	}
	attrs = append(attrs, graph.IntsAttr("kernel_shape", int64(K), int64(K)), graph.IntAttr("group", int64(group)))
	return nb.node("Conv", out, ins, attrs...)
}

func ncOrtModel(name string, inputs map[string][]int64, order []string, build func(nb *ncOrtBuilder) string) *graph.Model {
	nb := &ncOrtBuilder{g: &graph.Graph{Name: name}, r: rand.New(rand.NewPCG(21, 22)), b: 8}
	for _, in := range order {
		nb.g.Inputs = append(nb.g.Inputs, &graph.ValueInfo{Name: in, DType: graph.Float, HasType: true, HasShape: true, Shape: graph.ShapeOf(inputs[in])})
	}
	y := build(nb)
	nb.g.Outputs = []*graph.ValueInfo{{Name: y, DType: graph.Float, HasType: true}}
	m := &graph.Model{IRVersion: 8, Graph: nb.g, Metadata: []graph.KV{{Key: nchwcBlockKey, Value: strconv.Itoa(nb.b)}}}
	m.SetOpset("", 13)
	m.SetOpset(nchwcDomain, 1)
	return m
}

func TestNchwcVersusORT(t *testing.T) {
	if cpu.X86.HasAVX512F || !(cpu.X86.HasAVX2 && cpu.X86.HasFMA) {
		t.Skip("ORT's NCHWc block size on this CPU is not 8 (the models here are built for AVX2)")
	}
	pads1 := graph.IntsAttr("pads", 1, 1, 1, 1)
	cases := []struct {
		name   string
		inputs map[string][]int64
		order  []string
		build  func(nb *ncOrtBuilder) string
	}{
		{
			// The brief's chain: a form-3 first conv (3 plain channels),
			// ReorderInput -> Conv(form 1, Relu, + the form-3 conv as Sum)
			// -> MaxPool -> Conv(depthwise) -> GlobalAveragePool ->
			// ReorderOutput. 12 real channels in 16.
			name:   "chain",
			inputs: map[string][]int64{"img": {2, 3, 12, 12}, "feat": {2, 12, 12, 12}},
			order:  []string{"img", "feat"},
			build: func(nb *ncOrtBuilder) string {
				a := nb.conv("c0", "img", "", nchwcConvPlainIn, 12, 3, 3, 1, pads1)
				x := nb.node("ReorderInput", "xb", []string{"feat"})
				c1 := nb.conv("c1", x, a, nchwcConvBlocked, 12, 12, 3, 1, pads1, graph.StringAttr("activation", "Relu"))
				p := nb.node("MaxPool", "p1", []string{c1}, graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2))
				c2 := nb.conv("c2", p, "", nchwcConvDepthwise, 16, 1, 3, 16, pads1)
				g := nb.node("GlobalAveragePool", "gap", []string{c2})
				return nb.node("ReorderOutput", "y", []string{g}, graph.IntAttr("channels", 12))
			},
		},
		{
			// NHWC in and out, upsampling, average pooling with padding,
			// grouped and strided/dilated convs, the other activations.
			name:   "nhwc_upsample_avg_grouped",
			inputs: map[string][]int64{"x": {1, 7, 6, 16}},
			order:  []string{"x"},
			build: func(nb *ncOrtBuilder) string {
				x := nb.node("ReorderInput", "xb", []string{"x"}, graph.IntAttr("channels_last", 1))
				u := nb.node("Upsample", "up", []string{x}, graph.IntsAttr("scales", 1, 1, 2, 2), graph.StringAttr("mode", "linear"),
					graph.StringAttr("coordinate_transformation_mode", "half_pixel"))
				a := nb.node("AveragePool", "ap", []string{u}, graph.IntsAttr("kernel_shape", 3, 3), graph.IntsAttr("strides", 2, 2), pads1,
					graph.IntAttr("count_include_pad", 1))
				c1 := nb.conv("c1", a, "", nchwcConvBlocked, 16, 8, 3, 2, pads1, graph.StringAttr("activation", "LeakyRelu"), graph.FloatsAttr("activation_params", 0.1))
				c2 := nb.conv("c2", c1, c1, nchwcConvBlocked, 16, 16, 3, 1, graph.IntsAttr("pads", 2, 1, 2, 1), graph.IntsAttr("dilations", 2, 1),
					graph.StringAttr("activation", "HardSigmoid"), graph.FloatsAttr("activation_params", 0.25, 0.5))
				c3 := nb.conv("c3", c2, "", nchwcConvBlocked, 20, 16, 1, 1, graph.IntsAttr("strides", 2, 2), graph.StringAttr("activation", "Tanh"))
				g := nb.node("GlobalMaxPool", "gmp", []string{c3})
				return nb.node("ReorderOutput", "y", []string{g}, graph.IntAttr("channels", 20), graph.IntAttr("channels_last", 1))
			},
		},
		{
			name:   "nearest_align_clip_sigmoid",
			inputs: map[string][]int64{"x": {1, 8, 5, 4}},
			order:  []string{"x"},
			build: func(nb *ncOrtBuilder) string {
				x := nb.node("ReorderInput", "xb", []string{"x"})
				u := nb.node("Upsample", "up", []string{x}, graph.IntsAttr("scales", 1, 1, 3, 2))
				c1 := nb.conv("c1", u, "", nchwcConvDepthwise, 8, 1, 3, 8, graph.StringAttr("auto_pad", "SAME_UPPER"), graph.IntsAttr("strides", 2, 2),
					graph.StringAttr("activation", "Clip"), graph.FloatsAttr("activation_params", -0.5, 0.5))
				l := nb.node("Upsample", "up2", []string{c1}, graph.IntsAttr("scales", 1, 1, 2, 3), graph.StringAttr("mode", "linear"),
					graph.StringAttr("coordinate_transformation_mode", "align_corners"))
				c2 := nb.conv("c2", l, "", nchwcConvBlocked, 8, 8, 3, 1, pads1, graph.StringAttr("activation", "Sigmoid"))
				p := nb.node("MaxPool", "mp", []string{c2}, graph.IntsAttr("kernel_shape", 3, 3), graph.IntsAttr("strides", 2, 2), graph.IntAttr("ceil_mode", 1))
				a := nb.node("AveragePool", "ap", []string{p}, graph.IntsAttr("kernel_shape", 2, 2), pads1)
				return nb.node("ReorderOutput", "y", []string{a}, graph.IntAttr("channels", 8))
			},
		},
		{
			// Pools whose last window (ceil_mode) hangs over the input's end.
			name:   "avg_ceil_overhang",
			inputs: map[string][]int64{"x": {1, 16, 8, 8}},
			order:  []string{"x"},
			build: func(nb *ncOrtBuilder) string {
				x := nb.node("ReorderInput", "xb", []string{"x"})
				a := nb.node("AveragePool", "ap", []string{x}, graph.IntsAttr("kernel_shape", 3, 3), graph.IntsAttr("strides", 2, 2),
					graph.IntAttr("ceil_mode", 1), graph.IntAttr("count_include_pad", 1))
				return nb.node("ReorderOutput", "y", []string{a}, graph.IntAttr("channels", 16))
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := ncOrtModel(tc.name, tc.inputs, tc.order, tc.build)
			opts := runtime.Options{Threads: 1, OptLevel: "off"}
			so, err := runtime.Open("ort", m, opts)
			if err != nil {
				testutil.Missing(t, "ONNX Runtime ("+err.Error()+")")
				return
			}
			defer so.Close()
			si, err := runtime.Open("interp", m, runtime.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(31, 32))
			var ins []*runtime.Tensor
			for _, name := range tc.order {
				shape := tc.inputs[name]
				ins = append(ins, runtime.FromFloat32(shape, ncRand(r, nnNumel(shape))))
			}
			ctx := context.Background()
			oo, err := so.Run(ctx, ins)
			if err != nil {
				t.Fatalf("ort: %v", err)
			}
			oi, err := si.Run(ctx, ins)
			if err != nil {
				t.Fatalf("interp: %v", err)
			}
			if err := nnCompare(oi[0], oo[0], 1e-4, 1e-4); err != nil {
				t.Fatalf("interp and ORT differ: %v", err)
			}
			t.Logf("%s: interp and ORT agree on %v", tc.name, oo[0].Shape)
		})
	}
}
