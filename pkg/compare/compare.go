package compare

import (
	"fmt"
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Tolerance is the numpy.allclose criterion |got-ref| <= ATol + RTol*|ref|.
type Tolerance struct {
	ATol float64 `json:"atol"`
	RTol float64 `json:"rtol"`
}

// DefaultTolerance is the default for fp32 comparisons.
var DefaultTolerance = Tolerance{ATol: 1e-4, RTol: 1e-3}

// OutputResult is the comparison of one output.
type OutputResult struct {
	Name     string    `json:"name"`
	DType    string    `json:"dtype"`
	Shape    []int64   `json:"shape"`
	RefShape []int64   `json:"ref_shape,omitempty"`
	MaxAbs   float64   `json:"max_abs_err"`
	MaxRel   float64   `json:"max_rel_err"`
	MeanAbs  float64   `json:"mean_abs_err"`
	Cosine   float64   `json:"cosine"`
	Top1     *float64  `json:"top1_agreement,omitempty"` // fraction of rows whose argmax agrees
	Bad      int       `json:"mismatches"`               // elements outside tolerance
	Total    int       `json:"elements"`
	WorstAt  int       `json:"worst_index"`
	WorstGot float64   `json:"worst_got"`
	WorstRef float64   `json:"worst_ref"`
	Pass     bool      `json:"pass"`
	Problem  string    `json:"problem,omitempty"` // dtype/shape mismatch, NaN
	Tol      Tolerance `json:"tolerance"`
}

// Result is the comparison of all outputs.
type Result struct {
	Outputs []OutputResult `json:"outputs"`
	Pass    bool           `json:"pass"`
	// FirstFailure names the first output that failed ("" when all pass).
	FirstFailure string `json:"first_failure,omitempty"`
}

// Tensors compares got with the reference ref.
func Tensors(name string, got, ref *runtime.Tensor, tol Tolerance) OutputResult {
	r := OutputResult{Name: name, DType: got.DType.String(), Shape: append([]int64{}, got.Shape...), Tol: tol, Cosine: 1}
	if !sameShape(got.Shape, ref.Shape) {
		r.RefShape = append([]int64{}, ref.Shape...)
		r.Problem = fmt.Sprintf("shape %s differs from the reference's %s", runtime.ShapeString(got.Shape), runtime.ShapeString(ref.Shape))
		return r
	}
	if got.DType == graph.String || ref.DType == graph.String {
		if got.DType != ref.DType {
			r.Problem = fmt.Sprintf("dtype %s differs from the reference's %s", got.DType, ref.DType)
			return r
		}
		r.Total = len(got.Strings)
		for i := range got.Strings {
			if got.Strings[i] != ref.Strings[i] {
				r.Bad++
			}
		}
		r.Pass = r.Bad == 0
		return r
	}
	if got.DType != ref.DType {
		// Values are still compared (a float16 model against fp32
		// references, say), but the dtype change is reported.
		r.Problem = fmt.Sprintf("dtype %s, reference %s", got.DType, ref.DType)
	}
	a, err := got.AsFloat64()
	if err != nil {
		r.Problem = err.Error()
		return r
	}
	b, err := ref.AsFloat64()
	if err != nil {
		r.Problem = err.Error()
		return r
	}
	if len(a) != len(b) {
		r.Problem = fmt.Sprintf("%d values, reference %d", len(a), len(b))
		return r
	}
	r.Total = len(a)
	var dot, na, nb, sumAbs float64
	worstExcess := math.Inf(-1)
	for i := range a {
		x, y := a[i], b[i]
		if math.IsNaN(x) || math.IsNaN(y) {
			if math.IsNaN(x) && math.IsNaN(y) {
				continue
			}
			r.Bad++
			r.MaxAbs = math.Inf(1)
			if worstExcess < math.Inf(1) {
				worstExcess = math.Inf(1)
				r.WorstAt, r.WorstGot, r.WorstRef = i, x, y
			}
			continue
		}
		if x == y { // also equal infinities
			dot += x * y
			na += x * x
			nb += y * y
			continue
		}
		d := math.Abs(x - y)
		sumAbs += d
		r.MaxAbs = math.Max(r.MaxAbs, d)
		if y != 0 {
			r.MaxRel = math.Max(r.MaxRel, d/math.Abs(y))
		}
		lim := tol.ATol + tol.RTol*math.Abs(y)
		if !(d <= lim) {
			r.Bad++
		}
		if e := d - lim; e > worstExcess {
			worstExcess = e
			r.WorstAt, r.WorstGot, r.WorstRef = i, x, y
		}
		dot += x * y
		na += x * x
		nb += y * y
	}
	if r.Total > 0 {
		r.MeanAbs = sumAbs / float64(r.Total)
	}
	switch {
	case na == 0 && nb == 0:
		r.Cosine = 1
	case na == 0 || nb == 0:
		r.Cosine = 0
	default:
		r.Cosine = dot / (math.Sqrt(na) * math.Sqrt(nb))
	}
	if c := classLike(got); c > 1 {
		agree := top1(a, b, c)
		r.Top1 = &agree
	}
	r.Pass = r.Bad == 0
	return r
}

// classLike returns the class count (last dim) of a float output whose last
// dim is > 1, else 0.
func classLike(t *runtime.Tensor) int {
	if !t.DType.IsFloat() || len(t.Shape) == 0 {
		return 0
	}
	c := int(t.Shape[len(t.Shape)-1])
	if c <= 1 {
		return 0
	}
	return c
}

// top1 is the fraction of rows (of c classes) whose argmax agrees.
func top1(a, b []float64, c int) float64 {
	rows := len(a) / c
	if rows == 0 {
		return 1
	}
	same := 0
	for r := 0; r < rows; r++ {
		if argmax(a[r*c:(r+1)*c]) == argmax(b[r*c:(r+1)*c]) {
			same++
		}
	}
	return float64(same) / float64(rows)
}

func argmax(v []float64) int {
	best := 0
	for i, x := range v {
		if x > v[best] || math.IsNaN(v[best]) && !math.IsNaN(x) {
			best = i
		}
	}
	return best
}

func sameShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// All compares outputs by position; names label them. got and ref must
// have the same length.
func All(names []string, got, ref []*runtime.Tensor, tol Tolerance) (Result, error) {
	if len(got) != len(ref) {
		return Result{}, fmt.Errorf("compare: %d outputs against %d references", len(got), len(ref))
	}
	res := Result{Pass: true}
	for i := range got {
		name := fmt.Sprintf("output %d", i)
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		if got[i] == nil || ref[i] == nil {
			return Result{}, fmt.Errorf("compare: output %q is missing", name)
		}
		o := Tensors(name, got[i], ref[i], tol)
		res.Outputs = append(res.Outputs, o)
		if !o.Pass && res.Pass {
			res.Pass = false
			res.FirstFailure = name
		}
	}
	return res, nil
}
