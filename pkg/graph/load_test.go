package graph_test

import (
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/onnxpb"
)

// tinyProto is Y = Add(X, W) with a float32[2] initializer W, as protobuf,
// for tests that corrupt one field at a time.
func tinyProto() *onnxpb.ModelProto {
	f32 := func(name string) *onnxpb.ValueInfoProto {
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(1), Shape: &onnxpb.TensorShapeProto{
				Dim: []*onnxpb.TensorShapeProto_Dimension{{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 2}}}}}}}}
	}
	return &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph: &onnxpb.GraphProto{
			Name:        proto.String("tiny"),
			Input:       []*onnxpb.ValueInfoProto{f32("X")},
			Output:      []*onnxpb.ValueInfoProto{f32("Y")},
			Initializer: []*onnxpb.TensorProto{{Name: proto.String("W"), DataType: proto.Int32(1), Dims: []int64{2}, RawData: make([]byte, 8)}},
			Node:        []*onnxpb.NodeProto{{Name: proto.String("add"), OpType: proto.String("Add"), Input: []string{"X", "W"}, Output: []string{"Y"}}},
		},
	}
}

func marshal(t testing.TB, p *onnxpb.ModelProto) []byte {
	t.Helper()
	b, err := proto.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loadBounded loads data and fails the test when the load allocated far
// more than the input warrants.
func loadBounded(t *testing.T, data []byte, opts graph.LoadOptions) (*graph.Model, error) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m, err := graph.LoadBytesWith(data, opts)
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(64*len(data))+4<<20 {
		t.Errorf("loading %d bytes allocated %d bytes", len(data), alloc)
	}
	return m, err
}

// checkOneLine asserts a clear error: prefixed by the package, one line,
// mentioning every wanted fragment.
func checkOneLine(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", want)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans several lines: %q", msg)
	}
	if !strings.HasPrefix(msg, "graph: ") && !strings.Contains(msg, ": graph: ") {
		t.Errorf("error lacks the graph: prefix: %q", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not mention %q", msg, w)
		}
	}
}

func TestLoadRejectsNonModels(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	random := make([]byte, 4096)
	rng.Read(random)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty file"},
		{"random bytes", random, "not an ONNX model"},
		{"text", []byte("this is not a model\n"), "not an ONNX model"},
		{"valid protobuf without graph", marshal(t, &onnxpb.ModelProto{IrVersion: proto.Int64(8)}), "no graph"},
		{"graph but no version", marshal(t, &onnxpb.ModelProto{Graph: &onnxpb.GraphProto{}}), "no ir_version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadBounded(t, tc.data, graph.LoadOptions{})
			checkOneLine(t, err, tc.want)
			if !errors.Is(err, graph.ErrNotONNX) {
				t.Errorf("error does not wrap ErrNotONNX: %v", err)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.onnx")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"empty file", empty, "empty file"},
		{"missing file", filepath.Join(dir, "nope.onnx"), "no such file"},
		{"directory", dir, "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := graph.Load(tc.path)
			checkOneLine(t, err, tc.want)
		})
	}
}

// TestLoadTruncated cuts real models (and the tiny one) at many points: every
// cut must give an error or, where the cut happens to fall on a field
// boundary, a model; never a panic or a huge allocation.
func TestLoadTruncated(t *testing.T) {
	sources := map[string][]byte{"tiny": marshal(t, tinyProto())}
	if d := testutil.SharedDir(); d != "" {
		for _, rel := range []string{"mnist/model.onnx", "gonnx-gru/model.onnx", "silero-vad-v5/model.onnx"} {
			if b, err := os.ReadFile(filepath.Join(d, "models", rel)); err == nil {
				sources[rel] = b
			}
		}
	}
	for name, data := range sources {
		t.Run(name, func(t *testing.T) {
			errs := 0
			cuts := []int{1, 2, 3, 7, 16, len(data) / 3, len(data) / 2, len(data) - 100, len(data) - 1}
			for i := 1; i <= 16; i++ {
				cuts = append(cuts, len(data)*i/17)
			}
			for _, n := range cuts {
				if n <= 0 || n >= len(data) {
					continue
				}
				_, err := loadBounded(t, data[:n], graph.LoadOptions{})
				if err != nil {
					errs++
					if strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "graph: ") {
						t.Errorf("cut at %d: unclear error %q", n, err)
					}
				}
			}
			if errs == 0 {
				t.Errorf("no truncation of %s was rejected", name)
			}
		})
	}
}

