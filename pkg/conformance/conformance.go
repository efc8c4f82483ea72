package conformance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/onnxpb"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tensorio"
	"google.golang.org/protobuf/proto"
)

// Status is the outcome of one test.
type Status string

// Outcomes.
const (
	Pass        Status = "pass"
	Fail        Status = "fail"
	Unsupported Status = "unsupported"
	Error       Status = "error"
)

// Default tolerances, as onnx's backend test runner (onnx/backend/test/runner)
// passes to numpy.testing.assert_allclose.
const (
	DefaultRTol = 1e-3
	DefaultATol = 1e-7
)

// Override widens the comparison (numerics.Compare) for one test.
type Override struct {
	numerics.Tolerance
	Reason string
}

// Overrides are per-test tolerances (keyed by test folder name), each with
// the reason it is needed. Keep this table short: a wider tolerance hides
// real bugs.
var Overrides = map[string]Override{
	// onnx computes these references with a float32 FFT: bins that are
	// exactly zero come out as rounding noise of about 2e-7, over atol 1e-7.
	"test_dft_inverse":         {Tolerance: numerics.Tolerance{RTol: DefaultRTol, ATol: 1e-6}, Reason: "float32 FFT noise in the reference around exact zeros"},
	"test_dft_inverse_opset19": {Tolerance: numerics.Tolerance{RTol: DefaultRTol, ATol: 1e-6}, Reason: "float32 FFT noise in the reference around exact zeros"},
}

// Options configure a run.
type Options struct {
	// Run, when set, selects tests whose folder name matches.
	Run *regexp.Regexp
	// Workers is the number of tests run at once (1 or 2; default 2).
	Workers int
	// Timeout bounds one test (default 60s).
	Timeout time.Duration
	// Threads is the intra-op thread count given to the backend (default 1).
	Threads int
	// MaxMemory bounds what one test may allocate where the backend
	// supports it (default 2 GiB).
	MaxMemory int64
	// Session options passed through to the backend (device, ORT library).
	Session runtime.Options
	// Transform, when set, rewrites each test's model before it runs (the
	// opset converter's verification converts every model with it); its
	// error makes the test an Error whose Detail starts "transform: ".
	Transform func(*graph.Model) (*graph.Model, error)
}

// Result is one test's outcome.
type Result struct {
	Name   string        `json:"name"`
	Op     string        `json:"op"`
	Status Status        `json:"status"`
	Detail string        `json:"detail,omitempty"`
	Time   time.Duration `json:"time_ns"`
}

// OpStats counts the outcomes of the tests attributed to one op.
type OpStats struct {
	Op          string `json:"op"`
	Total       int    `json:"total"`
	Pass        int    `json:"pass"`
	Fail        int    `json:"fail"`
	Unsupported int    `json:"unsupported"`
	Error       int    `json:"error"`
}

// Report is the outcome of a run.
type Report struct {
	Backend     string    `json:"backend"`
	Dir         string    `json:"dir"`
	Total       int       `json:"total"`
	Pass        int       `json:"pass"`
	Fail        int       `json:"fail"`
	Unsupported int       `json:"unsupported"`
	Error       int       `json:"error"`
	PassRate    float64   `json:"pass_rate"`
	Ops         []OpStats `json:"ops"`
	Results     []Result  `json:"results"`
}

type testCase struct {
	name  string
	dir   string
	model *graph.Model
	ops   []string // non-Constant op types in node order (unique)
	err   error    // model load error
	first string   // first node's op type (for Constant-only models)
}

// Run runs every test folder under dir on the named backend.
func Run(dir, backend string, opts Options) (*Report, error) {
	return RunContext(context.Background(), dir, backend, opts)
}

// RunContext is Run with a context; cancelling it stops starting new tests.
func RunContext(ctx context.Context, dir, backend string, opts Options) (*Report, error) {
	if _, err := runtime.Get(backend); err != nil {
		return nil, fmt.Errorf("conformance: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("conformance: %w", err)
	}
	if opts.Workers <= 0 || opts.Workers > 2 {
		opts.Workers = 2
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.Threads <= 0 {
		opts.Threads = 1
	}
	if opts.MaxMemory <= 0 {
		opts.MaxMemory = 2 << 30
	}
	var cases []*testCase
	known := map[string]bool{}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(p, "model.onnx")); err != nil {
			continue
		}
		tc := &testCase{name: e.Name(), dir: p}
		tc.model, tc.err = graph.Load(filepath.Join(p, "model.onnx"))
		if tc.err == nil {
			seen := map[string]bool{}
			if len(tc.model.Graph.Nodes) > 0 {
				tc.first = tc.model.Graph.Nodes[0].OpType
			}
			for _, n := range tc.model.Graph.Nodes {
				if n.OpType == "Constant" && n.IsDefaultDomain() {
					continue
				}
				if !seen[n.OpType] {
					seen[n.OpType] = true
					tc.ops = append(tc.ops, n.OpType)
				}
				known[n.OpType] = true
			}
		}
		// The model is loaded again by the worker that runs it, so that a
		// suite of large models is never held in memory all at once.
		tc.model = nil
		if opts.Run != nil && !opts.Run.MatchString(tc.name) {
			continue
		}
		cases = append(cases, tc)
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("conformance: no test folders (with model.onnx) under %s", dir)
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].name < cases[j].name })
	knownList := make([]string, 0, len(known))
	for k := range known {
		knownList = append(knownList, k)
	}
	sort.Strings(knownList)

	results := make([]Result, len(cases))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < opts.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				results[i] = runOne(ctx, cases[i], backend, opts)
				results[i].Op = attribute(cases[i], knownList)
				cases[i].model = nil
			}
		}()
	}
