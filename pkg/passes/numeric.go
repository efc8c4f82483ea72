package passes

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// checker compares a model's outputs with the original's on seeded inputs.
type checker struct {
	orig  *graph.Model
	opts  *Options
	seed  uint64
	extra map[string]*runtime.Tensor
	// per backend: reference outputs per input set, or why the original
	// cannot run there.
	refs        map[string][]map[string]*runtime.Tensor
	refErr      map[string]error
	inputs      []map[string]*runtime.Tensor
	inputErr    error
	usedBackend string
	// origUnrunnable is set when no backend can run the original model.
	origUnrunnable bool
	// finalSkip is why the last final check could not run ("" when it ran).
	finalSkip string
}

// prepare makes the input sets and computes the reference outputs on the
// first backend that can run the original model (the others only when a
// check needs them). Errors are kept for check to report.
func (ck *checker) prepare() {
	if ck.makeInputs() != nil {
		return
	}
	for _, b := range ck.backends() {
		if _, err := ck.ref(b); err == nil {
			return
		}
	}
}

// MismatchError says which output differed and how.
type MismatchError struct {
	Output string
	Detail string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("passes: output %q differs from the original: %s", e.Output, e.Detail)
}

func newChecker(orig *graph.Model, opts *Options, seed uint64) *checker {
	if seed == 0 {
		seed = 0x5eed
	}
	return &checker{orig: orig, opts: opts, seed: seed, refs: map[string][]map[string]*runtime.Tensor{}, refErr: map[string]error{}}
}

// sets is the number of seeded input sets (the --data set not counted).
func (ck *checker) sets() int {
	if len(ck.extra) > 0 {
		return len(ck.inputs) - 1
	}
	return len(ck.inputs)
}

// backends lists the backends to try, in order: the requested one, then
// every registered backend that declares itself a reference implementation
// (runtime.Capabilities.Reference) and does not rule out an op of the
// original model.
func (ck *checker) backends() []string {
	out := []string{ck.opts.Backend}
	for _, name := range runtime.BackendsWith(func(c runtime.Capabilities) bool { return c.Reference && runsAll(c, ck.orig) }) {
		if name != ck.opts.Backend {
			out = append(out, name)
		}
	}
	return out
}

// runsAll reports whether c does not rule out any op of m (a nil Supports
// rules out nothing).
func runsAll(c runtime.Capabilities, m *graph.Model) bool {
	if c.Supports == nil || m == nil || m.Graph == nil {
		return true
	}
	ok := true
	_ = m.Graph.Walk(func(g *graph.Graph) error {
		for _, n := range g.Nodes {
			if ok && !c.Supports(n.Domain, n.OpType, m.Opset(n.Domain)) {
				ok = false
			}
		}
		return nil
	})
	return ok
}

func (ck *checker) makeInputs() error {
	if ck.inputs != nil || ck.inputErr != nil {
		return ck.inputErr
	}
	shapes := map[string][]int64{}
	// Dynamic dims: --shape first, else the dims of the --data inputs
	// (some models cannot run on length-1 inputs), else 1.
	fixed := map[string][]int64{}
	for name, t := range ck.opts.Inputs {
		fixed[name] = t.Shape
	}
	for name, d := range ck.opts.Shapes {
		fixed[name] = d
	}
	var in map[string]*runtime.Tensor
	in, ck.inputErr = SeededInputs(ck.orig, fixed, ck.seed)
	if ck.inputErr != nil {
		return ck.inputErr
	}
	// Integer and bool inputs often carry meaning (a sample rate, token ids,
	// lengths): with --data, seeded sets take those values from it.
	for name, t := range ck.opts.Inputs {
		if _, ok := in[name]; ok && !t.DType.IsFloat() {
			in[name] = t
		}
	}
	for k, v := range in {
		shapes[k] = v.Shape
	}
	ck.inputs = append(ck.inputs, in)
	if len(ck.extra) > 0 {
		ck.inputs = append(ck.inputs, ck.extra)
	}
	return nil
}

// SeededInputs makes deterministic inputs for every real graph input:
// floats uniform in [-1, 1), integers in [0, 4), bools random. Dynamic dims
// are 1 unless shapes fixes them (shapes must agree with fixed dims).
func SeededInputs(m *graph.Model, shapes map[string][]int64, seed uint64) (map[string]*runtime.Tensor, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := map[string]*runtime.Tensor{}
	for _, v := range m.Graph.RealInputs() {
		if !v.IsTensor() || !v.HasType {
			return nil, fmt.Errorf("input %q is not a plain tensor", v.Name)
		}
		var dims []int64
		if s, ok := shapes[v.Name]; ok {
			dims = append([]int64{}, s...)
		} else {
			if !v.HasShape {
				return nil, fmt.Errorf("input %q has unknown rank (give --shape %s=DIMS)", v.Name, v.Name)
			}
			for _, d := range v.Shape {
				if d.Known() {
					dims = append(dims, d.Size)
				} else {
					dims = append(dims, 1)
				}
			}
		}
		n, err := graph.NumElements(dims)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", v.Name, err)
		}
		if n > 1<<28 {
			return nil, fmt.Errorf("input %q: %d elements is too many for a seeded check", v.Name, n)
		}
		t := runtime.NewTensor(v.DType, dims)
		switch v.DType {
		case graph.Float:
			f := t.Float32s()
			for i := range f {
				f[i] = float32(rng.Float64()*2 - 1)
			}
		case graph.Double:
			f := t.Float64s()
			for i := range f {
				f[i] = rng.Float64()*2 - 1
			}
		case graph.Float16:
			u := t.Uint16s()
			for i := range u {
				u[i] = graph.Float32ToFloat16(float32(rng.Float64()*2 - 1))
			}
		case graph.Int64:
			x := t.Int64s()
			for i := range x {
				x[i] = int64(rng.IntN(4))
			}
		case graph.Int32:
			x := t.Int32s()
			for i := range x {
				x[i] = int32(rng.IntN(4))
			}
		case graph.Bool, graph.Uint8, graph.Int8:
			for i := range t.Raw {
				t.Raw[i] = byte(rng.IntN(2))
			}
		default:
			return nil, fmt.Errorf("input %q has dtype %s, which seeded checks do not generate", v.Name, v.DType)
		}
		out[v.Name] = t
	}
	return out, nil
}

