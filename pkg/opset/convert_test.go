package opset

import (
	"context"
	"errors"
	"github.com/optictl/optictl/pkg/numerics"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/runtime/ort"
)

func vi(name string, dims ...int64) *graph.ValueInfo {
	return &graph.ValueInfo{Name: name, DType: graph.Float, Shape: graph.ShapeOf(dims), HasShape: true, HasType: true}
}

// model builds a one-input float model at the given opset.
func model(opset int64, in *graph.ValueInfo, outs []string, nodes ...*graph.Node) *graph.Model {
	g := &graph.Graph{Name: "g", Inputs: []*graph.ValueInfo{in}, Nodes: nodes}
	for _, o := range outs {
		g.Outputs = append(g.Outputs, &graph.ValueInfo{Name: o, DType: graph.Float, HasType: true})
	}
	return &graph.Model{IRVersion: 4, Opsets: []graph.OpsetImport{{Version: opset}}, Graph: g}
}

func nd(op string, ins, outs []string, attrs ...*graph.Attr) *graph.Node {
	return &graph.Node{Name: op + "_" + outs[0], OpType: op, Inputs: ins, Outputs: outs, Attrs: attrs}
}

func int64Output(m *graph.Model, i int) *graph.Model {
	m.Graph.Outputs[i].DType = graph.Int64
	return m
}

func withInits(m *graph.Model, ts ...*graph.Tensor) *graph.Model {
	m.Graph.Initializers = append(m.Graph.Initializers, ts...)
	return m
}

func runInterp(t *testing.T, m *graph.Model, x *runtime.Tensor) []*runtime.Tensor {
	return runOn(t, "interp", m, x)
}

func runOn(t *testing.T, backend string, m *graph.Model, x *runtime.Tensor) []*runtime.Tensor {
	t.Helper()
	outs, err := tryRun(backend, m, x)
	if err != nil {
		t.Fatal(err)
	}
	return outs
}

func tryRun(backend string, m *graph.Model, x *runtime.Tensor) ([]*runtime.Tensor, error) {
	s, err := runtime.Open(backend, m, runtime.Options{Threads: 1})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	outs, err := s.Run(context.Background(), []*runtime.Tensor{x})
	if err != nil {
		return nil, err
	}
	for i, o := range outs {
		outs[i] = o.Clone()
	}
	return outs, nil
}