feed:
	for i := range cases {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("conformance: %w", err)
	}
	return summarize(dir, backend, results), nil
}

func summarize(dir, backend string, results []Result) *Report {
	r := &Report{Backend: backend, Dir: dir, Results: results}
	byOp := map[string]*OpStats{}
	for _, res := range results {
		s := byOp[res.Op]
		if s == nil {
			s = &OpStats{Op: res.Op}
			byOp[res.Op] = s
		}
		s.Total++
		r.Total++
		switch res.Status {
		case Pass:
			s.Pass++
			r.Pass++
		case Fail:
			s.Fail++
			r.Fail++
		case Unsupported:
			s.Unsupported++
			r.Unsupported++
		default:
			s.Error++
			r.Error++
		}
	}
	for _, s := range byOp {
		r.Ops = append(r.Ops, *s)
	}
	sort.Slice(r.Ops, func(i, j int) bool { return r.Ops[i].Op < r.Ops[j].Op })
	if r.Total > 0 {
		r.PassRate = float64(r.Pass) / float64(r.Total)
	}
	return r
}

// norm lower-cases and drops underscores: "Reduce_Sum" -> "reducesum".
func norm(s string) string { return strings.ReplaceAll(strings.ToLower(s), "_", "") }

// attribute names the op a test is counted for.
func attribute(tc *testCase, known []string) string {
	if len(tc.ops) == 1 {
		return tc.ops[0]
	}
	name := norm(strings.TrimPrefix(tc.name, "test_"))
	best := ""
	for _, op := range known {
		if strings.HasPrefix(name, norm(op)) && len(op) > len(best) {
			best = op
		}
	}
	if best != "" {
		return best
	}
	if len(tc.ops) > 0 {
		return tc.ops[0]
	}
	if tc.first != "" {
		return tc.first
	}
	return "(none)"
}

func runOne(ctx context.Context, tc *testCase, backend string, opts Options) Result {
	res := Result{Name: tc.name}
	start := time.Now()
	defer func() { res.Time = time.Since(start) }()
	if tc.err == nil && tc.model == nil {
		tc.model, tc.err = graph.Load(filepath.Join(tc.dir, "model.onnx"))
	}
	if tc.err != nil {
		res.Status, res.Detail = Error, "load: "+tc.err.Error()
		return res
	}
	local := *tc // the goroutine may outlive this call (timeout): give it its own copy
	if opts.Transform != nil {
		m, err := opts.Transform(tc.model)
		if err != nil {
			res.Status, res.Detail = Error, "transform: "+err.Error()
			return res
		}
		local.model = m
	}
	tctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	done := make(chan Result, 1)
	go func() {
		var r Result
		defer func() {
			if p := recover(); p != nil {
				r = Result{Status: Error, Detail: fmt.Sprintf("panic: %v", p)}
			}
			done <- r
		}()
		r = execute(tctx, &local, backend, opts)
	}()
	select {
	case r := <-done:
		res.Status, res.Detail = r.Status, r.Detail
	case <-tctx.Done():
		res.Status, res.Detail = Error, fmt.Sprintf("timed out after %s", opts.Timeout)
	}
	return res
}

// sequence, optional and map data cannot be held in a runtime.Tensor.
func nonTensorIO(m *graph.Model) bool {
	for _, vs := range [][]*graph.ValueInfo{m.Graph.Inputs, m.Graph.Outputs} {
		for _, v := range vs {
			if v.DType == graph.Undefined {
				return true
			}
		}
	}
	return false
}