// cannotRun reports whether an Open/Run error means the backend lacks
// support (as opposed to the model being wrong).
func cannotRun(err error) bool { return errors.Is(err, runtime.ErrUnsupported) }

// runOn runs m on backend, in segments when its weights are large (see
// segment.go), else (or when the segments fail) whole.
func (ck *checker) runOn(backend string, m *graph.Model, in map[string]*runtime.Tensor) (map[string]*runtime.Tensor, error) {
	opts := runtime.Options{Shapes: ck.opts.Shapes, OptLevel: "off"}
	if segs := splitSegments(m.Graph, verifySegmentBytes); len(segs) > 1 {
		if out, err := runSegments(backend, m, segs, in, opts); err == nil {
			return out, nil
		}
	}
	s, err := runtime.Open(backend, m, opts)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return runtime.RunNamed(context.Background(), s, in)
}

func (ck *checker) ref(backend string) ([]map[string]*runtime.Tensor, error) {
	if r, ok := ck.refs[backend]; ok {
		return r, nil
	}
	if err, ok := ck.refErr[backend]; ok {
		return nil, err
	}
	var out []map[string]*runtime.Tensor
	for _, in := range ck.inputs {
		o, err := ck.runOn(backend, ck.orig, in)
		if err != nil {
			ck.refErr[backend] = err
			return nil, err
		}
		out = append(out, o)
	}
	ck.refs[backend] = out
	return out, nil
}

// check runs m on the first backend that can run both m and the original.
// It returns a non-empty skip reason when no backend can; the name of the
// differing output and an error when outputs differ or m fails to run.
func (ck *checker) check(m *graph.Model, final bool) (skip, output string, err error) {
	if err := ck.makeInputs(); err != nil {
		return "cannot make inputs: " + err.Error(), "", nil
	}
	var reasons []string
	origFails := 0
	for _, b := range ck.backends() {
		refs, err := ck.ref(b)
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("%s cannot run the original model: %v", b, err))
			origFails++
			continue
		}
		var outs []map[string]*runtime.Tensor
		for _, in := range ck.inputs {
			o, err := ck.runOn(b, m, in)
			if err != nil {
				if cannotRun(err) {
					reasons = append(reasons, fmt.Sprintf("%s cannot run the rewritten model: %v", b, err))
					outs = nil
					break
				}
				return "", "", fmt.Errorf("passes: the rewritten model fails on %s: %w", b, err)
			}
			outs = append(outs, o)
		}
		if outs == nil {
			continue
		}
		ck.usedBackend = b
		for i := range outs {
			for _, ov := range ck.orig.Graph.Outputs {
				if err := compareTensor(refs[i][ov.Name], outs[i][ov.Name], ck.opts.Tolerance); err != nil {
					return "", ov.Name, &MismatchError{Output: ov.Name, Detail: err.Error()}
				}
			}
		}
		return "", "", nil
	}
	ck.origUnrunnable = origFails == len(ck.backends())
	return strings.Join(reasons, "; "), "", nil
}

var errMissing = errors.New("missing output")

func compareTensor(want, got *runtime.Tensor, tol Tolerance) error {
	if want == nil || got == nil {
		return errMissing
	}
	if want.DType != got.DType {
		return fmt.Errorf("dtype %s, want %s", got.DType, want.DType)
	}
	if !equalInts(want.Shape, got.Shape) {
		return fmt.Errorf("shape %v, want %v", got.Shape, want.Shape)
	}
	if want.DType == graph.String {
		if !want.Equal(got) {
			return errors.New("string values differ")
		}
		return nil
	}
	w, err := want.AsFloat64()
	if err != nil {
		return err
	}
	g, err := got.AsFloat64()
	if err != nil {
		return err
	}
	exact := !want.DType.IsFloat()
	worst, at := 0.0, -1
	for i := range w {
		a, b := g[i], w[i]
		if math.IsNaN(a) || math.IsNaN(b) {
			if math.IsNaN(a) != math.IsNaN(b) {
				return fmt.Errorf("element %d is %g, want %g", i, a, b)
			}
			continue
		}
		d := math.Abs(a - b)
		if a == b {
			continue
		}
		if exact || d > tol.ATol+tol.RTol*math.Abs(b) || math.IsInf(d, 0) {
			if d > worst || at < 0 {
				worst, at = d, i
			}
		}
	}
	if at >= 0 {
		return fmt.Errorf("element %d is %g, want %g (|diff| %.3g > atol %g + rtol %g)", at, g[at], w[at], worst, tol.ATol, tol.RTol)
	}
	return nil
}
