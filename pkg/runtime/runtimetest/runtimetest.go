package runtimetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/build"
	"github.com/optictl/optictl/pkg/runtime"
)

// bias is the constant the contract model adds to x.
var bias = []float32{0.5, -1, 2}

// contractModel: inputs x float32 [N,3] (N dynamic) and k int64 [2];
// outputs y = x + bias (float32 [N,3]) and z = k * k (int64 [2]).
func contractModel(t *testing.T) *graph.Model {
	t.Helper()
	b := build.New("runtimetest", 13)
	x := b.Input("x", graph.Float, build.Dims("N", 3))
	k := b.Input("k", graph.Int64, build.Dims(2))
	c := b.Float32("bias", []int64{3}, bias)
	y := b.Node("Add", []string{x, c})
	z := b.Node("Mul", []string{k, k})
	b.Output(y, graph.Float, build.Dims("N", 3))
	b.Output(z, graph.Int64, build.Dims(2))
	m, err := b.Model()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// unsupportedModel uses an op of a domain no backend knows.
func unsupportedModel(t *testing.T) *graph.Model {
	t.Helper()
	b := build.New("runtimetest_unsupported", 13).Opset("com.example.runtimetest", 1)
	x := b.Input("x", graph.Float, build.Dims(2))
	b.Op("Nope", "nope", []string{x}, []string{"y"}).Domain = "com.example.runtimetest"
	b.Output("y", graph.Float, build.Dims(2))
	m, err := b.Model()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// inputs makes the contract model's inputs for n rows; seed varies values.
func inputs(n int, seed float32) []*runtime.Tensor {
	xs := make([]float32, 3*n)
	for i := range xs {
		xs[i] = seed + float32(i)*0.25
	}
	return []*runtime.Tensor{
		runtime.FromFloat32([]int64{int64(n), 3}, xs),
		runtime.FromInt64([]int64{2}, []int64{int64(seed) + 1, -3}),
	}
}

// check compares outs with the contract model's outputs for in.
func check(in, outs []*runtime.Tensor) error {
	if len(outs) != 2 {
		return fmt.Errorf("%d outputs, want 2", len(outs))
	}
	x, y := in[0], outs[0]
	if y == nil || y.DType != graph.Float || fmt.Sprint(y.Shape) != fmt.Sprint(x.Shape) {
		return fmt.Errorf("y: %v, want float32 %v", desc(y), x.Shape)
	}
	xv, yv := x.Float32s(), y.Float32s()
	for i := range xv {
		if want := xv[i] + bias[i%3]; yv[i] != want {
			return fmt.Errorf("y[%d] = %g, want %g", i, yv[i], want)
		}
	}
	k, z := in[1], outs[1]
	if z == nil || z.DType != graph.Int64 || fmt.Sprint(z.Shape) != "[2]" {
		return fmt.Errorf("z: %v, want int64 [2]", desc(z))
	}
	for i, v := range k.Int64s() {
		if got := z.Int64s()[i]; got != v*v {
			return fmt.Errorf("z[%d] = %d, want %d", i, got, v*v)
		}
	}
	return nil
}

func desc(t *runtime.Tensor) string {
	if t == nil {
		return "nil"
	}
	return fmt.Sprintf("%s %v", t.DType, t.Shape)
}

// run calls s.Run, turning a panic into an error so that one broken
// contract does not end the suite.
func run(ctx context.Context, s runtime.Session, in []*runtime.Tensor) (outs []*runtime.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return s.Run(ctx, in)
}

func open(t *testing.T, b runtime.Backend, m *graph.Model) runtime.Session {
	t.Helper()
	s, err := b.Open(m, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatalf("%s: Open: %v", b.Name(), err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestSession runs the Session contract against backend b.
func TestSession(t *testing.T, b runtime.Backend) {
	m := contractModel(t)
	t.Run("IO", func(t *testing.T) { testIO(t, b, m) })
	t.Run("Outputs", func(t *testing.T) { testOutputs(t, b, m) })
	t.Run("Ownership", func(t *testing.T) { testOwnership(t, b, m) })
	t.Run("DynamicShapes", func(t *testing.T) { testDynamic(t, b, m) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, b, m) })
	t.Run("WrongInputs", func(t *testing.T) { testWrongInputs(t, b, m) })
	t.Run("Cancel", func(t *testing.T) { testCancel(t, b, m) })
	t.Run("Close", func(t *testing.T) { testClose(t, b, m) })
	t.Run("Unsupported", func(t *testing.T) { testUnsupported(t, b) })
}

func testIO(t *testing.T, b runtime.Backend, m *graph.Model) {
	s := open(t, b, m)
	in, out := s.Inputs(), s.Outputs()
	if len(in) != 2 || in[0].Name != "x" || in[0].DType != graph.Float || in[1].Name != "k" || in[1].DType != graph.Int64 {
		t.Fatalf("Inputs() = %+v, want x float32, k int64", in)
	}
	if len(in[0].Shape) != 2 || in[0].Shape[0] >= 0 || in[0].Shape[1] != 3 {
		t.Fatalf("input x shape %v, want [-1 3]", in[0].Shape)
	}
	if len(out) != 2 || out[0].DType != graph.Float || out[1].DType != graph.Int64 {
		t.Fatalf("Outputs() = %+v", out)
	}
	if s.Device() == "" {
		t.Fatal("Device() is empty")
	}
}

func testOutputs(t *testing.T, b runtime.Backend, m *graph.Model) {
	before := m.Format()
	s := open(t, b, m)
	in := inputs(2, 1)
	outs, err := run(context.Background(), s, in)
	if err != nil {
		t.Fatal(err)
	}
	if err := check(in, outs); err != nil {
		t.Fatal(err)
	}
	// RunNamed is the same run by name, with outputs cloned.
	named, err := runtime.RunNamed(context.Background(), s, map[string]*runtime.Tensor{"x": in[0], "k": in[1]})
	if err != nil {
		t.Fatal(err)
	}
	y, z := named[s.Outputs()[0].Name], named[s.Outputs()[1].Name]
	if err := check(in, []*runtime.Tensor{y, z}); err != nil {
		t.Fatalf("RunNamed: %v", err)
	}
	if m.Format() != before {
		t.Fatal("Open or Run modified the model")
	}
}

// testOwnership: outputs stay valid until the next Run; a Clone survives
// it; Run never writes its inputs.
func testOwnership(t *testing.T, b runtime.Backend, m *graph.Model) {
	s := open(t, b, m)
	in1 := inputs(2, 1)
	keep := []*runtime.Tensor{in1[0].Clone(), in1[1].Clone()}
	outs1, err := run(context.Background(), s, in1)
	if err != nil {
		t.Fatal(err)
	}
	if err := check(keep, outs1); err != nil {
		t.Fatal(err)
	}
	clones := []*runtime.Tensor{outs1[0].Clone(), outs1[1].Clone()}
	in2 := inputs(2, 7)
	outs2, err := run(context.Background(), s, in2)
	if err != nil {
		t.Fatal(err)
	}
	if err := check(in2, outs2); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if err := check(keep, clones); err != nil {
		t.Fatalf("a clone of the first run's outputs changed with the second run: %v", err)
	}
	for i := range keep {
		if !keep[i].Equal(in1[i]) {
			t.Fatalf("Run wrote input %d", i)
		}
	}
}

// testDynamic: one session, runs whose dynamic dim grows, shrinks and
// comes back.
func testDynamic(t *testing.T, b runtime.Backend, m *graph.Model) {
	s := open(t, b, m)
	for i, n := range []int{1, 4, 2, 4, 1, 3} {
		in := inputs(n, float32(i))
		outs, err := run(context.Background(), s, in)
		if err != nil {
			t.Fatalf("run %d (N=%d): %v", i, n, err)
		}
		if err := check(in, outs); err != nil {
			t.Fatalf("run %d (N=%d): %v", i, n, err)
		}
	}
}

// testConcurrent: separate sessions of one model on separate goroutines.
func testConcurrent(t *testing.T, b runtime.Backend, m *graph.Model) {
	const workers, runs = 4, 25
	sessions := make([]runtime.Session, workers)
	for i := range sessions {
		sessions[i] = open(t, b, m)
	}
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w, s := range sessions {
		wg.Add(1)
		go func(w int, s runtime.Session) {
			defer wg.Done()
			for r := 0; r < runs; r++ {
				in := inputs(1+(w+r)%3, float32(w*100+r))
				outs, err := run(context.Background(), s, in)
				if err == nil {
					err = check(in, outs)
				}
				if err != nil {
					errs <- fmt.Errorf("worker %d run %d: %w", w, r, err)
					return
				}
			}
		}(w, s)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// testWrongInputs: bad inputs are errors that name the input, and the
// session still runs good inputs afterwards.
func testWrongInputs(t *testing.T, b runtime.Backend, m *graph.Model) {
	s := open(t, b, m)
	good := inputs(2, 1)
	short := good[0].Clone()
	short.Raw = short.Raw[:len(short.Raw)-4]
	cases := []struct {
		name string
		in   []*runtime.Tensor
		want []string // all in the error
	}{
		{"too few", good[:1], []string{"2"}},
		{"too many", append(append([]*runtime.Tensor{}, good...), good[1]), []string{"2"}},
		{"nil input", []*runtime.Tensor{nil, good[1]}, []string{`"x"`}},
		{"wrong dtype", []*runtime.Tensor{runtime.FromInt64([]int64{2, 3}, make([]int64, 6)), good[1]}, []string{`"x"`, "int64"}},
		{"wrong rank", []*runtime.Tensor{runtime.FromFloat32([]int64{6}, make([]float32, 6)), good[1]}, []string{`"x"`}},
		{"wrong fixed dim", []*runtime.Tensor{runtime.FromFloat32([]int64{2, 4}, make([]float32, 8)), good[1]}, []string{`"x"`}},
		{"wrong dim of second input", []*runtime.Tensor{good[0], runtime.FromInt64([]int64{3}, []int64{1, 2, 3})}, []string{`"k"`}},
		{"data shorter than shape", []*runtime.Tensor{short, good[1]}, []string{`"x"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := run(context.Background(), s, c.in)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %s", err, w)
				}
			}
		})
	}
	for _, c := range []struct {
		name string
		in   map[string]*runtime.Tensor
		want string
	}{
		{"missing name", map[string]*runtime.Tensor{"x": good[0]}, `"k"`},
		{"unknown name", map[string]*runtime.Tensor{"x": good[0], "k": good[1], "q": good[1]}, `"q"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := runtime.RunNamed(context.Background(), s, c.in)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v does not mention %s", err, c.want)
			}
		})
	}
	outs, err := run(context.Background(), s, good)
	if err == nil {
		err = check(good, outs)
	}
	if err != nil {
		t.Fatalf("good inputs after bad ones: %v", err)
	}
}

// testCancel: a cancelled context is an error wrapping context.Canceled,
// returned promptly, and the session runs again afterwards.
func testCancel(t *testing.T, b runtime.Backend, m *graph.Model) {
	s := open(t, b, m)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() {
		_, err := run(ctx, s, inputs(2, 1))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run with a cancelled context: %v, want an error wrapping context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run with a cancelled context hangs")
	}
	in := inputs(3, 2)
	outs, err := run(context.Background(), s, in)
	if err == nil {
		err = check(in, outs)
	}
	if err != nil {
		t.Fatalf("run after a cancelled one: %v", err)
	}
}

// testClose: Close twice is nil; Run after Close is an error.
func testClose(t *testing.T, b runtime.Backend, m *graph.Model) {
	s, err := b.Open(m, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run(context.Background(), s, inputs(1, 1)); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			err = s.Close()
		}()
		if err != nil {
			t.Fatalf("Close #%d: %v", i, err)
		}
	}
	if _, err := run(context.Background(), s, inputs(1, 1)); err == nil || strings.HasPrefix(err.Error(), "panic") {
		t.Fatalf("Run after Close: %v, want an error", err)
	}
}

// testUnsupported: an op the backend has no implementation for is refused
// at Open with runtime.ErrUnsupported naming the op.
func testUnsupported(t *testing.T, b runtime.Backend) {
	s, err := b.Open(unsupportedModel(t), runtime.Options{Threads: 1})
	if err == nil {
		s.Close()
		t.Fatal("Open accepted an op of an unknown domain")
	}
	if !errors.Is(err, runtime.ErrUnsupported) {
		t.Fatalf("Open: %v, want an error matching runtime.ErrUnsupported", err)
	}
	if ue, ok := runtime.AsUnsupported(err); !ok || ue.Op != "Nope" {
		t.Fatalf("unsupported op %+v, want Nope", ue)
	}
}
