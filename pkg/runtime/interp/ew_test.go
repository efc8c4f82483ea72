package interp

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// ewModel builds a one-node model whose inputs are all graph inputs (of the
// given tensors' dtypes, dynamic shapes) and whose outputs are nOut values.
func ewModel(op string, opset int64, attrs []*graph.Attr, ins []*runtime.Tensor, nOut int) *graph.Model {
	n := &graph.Node{OpType: op, Attrs: attrs}
	g := &graph.Graph{Name: "ew"}
	for i, t := range ins {
		name := "x" + itoa(i)
		if t == nil {
			n.Inputs = append(n.Inputs, "")
			continue
		}
		n.Inputs = append(n.Inputs, name)
		g.Inputs = append(g.Inputs, &graph.ValueInfo{Name: name, DType: t.DType, HasType: true})
	}
	for i := 0; i < nOut; i++ {
		name := "y" + itoa(i)
		n.Outputs = append(n.Outputs, name)
		g.Outputs = append(g.Outputs, &graph.ValueInfo{Name: name})
	}
	g.Nodes = []*graph.Node{n}
	return &graph.Model{IRVersion: 9, Opsets: []graph.OpsetImport{{Version: opset}}, Graph: g}
}

func ewRun(t *testing.T, m *graph.Model, ins []*runtime.Tensor) ([]*runtime.Tensor, error) {
	t.Helper()
	s, err := Open(m, runtime.Options{Threads: 1})
	if err != nil {
		return nil, err
	}
	var args []*runtime.Tensor
	for _, x := range ins {
		if x != nil {
			args = append(args, x)
		}
	}
	return s.Run(context.Background(), args)
}

func f32(shape []int64, v ...float32) *runtime.Tensor { return runtime.FromFloat32(shape, v) }
func i64(shape []int64, v ...int64) *runtime.Tensor   { return runtime.FromInt64(shape, v) }

