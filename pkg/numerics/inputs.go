package numerics

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics/half"
	"github.com/optictl/optictl/pkg/runtime"
)

// Input describes one model input for shape resolution and seeded data.
type Input struct {
	Name  string
	DType graph.DType
	// Shape holds the declared dims, -1 for a dynamic one. It is nil when
	// Ranked is false (the model does not say the rank).
	Shape []int64
	// DimNames holds the symbolic names of dynamic dims ("" where none);
	// nil or shorter than Shape when the model names none.
	DimNames []string
	Ranked   bool
}

// InputsOf lists the real graph inputs of m (initializer-backed inputs of
// old IR versions left out). An input that is not a plain tensor is an
// error naming it.
func InputsOf(m *graph.Model) ([]Input, error) {
	var out []Input
	for _, v := range m.Graph.RealInputs() {
		if !v.IsTensor() || !v.HasType {
			return nil, fmt.Errorf("numerics: input %q is not a plain tensor", v.Name)
		}
		in := Input{Name: v.Name, DType: v.DType, Ranked: v.HasShape}
		if v.HasShape {
			in.Shape = make([]int64, len(v.Shape))
			in.DimNames = make([]string, len(v.Shape))
			for k, d := range v.Shape {
				in.Shape[k] = d.Size
				if !d.Known() {
					in.Shape[k] = -1
					in.DimNames[k] = d.Param
				}
			}
		}
		out = append(out, in)
	}
	return out, nil
}

// InputsFromInfos converts a session's input descriptions. A nil shape is
// taken as a scalar, as sessions report them.
func InputsFromInfos(infos []runtime.IOInfo) []Input {
	out := make([]Input, len(infos))
	for i, info := range infos {
		out[i] = Input{Name: info.Name, DType: info.DType, Shape: info.Shape, DimNames: info.DimNames, Ranked: true}
		if out[i].Shape == nil {
			out[i].Shape = []int64{}
		}
	}
	return out
}

// HasDynamicDims reports whether any input has a dynamic dim or unknown rank.
func HasDynamicDims(ins []Input) bool {
	for _, in := range ins {
		if !in.Ranked {
			return true
		}
		for _, d := range in.Shape {
			if d < 0 {
				return true
			}
		}
	}
	return false
}

// Dims says which values the dynamic dims of the inputs take.
//
// The one resolution policy: an input named in Shapes takes that whole
// shape (it must have the declared rank and agree with every fixed dim);
// otherwise each dynamic dim takes, in order of preference, the value its
// symbolic name has in an input of Shapes (dims sharing a name are equal),
// Batch for the first dim, and Spatial for the others (cycling through
// Spatial's values in order of appearance, so a 2-value Spatial gives a
// non-square H x W). Zero or empty values mean 1.
type Dims struct {
	// Shapes are whole shapes by input name: from --shape, or the shapes
	// of data the command has (--data, --calib, input files).
	Shapes map[string][]int64
	// Batch is the value of a dynamic first dim.
	Batch int64
	// Spatial are the values of the other dynamic dims.
	Spatial []int64
	// Given are inputs that already have data (their shapes in Shapes)
	// and get no seeded tensor: they only lend the values of their named
	// dims to the inputs being resolved.
	Given []Input
}

// String describes d as "batch 2, other dims 64x96" (data shapes left out).
func (d Dims) String() string {
	b := d.Batch
	if b <= 0 {
		b = 1
	}
	sp := "1"
	if len(d.Spatial) > 0 {
		parts := make([]string, len(d.Spatial))
		for i, s := range d.Spatial {
			parts[i] = strconv.FormatInt(s, 10)
		}
		sp = strings.Join(parts, "x")
	}
	return fmt.Sprintf("batch %d, other dynamic dims %s", b, sp)
}