// TestAdapters converts one-op models to Newest and checks, on seeded
// inputs, that interp computes the same outputs before and after, and that
// the named adapter fired.
func TestAdapters(t *testing.T) {
	_, _, _, ortErr := ort.Load("")
	haveORT := ortErr == nil
	if !haveORT && testutil.InCI() {
		t.Fatalf("ONNX Runtime is missing (CI=true): %v", ortErr)
	}
	x := []string{"x"}
	y := []string{"y"}
	cases := []struct {
		name   string
		m      *graph.Model
		change string // an op@version expected among the changes
	}{
		{"softmax-axis1-rank3", model(11, vi("x", 2, 3, 4), y, nd("Softmax", x, y)), "Softmax@13"},
		{"logsoftmax-axis0", model(9, vi("x", 2, 3), y, nd("LogSoftmax", x, y, graph.IntAttr("axis", 0))), "LogSoftmax@13"},
		{"hardmax-last", model(12, vi("x", 2, 5), y, nd("Hardmax", x, y)), "Hardmax@13"},
		{"upsample7", model(7, vi("x", 1, 2, 3, 3), y, nd("Upsample", x, y, graph.FloatsAttr("scales", 1, 1, 2, 3))), "Upsample@10"},
		{"upsample7-linear", model(7, vi("x", 1, 1, 3, 4), y, nd("Upsample", x, y, graph.StringAttr("mode", "linear"), graph.FloatsAttr("scales", 1, 1, 2, 2))), "Resize@11"},
		{"slice9", model(9, vi("x", 4, 6), y, nd("Slice", x, y, graph.IntsAttr("starts", 1, -4), graph.IntsAttr("ends", 3, 100), graph.IntsAttr("axes", 0, 1))), "Slice@10"},
		{"pad2-value", model(7, vi("x", 2, 3), y, nd("Pad", x, y, graph.IntsAttr("pads", 1, 0, 0, 2), graph.FloatAttr("value", 1.5))), "Pad@11"},
		{"pad2-reflect", model(9, vi("x", 3, 4), y, nd("Pad", x, y, graph.IntsAttr("pads", 0, 1, 0, 2), graph.StringAttr("mode", "reflect"))), "Pad@11"},
		{"clip6", model(9, vi("x", 10), y, nd("Clip", x, y, graph.FloatAttr("min", -0.2), graph.FloatAttr("max", 0.3))), "Clip@11"},
		{"clip6-max-only", model(9, vi("x", 10), y, nd("Clip", x, y, graph.FloatAttr("max", 0.1))), "Clip@11"},
		{"topk1", int64Output(model(9, vi("x", 3, 5), []string{"v", "i"}, nd("TopK", x, []string{"v", "i"}, graph.IntAttr("k", 2))), 1), "TopK@10"},
		{"squeeze-unsqueeze", model(11, vi("x", 1, 3, 1), y, nd("Squeeze", x, []string{"s"}, graph.IntsAttr("axes", 0, 2)), nd("Unsqueeze", []string{"s"}, y, graph.IntsAttr("axes", 1))), "Unsqueeze@13"},
		{"reducesum", model(11, vi("x", 2, 3, 4), y, nd("ReduceSum", x, y, graph.IntsAttr("axes", 1), graph.IntAttr("keepdims", 0))), "ReduceSum@13"},
		{"reducemean", model(9, vi("x", 2, 3, 4), y, nd("ReduceMean", x, y, graph.IntsAttr("axes", -1, 0))), "ReduceMean@18"},
		{"reducemax-all", model(13, vi("x", 2, 3), y, nd("ReduceMax", x, y)), ""},
		{"split-attr", model(11, vi("x", 6, 2), []string{"a", "b"}, nd("Split", x, []string{"a", "b"}, graph.IntsAttr("split", 2, 4))), "Split@13"},
		{"split-equal", model(11, vi("x", 6, 2), []string{"a", "b", "c"}, nd("Split", x, []string{"a", "b", "c"})), "Split@18"},
		{"batchnorm7", model(7, vi("x", 1, 2, 3), y, nd("BatchNormalization", []string{"x", "s", "b", "m", "v"}, y, graph.IntAttr("spatial", 1), graph.FloatAttr("epsilon", 1e-3))), "BatchNormalization@9"},
		{"dropout7", model(7, vi("x", 4), y, nd("Dropout", x, y, graph.FloatAttr("ratio", 0.3))), "Dropout@12"},
		{"gemm7-noc", model(7, vi("x", 2, 3), y, nd("Gemm", []string{"x", "w", "c"}, y, graph.IntAttr("transB", 1))), ""},
		{"gemm6-broadcast", model(6, vi("x", 2, 3), y, nd("Gemm", []string{"x", "w", "c"}, y, graph.IntAttr("transB", 1), graph.IntAttr("broadcast", 1))), "Gemm@7"},
		{"add6-broadcast-axis", withInits(model(6, vi("x", 2, 3, 4), y, nd("Add", []string{"x", "b"}, y, graph.IntAttr("broadcast", 1), graph.IntAttr("axis", 1))),
			graph.NewFloat32("b", []int64{3, 4}, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})), "Add@7"},
		{"resize11-tf-half-pixel-for-nn", withInits(model(11, vi("x", 1, 1, 4, 4), y, nd("Resize", []string{"x", "roi", "sc"}, y,
			graph.StringAttr("coordinate_transformation_mode", "tf_half_pixel_for_nn"))),
			graph.NewFloat32("roi", []int64{0}, nil), graph.NewFloat32("sc", []int64{4}, []float32{1, 1, 0.6, 1.7})), "Resize@13"},
		{"resize11-tf-half-pixel-for-nn-floor", withInits(model(11, vi("x", 1, 1, 5, 3), y, nd("Resize", []string{"x", "roi", "sc"}, y,
			graph.StringAttr("coordinate_transformation_mode", "tf_half_pixel_for_nn"), graph.StringAttr("nearest_mode", "floor"))),
			graph.NewFloat32("roi", []int64{0}, nil), graph.NewFloat32("sc", []int64{4}, []float32{1, 1, 0.5, 2.5})), "Resize@13"},
		{"reducel2", model(13, vi("x", 2, 3, 4), y, nd("ReduceL2", x, y, graph.IntsAttr("axes", 1, 2))), "ReduceL2@18"},
		{"reducelogsumexp", model(11, vi("x", 2, 3, 4), y, nd("ReduceLogSumExp", x, y, graph.IntsAttr("axes", 0), graph.IntAttr("keepdims", 0))), "ReduceLogSumExp@18"},
		{"groupnorm18", withInits(model(18, vi("x", 2, 4, 3), y, nd("GroupNormalization", []string{"x", "gs", "gb"}, y, graph.IntAttr("num_groups", 2))),
			graph.NewFloat32("gs", []int64{2}, []float32{0.5, 2}), graph.NewFloat32("gb", []int64{2}, []float32{1, -1})), "GroupNormalization@21"},
		{"gridsample16", withInits(model(16, vi("x", 1, 1, 3, 3), y, nd("GridSample", []string{"x", "grid"}, y, graph.StringAttr("mode", "bilinear"))),
			graph.NewFloat32("grid", []int64{1, 2, 2, 2}, []float32{-1, -1, 0.3, 0.2, 0.9, -0.5, 0, 0})), "GridSample@20"},
		{"roialign10", withInits(model(10, vi("x", 1, 1, 4, 4), y, nd("RoiAlign", []string{"x", "rois", "bi"}, y,
			graph.IntAttr("output_height", 2), graph.IntAttr("output_width", 2), graph.IntAttr("sampling_ratio", 2))),
			graph.NewFloat32("rois", []int64{1, 4}, []float32{0.5, 0.5, 2.5, 3}), graph.NewInt64("bi", []int64{1}, []int64{0})), "RoiAlign@16"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addWeights(tc.m)
			c, rep, err := Convert(tc.m, Newest)
			if err != nil {
				t.Fatal(err)
			}
			if c.Opset("") != Newest || tc.m.Opset("") == Newest {
				t.Fatalf("opset %d -> %d", tc.m.Opset(""), c.Opset(""))
			}
			var seen []string
			for _, ch := range rep.Changes {
				seen = append(seen, ch.Op+"@"+strconv.FormatInt(ch.To, 10))
			}
			if tc.change != "" && !strings.Contains(" "+strings.Join(seen, " ")+" ", " "+tc.change+" ") {
				t.Errorf("changes %v lack %s", seen, tc.change)
			}
			in := tc.m.Graph.Inputs[0]
			dims, _ := in.Shape.Static()
			n := int64(1)
			for _, d := range dims {
				n *= d
			}
			r := rand.New(rand.NewPCG(1, 2))
			data := make([]float32, n)
			for i := range data {
				data[i] = r.Float32()*4 - 2
			}
			xt := runtime.FromFloat32(dims, data)
			want, got := runInterp(t, tc.m, xt), runInterp(t, c, xt)
			for k := range want {
				if err := numerics.Check(got[k], want[k], numerics.Tolerance{RTol: 1e-6, ATol: 1e-6}); err != nil {
					t.Errorf("output %d: %v", k, err)
				}
			}
			// ONNX Runtime runs the converted model at the new opset too
			// (interp's result on the original as the reference).
			if haveORT {
				gotO, err := tryRun("ort", c, xt)
				if err != nil && strings.Contains(err.Error(), "Could not find an implementation") {
					t.Logf("ONNX Runtime has no kernel for this op at opset %d: %v", Newest, err)
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				for k := range want {
					if err := numerics.Check(gotO[k], want[k], numerics.Tolerance{RTol: 1e-5, ATol: 1e-5}); err != nil {
						t.Errorf("ort, output %d: %v", k, err)
					}
				}
				// and what ONNX Runtime computes for the original, at its
				// own opset, where it runs it (an independent reading of
				// the old semantics)
				if wantO, err := tryRun("ort", tc.m, xt); err == nil {
					for k := range wantO {
						if err := numerics.Check(gotO[k], wantO[k], numerics.Tolerance{RTol: 1e-5, ATol: 1e-5}); err != nil {
							t.Errorf("ort against ort on the original, output %d: %v", k, err)
						}
					}
				} else {
					t.Logf("ort does not run the original: %v", err)
				}
			}
		})
	}
}

