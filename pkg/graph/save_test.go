package graph_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/onnxpb"
)

// weightModel is Y = MatMul(X, W) + B with a float32[k,k] weight (4k² bytes)
// and a small bias, built in the IR.
func weightModel(k int) *graph.Model {
	w := make([]float32, k*k)
	for i := range w {
		w[i] = float32(i%97) * 0.01
	}
	b := []float32{0.5}
	g := &graph.Graph{
		Name:         "w",
		Inputs:       []*graph.ValueInfo{{Name: "X", HasType: true, DType: graph.Float, HasShape: true, Shape: graph.Shape{graph.SymDim("N"), graph.FixedDim(int64(k))}}},
		Outputs:      []*graph.ValueInfo{{Name: "Y", HasType: true, DType: graph.Float}},
		Initializers: []*graph.Tensor{graph.NewFloat32("W", []int64{int64(k), int64(k)}, w), graph.NewFloat32("B", []int64{1}, b)},
		Nodes: []*graph.Node{
			{Name: "mm", OpType: "MatMul", Inputs: []string{"X", "W"}, Outputs: []string{"Z"}},
			{Name: "add", OpType: "Add", Inputs: []string{"Z", "B"}, Outputs: []string{"Y"}},
		},
	}
	return &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Domain: "", Version: 13}}, Graph: g}
}

func TestSaveExternalDataRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		opts     graph.SaveOptions
		dataFile string
		external []string // initializers expected in the side file
	}{
		{"default file and threshold", graph.SaveOptions{ExternalData: true}, "m.onnx.data", []string{"W"}},
		{"named file", graph.SaveOptions{ExternalData: true, ExternalFile: "weights.bin"}, "weights.bin", []string{"W"}},
		{"threshold 1 stores everything", graph.SaveOptions{ExternalData: true, ExternalThreshold: 1}, "m.onnx.data", []string{"W", "B"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "m.onnx")
			m := weightModel(64)
			if err := m.SaveWith(path, tc.opts); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(filepath.Join(dir, tc.dataFile))
			if err != nil {
				t.Fatalf("no external data file: %v", err)
			}
			if st.Size() < 64*64*4 {
				t.Errorf("external data file has %d bytes, want at least %d", st.Size(), 64*64*4)
			}
			// The model file itself must not hold the weights.
			mst, _ := os.Stat(path)
			if mst.Size() > 2048 {
				t.Errorf("model file is %d bytes: weights were inlined", mst.Size())
			}
			p := readProto(t, path)
			for _, init := range p.Graph.Initializer {
				ext := init.GetDataLocation() == onnxpb.TensorProto_EXTERNAL
				want := false
				for _, n := range tc.external {
					want = want || n == init.GetName()
				}
				if ext != want {
					t.Errorf("initializer %s: external = %v, want %v", init.GetName(), ext, want)
				}
			}
			m2, err := graph.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := m2.Verify(); err != nil {
				t.Fatal(err)
			}
			if m.Format() != m2.Format() {
				t.Errorf("text form differs:\n%s\nvs\n%s", m.Format(), m2.Format())
			}
			for _, w := range m.Graph.Initializers {
				if got := m2.Graph.Initializer(w.Name); got == nil || !bytes.Equal(got.Raw, w.Raw) {
					t.Errorf("initializer %s: bytes differ after round trip", w.Name)
				}
			}
			// Saving the loaded model inline gives the same bytes as saving the original.
			a, _ := m.Marshal()
			b, _ := m2.Marshal()
			if !bytes.Equal(a, b) {
				t.Error("inline serialisation differs after external round trip")
			}
			// No temporary files are left behind.
			ents, _ := os.ReadDir(dir)
			if len(ents) != 2 {
				t.Errorf("folder holds %d entries, want the model and its data", len(ents))
			}
		})
	}
}

