package tensorio

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/onnxpb"
	"github.com/optictl/optictl/pkg/runtime"
)

func sample(dt graph.DType, shape []int64) *runtime.Tensor {
	t := runtime.NewTensor(dt, shape)
	for i := range t.Raw {
		t.Raw[i] = byte(i*7 + 3)
	}
	if dt == graph.Bool {
		for i := range t.Raw {
			t.Raw[i] &= 1
		}
	}
	return t
}

func TestNPYRoundTrip(t *testing.T) {
	dts := []graph.DType{graph.Float, graph.Double, graph.Float16, graph.Int64, graph.Int32, graph.Int16, graph.Int8,
		graph.Uint8, graph.Uint16, graph.Uint32, graph.Uint64, graph.Bool}
	shapes := [][]int64{{}, {0}, {5}, {2, 3}, {1, 2, 3, 4}}
	for _, dt := range dts {
		for _, sh := range shapes {
			in := sample(dt, sh)
			b, err := EncodeNPY(in)
			if err != nil {
				t.Fatalf("%s%v: %v", dt, sh, err)
			}
			if hl := 10 + int(binary.LittleEndian.Uint16(b[8:10])); hl%64 != 0 {
				t.Errorf("%s%v: header length %d is not a multiple of 64", dt, sh, hl)
			}
			out, err := DecodeNPY(b)
			if err != nil {
				t.Fatalf("%s%v: %v", dt, sh, err)
			}
			if !out.Equal(in) {
				t.Errorf("%s%v: round trip changed the tensor", dt, sh)
			}
		}
	}
}

// npyBytes builds a .npy file from a header dict and data.
func npyBytes(version byte, dict string, data []byte) []byte {
	b := []byte(npyMagic)
	b = append(b, version, 0)
	if version == 1 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(dict)))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(dict)))
	}
	return append(append(b, dict...), data...)
}

