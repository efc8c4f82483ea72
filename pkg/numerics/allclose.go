package numerics

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

// DefaultTolerance fits float32 results that may differ by reassociation
// or folded weights; optimize, compare and bench all default to it.
var DefaultTolerance = Tolerance{ATol: 1e-4, RTol: 1e-3}

// OrDefault returns t, or DefaultTolerance when t is zero.
func (t Tolerance) OrDefault() Tolerance {
	if t == (Tolerance{}) {
		return DefaultTolerance
	}
	return t
}

// Close reports whether got is within the tolerance of ref. NaN is close
// only to NaN; equal infinities are close.
func (t Tolerance) Close(got, ref float64) bool {
	if math.IsNaN(got) || math.IsNaN(ref) {
		return math.IsNaN(got) && math.IsNaN(ref)
	}
	if got == ref {
		return true
	}
	d := math.Abs(got - ref)
	return d <= t.ATol+t.RTol*math.Abs(ref)
}

// Diff is the comparison of one output with its reference.
type Diff struct {
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

// Detail says in one line why d failed ("" when it passed).
func (d Diff) Detail() string {
	switch {
	case d.Pass:
		return ""
	case d.Total == 0 && d.Problem != "":
		return d.Problem
	}
	within := fmt.Sprintf("outside atol %g + rtol %g", d.Tol.ATol, d.Tol.RTol)
	if d.Tol == (Tolerance{}) {
		within = "differ (compared exactly)"
	}
	s := fmt.Sprintf("%d of %d elements %s; worst element %d is %g, want %g", d.Bad, d.Total, within, d.WorstAt, d.WorstGot, d.WorstRef)
	if d.Problem != "" {
		s += " (" + d.Problem + ")"
	}
	return s
}

// Compare checks got against the reference ref; this is what "verified"
// means everywhere in optictl (optimize, compare, bench, conformance):
//
//   - dtypes and shapes must be equal (two float dtypes that differ, a
//     float16 model against float32 references, still get their error
//     metrics, and the dtype change is named in Problem);
//   - float outputs (float, double, float16, bfloat16) pass when every
//     element is Close under tol (NaN only where the reference has NaN,
//     infinities only where the reference has the same one);
//   - every other dtype (integers, bool, string, the 8-bit and smaller
//     float formats) must match exactly, bit for bit.
func Compare(name string, got, ref *runtime.Tensor, tol Tolerance) Diff {
	r := Diff{Name: name, DType: got.DType.String(), Shape: append([]int64{}, got.Shape...), Tol: tol, Cosine: 1}
	if !sameShape(got.Shape, ref.Shape) {
		r.RefShape = append([]int64{}, ref.Shape...)
		r.Problem = fmt.Sprintf("shape %s differs from the reference's %s", runtime.ShapeString(got.Shape), runtime.ShapeString(ref.Shape))
		return r
	}
	exact := !tolerant(got.DType) || !tolerant(ref.DType)
	if got.DType != ref.DType {
		r.Problem = fmt.Sprintf("dtype %s, reference %s", got.DType, ref.DType)
		if exact {
			return r
		}
	}
	if got.DType == graph.String {
		r.Total = len(got.Strings)
		for i := range got.Strings {
			if i >= len(ref.Strings) || got.Strings[i] != ref.Strings[i] {
				r.Bad++
			}
		}
		r.Pass = r.Bad == 0
		return r
	}
	if exact && got.DType == ref.DType {
		return compareExact(r, got, ref)
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
	if exact {
		tol = Tolerance{}
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
		if e := d - lim; e > worstExcess || math.IsNaN(e) {
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
	r.Pass = r.Bad == 0 && got.DType == ref.DType
	return r
}

// compareExact compares non-float tensors of one dtype element by element
// on their bytes (exact even for int64 values beyond 2^53, and for dtypes
// without a float view such as complex64).
func compareExact(r Diff, got, ref *runtime.Tensor) Diff {
	r.Tol = Tolerance{}
	size := got.DType.Size() // sub-byte dtypes: compared byte by byte
	if size <= 0 || len(got.Raw) != len(ref.Raw) || len(got.Raw)%size != 0 {
		r.Problem = fmt.Sprintf("%d bytes of data, reference %d", len(got.Raw), len(ref.Raw))
		return r
	}
	r.Total = len(got.Raw) / size
	a, _ := got.AsFloat64()
	b, _ := ref.AsFloat64()
	for i := 0; i < r.Total; i++ {
		if string(got.Raw[i*size:(i+1)*size]) == string(ref.Raw[i*size:(i+1)*size]) {
			continue
		}
		if r.Bad == 0 {
			r.WorstAt = i
		}
		r.Bad++
		if i < len(a) && i < len(b) {
			d := math.Abs(a[i] - b[i])
			if d > r.MaxAbs || r.Bad == 1 {
				r.MaxAbs = max(r.MaxAbs, d)
				r.WorstAt, r.WorstGot, r.WorstRef = i, a[i], b[i]
			}
		}
	}
	if r.Bad > 0 {
		r.Cosine = 0
		if len(a) == r.Total && len(b) == r.Total {
			var dot, na, nb float64
			for i := range a {
				dot, na, nb = dot+a[i]*b[i], na+a[i]*a[i], nb+b[i]*b[i]
			}
			if na > 0 && nb > 0 {
				r.Cosine = dot / math.Sqrt(na*nb)
			}
		}
	}
	r.Pass = r.Bad == 0
	return r
}

// tolerant reports whether dt is compared with a tolerance: float32,
// float64, float16 and bfloat16.
func tolerant(dt graph.DType) bool {
	return dt == graph.Float || dt == graph.Double || dt == graph.Float16 || dt == graph.BFloat16
}

// Result is the comparison of several outputs.
type Result struct {
	Outputs []Diff `json:"outputs"`
	Pass    bool   `json:"pass"`
	// FirstFailure names the first output that failed ("" when all pass).
	FirstFailure string `json:"first_failure,omitempty"`
}

// CompareAll compares outputs by position; names label them. got and ref
// must have the same length.
func CompareAll(names []string, got, ref []*runtime.Tensor, tol Tolerance) (Result, error) {
	if len(got) != len(ref) {
		return Result{}, fmt.Errorf("numerics: %d outputs against %d references", len(got), len(ref))
	}
	res := Result{Pass: true}
	for i := range got {
		name := fmt.Sprintf("output %d", i)
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		if got[i] == nil || ref[i] == nil {
			return Result{}, fmt.Errorf("numerics: output %q is missing", name)
		}
		res.Add(Compare(name, got[i], ref[i], tol))
	}
	return res, nil
}

// Add appends one output's Diff and updates the verdict.
func (r *Result) Add(d Diff) {
	if len(r.Outputs) == 0 && r.FirstFailure == "" {
		r.Pass = true
	}
	r.Outputs = append(r.Outputs, d)
	if !d.Pass && r.Pass {
		r.Pass = false
		r.FirstFailure = d.Name
	}
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
		if Argmax(a[r*c:(r+1)*c]) == Argmax(b[r*c:(r+1)*c]) {
			same++
		}
	}
	return float64(same) / float64(rows)
}

// Argmax is the index of the largest non-NaN value (-1 when all are NaN or
// x is empty; the first of equal maxima).
func Argmax(x []float64) int {
	best := -1
	for i, v := range x {
		if math.IsNaN(v) {
			continue
		}
		if best < 0 || v > x[best] {
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

// Check is Compare as an error: nil when got passes against ref under
// tol, else an error with Diff.Detail.
func Check(got, ref *runtime.Tensor, tol Tolerance) error {
	if got == nil {
		return fmt.Errorf("numerics: no output")
	}
	if d := Compare("", got, ref, tol); !d.Pass {
		return fmt.Errorf("numerics: %s", d.Detail())
	}
	return nil
}