// TestLoadRejectsBadTensors corrupts the data of a tensor; Load must say
// which tensor and what is wrong.
func TestLoadRejectsBadTensors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(tp *onnxpb.TensorProto)
		want   []string
	}{
		{"negative dim", func(tp *onnxpb.TensorProto) { tp.Dims = []int64{-2} }, []string{`"W"`, "negative dimension"}},
		{"dims product overflows", func(tp *onnxpb.TensorProto) {
			tp.Dims = []int64{1 << 40, 1 << 40, 1 << 40}
		}, []string{`"W"`, "more than 2^40"}},
		{"huge dims with few typed values", func(tp *onnxpb.TensorProto) {
			tp.Dims, tp.RawData, tp.FloatData = []int64{1 << 20, 1 << 19}, nil, []float32{1, 2}
		}, []string{`"W"`, "2 values"}},
		{"raw_data too short", func(tp *onnxpb.TensorProto) { tp.RawData = make([]byte, 7) }, []string{`"W"`, "raw_data has 7 bytes", "needs 8"}},
		{"raw_data too long", func(tp *onnxpb.TensorProto) { tp.RawData = make([]byte, 12) }, []string{`"W"`, "raw_data has 12 bytes"}},
		{"float_data count wrong", func(tp *onnxpb.TensorProto) {
			tp.RawData, tp.FloatData = nil, []float32{1, 2, 3}
		}, []string{`"W"`, "3 values for 2 elements"}},
		{"int64_data count wrong", func(tp *onnxpb.TensorProto) {
			tp.DataType, tp.RawData, tp.Int64Data = proto.Int32(7), nil, []int64{1}
		}, []string{`"W"`, "1 values for 2 elements"}},
		{"string count wrong", func(tp *onnxpb.TensorProto) {
			tp.DataType, tp.RawData, tp.StringData = proto.Int32(8), nil, [][]byte{[]byte("a")}
		}, []string{`"W"`, "1 strings"}},
		{"unknown data type", func(tp *onnxpb.TensorProto) { tp.DataType = proto.Int32(99) }, []string{`"W"`, "unknown data type 99"}},
		{"external data in LoadBytes", func(tp *onnxpb.TensorProto) {
			tp.RawData, tp.DataLocation = nil, onnxpb.TensorProto_EXTERNAL.Enum()
			tp.ExternalData = []*onnxpb.StringStringEntryProto{{Key: proto.String("location"), Value: proto.String("w.bin")}}
		}, []string{`"W"`, "w.bin"}},
		{"external data without location", func(tp *onnxpb.TensorProto) {
			tp.RawData, tp.DataLocation = nil, onnxpb.TensorProto_EXTERNAL.Enum()
		}, []string{`"W"`, "without a location"}},
		{"negative external offset", func(tp *onnxpb.TensorProto) {
			tp.RawData, tp.DataLocation = nil, onnxpb.TensorProto_EXTERNAL.Enum()
			tp.ExternalData = []*onnxpb.StringStringEntryProto{{Key: proto.String("location"), Value: proto.String("w.bin")},
				{Key: proto.String("offset"), Value: proto.String("-5")}}
		}, []string{`"W"`, "bad external offset"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tinyProto()
			tc.mutate(p.Graph.Initializer[0])
			_, err := loadBounded(t, marshal(t, p), graph.LoadOptions{})
			checkOneLine(t, err, tc.want...)
		})
	}
	// The same corruption inside a Constant's tensor attribute names the node.
	p := tinyProto()
	p.Graph.Node = append([]*onnxpb.NodeProto{{Name: proto.String("k"), OpType: proto.String("Constant"), Output: []string{"K"},
		Attribute: []*onnxpb.AttributeProto{{Name: proto.String("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(),
			T: &onnxpb.TensorProto{DataType: proto.Int32(1), Dims: []int64{3}, RawData: make([]byte, 4)}}}}}, p.Graph.Node...)
	_, err := loadBounded(t, marshal(t, p), graph.LoadOptions{})
	checkOneLine(t, err, `Constant "k"`, `attribute "value"`, "raw_data has 4 bytes")
}