func TestNPYDecode(t *testing.T) {
	f32 := make([]byte, 8)
	binary.LittleEndian.PutUint32(f32, math.Float32bits(1.5))
	binary.LittleEndian.PutUint32(f32[4:], math.Float32bits(-2))
	cases := []struct {
		name    string
		file    []byte
		wantErr string
		shape   []int64
		dt      graph.DType
	}{
		{"v1", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n", f32), "", []int64{2}, graph.Float},
		{"v2 double quotes", npyBytes(2, `{"descr": "<f4", "fortran_order": False, "shape": (1, 2)}`+"\n", f32), "", []int64{1, 2}, graph.Float},
		{"v3", npyBytes(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f32), "", []int64{2}, graph.Float},
		{"scalar", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", f32[:4]), "", []int64{}, graph.Float},
		{"native order", npyBytes(1, "{'descr': '=f4', 'fortran_order': False, 'shape': (2,), }", f32), "", []int64{2}, graph.Float},
		{"big-endian byte ok", npyBytes(1, "{'descr': '>u1', 'fortran_order': False, 'shape': (8,), }", f32), "", []int64{8}, graph.Uint8},
		{"fortran", npyBytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", f32), "Fortran-order", nil, 0},
		{"big endian", npyBytes(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", f32), "big-endian", nil, 0},
		{"object", npyBytes(1, "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", f32), "object arrays", nil, 0},
		{"unicode", npyBytes(1, "{'descr': '<U3', 'fortran_order': False, 'shape': (2,), }", f32), "string", nil, 0},
		{"complex", npyBytes(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", f32), "unsupported dtype", nil, 0},
		{"structured", npyBytes(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", f32), "structured", nil, 0},
		{"short data", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f32), "needs 12 data bytes", nil, 0},
		{"long data", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", f32), "needs 4 data bytes", nil, 0},
		{"huge shape", npyBytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000, 100000000000), }", f32), "", nil, 0},
		{"negative dim", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", f32), "bad dimension", nil, 0},
		{"bad magic", append([]byte("NUMPY!"), f32...), "bad magic", nil, 0},
		{"header too long", npyBytes(1, "", nil)[:8], "bad magic", nil, 0},
		{"missing key", npyBytes(1, "{'descr': '<f4', 'shape': (2,), }", f32), "lacks", nil, 0},
		{"version 9", npyBytes(9, "{}", nil), "unsupported format version", nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeNPY(c.file)
			if c.shape == nil {
				if err == nil {
					t.Fatal("no error")
				}
				if !strings.HasPrefix(err.Error(), "tensorio: ") || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %q lacks %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.DType != c.dt || runtime.ShapeString(got.Shape) != runtime.ShapeString(c.shape) {
				t.Fatalf("got %s%v, want %s%v", got.DType, got.Shape, c.dt, c.shape)
			}
			if c.dt == graph.Float && got.Float32s()[0] != 1.5 {
				t.Fatalf("first value %v, want 1.5", got.Float32s()[0])
			}
		})
	}
}

func TestNPYLargeHeaderUsesV2(t *testing.T) {
	shape := make([]int64, 64)
	for i := range shape {
		shape[i] = 1
	}
	in := sample(graph.Float, shape)
	b, err := EncodeNPY(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeNPY(b)
	if err != nil || !out.Equal(in) {
		t.Fatalf("64-dim round trip: %v", err)
	}
}

func FuzzNPY(f *testing.F) {
	for _, s := range []string{
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
		"{'descr': '|b1', 'fortran_order': False, 'shape': (2, 1), }",
		"{'descr': '<i8', 'fortran_order': False, 'shape': (), }",
	} {
		f.Add(npyBytes(1, s, make([]byte, 8)))
		f.Add(npyBytes(2, s, make([]byte, 8)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeNPY(b)
		if err != nil {
			return
		}
		// Whatever decodes must be consistent and bounded by the input.
		if err := got.Check(); err != nil {
			t.Fatalf("decoded an inconsistent tensor: %v", err)
		}
		if len(got.Raw) > len(b) {
			t.Fatalf("decoded %d data bytes from a %d-byte file", len(got.Raw), len(b))
		}
		again, err := EncodeNPY(got)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeNPY(again)
		if err != nil || !back.Equal(got) {
			t.Fatalf("re-encoding does not round-trip: %v", err)
		}
	})
}

func TestNPZRoundTrip(t *testing.T) {
	in := []Named{{"x", sample(graph.Float, []int64{2, 3})}, {"ids", sample(graph.Int64, []int64{4})}, {"mask", sample(graph.Bool, []int64{3})}}
	p := filepath.Join(t.TempDir(), "a.npz")
	if err := SaveNPZ(p, in); err != nil {
		t.Fatal(err)
	}
	out, err := LoadNPZ(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d arrays, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i].Name != in[i].Name || !out[i].Tensor.Equal(in[i].Tensor) {
			t.Errorf("array %d: got %q", i, out[i].Name)
		}
	}
	files, err := LoadFile(p)
	if err != nil || len(files) != 3 {
		t.Fatalf("LoadFile: %d, %v", len(files), err)
	}
	bad := filepath.Join(t.TempDir(), "bad.npz")
	if err := os.WriteFile(bad, []byte("PK\x03\x04 not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadNPZ(bad); err == nil {
		t.Fatal("a broken zip loaded")
	}
}

func TestPB(t *testing.T) {
	// Round trip through raw_data.
	for _, dt := range []graph.DType{graph.Float, graph.Int64, graph.Float16, graph.Bool, graph.Uint8, graph.Double} {
		in := sample(dt, []int64{2, 2})
		b, err := EncodePB("v", in)
		if err != nil {
			t.Fatal(err)
		}
		name, out, err := DecodePB(b)
		if err != nil || name != "v" || !out.Equal(in) {
			t.Fatalf("%s: round trip: %q %v", dt, name, err)
		}
	}
	// Typed fields.
	typed := []struct {
		p    *onnxpb.TensorProto
		want *runtime.Tensor
	}{
		{&onnxpb.TensorProto{DataType: proto.Int32(int32(graph.Float)), Dims: []int64{2}, FloatData: []float32{1, -2}}, runtime.FromFloat32([]int64{2}, []float32{1, -2})},
		{&onnxpb.TensorProto{DataType: proto.Int32(int32(graph.Int64)), Dims: []int64{2}, Int64Data: []int64{7, -9}}, runtime.FromInt64([]int64{2}, []int64{7, -9})},
		{&onnxpb.TensorProto{DataType: proto.Int32(int32(graph.Int32)), Dims: []int64{1}, Int32Data: []int32{-5}}, runtime.FromInt32([]int64{1}, []int32{-5})},
		{&onnxpb.TensorProto{DataType: proto.Int32(int32(graph.Bool)), Dims: []int64{2}, Int32Data: []int32{1, 0}}, &runtime.Tensor{DType: graph.Bool, Shape: []int64{2}, Raw: []byte{1, 0}}},
		{&onnxpb.TensorProto{DataType: proto.Int32(int32(graph.Float16)), Dims: []int64{1}, Int32Data: []int32{0x3c00}}, &runtime.Tensor{DType: graph.Float16, Shape: []int64{1}, Raw: []byte{0x00, 0x3c}}},
	}
	for i, c := range typed {
		got, err := FromProto(c.p)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("typed case %d: %v %v", i, got, err)
		}
	}
	bad := []*onnxpb.TensorProto{
		{DataType: proto.Int32(int32(graph.Float)), Dims: []int64{3}, FloatData: []float32{1}},
		{DataType: proto.Int32(int32(graph.Float)), Dims: []int64{2}, RawData: []byte{1, 2, 3}},
		{DataType: proto.Int32(int32(graph.Float)), Dims: []int64{-2}},
		{DataType: proto.Int32(999), Dims: []int64{1}},
		{DataType: proto.Int32(int32(graph.Float)), Dims: []int64{1 << 30, 1 << 30}, RawData: []byte{}},
	}
	for i, p := range bad {
		if _, err := FromProto(p); err == nil {
			t.Errorf("bad case %d accepted", i)
		}
	}
	if _, _, err := DecodePB([]byte{0xff, 0xff, 0xff}); err == nil {
		t.Error("garbage decoded as a TensorProto")
	}
}

func TestDataSet(t *testing.T) {
	dir := filepath.Join(testutil.ModelsDir(t), "mnist")
	sets, err := DataSets(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != 3 {
		t.Fatalf("mnist has %d data sets, want 3", len(sets))
	}
	ds, err := LoadDataSet(sets[0], []string{"Input3"}, []string{"Plus214_Output_0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Inputs) != 1 || len(ds.Outputs) != 1 {
		t.Fatalf("%d inputs, %d outputs", len(ds.Inputs), len(ds.Outputs))
	}
	in := ds.Inputs[0].Tensor
	if in.DType != graph.Float || runtime.ShapeString(in.Shape) != "[1,1,28,28]" {
		t.Fatalf("input is %s%v", in.DType, in.Shape)
	}
	if ds.Outputs[0].Tensor.Len() != 10 {
		t.Fatalf("output has %d values", ds.Outputs[0].Tensor.Len())
	}
	// A folder without input files is an error; so is a gap in numbering.
	empty := t.TempDir()
	if _, err := LoadDataSet(empty, nil, nil); err == nil {
		t.Fatal("empty folder loaded")
	}
	gap := t.TempDir()
	for _, n := range []string{"input_0.pb", "input_2.pb"} {
		b, _ := EncodePB("", in)
		if err := os.WriteFile(filepath.Join(gap, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := LoadDataSet(gap, nil, nil); err == nil || !strings.Contains(err.Error(), "input_1.pb is missing") {
		t.Fatalf("gap: %v", err)
	}
	// Names come from the model's order when files carry none.
	ds2, err := LoadDataSet(gap[:0]+sets[1], []string{"x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := ds2.Inputs[0].Name; n == "" {
		t.Fatal("input has no name")
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	x := sample(graph.Float, []int64{3})
	if err := SaveNPY(filepath.Join(dir, "x.npy"), x); err != nil {
		t.Fatal(err)
	}
	if err := SavePB(filepath.Join(dir, "y.pb"), "", x); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "z.txt"), []byte("1 2 3"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, name string }{{"x.npy", "x"}, {"y.pb", "y"}} {
		got, err := LoadFile(filepath.Join(dir, c.file))
		if err != nil || len(got) != 1 || got[0].Name != c.name || !got[0].Tensor.Equal(x) {
			t.Errorf("%s: %v %v", c.file, got, err)
		}
	}
	if _, err := LoadFile(filepath.Join(dir, "z.txt")); err == nil || !strings.Contains(err.Error(), "unknown tensor file type") {
		t.Errorf("z.txt: %v", err)
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.npy")); err == nil {
		t.Error("missing file loaded")
	}
	var buf bytes.Buffer
	if err := WriteNPY(&buf, &runtime.Tensor{DType: graph.String, Shape: []int64{1}, Strings: []string{"a"}}); err == nil {
		t.Error("string tensor written as .npy")
	}
}

func TestDataSetsOrder(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"test_data_set_10", "test_data_set_2", "test_data_set_0", "other"} {
		if err := os.Mkdir(filepath.Join(dir, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got, err := DataSets(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range got {
		names = append(names, filepath.Base(g))
	}
	if strings.Join(names, ",") != "test_data_set_0,test_data_set_2,test_data_set_10" {
		t.Fatalf("order %v", names)
	}
}