// addWeights gives every node input that is neither the graph input nor
// produced by a node a constant of the right size for these tests.
func addWeights(m *graph.Model) {
	g := m.Graph
	have := map[string]bool{"x": true}
	for _, t := range g.Initializers {
		have[t.Name] = true
	}
	for _, n := range g.Nodes {
		for _, o := range n.Outputs {
			have[o] = true
		}
	}
	for _, n := range g.Nodes {
		for i, in := range n.Inputs {
			if have[in] || in == "" {
				continue
			}
			have[in] = true
			switch {
			case n.OpType == "Gemm" && i == 1:
				g.Initializers = append(g.Initializers, graph.NewFloat32(in, []int64{4, 3}, []float32{1, 2, 3, -1, 0, 1, 0.5, 0.5, 0.5, 2, -2, 1}))
			case n.OpType == "Gemm":
				g.Initializers = append(g.Initializers, graph.NewFloat32(in, []int64{4}, []float32{0.1, 0.2, 0.3, 0.4}))
			case in == "v":
				g.Initializers = append(g.Initializers, graph.NewFloat32(in, []int64{2}, []float32{0.5, 2}))
			default:
				g.Initializers = append(g.Initializers, graph.NewFloat32(in, []int64{2}, []float32{1.5, -0.5}))
			}
		}
	}
}