// ResolveShapes gives every input's concrete shape under d, in order.
func ResolveShapes(ins []Input, d Dims) ([][]int64, error) {
	named := map[string]int64{}
	for _, in := range append(append([]Input{}, d.Given...), ins...) {
		s, ok := d.Shapes[in.Name]
		if !ok || len(s) != len(in.Shape) {
			continue
		}
		for k, n := range in.DimNames {
			if n != "" && k < len(s) && in.Shape[k] < 0 {
				named[n] = s[k]
			}
		}
	}
	out := make([][]int64, len(ins))
	for i, in := range ins {
		s, err := resolve(in, d, named)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// ResolveShape gives one input's concrete shape under d (see Dims).
func ResolveShape(in Input, d Dims) ([]int64, error) {
	s, err := ResolveShapes([]Input{in}, d)
	if err != nil {
		return nil, err
	}
	return s[0], nil
}

func resolve(in Input, d Dims, named map[string]int64) ([]int64, error) {
	if want, ok := d.Shapes[in.Name]; ok {
		if in.Ranked {
			if len(want) != len(in.Shape) {
				return nil, fmt.Errorf("numerics: shape %s for input %q has rank %d; the model's shape %s has rank %d", runtime.ShapeString(want), in.Name, len(want), runtime.ShapeString(in.Shape), len(in.Shape))
			}
			for k, n := range in.Shape {
				if n >= 0 && want[k] != n {
					return nil, fmt.Errorf("numerics: shape %s for input %q: dim %d is %d, the model fixes it to %d (expected %s)", runtime.ShapeString(want), in.Name, k, want[k], n, runtime.ShapeString(in.Shape))
				}
			}
		}
		for k, n := range want {
			if n < 0 {
				return nil, fmt.Errorf("numerics: shape %s for input %q: dim %d is negative", runtime.ShapeString(want), in.Name, k)
			}
		}
		return append([]int64{}, want...), nil
	}
	if !in.Ranked {
		return nil, fmt.Errorf("numerics: input %q has unknown rank (give --shape %s=DIMS)", in.Name, in.Name)
	}
	out := make([]int64, len(in.Shape))
	sp := 0
	for k, n := range in.Shape {
		if n >= 0 {
			out[k] = n
			continue
		}
		if k < len(in.DimNames) && in.DimNames[k] != "" {
			if v, ok := named[in.DimNames[k]]; ok {
				out[k] = v
				continue
			}
		}
		switch {
		case k == 0:
			out[k] = max(d.Batch, 1)
		case len(d.Spatial) > 0:
			out[k] = max(d.Spatial[sp%len(d.Spatial)], 1)
			sp++
		default:
			out[k] = 1
		}
	}
	return out, nil
}

// SeedOptions configure Seeded.
type SeedOptions struct {
	Seed uint64
	Dims Dims
	// MaxBytes bounds the bytes of the whole input set (0:
	// DefaultMaxMemory; negative: no bound).
	MaxBytes int64
}

// The range policy of seeded inputs, the same for every command:
//
//   - float, double, float16, bfloat16: uniform in [-1, 1) (normalized
//     images and embeddings; both signs reach every activation's branches);
//   - every integer dtype: uniform in [0, SeedIntRange), safe as an index
//     into any axis of at least SeedIntRange elements, a class id, a length;
//   - bool: a fair coin;
//   - string: "s0" .. "s9".
//
// The same inputs, dims and seed always give the same tensors.
const SeedIntRange = 4

// Seeded makes one seeded tensor per input, in order, with shapes from
// ResolveShapes. A set larger than the memory bound is refused before
// anything is allocated, naming the input and its shape.
func Seeded(ins []Input, o SeedOptions) ([]*runtime.Tensor, error) {
	shapes, err := ResolveShapes(ins, o.Dims)
	if err != nil {
		return nil, err
	}
	limit := o.MaxBytes
	if limit == 0 {
		limit = DefaultMaxMemory
	}
	var total int64
	for i, in := range ins {
		b, err := InputBytes(in.DType, shapes[i])
		if err != nil {
			return nil, fmt.Errorf("numerics: seeded input %q of shape %s: %w", in.Name, runtime.ShapeString(shapes[i]), err)
		}
		total += b
		if limit > 0 && (b > limit || total > limit) {
			return nil, &SizeError{Input: in.Name, DType: dtypeOr(in.DType), Shape: shapes[i], Bytes: b, Limit: limit}
		}
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	out := make([]*runtime.Tensor, len(ins))
	for i, in := range ins {
		t := runtime.NewTensor(dtypeOr(in.DType), shapes[i])
		if err := fillSeeded(t, rng); err != nil {
			return nil, fmt.Errorf("numerics: input %q: %w", in.Name, err)
		}
		out[i] = t
	}
	return out, nil
}

// SizeError says a seeded input set would exceed the memory bound; Seeded
// returns it before allocating anything.
type SizeError struct {
	Input string
	DType graph.DType
	Shape []int64
	// Bytes is what Input takes; Limit the bound of the whole set.
	Bytes, Limit int64
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("numerics: seeded input %q of shape %s (%s) needs %s, over the %s bound of --max-memory; give --shape or --data with smaller dims, or raise --max-memory", e.Input, runtime.ShapeString(e.Shape), e.DType, FormatBytes(e.Bytes), FormatBytes(e.Limit))
}

// SeededMap is Seeded keyed by input name.
func SeededMap(ins []Input, o SeedOptions) (map[string]*runtime.Tensor, error) {
	ts, err := Seeded(ins, o)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*runtime.Tensor, len(ts))
	for i, in := range ins {
		out[in.Name] = ts[i]
	}
	return out, nil
}

func dtypeOr(dt graph.DType) graph.DType {
	if dt == graph.Undefined {
		return graph.Float
	}
	return dt
}

// InputBytes is the memory a tensor of that dtype and shape takes (16
// bytes a string), or an error when its element count overflows.
func InputBytes(dt graph.DType, shape []int64) (int64, error) {
	n, err := graph.NumElements(shape)
	if err != nil {
		return 0, err
	}
	dt = dtypeOr(dt)
	if dt == graph.String {
		if n > math.MaxInt64/16 {
			return 0, fmt.Errorf("%d strings overflow", n)
		}
		return n * 16, nil
	}
	return dt.ByteSize(n), nil
}

// FormatBytes writes n as "1.5 GiB", "64 MiB", "512 B".
func FormatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'g', 4, 64) + " GiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'g', 4, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'g', 4, 64) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}

func fillSeeded(t *runtime.Tensor, r *rand.Rand) error {
	n := t.Len()
	b := t.Raw
	uf := func() float32 { return 2*r.Float32() - 1 }
	switch t.DType {
	case graph.Float:
		for i := range n {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(uf()))
		}
	case graph.Double:
		for i := range n {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(2*r.Float64()-1))
		}
	case graph.Float16:
		for i := range n {
			binary.LittleEndian.PutUint16(b[2*i:], half.Float32ToFloat16(uf()))
		}
	case graph.BFloat16:
		for i := range n {
			binary.LittleEndian.PutUint16(b[2*i:], half.Float32ToBFloat16(uf()))
		}
	case graph.Int8, graph.Uint8:
		for i := range n {
			b[i] = byte(r.IntN(SeedIntRange))
		}
	case graph.Int16, graph.Uint16:
		for i := range n {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(r.IntN(SeedIntRange)))
		}
	case graph.Int32, graph.Uint32:
		for i := range n {
			binary.LittleEndian.PutUint32(b[4*i:], uint32(r.IntN(SeedIntRange)))
		}
	case graph.Int64, graph.Uint64:
		for i := range n {
			binary.LittleEndian.PutUint64(b[8*i:], uint64(r.IntN(SeedIntRange)))
		}
	case graph.Bool:
		for i := range n {
			b[i] = byte(r.IntN(2))
		}
	case graph.String:
		for i := range t.Strings {
			t.Strings[i] = "s" + strconv.Itoa(r.IntN(10))
		}
	default:
		return fmt.Errorf("no seeded data for dtype %s", t.DType)
	}
	return nil
}

// ShapesOf returns the shapes of named tensors (data the command has), for
// Dims.Shapes.
func ShapesOf(ts map[string]*runtime.Tensor) map[string][]int64 {
	if len(ts) == 0 {
		return nil
	}
	out := make(map[string][]int64, len(ts))
	for k, t := range ts {
		if t != nil {
			out[k] = append([]int64{}, t.Shape...)
		}
	}
	return out
}

// DescribeShapes writes input shapes as "x=1x3x64x64, mask=1x64" (names
// sorted).
func DescribeShapes(set map[string]*runtime.Tensor) string {
	names := make([]string, 0, len(set))
	for k := range set {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = k + "=" + dimsString(set[k].Shape)
	}
	return strings.Join(parts, ", ")
}

func dimsString(s []int64) string {
	if len(s) == 0 {
		return "scalar"
	}
	p := make([]string, len(s))
	for i, d := range s {
		p[i] = strconv.FormatInt(d, 10)
	}
	return strings.Join(p, "x")
}
