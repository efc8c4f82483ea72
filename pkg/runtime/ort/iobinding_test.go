//go:build cgo

package ort

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tensorio"
)

// bindModes are the two ways a CPU session binds: its own Go buffers
// ("host"), or buffers ONNX Runtime allocates with copies in and out, the
// path CUDA memory takes ("allocated", with CPU memory here).
var bindModes = []struct {
	name      string
	allocated bool
	memory    string
}{
	{"host", false, "host"},
	{"allocated", true, "Cpu"},
}

func withBindMode(t *testing.T, allocated bool) {
	t.Helper()
	old := bindAllocated
	bindAllocated = allocated
	t.Cleanup(func() { bindAllocated = old })
}

// TestIOBindingMatchesRun: on the shared models (a scalar input, LSTM
// state, a zero-length past, a CNN), a bound session computes what the
// normal path computes, run after run, and matches the reference outputs.
func TestIOBindingMatchesRun(t *testing.T) {
	needLib(t)
	dir := testutil.ModelsDir(t)
	for _, mode := range bindModes {
		for _, name := range []string{"mnist", "silero-vad-v5", "tiny-gpt2-ortfused", "ppocr-cls"} {
			t.Run(mode.name+"/"+name, func(t *testing.T) {
				withBindMode(t, mode.allocated)
				m := loadModel(t, filepath.Join(dir, name, "model.onnx"))
				plain := open(t, m, runtime.Options{Threads: 1})
				bound := open(t, m, runtime.Options{Threads: 1, IOBinding: true})
				sets, err := tensorio.DataSets(filepath.Join(dir, name))
				if err != nil || len(sets) == 0 {
					t.Fatalf("no test data for %s: %v", name, err)
				}
				var inNames, outNames []string
				for _, in := range bound.Inputs() {
					inNames = append(inNames, in.Name)
				}
				for _, o := range bound.Outputs() {
					outNames = append(outNames, o.Name)
				}
				for _, set := range sets {
					ds, err := tensorio.LoadDataSet(set, inNames, outNames)
					if err != nil {
						t.Fatal(err)
					}
					in := make([]*runtime.Tensor, len(ds.Inputs))
					for i, n := range ds.Inputs {
						in[i] = n.Tensor
					}
					want, err := plain.Run(context.Background(), in)
					if err != nil {
						t.Fatal(err)
					}
					for round := range 3 {
						got, err := bound.Run(context.Background(), in)
						if err != nil {
							t.Fatalf("%s round %d: %v", set, round, err)
						}
						for i := range got {
							closeEnough(t, filepath.Base(set)+"/"+outNames[i], got[i], want[i], 1e-6, 1e-6)
							closeEnough(t, filepath.Base(set)+"/"+outNames[i]+" (reference)", got[i], ds.Outputs[i].Tensor, 1e-3, 1e-4)
						}
					}
					if mem := bound.IOBindingMemory(); mem != mode.memory {
						t.Fatalf("bound memory %q, want %q", mem, mode.memory)
					}
				}
			})
		}
	}
}

// TestIOBindingReuse: with the same input shapes the binding and the
// output buffers are kept across runs, new input values reach ONNX
// Runtime, and RunBound reruns the bound inputs.
func TestIOBindingReuse(t *testing.T) {
	needLib(t)
	for _, mode := range bindModes {
		t.Run(mode.name, func(t *testing.T) {
			withBindMode(t, mode.allocated)
			m := mnist(t)
			plain := open(t, m, runtime.Options{Threads: 1})
			s := open(t, m, runtime.Options{Threads: 1, IOBinding: true})
			ctx := context.Background()
			if err := s.RunBound(ctx); err == nil || !strings.Contains(err.Error(), "Run first") {
				t.Fatalf("RunBound before Run: %v", err)
			}
			x := runtime.NewTensor(graph.Float, []int64{1, 1, 28, 28})
			out, err := s.Run(ctx, []*runtime.Tensor{x})
			if err != nil {
				t.Fatal(err)
			}
			first, b := &out[0].Raw[0], s.bind
			if b == nil {
				t.Fatal("no binding after the first Run")
			}
			for v := range 4 {
				for i := range x.Float32s() {
					x.Float32s()[i] = float32((i*7+v*13)%17) / 17
				}
				want, err := plain.Run(ctx, []*runtime.Tensor{x})
				if err != nil {
					t.Fatal(err)
				}
				got, err := s.Run(ctx, []*runtime.Tensor{x})
				if err != nil {
					t.Fatal(err)
				}
				closeEnough(t, "value set "+string(rune('0'+v)), got[0], want[0], 1e-6, 1e-6)
				if &got[0].Raw[0] != first || s.bind != b {
					t.Fatalf("value set %d: the binding or the output buffer was replaced", v)
				}
				if err := s.RunBound(ctx); err != nil {
					t.Fatalf("RunBound: %v", err)
				}
			}
			allocs := testing.AllocsPerRun(20, func() {
				if err := s.RunBound(ctx); err != nil {
					t.Fatal(err)
				}
			})
			if allocs > 2 {
				t.Fatalf("%.0f allocations per RunBound, want <= 2", allocs)
			}
			plainS := open(t, m, runtime.Options{IOBinding: false})
			if err := plainS.RunBound(ctx); err == nil || !strings.Contains(err.Error(), "io binding") {
				t.Fatalf("RunBound without io binding: %v", err)
			}
		})
	}
}