func TestRefusals(t *testing.T) {
	y := []string{"y"}
	cases := []struct {
		name string
		m    *graph.Model
		want string
	}{
		{"bn-spatial0", model(7, vi("x", 1, 2, 3), y, nd("BatchNormalization", []string{"x", "s", "b", "m", "v"}, y, graph.IntAttr("spatial", 0))), `BatchNormalization "BatchNormalization_y" cannot be converted from opset 8 to 9: spatial=0`},
		{"dropout-mask-read", model(7, vi("x", 4), []string{"y", "mask"}, nd("Dropout", []string{"x"}, []string{"y", "mask"})), `Dropout "Dropout_y" cannot be converted from opset 9 to 10: output 1 "mask" is read`},
		{"add6-axis-not-trailing", withInits(model(6, vi("x", 2, 3, 4), y, nd("Add", []string{"x", "b"}, y, graph.IntAttr("broadcast", 1), graph.IntAttr("axis", 0))),
			graph.NewFloat32("b", []int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})), `cannot be converted from opset 6 to 7: broadcast from axis 0 (ranks 3 and 2) is not numpy broadcasting`},
		{"bn-training-outputs", model(9, vi("x", 1, 2, 3), []string{"y", "mean"}, nd("BatchNormalization", []string{"x", "s", "b", "m", "v"}, []string{"y", "mean"})), `from opset 13 to 14: output 1 "mean" is read`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addWeights(tc.m)
			before := len(tc.m.Graph.Initializers)
			c, rep, err := Convert(tc.m, Newest)
			if err == nil || c != nil || rep != nil {
				t.Fatalf("converted (%v)", err)
			}
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want one containing %q", err, tc.want)
			}
			if len(tc.m.Graph.Initializers) != before || tc.m.Opset("") == Newest {
				t.Error("the input model was modified")
			}
		})
	}
	m := model(9, vi("x", 2), y, nd("Relu", []string{"x"}, y))
	for _, target := range []int64{8, Newest + 1} {
		if _, _, err := Convert(m, target); err == nil {
			t.Errorf("target %d accepted", target)
		}
	}
}