func TestEwKernels(t *testing.T) {
	inf := float32(math.Inf(1))
	cases := []struct {
		name  string
		op    string
		opset int64
		attrs []*graph.Attr
		ins   []*runtime.Tensor
		want  *runtime.Tensor
	}{
		{"add broadcast row", "Add", 17, nil, []*runtime.Tensor{f32([]int64{2, 3}, 1, 2, 3, 4, 5, 6), f32([]int64{3}, 10, 20, 30)},
			f32([]int64{2, 3}, 11, 22, 33, 14, 25, 36)},
		{"sub broadcast column", "Sub", 17, nil, []*runtime.Tensor{f32([]int64{2, 3}, 1, 2, 3, 4, 5, 6), f32([]int64{2, 1}, 1, 2)},
			f32([]int64{2, 3}, 0, 1, 2, 2, 3, 4)},
		{"div int by zero is 0, no panic", "Div", 17, nil, []*runtime.Tensor{i64([]int64{2}, 7, 9), i64([]int64{2}, 2, 0)},
			i64([]int64{2}, 3, 0)},
		{"mod python sign", "Mod", 17, nil, []*runtime.Tensor{i64([]int64{2}, -7, 7), i64([]int64{2}, 3, -3)},
			i64([]int64{2}, 2, -2)},
		{"relu", "Relu", 14, nil, []*runtime.Tensor{f32([]int64{3}, -1, 0, 2)}, f32([]int64{3}, 0, 0, 2)},
		{"clip opset 6 attrs", "Clip", 6, []*graph.Attr{graph.FloatAttr("min", -1), graph.FloatAttr("max", 1)},
			[]*runtime.Tensor{f32([]int64{3}, -5, 0.5, inf)}, f32([]int64{3}, -1, 0.5, 1)},
		{"clip opset 13 inputs, max omitted", "Clip", 13, nil,
			[]*runtime.Tensor{f32([]int64{3}, -5, 0.5, 9), f32(nil, 0), nil}, f32([]int64{3}, 0, 0.5, 9)},
		{"transpose default reverses", "Transpose", 13, nil, []*runtime.Tensor{f32([]int64{2, 3}, 1, 2, 3, 4, 5, 6)},
			f32([]int64{3, 2}, 1, 4, 2, 5, 3, 6)},
		{"reshape 0 and -1", "Reshape", 14, nil, []*runtime.Tensor{f32([]int64{2, 3}, 1, 2, 3, 4, 5, 6), i64([]int64{2}, 0, -1)},
			f32([]int64{2, 3}, 1, 2, 3, 4, 5, 6)},
		{"squeeze opset 11 attr", "Squeeze", 11, []*graph.Attr{graph.IntsAttr("axes", 0)}, []*runtime.Tensor{f32([]int64{1, 2}, 1, 2)},
			f32([]int64{2}, 1, 2)},
		{"unsqueeze opset 13 input", "Unsqueeze", 13, nil, []*runtime.Tensor{f32([]int64{2}, 1, 2), i64([]int64{1}, -1)},
			f32([]int64{2, 1}, 1, 2)},
		{"slice negative step", "Slice", 13, nil, []*runtime.Tensor{f32([]int64{4}, 1, 2, 3, 4), i64([]int64{1}, -1), i64([]int64{1}, -5),
			i64([]int64{1}, 0), i64([]int64{1}, -2)}, f32([]int64{2}, 4, 2)},
		{"gather negative index", "Gather", 13, []*graph.Attr{graph.IntAttr("axis", 1)},
			[]*runtime.Tensor{f32([]int64{2, 3}, 1, 2, 3, 4, 5, 6), i64([]int64{1}, -1)}, f32([]int64{2, 1}, 3, 6)},
		{"concat axis 1", "Concat", 13, []*graph.Attr{graph.IntAttr("axis", 1)},
			[]*runtime.Tensor{f32([]int64{2, 1}, 1, 2), f32([]int64{2, 2}, 3, 4, 5, 6)}, f32([]int64{2, 3}, 1, 3, 4, 2, 5, 6)},
		{"reduce mean opset 13 attr axes", "ReduceMean", 13, []*graph.Attr{graph.IntsAttr("axes", 1), graph.IntAttr("keepdims", 0)},
			[]*runtime.Tensor{f32([]int64{2, 2}, 1, 3, 5, 7)}, f32([]int64{2}, 2, 6)},
		{"reduce sum opset 13 axes input", "ReduceSum", 13, nil,
			[]*runtime.Tensor{f32([]int64{2, 2}, 1, 3, 5, 7), i64([]int64{1}, 0)}, f32([]int64{1, 2}, 6, 10)},
		{"softmax opset 11 flattens", "Softmax", 11, []*graph.Attr{graph.IntAttr("axis", 0)},
			[]*runtime.Tensor{f32([]int64{2, 1}, 0, 0)}, f32([]int64{2, 1}, 0.5, 0.5)},
		{"pad reflect", "Pad", 13, []*graph.Attr{graph.StringAttr("mode", "reflect")},
			[]*runtime.Tensor{f32([]int64{3}, 1, 2, 3), i64([]int64{2}, 2, 1)}, f32([]int64{6}, 3, 2, 1, 2, 3, 2)},
		{"topk smallest", "TopK", 11, []*graph.Attr{graph.IntAttr("largest", 0)},
			[]*runtime.Tensor{f32([]int64{4}, 3, 1, 2, 0), i64([]int64{1}, 2)}, f32([]int64{2}, 0, 1)},
		{"cast float to int64 truncates", "Cast", 13, []*graph.Attr{graph.IntAttr("to", int64(graph.Int64))},
			[]*runtime.Tensor{f32([]int64{2}, 2.7, -2.7)}, i64([]int64{2}, 2, -2)},
		{"where broadcast", "Where", 16, nil, []*runtime.Tensor{{DType: graph.Bool, Shape: []int64{2}, Raw: []byte{1, 0}},
			f32([]int64{1}, 7), f32([]int64{2}, 1, 2)}, f32([]int64{2}, 7, 2)},
		{"resize nearest upsample", "Resize", 19, []*graph.Attr{graph.StringAttr("coordinate_transformation_mode", "asymmetric"), graph.StringAttr("nearest_mode", "floor")},
			[]*runtime.Tensor{f32([]int64{1, 2}, 1, 2), nil, f32([]int64{2}, 1, 2)}, f32([]int64{1, 4}, 1, 1, 2, 2)},
		{"einsum matmul", "Einsum", 12, []*graph.Attr{graph.StringAttr("equation", "ij,jk->ik")},
			[]*runtime.Tensor{f32([]int64{1, 2}, 1, 2), f32([]int64{2, 2}, 1, 2, 3, 4)}, f32([]int64{1, 2}, 7, 10)},
		{"einsum implicit trace-free transpose", "Einsum", 12, []*graph.Attr{graph.StringAttr("equation", "ji")},
			[]*runtime.Tensor{f32([]int64{2, 1}, 5, 6)}, f32([]int64{1, 2}, 5, 6)},
		{"nll mean with ignore_index", "NegativeLogLikelihoodLoss", 13, []*graph.Attr{graph.IntAttr("ignore_index", 1)},
			[]*runtime.Tensor{f32([]int64{2, 2}, -1, -2, -3, -4), i64([]int64{2}, 0, 1)}, f32(nil, 1)},
		{"det 2x2", "Det", 11, nil, []*runtime.Tensor{f32([]int64{2, 2}, 1, 2, 3, 4)}, f32(nil, -2)},
		{"tensor scatter linear", "TensorScatter", 24, []*graph.Attr{graph.IntAttr("axis", 1)},
			[]*runtime.Tensor{f32([]int64{1, 3}, 0, 0, 0), f32([]int64{1, 1}, 9), i64([]int64{1}, 2)}, f32([]int64{1, 3}, 0, 0, 9)},
		{"hardmax ties pick first", "Hardmax", 13, nil, []*runtime.Tensor{f32([]int64{3}, 1, 3, 3)}, f32([]int64{3}, 0, 1, 0)},
		{"cumsum exclusive reverse", "CumSum", 14, []*graph.Attr{graph.IntAttr("exclusive", 1), graph.IntAttr("reverse", 1)},
			[]*runtime.Tensor{f32([]int64{3}, 1, 2, 3), i64(nil, 0)}, f32([]int64{3}, 5, 3, 0)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := ewRun(t, ewModel(tc.op, tc.opset, tc.attrs, tc.ins, 1), tc.ins)
			if err != nil {
				t.Fatal(err)
			}
			if msg := seqCompare(out[0], tc.want, 1e-6, 1e-6); msg != "" {
				t.Fatalf("%s: %v %v, want %v", msg, out[0].Shape, out[0], tc.want)
			}
		})
	}
}

