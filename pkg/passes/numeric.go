package passes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
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
	refs   map[string][]map[string]*runtime.Tensor
	refErr map[string]error
	// inputs are the input sets: the seeded ones (representative shapes
	// without data, see numerics.VerifyDims; the data's dims with data),
	// then an all-ones fallback set (only run when the original runs on no
	// representative set), then the --data set. labels describe them.
	inputs      []map[string]*runtime.Tensor
	labels      []string
	fallback    int // index of the fallback set, -1 when there is none
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

// used lists the labels of the seeded input sets the last check ran on
// (the --data set not counted).
func (ck *checker) used() []string {
	refs := ck.refs[ck.usedBackend]
	var out []string
	for i, l := range ck.labels {
		if i < len(refs) && refs[i] != nil && (len(ck.extra) == 0 || i < len(ck.inputs)-1) {
			out = append(out, l)
		}
	}
	return out
}

// describe says on what the last check ran: "2 seeded input sets (x=1x3x64x64;
// x=2x3x64x72)".
func (ck *checker) describe() string {
	u := ck.used()
	s := fmt.Sprintf("%d seeded input set", len(u))
	if len(u) != 1 {
		s += "s"
	}
	if len(u) > 0 {
		s += " (" + strings.Join(u, "; ") + ")"
	}
	if ck.fallback >= 0 && slices.Contains(u, ck.labels[ck.fallback]) {
		s += ", dynamic dims 1 because the original model runs on no representative shape; pass --data for real shapes"
	}
	return s
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
	ins, err := numerics.InputsOf(ck.orig)
	if err != nil {
		ck.inputErr = err
		return err
	}
	// Dynamic dims come from the data when there is any (--data, else
	// --calib: DataShapes), else from representative shapes.
	data := numerics.ShapesOf(ck.opts.Inputs)
	if len(data) == 0 {
		data = ck.opts.DataShapes
	}
	var sets []numerics.Dims
	ck.fallback = -1
	if len(data) > 0 {
		sets = []numerics.Dims{{Shapes: data}}
	} else {
		sets = numerics.VerifyDimsBounded(ck.orig, ck.opts.MaxMemory)
		if len(sets) > 1 || len(sets[0].Spatial) > 0 {
			ck.fallback = len(sets)
			sets = append(sets, numerics.Dims{})
		}
	}
	for k, d := range sets {
		in, err := numerics.SeededMap(ins, numerics.SeedOptions{Seed: ck.seed + uint64(k), Dims: d, MaxBytes: ck.opts.MaxMemory})
		if err != nil {
			ck.inputs, ck.labels = nil, nil
			ck.inputErr = err
			return err
		}
		// Integer and bool inputs often carry meaning (a sample rate,
		// token ids, lengths): with --data, seeded sets take those values
		// from it.
		for name, t := range ck.opts.Inputs {
			if _, ok := in[name]; ok && !t.DType.IsFloat() {
				in[name] = t
			}
		}
		ck.inputs = append(ck.inputs, in)
		ck.labels = append(ck.labels, numerics.DescribeShapes(in))
	}
	if len(ck.extra) > 0 {
		ck.inputs = append(ck.inputs, ck.extra)
		ck.labels = append(ck.labels, "--data")
	}
	return nil
}

// cannotRun reports whether an Open/Run error means the backend lacks
// support (as opposed to the model being wrong).
func cannotRun(err error) bool { return errors.Is(err, runtime.ErrUnsupported) }

// runOn runs m on backend, in segments when its weights are large (see
// segment.go), else (or when the segments fail) whole.
func (ck *checker) runOn(backend string, m *graph.Model, in map[string]*runtime.Tensor) (map[string]*runtime.Tensor, error) {
	opts := runtime.Options{Shapes: ck.opts.Shapes, OptLevel: "off", MaxMemory: ck.opts.SessionMaxMemory}
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
	// A representative set the original cannot run on (a model that
	// hard-codes batch 1, say) is left out; the all-ones fallback runs
	// only when no representative set does; the --data set must run.
	out := make([]map[string]*runtime.Tensor, len(ck.inputs))
	var firstErr error
	ran := 0
	for i, in := range ck.inputs {
		if i == ck.fallback && ran > 0 {
			continue
		}
		o, err := ck.runOn(backend, ck.orig, in)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			if ck.labels[i] == "--data" {
				ck.refErr[backend] = err
				return nil, err
			}
			continue
		}
		out[i] = o
		ran++
	}
	if ran == 0 {
		ck.refErr[backend] = firstErr
		return nil, firstErr
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
		for i, in := range ck.inputs {
			if refs[i] == nil {
				outs = append(outs, nil)
				continue
			}
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
			if outs[i] == nil {
				continue
			}
			for _, ov := range ck.orig.Graph.Outputs {
				if err := compareTensor(refs[i][ov.Name], outs[i][ov.Name], ck.opts.Tolerance); err != nil {
					return "", ov.Name, &MismatchError{Output: ov.Name, Detail: err.Error() + " on input set " + ck.labels[i]}
				}
			}
		}
		return "", "", nil
	}
	ck.origUnrunnable = origFails == len(ck.backends())
	return strings.Join(reasons, "; "), "", nil
}

var errMissing = errors.New("missing output")

// compareTensor applies numerics.Compare (the one meaning of "verified")
// and says why got fails, or returns nil.
func compareTensor(want, got *runtime.Tensor, tol numerics.Tolerance) error {
	if want == nil || got == nil {
		return errMissing
	}
	if d := numerics.Compare("", got, want, tol); !d.Pass {
		return errors.New(d.Detail())
	}
	return nil
}
