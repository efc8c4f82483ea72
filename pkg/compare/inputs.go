package compare

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
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

// MatchRefs pairs the reference outputs of a data set with the model's
// outputs (outNames): a reference whose name (its TensorProto name) is a
// model output's name checks that output, any other the output at its
// position. It returns, per reference, the index of the output it checks,
// and the names of the outputs no reference checks, in model order. A
// reference that matches no output, or two references for one output, is
// an error naming them.
func MatchRefs(outNames []string, refs []tensorio.Named) (idx []int, unchecked []string, err error) {
	pos := make(map[string]int, len(outNames))
	for i, n := range outNames {
		pos[n] = i
	}
	taken := make([]string, len(outNames))
	idx = make([]int, len(refs))
	for k, r := range refs {
		i, ok := pos[r.Name]
		if !ok {
			if k >= len(outNames) {
				return nil, nil, fmt.Errorf("compare: reference output %d (%q) matches no model output by name, and the model has only %d outputs (%s)", k, r.Name, len(outNames), strings.Join(outNames, ", "))
			}
			i = k
		}
		if taken[i] != "" {
			return nil, nil, fmt.Errorf("compare: references %q and %q both check output %q", taken[i], r.Name, outNames[i])
		}
		taken[i] = r.Name
		if taken[i] == "" {
			taken[i] = fmt.Sprintf("output_%d", k)
		}
		idx[k] = i
	}
	for i, n := range outNames {
		if taken[i] == "" {
			unchecked = append(unchecked, n)
		}
	}
	return idx, unchecked, nil
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