func execute(ctx context.Context, tc *testCase, backend string, opts Options) Result {
	so := opts.Session
	so.Threads = opts.Threads
	so.MaxMemory = opts.MaxMemory
	sess, err := runtime.Open(backend, tc.model, so)
	if err != nil {
		if errors.Is(err, runtime.ErrUnsupported) {
			return Result{Status: Unsupported, Detail: err.Error()}
		}
		return Result{Status: Error, Detail: "open: " + err.Error()}
	}
	defer sess.Close()
	if nonTensorIO(tc.model) {
		return Result{Status: Unsupported, Detail: "sequence/optional/map inputs or outputs"}
	}
	sets, err := tensorio.DataSets(tc.dir)
	if err != nil || len(sets) == 0 {
		return Result{Status: Error, Detail: fmt.Sprintf("no test_data_set folders (%v)", err)}
	}
	infos := sess.Inputs()
	var inNames []string
	for _, in := range infos {
		inNames = append(inNames, in.Name)
	}
	for _, set := range sets {
		ds, err := loadDataSet(set, inNames)
		if err != nil {
			return Result{Status: Error, Detail: "data: " + err.Error()}
		}
		inputs, err := bindInputs(infos, ds.Inputs)
		if err != nil {
			return Result{Status: Error, Detail: filepath.Base(set) + ": " + err.Error()}
		}
		outs, err := sess.Run(ctx, inputs)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return Result{Status: Error, Detail: "timed out"}
			}
			if errors.Is(err, runtime.ErrUnsupported) {
				return Result{Status: Unsupported, Detail: "run: " + err.Error()}
			}
			return Result{Status: Error, Detail: "run: " + err.Error()}
		}
		tol := numerics.Tolerance{RTol: DefaultRTol, ATol: DefaultATol}
		if o, ok := Overrides[tc.name]; ok {
			tol = o.Tolerance
		}
		if len(outs) < len(ds.Outputs) {
			return Result{Status: Fail, Detail: fmt.Sprintf("%d outputs, want %d", len(outs), len(ds.Outputs))}
		}
		for k, want := range ds.Outputs {
			if outs[k] == nil {
				return Result{Status: Fail, Detail: fmt.Sprintf("%s output %d: no output", filepath.Base(set), k)}
			}
			if d := numerics.Compare("", outs[k], want.Tensor, tol); !d.Pass {
				err := errors.New(d.Detail())
				name := ""
				if k < len(tc.model.Graph.Outputs) {
					name = tc.model.Graph.Outputs[k].Name
				}
				return Result{Status: Fail, Detail: fmt.Sprintf("%s output %d %q: %v", filepath.Base(set), k, name, err)}
			}
		}
	}
	return Result{Status: Pass}
}

// bindInputs orders data-set tensors as the session's inputs: by name when
// every file names its tensor after an input, else by position.
func bindInputs(infos []runtime.IOInfo, data []tensorio.Named) ([]*runtime.Tensor, error) {
	byName := map[string]*runtime.Tensor{}
	for _, d := range data {
		byName[d.Name] = d.Tensor
	}
	out := make([]*runtime.Tensor, len(infos))
	all := true
	for i, in := range infos {
		if t, ok := byName[in.Name]; ok {
			out[i] = t
		} else {
			all = false
		}
	}
	if all {
		return out, nil
	}
	if len(data) != len(infos) {
		return nil, fmt.Errorf("%d input files for %d model inputs", len(data), len(infos))
	}
	for i := range infos {
		out[i] = data[i].Tensor
	}
	return out, nil
}

// loadDataSet reads input_K.pb and output_K.pb of a test_data_set folder
// (a model without inputs has no input files).
func loadDataSet(dir string, inNames []string) (*tensorio.DataSet, error) {
	ds := &tensorio.DataSet{Dir: dir}
	for _, kind := range []string{"input", "output"} {
		for k := 0; ; k++ {
			p := filepath.Join(dir, fmt.Sprintf("%s_%d.pb", kind, k))
			if _, err := os.Stat(p); err != nil {
				break
			}
			name, t, err := tensorio.LoadPB(p)
			if err != nil {
				var err2 error
				if name, t, err2 = loadSubByte(p); err2 != nil {
					return nil, err
				}
			}
			if kind == "input" {
				if name == "" && k < len(inNames) {
					name = inNames[k]
				}
				ds.Inputs = append(ds.Inputs, tensorio.Named{Name: name, Tensor: t})
			} else {
				ds.Outputs = append(ds.Outputs, tensorio.Named{Name: name, Tensor: t})
			}
		}
	}
	if len(ds.Outputs) == 0 {
		return nil, fmt.Errorf("conformance: %s holds no output_K.pb files", dir)
	}
	return ds, nil
}

// loadSubByte reads a TensorProto of a packed sub-byte dtype (int4, uint4,
// int2, uint2, float4e2m1), which tensorio does not decode: raw_data holds
// the packed bytes, or int32_data one packed byte per entry.
func loadSubByte(path string) (string, *runtime.Tensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	p := &onnxpb.TensorProto{}
	if err := proto.Unmarshal(b, p); err != nil {
		return "", nil, err
	}
	dt := graph.DType(p.GetDataType())
	if bs := dt.BitSize(); bs == 0 || bs >= 8 {
		return "", nil, fmt.Errorf("conformance: %s: not a sub-byte tensor", path)
	}
	dims := p.GetDims()
	if dims == nil {
		dims = []int64{}
	}
	n, err := graph.NumElements(dims)
	if err != nil {
		return "", nil, err
	}
	want := dt.ByteSize(n)
	raw := p.RawData
	if raw == nil {
		for _, v := range p.Int32Data {
			raw = append(raw, byte(v))
		}
	}
	if int64(len(raw)) != want {
		return "", nil, fmt.Errorf("conformance: %s: %d bytes for %s%v, want %d", path, len(raw), dt, dims, want)
	}
	return p.GetName(), &runtime.Tensor{DType: dt, Shape: append([]int64{}, dims...), Raw: append([]byte{}, raw...)}, nil
}
