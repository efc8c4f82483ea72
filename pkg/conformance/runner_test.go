package conformance

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tensorio"
)

// TestCompare checks numerics.Compare under the conformance tolerances.
func TestCompare(t *testing.T) {
	f := func(v ...float32) *runtime.Tensor { return runtime.FromFloat32([]int64{int64(len(v))}, v) }
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	cases := []struct {
		name      string
		got, want *runtime.Tensor
		ok        bool
	}{
		{"equal", f(1, 2), f(1, 2), true},
		{"within rtol", f(1000.5), f(1000), true},
		{"outside rtol", f(1002), f(1000), false},
		{"tiny absolute", f(1e-8), f(0), true},
		{"outside atol", f(1e-6), f(0), false},
		{"nan matches nan", f(nan), f(nan), true},
		{"nan vs number", f(nan), f(1), false},
		{"inf must match", f(inf), f(1e30), false},
		{"shape", f(1, 2), runtime.FromFloat32([]int64{2, 1}, []float32{1, 2}), false},
		{"dtype", runtime.FromInt64([]int64{1}, []int64{1}), f(1), false},
		{"ints exact", runtime.FromInt64([]int64{1}, []int64{2}), runtime.FromInt64([]int64{1}, []int64{3}), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := numerics.Compare("y", c.got, c.want, numerics.Tolerance{RTol: DefaultRTol, ATol: DefaultATol})
			if d.Pass != c.ok {
				t.Fatalf("numerics.Compare = %+v, want pass=%v", d, c.ok)
			}
		})
	}
}

func TestAttribute(t *testing.T) {
	known := []string{"Reduce", "ReduceSum", "Softmax", "Exp", "Sub"}
	cases := []struct {
		name string
		ops  []string
		want string
	}{
		{"test_abs", []string{"Abs"}, "Abs"},
		{"test_reduce_sum_keepdims", []string{"ReduceSum", "Identity"}, "ReduceSum"},
		{"test_softmax_axis_0_expanded", []string{"Exp", "Sub", "ReduceSum"}, "Softmax"},
		{"test_weird", []string{"Exp", "Sub"}, "Exp"},
	}
	for _, c := range cases {
		if got := attribute(&testCase{name: c.name, ops: c.ops}, known); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

// writeTest writes a one-node test folder.
func writeTest(t *testing.T, root, name, op string, in, out *runtime.Tensor) {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Join(dir, "test_data_set_0"), 0o755); err != nil {
		t.Fatal(err)
	}
	g := &graph.Graph{Name: name,
		Inputs:  []*graph.ValueInfo{{Name: "x", DType: graph.Float, HasType: true}},
		Outputs: []*graph.ValueInfo{{Name: "y", DType: graph.Float, HasType: true}},
		Nodes:   []*graph.Node{{OpType: op, Inputs: []string{"x"}, Outputs: []string{"y"}}},
	}
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 17}}, Graph: g}
	if err := m.Save(filepath.Join(dir, "model.onnx")); err != nil {
		t.Fatal(err)
	}
	if err := tensorio.SavePB(filepath.Join(dir, "test_data_set_0", "input_0.pb"), "x", in); err != nil {
		t.Fatal(err)
	}
	if err := tensorio.SavePB(filepath.Join(dir, "test_data_set_0", "output_0.pb"), "y", out); err != nil {
		t.Fatal(err)
	}
}

func TestRunClassifies(t *testing.T) {
	root := t.TempDir()
	x := runtime.FromFloat32([]int64{3}, []float32{-1, 0, 2})
	writeTest(t, root, "test_relu", "Relu", x, runtime.FromFloat32([]int64{3}, []float32{0, 0, 2}))
	writeTest(t, root, "test_relu_wrong", "Relu", x, runtime.FromFloat32([]int64{3}, []float32{0, 0, 3}))
	writeTest(t, root, "test_nosuchop", "NoSuchOp", x, x)
	writeTest(t, root, "test_relu_int_input", "Relu", runtime.FromInt64([]int64{1}, []int64{1}), x)
	if err := os.MkdirAll(filepath.Join(root, "not_a_test"), 0o755); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(root, "interp", Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Status{"test_relu": Pass, "test_relu_wrong": Fail, "test_nosuchop": Unsupported, "test_relu_int_input": Error}
	if rep.Total != len(want) {
		t.Fatalf("%d tests, want %d", rep.Total, len(want))
	}
	for _, r := range rep.Results {
		if r.Status != want[r.Name] {
			t.Errorf("%s: %s (%s), want %s", r.Name, r.Status, r.Detail, want[r.Name])
		}
	}
	if rep.Pass != 1 || rep.Fail != 1 || rep.Unsupported != 1 || rep.Error != 1 || rep.PassRate != 0.25 {
		t.Errorf("summary %+v", rep)
	}
	var relu *OpStats
	for i := range rep.Ops {
		if rep.Ops[i].Op == "Relu" {
			relu = &rep.Ops[i]
		}
	}
	if relu == nil || relu.Total != 3 || relu.Pass != 1 || relu.Fail != 1 || relu.Error != 1 {
		t.Errorf("Relu stats %+v", relu)
	}
	for _, r := range rep.Results {
		if r.Name == "test_relu_wrong" && !strings.Contains(r.Detail, "element 2 is 2, want 3") {
			t.Errorf("failure detail %q does not name the mismatch", r.Detail)
		}
	}
}

func TestRunErrors(t *testing.T) {
	if _, err := Run(t.TempDir(), "interp", Options{}); err == nil {
		t.Error("an empty folder must be an error")
	}
	if _, err := Run(t.TempDir(), "no-such-backend", Options{}); err == nil {
		t.Error("an unknown backend must be an error")
	}
	if _, err := Run(filepath.Join(t.TempDir(), "missing"), "interp", Options{}); err == nil {
		t.Error("a missing folder must be an error")
	}
}

// slowBackend's sessions never finish a run in time.
type slowBackend struct{}

func (slowBackend) Name() string { return "conformance-test-slow" }
func (slowBackend) Capabilities() runtime.Capabilities {
	return runtime.Capabilities{Devices: []string{"cpu"}}
}
func (slowBackend) Open(m *graph.Model, _ runtime.Options) (runtime.Session, error) {
	return slowSession{}, nil
}

type slowSession struct{}

func (slowSession) Inputs() []runtime.IOInfo {
	return []runtime.IOInfo{{Name: "x", DType: graph.Float}}
}
func (slowSession) Outputs() []runtime.IOInfo {
	return []runtime.IOInfo{{Name: "y", DType: graph.Float}}
}
func (slowSession) Device() string { return "cpu" }
func (slowSession) Close() error   { return nil }
func (slowSession) Run(ctx context.Context, in []*runtime.Tensor) ([]*runtime.Tensor, error) {
	time.Sleep(2 * time.Second) // ignores ctx on purpose: a runaway kernel
	return in, nil
}

func init() { runtime.Register(slowBackend{}) }

func TestRunTimeout(t *testing.T) {
	root := t.TempDir()
	x := runtime.FromFloat32([]int64{1}, []float32{1})
	writeTest(t, root, "test_a", "Relu", x, x)
	writeTest(t, root, "test_b", "Relu", x, x)
	writeTest(t, root, "test_c", "Relu", x, x)
	start := time.Now()
	rep, err := Run(root, "conformance-test-slow", Options{Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("three runaway tests took %s: the timeout did not cut them off", el)
	}
	for _, r := range rep.Results {
		if r.Status != Error || !strings.Contains(r.Detail, "timed out") {
			t.Errorf("%s: %s %q, want a timeout error", r.Name, r.Status, r.Detail)
		}
	}
}
