package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/onnxpb"
	"github.com/optictl/optictl/pkg/runtime"
)

// hostileProto reads a shared model as a protobuf to be mutated.
func hostileProto(t *testing.T, name string) *onnxpb.ModelProto {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.ModelsDir(t), name, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	p := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(b, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func protoNode(t *testing.T, p *onnxpb.ModelProto, name string) *onnxpb.NodeProto {
	t.Helper()
	for _, n := range p.Graph.Node {
		if n.GetName() == name {
			return n
		}
	}
	t.Fatalf("no node %q", name)
	return nil
}

func protoAttr(n *onnxpb.NodeProto, name string) *onnxpb.AttributeProto {
	for _, a := range n.Attribute {
		if a.GetName() == name {
			return a
		}
	}
	a := &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum()}
	n.Attribute = append(n.Attribute, a)
	return a
}

func protoInit(t *testing.T, p *onnxpb.ModelProto, name string) *onnxpb.TensorProto {
	t.Helper()
	for _, x := range p.Graph.Initializer {
		if x.GetName() == name {
			return x
		}
	}
	t.Fatalf("no initializer %q", name)
	return nil
}

// toExternal moves an initializer's bytes to an external location.
func toExternal(x *onnxpb.TensorProto, location string) {
	x.RawData, x.FloatData, x.DataLocation = nil, nil, onnxpb.TensorProto_EXTERNAL.Enum()
	x.ExternalData = []*onnxpb.StringStringEntryProto{{Key: proto.String("location"), Value: proto.String(location)}}
}

// TestHostileModels: every malformed model found by mutating the shared
// models (some of which made ONNX Runtime abort the process, or an interp
// kernel index out of range) is refused by every command that opens it
// with exit 1 and a one-line message naming what is wrong; never exit 2
// (bad usage), never a crash.
func TestHostileModels(t *testing.T) {
	type hostile struct {
		name   string
		model  string // shared model folder
		mutate func(t *testing.T, p *onnxpb.ModelProto, dir string)
		// want: substrings of stderr for every command; loadErr: Load itself
		// refuses it (inspect too); ortOnly: only the ort backend refuses
		// (interp runs it correctly).
		// runOnly: only commands that build inputs refuse it (checked on
		// interp, which needs no library to get that far).
		want    []string
		loadErr bool
		ortOnly bool
		runOnly bool
	}
	cases := []hostile{
		{name: "add retyped to conv (rank-3 weight; ORT asserted)", model: "mnist",
			mutate: func(t *testing.T, p *onnxpb.ModelProto, _ string) {
				protoNode(t, p, "Plus30").OpType = proto.String("Conv")
			},
			want: []string{`Conv "Plus30"`, "rank"}},
		{name: "add retyped to conv transpose (ORT asserted)", model: "mnist",
			mutate: func(t *testing.T, p *onnxpb.ModelProto, _ string) {
				protoNode(t, p, "Plus112").OpType = proto.String("ConvTranspose")
			},
			want: []string{`ConvTranspose "Plus112"`, "rank"}},
		{name: "conv strides 0 (ORT SIGFPE)", model: "mnist", loadErr: true,
			mutate: func(t *testing.T, p *onnxpb.ModelProto, _ string) {
				protoAttr(protoNode(t, p, "Convolution28"), "strides").Ints = []int64{0, 0}
			},
			want: []string{`Conv "Convolution28"`, "strides", "[0 0]"}},
		{name: "maxpool strides 0 (ORT SIGFPE)", model: "mnist", loadErr: true,
			mutate: func(t *testing.T, p *onnxpb.ModelProto, _ string) {
				protoAttr(protoNode(t, p, "Pooling66"), "strides").Ints = []int64{0, 0}
			},
			want: []string{`MaxPool "Pooling66"`, "strides", "[0 0]"}},
		{name: "maxpool negative pads (ORT SIGSEGV)", model: "mnist", loadErr: true,
			mutate: func(t *testing.T, p *onnxpb.ModelProto, _ string) {
				protoAttr(protoNode(t, p, "Pooling160"), "pads").Ints = []int64{-5, -5, -5, -5}
			},
			want: []string{`MaxPool "Pooling160"`, "pads", "-5"}},
		{name: "maxpool inputs removed (interp panicked)", model: "mnist", loadErr: true,
			mutate: func(t *testing.T, p *onnxpb.ModelProto, _ string) { protoNode(t, p, "Pooling66").Input = nil },
			want:   []string{`MaxPool "Pooling66"`, "has 0 inputs", "exactly 1"}},
		{name: "conv weight removed (interp panicked)", model: "mnist", loadErr: true,
			mutate: func(t *testing.T, p *onnxpb.ModelProto, _ string) {
				n := protoNode(t, p, "Convolution110")
				n.Input = n.Input[:1]
			},
			want: []string{`Conv "Convolution110"`, "has 1 input,", "2 to 3"}},
		{name: "reshape shape removed (interp panicked)", model: "mnist", loadErr: true,
			mutate: func(t *testing.T, p *onnxpb.ModelProto, _ string) {
				n := protoNode(t, p, "Times212_reshape0")
				n.Input = n.Input[:1]
			},
			want: []string{`Reshape "Times212_reshape0"`, "has 1 input,", "exactly 2"}},
		{name: "relu retyped to matmul (interp panicked)", model: "mnist", loadErr: true,
			mutate: func(t *testing.T, p *onnxpb.ModelProto, _ string) {
				protoNode(t, p, "ReLU32").OpType = proto.String("MatMul")
			},
			want: []string{`MatMul "ReLU32"`, "has 1 input,"}},
		{name: "max with an empty input (ORT SIGSEGV)", model: "mnist", loadErr: true,
			mutate: func(t *testing.T, p *onnxpb.ModelProto, _ string) {
				n := protoNode(t, p, "Plus214")
				n.OpType, n.Input[1] = proto.String("Max"), ""
			},
			want: []string{`Max "Plus214"`, "input 1 is empty"}},
		{name: "attention without bias (ORT SIGSEGV)", model: "tiny-gpt2-ortfused", ortOnly: true,
			mutate: func(t *testing.T, p *onnxpb.ModelProto, _ string) { protoNode(t, p, "GptAttention_1").Input[2] = "" },
			want:   []string{`Attention "GptAttention_1"`, "bias"}},
		{name: "dims 2^62", model: "mnist", loadErr: true,
			mutate: func(t *testing.T, p *onnxpb.ModelProto, _ string) {
				protoInit(t, p, "Parameter88").Dims = []int64{1 << 62, 1, 1}
			},
			want: []string{`"Parameter88"`}},
		{name: "graph input dims 2^62", model: "mnist", runOnly: true,
			mutate: func(t *testing.T, p *onnxpb.ModelProto, _ string) {
				p.Graph.Input[0].Type.GetTensorType().Shape.Dim[2].Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 1 << 62}
			},
			want: []string{`"Input3"`, "4611686018427387904"}},
		{name: "NUL in an external data path", model: "mnist", loadErr: true,
			mutate: func(t *testing.T, p *onnxpb.ModelProto, _ string) {
				toExternal(protoInit(t, p, "Parameter88"), "w\x00.bin")
			},
			want: []string{`"Parameter88"`}},
		{name: "external data is a directory", model: "mnist", loadErr: true,
			mutate: func(t *testing.T, p *onnxpb.ModelProto, dir string) {
				if err := os.Mkdir(filepath.Join(dir, "w.bin"), 0o755); err != nil {
					t.Fatal(err)
				}
				toExternal(protoInit(t, p, "Parameter88"), "w.bin")
			},
			want: []string{`"Parameter88"`, "is a directory, not a regular file"}},
	}
	commands := []struct {
		name     string
		args     func(model, dir string) []string
		loadOnly bool // reads the model without running it
		backend  string
	}{
		{name: "inspect", args: func(m, _ string) []string { return []string{"inspect", m} }, loadOnly: true},
		{name: "run interp", args: func(m, _ string) []string { return []string{"run", "--backend", "interp", m} }, backend: "interp"},
		{name: "run ort", args: func(m, _ string) []string { return []string{"run", "--backend", "ort", m} }, backend: "ort"},
		{name: "compare", args: func(m, _ string) []string { return []string{"compare", m, "--backends", "interp,ort"} }, backend: "ort"},
		{name: "optimize", args: func(m, d string) []string { return []string{"optimize", m, "-o", filepath.Join(d, "out.onnx")} }},
		{name: "bench interp", args: func(m, _ string) []string {
			return []string{"bench", "--backend", "interp", "--duration", "100ms", "--rounds", "1", m}
		}, backend: "interp"},
		{name: "bench ort", args: func(m, _ string) []string {
			return []string{"bench", "--backend", "ort", "--duration", "100ms", "--rounds", "1", m}
		}, backend: "ort"},
	}
	for _, hc := range cases {
		t.Run(hc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := hostileProto(t, hc.model)
			hc.mutate(t, p, dir)
			b, err := proto.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			model := filepath.Join(dir, "model.onnx")
			if err := os.WriteFile(model, b, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, c := range commands {
				if c.loadOnly && !hc.loadErr {
					continue // inspect shows a model that loads; running it is what fails
				}
				if hc.ortOnly && c.name != "run ort" && c.name != "bench ort" {
					continue // interp cannot run the model at all
				}
				if hc.runOnly && c.backend != "interp" {
					continue
				}
				if c.backend == "ort" {
					if _, err := runtime.Get("ort"); err != nil {
						continue // CGO_ENABLED=0 build: no ort backend to protect
					}
				}
				code, out, errs := runExecute(c.args(model, dir)...)
				if code != ExitError {
					t.Errorf("%s: exit %d, want %d\nstdout %s\nstderr %s", c.name, code, ExitError, out, errs)
					continue
				}
				if strings.Count(strings.TrimRight(errs, "\n"), "\n") != 0 {
					t.Errorf("%s: want a one-line error, got %q", c.name, errs)
				}
				for _, w := range hc.want {
					if !strings.Contains(errs, w) {
						t.Errorf("%s: stderr %q does not name %q", c.name, errs, w)
					}
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "out.onnx")); err == nil {
				t.Error("optimize wrote a model")
			}
		})
	}
}