// Bad inputs must come back as errors naming the node, never as panics.
func TestEwErrors(t *testing.T) {
	cases := []struct {
		name, op string
		opset    int64
		attrs    []*graph.Attr
		ins      []*runtime.Tensor
		want     string
	}{
		{"add not broadcastable", "Add", 17, nil, []*runtime.Tensor{f32([]int64{2}, 1, 2), f32([]int64{3}, 1, 2, 3)}, "broadcastable"},
		{"reshape wrong count", "Reshape", 14, nil, []*runtime.Tensor{f32([]int64{2}, 1, 2), i64([]int64{1}, 3)}, "cannot reshape"},
		{"gather out of range", "Gather", 13, nil, []*runtime.Tensor{f32([]int64{2}, 1, 2), i64([]int64{1}, 5)}, "out of range"},
		{"transpose bad perm", "Transpose", 13, []*graph.Attr{graph.IntsAttr("perm", 0, 0)}, []*runtime.Tensor{f32([]int64{1, 1}, 1)}, "perm"},
		{"expand absurd", "Expand", 13, nil, []*runtime.Tensor{f32([]int64{1}, 1), i64([]int64{3}, 1<<40, 1<<40, 1<<40)}, "interp"},
		{"concat rank mismatch", "Concat", 13, []*graph.Attr{graph.IntAttr("axis", 0)}, []*runtime.Tensor{f32([]int64{1}, 1), f32([]int64{1, 1}, 1)}, "does not match"},
		{"split uneven", "Split", 13, nil, []*runtime.Tensor{f32([]int64{3}, 1, 2, 3)}, "split"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nOut := 1
			if tc.op == "Split" {
				nOut = 2
			}
			_, err := ewRun(t, ewModel(tc.op, tc.opset, tc.attrs, tc.ins, nOut), tc.ins)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "panic") {
				t.Fatalf("kernel panicked: %v", err)
			}
		})
	}
}