func TestSaveExternalRejectsBadFile(t *testing.T) {
	dir := t.TempDir()
	for _, loc := range []string{"../x.data", "/tmp/x.data"} {
		err := weightModel(8).SaveWith(filepath.Join(dir, "m.onnx"), graph.SaveOptions{ExternalData: true, ExternalFile: loc})
		checkOneLine(t, err, "must be a plain name")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("failed saves left %d files behind", len(ents))
	}
}

// TestLoadExternalWrittenByHand loads a model whose tensors point into a
// data file written here (as another tool would write it: offsets, no
// length for one tensor, data in a subfolder).
func TestLoadExternalWrittenByHand(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "weights"), 0o755); err != nil {
		t.Fatal(err)
	}
	var data []byte
	data = append(data, "HEADER.."...)
	for _, v := range []float32{1.5, -2} {
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
	}
	if err := os.WriteFile(filepath.Join(dir, "weights", "w.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	path := writeExternalModel(t, dir, "weights/w.bin", map[string]string{"offset": "8", "length": "8"})
	m, err := graph.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	w := m.Graph.Initializer("W")
	got, err := w.Float32s()
	if err != nil || len(got) != 2 || got[0] != 1.5 || got[1] != -2 {
		t.Fatalf("W = %v, %v; want [1.5 -2]", got, err)
	}
	if w.External == nil || w.External.Location != "weights/w.bin" || w.External.Offset != 8 {
		t.Errorf("External = %+v", w.External)
	}
	// Offset without length: the tensor runs to the end of the file.
	path = writeExternalModel(t, dir, "weights/w.bin", map[string]string{"offset": "8"})
	if m, err = graph.Load(path); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Graph.Initializer("W").Float32s(); len(got) != 2 || got[1] != -2 {
		t.Errorf("W = %v", got)
	}
	// LoadBytes with BaseDir reads it too.
	b, _ := os.ReadFile(path)
	if _, err := graph.LoadBytesWith(b, graph.LoadOptions{BaseDir: dir}); err != nil {
		t.Errorf("LoadBytesWith(BaseDir): %v", err)
	}
	// SkipExternal leaves the bytes unread; Verify accepts that; saving the
	// result inline is refused rather than writing an empty tensor.
	m, err = graph.LoadWith(path, graph.LoadOptions{SkipExternal: true})
	if err != nil {
		t.Fatal(err)
	}
	if w := m.Graph.Initializer("W"); w.Raw != nil || w.External == nil {
		t.Errorf("SkipExternal read the bytes: %+v", w)
	}
	if err := m.Verify(); err != nil {
		t.Errorf("Verify after SkipExternal: %v", err)
	}
	err = m.Save(filepath.Join(dir, "copy.onnx"))
	checkOneLine(t, err, `"W"`, "SkipExternal")
	if _, err := m.Marshal(); err == nil {
		t.Error("Marshal of a model with unread external data succeeded")
	}
}

func TestSaveIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.onnx")
	if err := weightModel(4).Save(path); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	bad := weightModel(4)
	bad.Graph = nil
	if err := bad.Save(path); err == nil {
		t.Fatal("saving a model without a graph succeeded")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("a failed save changed the existing file")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("failed save left temporary files: %d entries", len(ents))
	}
}

// TestSaveFileMode checks that a new model is world-readable (as other
// tools write them) and that overwriting keeps the existing file's mode.
func TestSaveFileMode(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		existing os.FileMode // 0: no file yet
		want     os.FileMode
	}{
		{"new file", 0, 0o644},
		{"keeps existing mode", 0o600, 0o600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".onnx")
			if tc.existing != 0 {
				if err := os.WriteFile(path, nil, tc.existing); err != nil {
					t.Fatal(err)
				}
			}
			if err := weightModel(40).SaveWith(path, graph.SaveOptions{ExternalData: true}); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{path, path + ".data"} {
				st, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				want := tc.want
				if p != path {
					want = 0o644
				}
				if st.Mode().Perm() != want {
					t.Errorf("%s: mode %v, want %v", filepath.Base(p), st.Mode().Perm(), want)
				}
			}
		})
	}
}