// TestIOBindingShapesChange: a new input shape rebinds (float16 outputs
// of a dynamic shape included), and a scalar input's new value is seen.
func TestIOBindingShapesChange(t *testing.T) {
	needLib(t)
	for _, mode := range bindModes {
		t.Run(mode.name, func(t *testing.T) {
			withBindMode(t, mode.allocated)
			s := open(t, halfModel(), runtime.Options{IOBinding: true})
			ctx := context.Background()
			var last *binding
			for _, n := range []int64{2, 3, 3, 1, 3} {
				x := runtime.NewTensor(graph.Float16, []int64{n, 2})
				for i := range x.Uint16s() {
					x.Uint16s()[i] = 0x3c00 // 1.0
				}
				for range 2 {
					out, err := s.Run(ctx, []*runtime.Tensor{x})
					if err != nil {
						t.Fatalf("batch %d: %v", n, err)
					}
					y, sum := out[0], out[2]
					if runtime.ShapeString(y.Shape) != runtime.ShapeString([]int64{n, 2}) || y.Uint16s()[0] != 0x4000 {
						t.Fatalf("batch %d: y = %v %#04x", n, y.Shape, y.Uint16s()[0])
					}
					if sum.Float32s()[0] != float32(2*n) {
						t.Fatalf("batch %d: s = %v", n, sum.Float32s())
					}
				}
				if s.bind == nil || s.bind == last && n != 3 {
					t.Fatalf("batch %d: binding %p after %p: not rebound for the new shape", n, s.bind, last)
				}
				last = s.bind
			}

			vi := func(name string, shape graph.Shape) *graph.ValueInfo {
				return &graph.ValueInfo{Name: name, DType: graph.Float, Shape: shape, HasShape: true, HasType: true}
			}
			m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 13}}, Graph: &graph.Graph{
				Name:    "scalar",
				Inputs:  []*graph.ValueInfo{vi("a", graph.Shape{}), vi("b", graph.DimsOf(2))},
				Outputs: []*graph.ValueInfo{vi("y", graph.DimsOf(2))},
				Nodes:   []*graph.Node{{Name: "add", OpType: "Add", Inputs: []string{"a", "b"}, Outputs: []string{"y"}}},
			}}
			sc := open(t, m, runtime.Options{IOBinding: true})
			b := runtime.FromFloat32([]int64{2}, []float32{10, 20})
			for _, a := range []float32{1, 2, 2, -5} {
				out, err := sc.Run(ctx, []*runtime.Tensor{runtime.FromFloat32([]int64{}, []float32{a}), b})
				if err != nil {
					t.Fatal(err)
				}
				if y := out[0].Float32s(); y[0] != 10+a || y[1] != 20+a {
					t.Fatalf("a=%g: y = %v", a, y)
				}
			}
		})
	}
}

// TestIOBindingErrors: string tensors are refused at Open, and a
// cancelled context stops a bound run as it stops a plain one.
func TestIOBindingErrors(t *testing.T) {
	needLib(t)
	_, err := Open(edge(t, "example_strings.onnx"), runtime.Options{IOBinding: true})
	if err == nil || !strings.Contains(err.Error(), "string tensor") {
		t.Fatalf("strings with io binding: %v", err)
	}
	s := open(t, mnist(t), runtime.Options{Threads: 1, IOBinding: true})
	x := runtime.NewTensor(graph.Float, []int64{1, 1, 28, 28})
	ctx, cancel := context.WithCancel(context.Background())
	for range 2 {
		if _, err := s.Run(ctx, []*runtime.Tensor{x}); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if _, err := s.Run(ctx, []*runtime.Tensor{x}); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("cancelled Run: %v", err)
	}
	if err := s.RunBound(ctx); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("cancelled RunBound: %v", err)
	}
	if _, err := s.Run(context.Background(), []*runtime.Tensor{x}); err != nil {
		t.Fatalf("after cancel: %v", err)
	}
}

// TestOrtApiIndices checks the OrtApi member indices the C code uses
// against onnxruntime_c_api.h as onnxruntime_go v1.27 ships it.
func TestOrtApiIndices(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/yalue/onnxruntime_go").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "onnxruntime_c_api.h"))
	if err != nil {
		t.Fatal(err)
	}
	body := string(src)
	start := strings.Index(body, "struct OrtApi {")
	if start < 0 {
		t.Fatal("no struct OrtApi in the header")
	}
	body = body[start:]
	depth := 0
	for i, c := range body {
		if c == '{' {
			depth++
		} else if c == '}' {
			if depth--; depth == 0 {
				body = body[:i]
				break
			}
		}
	}
	body = regexp.MustCompile(`(?s)/\*.*?\*/`).ReplaceAllString(body, "")
	body = regexp.MustCompile(`//[^\n]*`).ReplaceAllString(body, "")
	re := regexp.MustCompile(`ORT_API2_STATUS\(\s*(\w+)|ORT_CLASS_RELEASE2?\(\s*(\w+)|\(\s*ORT_API_CALL\s*\*\s*(\w+)\s*\)|ORT_API_T\([^,]+,\s*(\w+)`)
	index := map[string]int{}
	for i, m := range re.FindAllStringSubmatch(body, -1) {
		name := m[1] + m[3] + m[4]
		if m[2] != "" {
			name = "Release" + m[2]
		}
		if _, dup := index[name]; !dup {
			index[name] = i
		}
	}
	if index["CreateStatus"] != 0 || index["GetErrorMessage"] != 2 || len(index) < 300 {
		t.Fatalf("header parse looks wrong: CreateStatus %d, GetErrorMessage %d, %d members", index["CreateStatus"], index["GetErrorMessage"], len(index))
	}
	for name, want := range oxIndices {
		got, ok := index[name]
		if !ok || got != want {
			t.Errorf("OrtApi.%s: index %d in the header (found %v), the C code uses %d", name, got, ok, want)
		}
	}
}