// The float32 hot paths must not allocate per run once warmed up.
func TestEwHotPathsAllocationFree(t *testing.T) {
	x := f32([]int64{4, 8}, make([]float32, 32)...)
	row := f32([]int64{8}, make([]float32, 8)...)
	cases := []struct {
		name  string
		op    string
		opset int64
		attrs []*graph.Attr
		ins   []*runtime.Tensor
	}{
		{"Add same shape", "Add", 17, nil, []*runtime.Tensor{x, x}},
		{"Mul row", "Mul", 17, nil, []*runtime.Tensor{x, row}},
		{"Add scalar", "Add", 17, nil, []*runtime.Tensor{x, f32(nil, 1)}},
		{"Relu", "Relu", 14, nil, []*runtime.Tensor{x}},
		{"Sigmoid", "Sigmoid", 13, nil, []*runtime.Tensor{x}},
		{"Tanh", "Tanh", 13, nil, []*runtime.Tensor{x}},
		{"Transpose", "Transpose", 13, nil, []*runtime.Tensor{x}},
		{"Concat", "Concat", 13, []*graph.Attr{graph.IntAttr("axis", 0)}, []*runtime.Tensor{x, x}},
		{"Slice", "Slice", 13, nil, []*runtime.Tensor{x, i64([]int64{1}, 1), i64([]int64{1}, 3)}},
		{"Gather", "Gather", 13, nil, []*runtime.Tensor{x, i64([]int64{2}, 0, 3)}},
		{"Softmax", "Softmax", 13, nil, []*runtime.Tensor{x}},
		{"ReduceMean", "ReduceMean", 13, []*graph.Attr{graph.IntsAttr("axes", -1)}, []*runtime.Tensor{x}},
		{"Reshape", "Reshape", 14, nil, []*runtime.Tensor{x, i64([]int64{1}, -1)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(ewModel(tc.op, tc.opset, tc.attrs, tc.ins, 1), runtime.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := s.Run(ctx, tc.ins); err != nil {
				t.Fatal(err)
			}
			var runErr error
			allocs := testing.AllocsPerRun(20, func() {
				if _, err := s.Run(ctx, tc.ins); err != nil {
					runErr = err
				}
			})
			if runErr != nil {
				t.Fatal(runErr)
			}
			if allocs > 0 {
				t.Errorf("%s allocates %.0f times per run", tc.op, allocs)
			}
		})
	}
}

func TestEwFloat8RoundTrip(t *testing.T) {
	for dt, f := range ewF8Formats {
		for code := 0; code <= f.maxCode; code++ {
			v := f.decode(uint8(code))
			if got := f.encode(v, true); got != uint8(code) && !(code == 0 && got == 0) {
				t.Errorf("%s: code %#x decodes to %v, which encodes to %#x", dt, code, v, got)
			}
		}
		if got := f.encode(1e9, true); got != uint8(f.maxCode) {
			t.Errorf("%s: saturating 1e9 gave %#x, want %#x", dt, got, f.maxCode)
		}
	}
}

func BenchmarkEwAddRow(b *testing.B) {
	x := f32([]int64{64, 256}, make([]float32, 64*256)...)
	row := f32([]int64{256}, make([]float32, 256)...)
	s, err := Open(ewModel("Add", 17, nil, []*runtime.Tensor{x, row}, 1), runtime.Options{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Run(ctx, []*runtime.Tensor{x, row}); err != nil { // warm up buffers
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Run(ctx, []*runtime.Tensor{x, row}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEwTranspose(b *testing.B) {
	x := f32([]int64{64, 256}, make([]float32, 64*256)...)
	s, err := Open(ewModel("Transpose", 13, nil, []*runtime.Tensor{x}, 1), runtime.Options{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Run(ctx, []*runtime.Tensor{x}); err != nil { // warm up buffers and the index map
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Run(ctx, []*runtime.Tensor{x}); err != nil {
			b.Fatal(err)
		}
	}
}

// Casts to and from packed sub-byte types wrap like onnx's reference.
func TestEwCastSubByte(t *testing.T) {
	x := f32([]int64{4}, -9, 7, 8, 1.5)
	out, err := ewRun(t, ewModel("Cast", 25, []*graph.Attr{graph.IntAttr("to", int64(graph.Int4))}, []*runtime.Tensor{x}, 1), []*runtime.Tensor{x})
	if err != nil {
		t.Fatal(err)
	}
	// -9 -> 7, 7 -> 7, 8 -> -8, 1.5 -> 2 (half to even), two per byte, low nibble first
	if got, want := out[0].Raw, []byte{0x77, 0x28}; string(got) != string(want) {
		t.Fatalf("int4 bytes %x, want %x", got, want)
	}
	back, err := ewRun(t, ewModel("Cast", 25, []*graph.Attr{graph.IntAttr("to", int64(graph.Float))}, []*runtime.Tensor{out[0]}, 1), []*runtime.Tensor{out[0]})
	if err != nil {
		t.Fatal(err)
	}
	if msg := seqCompare(back[0], f32([]int64{4}, 7, 7, -8, 2), 0, 0); msg != "" {
		t.Fatal(msg)
	}
}