// writeExternalModel writes the tiny model into dir with W stored in an
// external file at the given location/offset/length, and returns its path.
func writeExternalModel(t *testing.T, dir, location string, entries map[string]string) string {
	t.Helper()
	p := tinyProto()
	w := p.Graph.Initializer[0]
	w.RawData, w.DataLocation = nil, onnxpb.TensorProto_EXTERNAL.Enum()
	w.ExternalData = []*onnxpb.StringStringEntryProto{{Key: proto.String("location"), Value: proto.String(location)}}
	for _, k := range []string{"offset", "length"} {
		if v, ok := entries[k]; ok {
			w.ExternalData = append(w.ExternalData, &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(v)})
		}
	}
	path := filepath.Join(dir, "model.onnx")
	if err := os.WriteFile(path, marshal(t, p), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadRejectsBadExternalData(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(root, "outside.bin")
	if err := os.WriteFile(outside, make([]byte, 64), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		location string
		entries  map[string]string
		setup    func(t *testing.T, dir string)
		want     []string
		badMeta  bool // the external_data entries themselves are malformed
	}{
		{name: "parent path", location: "../../etc/passwd", want: []string{`"W"`, "outside the model's folder"}},
		{name: "parent path to a real file", location: "../outside.bin", want: []string{`"W"`, "outside the model's folder"}},
		{name: "absolute path", location: "/etc/passwd", want: []string{`"W"`, "outside the model's folder"}},
		{name: "symlink pointing outside", location: "w.bin", setup: func(t *testing.T, dir string) {
			if err := os.Symlink(outside, filepath.Join(dir, "w.bin")); err != nil {
				t.Skipf("no symlinks here: %v", err)
			}
		}, want: []string{`"W"`, "resolves outside the model's folder"}},
		{name: "missing file", location: "w.bin", want: []string{`"W"`, "w.bin"}},
		{name: "offset past the end", location: "w.bin", entries: map[string]string{"offset": "100", "length": "8"},
			setup: writeData(16), want: []string{`"W"`, "offset 100 is beyond the end", "16 bytes"}},
		{name: "offset past the end, no length", location: "w.bin", entries: map[string]string{"offset": "100"},
			setup: writeData(16), want: []string{`"W"`, "offset 100 is beyond the end"}},
		{name: "offset+length past the end", location: "w.bin", entries: map[string]string{"offset": "12", "length": "8"},
			setup: writeData(16), want: []string{`"W"`, "beyond the end"}},
		{name: "length disagrees with shape", location: "w.bin", entries: map[string]string{"offset": "0", "length": "12"},
			setup: writeData(16), want: []string{`"W"`, "external data length 12", "needs 8"}},
		{name: "no length, file too long", location: "w.bin", setup: writeData(16), want: []string{`"W"`, "external data length 16"}},
		{name: "huge length", location: "w.bin", entries: map[string]string{"length": "9223372036854775807"},
			setup: writeData(16), want: []string{`"W"`, "external data length"}},
		{name: "a directory", location: "w.bin", setup: func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "w.bin"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, want: []string{`"W"`, `"w.bin" is a directory, not a regular file`}},
		{name: "bad length", location: "w.bin", entries: map[string]string{"length": "ten"},
			setup: writeData(16), want: []string{`"W"`, "bad external length"}, badMeta: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := os.MkdirTemp(root, "m")
			if err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			path := writeExternalModel(t, dir, tc.location, tc.entries)
			_, err = graph.Load(path)
			checkOneLine(t, err, tc.want...)
			if tc.badMeta {
				return
			}
			// SkipExternal never opens the file, so it accepts all of these.
			m, err := graph.LoadWith(path, graph.LoadOptions{SkipExternal: true})
			if err != nil {
				t.Fatalf("SkipExternal: %v", err)
			}
			if w := m.Graph.Initializer("W"); w == nil || w.Raw != nil || w.External == nil || w.External.Location != tc.location {
				t.Errorf("SkipExternal: W = %+v, want unread with location %q", w, tc.location)
			}
		})
	}
}

func writeData(n int) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		if err := os.WriteFile(filepath.Join(dir, "w.bin"), make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
