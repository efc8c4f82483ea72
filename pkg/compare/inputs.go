package compare

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics/half"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tensorio"
)

// UnsupportedOps lists the ops of m (subgraphs included) that backend b
// declares it cannot run, as "op" or "domain.op", sorted. It is empty when
// the backend does not declare its ops.
func UnsupportedOps(b runtime.Backend, m *graph.Model) []string {
	caps := b.Capabilities()
	if caps.Supports == nil || m == nil || m.Graph == nil {
		return nil
	}
	seen := map[string]bool{}
	_ = m.Graph.Walk(func(g *graph.Graph) error {
		for _, n := range g.Nodes {
			dom := n.Domain
			if n.IsDefaultDomain() {
				dom = ""
			}
			if caps.Supports(dom, n.OpType, m.Opset(dom)) {
				continue
			}
			k := n.OpType
			if dom != "" {
				k = dom + "." + n.OpType
			}
			seen[k] = true
		}
		return nil
	})
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Open checks ops first (so all unsupported ones are listed before anything
// runs), then opens a session.
func Open(backend string, m *graph.Model, opts runtime.Options) (runtime.Session, error) {
	b, err := runtime.Get(backend)
	if err != nil {
		return nil, err
	}
	if bad := UnsupportedOps(b, m); len(bad) > 0 {
		return nil, fmt.Errorf("compare: backend %s does not support ops: %s", backend, strings.Join(bad, ", "))
	}
	return b.Open(m, opts)
}

// Bind orders named tensors by the session's inputs. Names must match the
// model's input names; when none match and the counts agree (files named
// input_0.pb, x.npy, ...), tensors are taken in order. Shapes and dtypes
// are then checked with errors naming the input, expected and got.
func Bind(infos []runtime.IOInfo, given []tensorio.Named) ([]*runtime.Tensor, error) {
	byName := map[string]*runtime.Tensor{}
	for _, g := range given {
		if _, dup := byName[g.Name]; dup {
			return nil, fmt.Errorf("compare: input %q given twice", g.Name)
		}
		byName[g.Name] = g.Tensor
	}
	out := make([]*runtime.Tensor, len(infos))
	matched := 0
	for i, info := range infos {
		if t, ok := byName[info.Name]; ok {
			out[i] = t
			matched++
		}
	}
	if matched == 0 && len(given) == len(infos) {
		for i, g := range given {
			out[i] = g.Tensor
		}
		matched = len(given)
	}
	if matched != len(given) {
		var names []string
		for _, info := range infos {
			names = append(names, info.Name)
		}
		for _, g := range given {
			found := false
			for _, info := range infos {
				found = found || info.Name == g.Name
			}
			if !found {
				return nil, fmt.Errorf("compare: the model has no input %q (inputs: %s)", g.Name, strings.Join(names, ", "))
			}
		}
	}
	for i, info := range infos {
		if out[i] == nil {
			return nil, fmt.Errorf("compare: no data for input %q (%s%s)", info.Name, info.DType, runtime.ShapeString(info.Shape))
		}
	}
	if err := runtime.CheckInputs(infos, out); err != nil {
		return nil, err
	}
	return out, nil
}

// RandomOptions tune Random.
type RandomOptions struct {
	Seed int64
	// Shapes fixes dynamic dims per input name; other dynamic dims are 1.
	Shapes map[string][]int64
}

// Random makes seeded inputs that respect each input's dtype and fixed
// dims: floats uniform in [-1, 1), signed integers in [0, 10), unsigned in
// [0, 10), bools at random. Given tensors (by name) are kept as they are.
func Random(infos []runtime.IOInfo, given []tensorio.Named, o RandomOptions) ([]tensorio.Named, error) {
	have := map[string]bool{}
	for _, g := range given {
		have[g.Name] = true
	}
	out := append([]tensorio.Named{}, given...)
	rng := rand.New(rand.NewSource(o.Seed))
	for _, info := range infos {
		if have[info.Name] {
			continue
		}
		shape, err := ResolveShape(info, o.Shapes[info.Name])
		if err != nil {
			return nil, err
		}
		dt := info.DType
		if dt == graph.Undefined {
			dt = graph.Float
		}
		n, err := graph.NumElements(shape)
		if err != nil || n > 1<<28 {
			return nil, fmt.Errorf("compare: input %q: shape %v is too large for random data", info.Name, shape)
		}
		t := runtime.NewTensor(dt, shape)
		if err := fillRandom(t, rng); err != nil {
			return nil, fmt.Errorf("compare: input %q: %w", info.Name, err)
		}
		out = append(out, tensorio.Named{Name: info.Name, Tensor: t})
	}
	return out, nil
}

// ResolveShape gives an input's concrete shape: want (from --shape) must
// agree with the fixed dims; dynamic dims without a value become 1.
func ResolveShape(info runtime.IOInfo, want []int64) ([]int64, error) {
	if want != nil {
		if info.Shape != nil {
			if len(want) != len(info.Shape) {
				return nil, fmt.Errorf("compare: --shape for input %q has rank %d, the model's shape %s has rank %d", info.Name, len(want), runtime.ShapeString(info.Shape), len(info.Shape))
			}
			for i, d := range info.Shape {
				if d >= 0 && want[i] != d {
					return nil, fmt.Errorf("compare: --shape for input %q: dim %d is %d, the model fixes it to %d (expected %s)", info.Name, i, want[i], d, runtime.ShapeString(info.Shape))
				}
			}
		}
		return append([]int64{}, want...), nil
	}
	shape := make([]int64, len(info.Shape))
	for i, d := range info.Shape {
		shape[i] = d
		if d < 0 {
			shape[i] = 1
		}
	}
	return shape, nil
}

func fillRandom(t *runtime.Tensor, rng *rand.Rand) error {
	switch t.DType {
	case graph.Float:
		for i := range t.Float32s() {
			t.Float32s()[i] = float32(rng.Float64()*2 - 1)
		}
	case graph.Double:
		for i := range t.Float64s() {
			t.Float64s()[i] = rng.Float64()*2 - 1
		}
	case graph.Float16, graph.BFloat16:
		u := t.Uint16s()
		for i := range u {
			f := float32(rng.Float64()*2 - 1)
			if t.DType == graph.Float16 {
				u[i] = half.Float32ToFloat16(f)
			} else {
				u[i] = uint16(math.Float32bits(f) >> 16)
			}
		}
	case graph.Bool:
		for i := range t.Raw {
			t.Raw[i] = byte(rng.Intn(2))
		}
	case graph.String:
		for i := range t.Strings {
			t.Strings[i] = fmt.Sprintf("s%d", rng.Intn(100))
		}
	case graph.Int64, graph.Int32, graph.Int16, graph.Int8, graph.Uint8, graph.Uint16, graph.Uint32, graph.Uint64:
		size := t.DType.Size()
		for i := 0; i < len(t.Raw)/size; i++ {
			v := uint64(rng.Intn(10))
			for k := 0; k < size; k++ {
				t.Raw[i*size+k] = byte(v >> (8 * k))
			}
		}
	default:
		return fmt.Errorf("no random data for dtype %s", t.DType)
	}
	return nil
}

// Summary describes one tensor for `optictl run`.
type Summary struct {
	Name  string    `json:"name"`
	DType string    `json:"dtype"`
	Shape []int64   `json:"shape"`
	Min   float64   `json:"min"`
	Max   float64   `json:"max"`
	Mean  float64   `json:"mean"`
	First []float64 `json:"first,omitempty"`
	// Strings holds the first values of a string tensor.
	Strings []string `json:"first_strings,omitempty"`
	NaNs    int      `json:"nans,omitempty"`
}

// Summarize computes min/max/mean (NaNs counted apart) and the first k values.
func Summarize(name string, t *runtime.Tensor, k int) Summary {
	s := Summary{Name: name, DType: t.DType.String(), Shape: append([]int64{}, t.Shape...)}
	if t.DType == graph.String {
		s.Strings = append([]string{}, t.Strings[:min(k, len(t.Strings))]...)
		return s
	}
	v, err := t.AsFloat64()
	if err != nil || len(v) == 0 {
		return s
	}
	s.Min, s.Max = math.Inf(1), math.Inf(-1)
	var sum float64
	n := 0
	for _, x := range v {
		if math.IsNaN(x) {
			s.NaNs++
			continue
		}
		s.Min = math.Min(s.Min, x)
		s.Max = math.Max(s.Max, x)
		sum += x
		n++
	}
	if n > 0 {
		s.Mean = sum / float64(n)
	} else {
		s.Min, s.Max = math.NaN(), math.NaN()
	}
	s.First = append([]float64{}, v[:min(k, len(v))]...)
	return s
}

// RunOnce runs a session on bound inputs and returns cloned outputs.
func RunOnce(ctx context.Context, s runtime.Session, in []*runtime.Tensor) ([]*runtime.Tensor, error) {
	outs, err := s.Run(ctx, in)
	if err != nil {
		return nil, err
	}
	res := make([]*runtime.Tensor, len(outs))
	for i, o := range outs {
		if o == nil {
			return nil, fmt.Errorf("compare: output %d is missing", i)
		}
		res[i] = o.Clone()
	}
	return res, nil
}