// TestSoftmaxForms: the last axis needs no rewrite (even where the rank is
// unknown); another axis is written as Flatten -> Softmax -> Reshape.
func TestSoftmaxForms(t *testing.T) {
	y := []string{"y"}
	noShape := &graph.ValueInfo{Name: "x", DType: graph.Float, HasType: true}
	cases := []struct {
		name  string
		in    *graph.ValueInfo
		axis  int64
		nodes int
	}{
		{"axis -1, rank unknown", noShape, -1, 1},
		{"axis 2 of rank 3", vi("x", 2, 3, 4), 2, 1},
		{"axis 1 of rank 3", vi("x", 2, 3, 4), 1, 4},
		{"axis 1, rank unknown", noShape, 1, 4},
	}
	for _, tc := range cases {
		m := model(12, tc.in, y, nd("Softmax", []string{"x"}, y, graph.IntAttr("axis", tc.axis)))
		c, _, err := Convert(m, 13)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(c.Graph.Nodes) != tc.nodes {
			t.Errorf("%s: %d nodes, want %d", tc.name, len(c.Graph.Nodes), tc.nodes)
		}
	}
}

// TestExperimentalOps: the experimental ops that left the standard at
// opset 10 are written out in standard ops (checked against their
// definitions on seeded inputs) or refused.
func TestExperimentalOps(t *testing.T) {
	y := []string{"y"}
	x := []string{"x"}
	cases := []struct {
		name string
		n    *graph.Node
		f    func(v float64, c int) float64 // y from x at channel c
	}{
		{"ImageScaler", nd("ImageScaler", x, y, graph.FloatAttr("scale", 0.5), graph.FloatsAttr("bias", 1, -2, 3)), func(v float64, c int) float64 { return 0.5*v + []float64{1, -2, 3}[c] }},
		{"Scale", nd("Scale", x, y, graph.FloatAttr("scale", -3)), func(v float64, c int) float64 { return -3 * v }},
		{"Affine", nd("Affine", x, y, graph.FloatAttr("alpha", 2), graph.FloatAttr("beta", 0.25)), func(v float64, c int) float64 { return 2*v + 0.25 }},
		{"ScaledTanh", nd("ScaledTanh", x, y, graph.FloatAttr("alpha", 2), graph.FloatAttr("beta", 0.5)), func(v float64, c int) float64 { return 2 * math.Tanh(0.5*v) }},
		{"ParametricSoftplus", nd("ParametricSoftplus", x, y, graph.FloatAttr("alpha", 1.5), graph.FloatAttr("beta", 2)), func(v float64, c int) float64 { return 1.5 * math.Log1p(math.Exp(2*v)) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := model(8, vi("x", 1, 3, 2, 2), y, tc.n)
			c, _, err := Convert(m, Newest)
			if err != nil {
				t.Fatal(err)
			}
			data := make([]float32, 12)
			for i := range data {
				data[i] = float32(i)/3 - 2
			}
			got := runInterp(t, c, runtime.FromFloat32([]int64{1, 3, 2, 2}, data))[0].Float32s()
			for i, v := range data {
				if want := tc.f(float64(v), i/4); math.Abs(float64(got[i])-want) > 1e-5*(1+math.Abs(want)) {
					t.Fatalf("y[%d] = %g, want %g", i, got[i], want)
				}
			}
		})
	}
	m := model(8, vi("x", 1, 3, 4, 4), y, nd("Crop", x, y, graph.IntsAttr("border", 1, 1, 1, 1)))
	if _, _, err := Convert(m, Newest); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "experimental op Crop") {
		t.Errorf("Crop: %v", err)
	}
}
