package passes

import (
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
)

// Options configure Optimize.
type Options struct {
	// Level picks the pipeline entries to run (default O0 runs nothing
	// unless Passes is set).
	Level Level
	// Target is "generic" (default) or "ort-cpu".
	Target string
	// Passes, when set, replaces the pipeline: these passes (plus what they
	// require) run in the given order, whatever their level.
	Passes []string
	// Disable removes passes from the pipeline.
	Disable []string
	// DumpAfter writes the model's text form to Dump after each named pass
	// that changed something.
	DumpAfter []string
	Dump      io.Writer
	// Shapes fixes dynamic dims of graph inputs (name -> full shape). The
	// optimized model declares these dims, like onnxsim's input-shape
	// override.
	Shapes map[string][]int64
	// Verify turns on numeric equivalence checks on seeded inputs. By
	// default the final model is checked (on a seeded input set and the
	// Inputs); only when that check fails, or cannot run the final model,
	// does Optimize replay the pipeline from the original with a check
	// after every pass that changed something, so that a pass that broke
	// the model is rolled back and reported by name (see Report.NumericMode).
	Verify bool
	// VerifyEachPass (with Verify) checks numerically after every pass that
	// changed something from the start, as the replay does: slower (one
	// model run per changed pass) but names every broken pass even when a
	// later pass happens to repair the outputs.
	VerifyEachPass bool
	// Backend runs the checks ("interp" by default; "ort" is tried when the
	// backend cannot run a model).
	Backend string
	// Tolerance for numeric checks (zero means numerics.DefaultTolerance).
	Tolerance numerics.Tolerance
	// Inputs, when set, are used (besides seeded ones) for the final check,
	// and the seeded sets take their dynamic dims from them.
	Inputs map[string]*runtime.Tensor
	// DataShapes, without Inputs, give the seeded sets' dynamic dims from
	// other data (the --calib samples). Without either, the seeded sets
	// use representative shapes (numerics.VerifyDims).
	DataShapes map[string][]int64
	// MaxMemory bounds one seeded input set (0: numerics.DefaultMaxMemory,
	// negative: none); SessionMaxMemory bounds the verification sessions'
	// planned memory (0: none).
	MaxMemory        int64
	SessionMaxMemory int64
	// Seed for generated inputs (0 means a fixed default).
	Seed uint64
	// FoldMaxBytes caps the size of a tensor constant folding may create
	// (default 1 MiB, and never more than 2x the node's constant inputs).
	FoldMaxBytes int64
	// FoldGrow lets folding produce results larger than its constant inputs
	// (up to FoldMaxBytes), e.g. to materialize ConstantOfShape weights.
	FoldGrow bool
	// MaxRounds bounds the fixed-point loop (default MaxRounds).
	MaxRounds int
	// FreezeInitializers drops graph inputs that have an initializer
	// (IR < 4 files list every weight as an input, which makes it
	// overridable and so not a constant). The optimized model then no
	// longer accepts those inputs.
	FreezeInitializers bool
	// NCHWcBlock, 8 or 16, turns on layout-nchwc (O3, --target ort-cpu):
	// ONNX Runtime's blocked CPU layout for that block size, which must be
	// the block size of the CPU that runs the model (8 AVX2, 16 AVX-512F).
	// 0 leaves it off.
	NCHWcBlock int
	// Explain names passes whose rewrite rules record, per candidate node,
	// why they did not fire (PassStat.Misses).
	Explain []string
}

// PassStat aggregates the runs of one pass.
type PassStat struct {
	Pass         string `json:"pass"`
	Level        string `json:"level"`
	Runs         int    `json:"runs"`
	Changed      int    `json:"changed"`
	NodesRemoved int    `json:"nodes_removed"`
	NodesAdded   int    `json:"nodes_added"`
	ParamsDelta  int64  `json:"params_delta"`
	BytesDelta   int64  `json:"bytes_delta"`
	// FLOPsDelta is the change of the cost model's FLOPs estimate
	// (graph.Cost); unknown parts of the graph count 0.
	FLOPsDelta int64         `json:"flops_delta"`
	Time       time.Duration `json:"time_ns"`
	RolledBack int           `json:"rolled_back"`
	Notes      []string      `json:"notes,omitempty"`
	// Misses (for the passes in Options.Explain) lists, from the pass's
	// last run, each candidate node it did not rewrite and why.
	Misses []Miss `json:"misses,omitempty"`
}

// Rollback records a pass run that was undone.
type Rollback struct {
	Pass   string `json:"pass"`
	Round  int    `json:"round"`
	Reason string `json:"reason"`
	// Output names the graph output that differed, for numeric failures.
	Output string `json:"output,omitempty"`
	// Node names the node a panicking pass was rewriting, when known.
	Node string `json:"node,omitempty"`
	// Inputs are the input shapes of the numeric check that failed, one
	// "name=DIMS[, name=DIMS]" per input set (numeric failures only).
	Inputs []string `json:"inputs,omitempty"`
}

// Summary describes a model for the before/after report.
type Summary struct {
	Nodes  int   `json:"nodes"`
	Params int64 `json:"params"`
	Bytes  int64 `json:"bytes"`
	// FLOPs and PeakActivationBytes come from the cost model (graph.Cost);
	// values whose shapes are not static count 0.
	FLOPs               int64          `json:"flops"`
	PeakActivationBytes int64          `json:"peak_activation_bytes"`
	Ops                 map[string]int `json:"ops"`
}

// Report is what Optimize did. Rollbacks lists the pass runs that were
// undone (an error, a panic, a structural or numeric check failed): the
// returned model is what the other passes made without them, and it passed
// the final check; the caller decides whether that is acceptable (optictl
// optimize writes it with a warning, or with --strict writes nothing and
// exits 3).
type Report struct {
	Level     string      `json:"level"`
	Target    string      `json:"target"`
	Passes    []*PassStat `json:"passes"`
	Rollbacks []Rollback  `json:"rollbacks,omitempty"`
	Rounds    int         `json:"rounds"`
	Converged bool        `json:"converged"`
	Before    Summary     `json:"before"`
	After     Summary     `json:"after"`
	// Numeric says how the final model's outputs were checked: "outputs
	// match on interp (N seeded input sets (their shapes), ...)", or "numeric
	// verification skipped: <reason>", or "off".
	Numeric string `json:"numeric"`
	// NumericMode says when outputs were compared: "off", "final" (the
	// final model only; it matched), "each-pass" (after every pass that
	// changed something), or "each-pass (replayed: ...)" when the final
	// check failed or could not run and the pipeline was replayed from the
	// original with per-pass checks to find and roll back the culprit.
	NumericMode string `json:"numeric_mode"`
	// NumericSkips lists passes whose result could not be run by any
	// verification backend (checked structurally only; per-pass mode only).
	NumericSkips []string      `json:"numeric_skips,omitempty"`
	Time         time.Duration `json:"time_ns"`
}

// VerificationError is returned when the final model fails a check; the
// optimized model must then not be written.
type VerificationError struct {
	Pass   string // the pass after which the check first fails ("" if unknown)
	Output string // the output that differed ("" for structural failures)
	Err    error
	// numeric is set for numeric failures (a mismatch, or a final model
	// that fails to run).
	numeric bool
}

func (e *VerificationError) Error() string {
	s := "passes: verification failed"
	if e.Pass != "" {
		s += " after pass " + e.Pass
	}
	if e.Output != "" {
		s += fmt.Sprintf(" (output %q)", e.Output)
	}
	return s + ": " + e.Err.Error()
}
func (e *VerificationError) Unwrap() error { return e.Err }

// ResolvePasses returns the passes Options select, in run order, split into
// the fixed-point loop and the final passes.
func ResolvePasses(opts Options) (loop, final []*Pass, err error) {
	if err := Validate(); err != nil {
		return nil, nil, err
	}
	target := opts.Target
	if target == "" {
		target = TargetGeneric
	}
	if target != TargetGeneric && target != TargetORTCPU {
		return nil, nil, fmt.Errorf("passes: unknown target %q (valid: %s, %s)", target, TargetGeneric, TargetORTCPU)
	}
	unknown := func(n string) error { return &UnknownPassError{Name: n, Valid: Names()} }
	disabled := map[string]bool{}
	for _, d := range opts.Disable {
		if _, ok := Lookup(d); !ok {
			return nil, nil, unknown(d)
		}
		disabled[d] = true
	}
	for _, d := range append(slices.Clone(opts.DumpAfter), opts.Explain...) {
		if _, ok := Lookup(d); !ok {
			return nil, nil, unknown(d)
		}
	}
	if err := checkExplainers(opts.Explain); err != nil {
		return nil, nil, err
	}
	finalSet := map[string]bool{}
	for _, s := range pipeline {
		if s.Final {
			finalSet[s.Pass] = true
		}
	}
	if len(opts.Passes) > 0 {
		seen := map[string]bool{}
		var add func(name string, stack []string) error
		add = func(name string, stack []string) error {
			p, ok := Lookup(name)
			if !ok {
				return unknown(name)
			}
			if seen[name] {
				return nil
			}
			seen[name] = true
			for _, r := range p.Requires {
				if err := add(r, append(stack, name)); err != nil {
					return err
				}
			}
			if disabled[name] {
				return nil
			}
			if finalSet[name] {
				final = append(final, p)
			} else {
				loop = append(loop, p)
			}
			return nil
		}
		for _, n := range opts.Passes {
			if err := add(n, nil); err != nil {
				return nil, nil, err
			}
		}
		return loop, final, nil
	}
	for _, s := range pipeline {
		p, _ := Lookup(s.Pass)
		if p.Level > opts.Level || disabled[s.Pass] || !p.forTarget(target) {
			continue
		}
		if s.Final {
			final = append(final, p)
		} else {
			loop = append(loop, p)
		}
	}
	return loop, final, nil
}

// Optimize rewrites a copy of m and returns it with a report. m itself is
// not modified. On a *VerificationError the returned model is nil.
//
// With opts.Verify, numeric equivalence is checked on the final model
// (reference outputs of the original are computed once, before any pass
// runs, so that the original's verification session is gone before the
// passes allocate new weights). If that check fails, or the final model
// cannot be run while the original can, the whole pipeline is replayed from
// m with a numeric check after every pass that changed something: a pass
// that breaks the outputs is then rolled back and reported by name, exactly
// as with opts.VerifyEachPass. Passes are deterministic, so the replay
// reaches the same models up to the first broken pass.
func Optimize(m *graph.Model, opts Options) (*graph.Model, *Report, error) {
	start := time.Now()
	if m == nil || m.Graph == nil {
		return nil, nil, errors.New("passes: no model")
	}
	loop, final, err := ResolvePasses(opts)
	if err != nil {
		return nil, nil, err
	}
	if opts.Target == "" {
		opts.Target = TargetGeneric
	}
	if opts.Backend == "" {
		opts.Backend = "interp"
	}
	opts.Tolerance = opts.Tolerance.OrDefault()
	if opts.MaxRounds <= 0 {
		opts.MaxRounds = MaxRounds
	}
	if err := m.Verify(); err != nil {
		return nil, nil, fmt.Errorf("passes: the input model fails verification: %w", err)
	}
	if !opts.Verify {
		return optimize(m, opts, loop, final, nil, false, start)
	}
	// One final checker for both attempts: its reference outputs are
	// computed once.
	fck := newChecker(nil, &opts, opts.Seed+1)
	fck.extra = opts.Inputs
	if opts.VerifyEachPass {
		out, rep, err := optimize(m, opts, loop, final, fck, true, start)
		if rep != nil {
			rep.NumericMode = "each-pass"
		}
		return out, rep, err
	}
	out, rep, err := optimize(m, opts, loop, final, fck, false, start)
	var why string
	var ve *VerificationError
	switch {
	case errors.As(err, &ve) && ve.numeric:
		why = "the final model failed the numeric check: " + ve.Err.Error()
	case err != nil:
		return out, rep, err
	case fck.finalSkip != "" && !fck.origUnrunnable && fck.inputErr == nil:
		// (When no inputs can be made or the original runs nowhere, the
		// per-pass checks could not run either.)
		why = "no backend could run the final model: " + fck.finalSkip
	default:
		rep.NumericMode = "final"
		return out, rep, nil
	}
	out, rep2, err := optimize(m, opts, loop, final, fck, true, start)
	if rep2 != nil {
		rep2.NumericMode = "each-pass (replayed: " + why + ")"
	}
	return out, rep2, err
}

// optimize runs the pipeline once. fck (nil when verification is off)
// checks the final model; eachPass adds a numeric check after every pass
// that changed something (on the seed, not the final checker's seed+1).
func optimize(m *graph.Model, opts Options, loop, final []*Pass, fck *checker, eachPass bool, start time.Time) (*graph.Model, *Report, error) {
	work := m.Clone()
	if opts.FreezeInitializers {
		work.Graph.Inputs = work.Graph.RealInputs()
		if work.IRVersion < 4 {
			work.IRVersion = 4 // initializers need not be inputs from IR 4 on
		}
	}
	if err := applyShapes(work, opts.Shapes); err != nil {
		return nil, nil, err
	}
	orig := work.Clone()
	// The cost model counts dynamic dims as the --data inputs have them,
	// else 1.
	costDims := map[string][]int64{}
	for name, t := range opts.Inputs {
		costDims[name] = t.Shape
	}
	rep := &Report{Level: opts.Level.String(), Target: opts.Target}
	if len(opts.Passes) > 0 {
		rep.Level = "custom"
	}
	rep.Before = summarize(work, costDims)
	stats := map[string]*PassStat{}
	for _, p := range append(append([]*Pass{}, loop...), final...) {
		st := &PassStat{Pass: p.Name, Level: p.Level.String()}
		stats[p.Name] = st
		rep.Passes = append(rep.Passes, st)
	}
	var ck *checker
	if fck == nil {
		rep.Numeric, rep.NumericMode = "off", "off"
	} else {
		// Reference outputs first, while only the original weights are
		// live: the sessions that compute them are garbage before the
		// passes write new weights.
		if fck.orig == nil {
			fck.orig = orig
		}
		fck.prepare()
		// Seeded inputs over --max-memory are refused, not skipped.
		var se *numerics.SizeError
		if errors.As(fck.inputErr, &se) {
			return nil, nil, fmt.Errorf("passes: cannot verify the model: %w", se)
		}
		if eachPass {
			ck = newChecker(orig, &opts, opts.Seed)
			ck.prepare()
		}
	}
	dump := map[string]bool{}
	for _, d := range opts.DumpAfter {
		dump[d] = true
	}
	var history []snapshot
	lastChanged := "" // the last pass that changed the model
	skipped := map[string]bool{}
	curFlops := rep.Before.FLOPs
	run := func(p *Pass, round int) bool {
		st := stats[p.Name]
		st.Runs++
		before := work.Clone()
		beforeNodes := nodeSet(work.Graph)
		bp, bb := paramsBytes(work)
		ctx := &Context{Model: work, Options: &opts, Shapes: inputShapes(work), pass: p, explain: slices.Contains(opts.Explain, p.Name)}
		t0 := time.Now()
		changed, err := safeRun(p, ctx)
		st.Time += time.Since(t0)
		st.Notes = appendNotes(st.Notes, ctx.notes)
		if ctx.explain {
			st.Misses = ctx.misses
		}
		rollback := func(reason, output, node string) bool {
			work = before
			st.RolledBack++
			rep.Rollbacks = append(rep.Rollbacks, Rollback{Pass: p.Name, Round: round, Reason: reason, Output: output, Node: node})
			return false
		}
		if err != nil {
			node := ""
			var pe *PanicError
			if errors.As(err, &pe) {
				node = pe.Node
			}
			return rollback(err.Error(), "", node)
		}
		if !changed {
			return false
		}
		if err := work.Verify(); err != nil {
			return rollback(err.Error(), "", "")
		}
		if err := sameIO(orig.Graph, work.Graph); err != nil {
			return rollback(err.Error(), "", "")
		}
		if ck != nil {
			skip, out, err := ck.check(work, false)
			if err != nil {
				rollback(err.Error(), out, "")
				rep.Rollbacks[len(rep.Rollbacks)-1].Inputs = ck.inputShapes()
				return false
			}
			if skip != "" && !ck.origUnrunnable && !skipped[p.Name] {
				skipped[p.Name] = true
				rep.NumericSkips = append(rep.NumericSkips, p.Name+": "+skip)
			}
		}
		st.Changed++
		after := nodeSet(work.Graph)
		for n := range beforeNodes {
			if !after[n] {
				st.NodesRemoved++
			}
		}
		for n := range after {
			if !beforeNodes[n] {
				st.NodesAdded++
			}
		}
		ap, ab := paramsBytes(work)
		st.ParamsDelta += ap - bp
		st.BytesDelta += ab - bb
		nf := flops(work, costDims)
		st.FLOPsDelta += nf - curFlops
		curFlops = nf
		lastChanged = p.Name
		if eachPass {
			// Snapshots (kept for naming the pass on a final failure) hold
			// the weights passes replace; the final-only mode needs none.
			history = append(history, snapshot{pass: p.Name, model: work.Clone()})
		}
		if dump[p.Name] && opts.Dump != nil {
			fmt.Fprintf(opts.Dump, "=== after %s (round %d) ===\n%s", p.Name, round, work.Format())
		}
		return true
	}
	for round := 1; round <= opts.MaxRounds; round++ {
		rep.Rounds = round
		any := false
		for _, p := range loop {
			if run(p, round) {
				any = true
			}
		}
		if !any {
			rep.Converged = true
			break
		}
	}
	for _, p := range final {
		run(p, rep.Rounds)
	}
	rep.After = summarize(work, costDims)
	// Final check: structure, IO, and numerics on a second seed plus the
	// user's data, independent of the per-pass checks.
	if err := work.Verify(); err != nil {
		return nil, rep, &VerificationError{Pass: lastChanged, Err: err}
	}
	if err := sameIO(orig.Graph, work.Graph); err != nil {
		return nil, rep, &VerificationError{Pass: lastChanged, Err: err}
	}
	if fck != nil {
		skip, out, err := fck.check(work, true)
		fck.finalSkip = skip
		if err != nil {
			// Name the first pass after which the check fails.
			pass := ""
			for _, h := range history {
				if _, _, e := fck.check(h.model, true); e != nil {
					pass = h.pass
					break
				}
			}
			rep.Time = time.Since(start)
			return nil, rep, &VerificationError{Pass: pass, Output: out, Err: err, numeric: true}
		}
		switch {
		case skip != "":
			rep.Numeric = "numeric verification skipped: " + skip
		default:
			rep.Numeric = fmt.Sprintf("outputs match on %s (%s%s, atol %g, rtol %g)", fck.usedBackend, fck.describe(), dataNote(opts.Inputs), opts.Tolerance.ATol, opts.Tolerance.RTol)
		}
	}
	rep.Time = time.Since(start)
	return work, rep, nil
}

// inputShapes describes the checker's input sets: "x=1x3x64x96, y=2" each.
func (ck *checker) inputShapes() []string {
	var out []string
	for _, in := range ck.inputs {
		names := make([]string, 0, len(in))
		for name := range in {
			names = append(names, name)
		}
		sort.Strings(names)
		var parts []string
		for _, name := range names {
			dims := make([]string, len(in[name].Shape))
			for i, d := range in[name].Shape {
				dims[i] = strconv.FormatInt(d, 10)
			}
			parts = append(parts, name+"="+strings.Join(dims, "x"))
		}
		out = append(out, strings.Join(parts, ", "))
	}
	return out
}

type snapshot struct {
	pass  string
	model *graph.Model
}

func dataNote(in map[string]*runtime.Tensor) string {
	if len(in) == 0 {
		return ""
	}
	return " + --data"
}

func appendNotes(a, b []string) []string {
	for _, s := range b {
		if !slices.Contains(a, s) {
			a = append(a, s)
		}
	}
	return a
}

// PanicError is a panic recovered from a pass.
type PanicError struct {
	Pass  string
	Node  string
	Value any
	Stack string
}

func (e *PanicError) Error() string {
	s := fmt.Sprintf("passes: pass %s panicked", e.Pass)
	if e.Node != "" {
		s += " at node " + e.Node
	}
	return fmt.Sprintf("%s: %v", s, e.Value)
}

func safeRun(p *Pass, c *Context) (changed bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			pe := &PanicError{Pass: p.Name, Value: r, Stack: string(debug.Stack())}
			if c.node != nil {
				pe.Node = c.node.String()
			}
			changed, err = false, pe
		}
	}()
	changed, err = p.Run(c)
	if err != nil {
		err = fmt.Errorf("passes: pass %s: %w", p.Name, err)
	}
	return changed, err
}

func nodeSet(g *graph.Graph) map[*graph.Node]bool {
	s := make(map[*graph.Node]bool, len(g.Nodes))
	for _, n := range g.Nodes {
		s[n] = true
	}
	return s
}

// paramsBytes sums the elements and bytes of every constant: initializers
// and Constant nodes, subgraphs included.
func paramsBytes(m *graph.Model) (params, bytes int64) {
	_ = m.Graph.Walk(func(g *graph.Graph) error {
		for _, t := range g.Initializers {
			params += t.Len()
			bytes += t.Bytes()
		}
		for _, n := range g.Nodes {
			if n.Is("Constant") {
				if t := n.AttrTensor("value"); t != nil {
					params += t.Len()
					bytes += t.Bytes()
				}
			}
		}
		return nil
	})
	return params, bytes
}

func summarize(m *graph.Model, dims map[string][]int64) Summary {
	s := Summary{Ops: map[string]int{}}
	_ = m.Graph.Walk(func(g *graph.Graph) error {
		s.Nodes += len(g.Nodes)
		for _, n := range g.Nodes {
			op := n.OpType
			if !n.IsDefaultDomain() {
				op = n.Domain + "." + op
			}
			s.Ops[op]++
		}
		return nil
	})
	s.Params, s.Bytes = paramsBytes(m)
	if c, err := graph.Cost(costView(m, dims)); err == nil {
		s.FLOPs, s.PeakActivationBytes = c.FLOPs, c.PeakActivationBytes
	}
	return s
}

// flops is the cost model's FLOPs estimate (0 when it fails).
func flops(m *graph.Model, dims map[string][]int64) int64 {
	c, err := graph.Cost(costView(m, dims))
	if err != nil {
		return 0
	}
	return c.FLOPs
}

// costView is m with the dynamic dims of graph inputs set as in dims, or to
// 1 (as for the seeded verification inputs), so the cost model can count
// FLOPs; m itself is unchanged.
func costView(m *graph.Model, dims map[string][]int64) *graph.Model {
	var dyn bool
	for _, v := range m.Graph.RealInputs() {
		if _, ok := v.Shape.Static(); v.HasShape && !ok {
			dyn = true
		}
	}
	if !dyn {
		return m
	}
	c := m.Clone()
	for _, v := range c.Graph.RealInputs() {
		given := dims[v.Name]
		for i, d := range v.Shape {
			if !d.Known() {
				v.Shape[i] = graph.FixedDim(1)
				if len(given) == len(v.Shape) {
					v.Shape[i] = graph.FixedDim(given[i])
				}
			}
		}
	}
	// Value infos computed for the symbolic dims would contradict.
	c.Graph.ValueInfo = nil
	return c
}

// sameIO checks the graph inputs and outputs kept their names, order and
// element types.
func sameIO(a, b *graph.Graph) error {
	check := func(what string, x, y []*graph.ValueInfo) error {
		if len(x) != len(y) {
			return fmt.Errorf("passes: graph %ss changed: %d before, %d after", what, len(x), len(y))
		}
		for i := range x {
			if x[i].Name != y[i].Name || x[i].DType != y[i].DType {
				return fmt.Errorf("passes: graph %s %d changed: %s %s became %s %s", what, i, x[i].Name, x[i].TypeString(), y[i].Name, y[i].TypeString())
			}
		}
		return nil
	}
	if err := check("input", a.Inputs, b.Inputs); err != nil {
		return err
	}
	return check("output", a.Outputs, b.Outputs)
}

// applyShapes fixes the dims of graph inputs.
func applyShapes(m *graph.Model, shapes map[string][]int64) error {
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		dims := shapes[name]
		var v *graph.ValueInfo
		for _, in := range m.Graph.RealInputs() {
			if in.Name == name {
				v = in
			}
		}
		if v == nil {
			var valid []string
			for _, in := range m.Graph.RealInputs() {
				valid = append(valid, in.Name)
			}
			return fmt.Errorf("passes: --shape names %q, which is not a graph input (inputs: %v)", name, valid)
		}
		for _, d := range dims {
			if d < 0 {
				return fmt.Errorf("passes: --shape %s: negative dimension %d", name, d)
			}
		}
		if _, err := graph.NumElements(dims); err != nil {
			return fmt.Errorf("passes: --shape %s: %w", name, err)
		}
		if v.HasShape {
			if len(v.Shape) != len(dims) {
				return fmt.Errorf("passes: --shape %s: rank %d, the model says %s", name, len(dims), v.Shape)
			}
			for i, d := range v.Shape {
				if d.Known() && d.Size != dims[i] {
					return fmt.Errorf("passes: --shape %s: dim %d is %d, the model fixes it to %d", name, i, dims[i], d.Size)
				}
			}
		}
		v.Shape = graph.ShapeOf(dims)
		v.HasShape = true
	}
	return nil
}

// inputShapes lists the fully static shapes of the graph inputs.
func inputShapes(m *graph.Model) map[string][]int64 {
	out := map[string][]int64{}
	for _, v := range m.Graph.RealInputs() {
		if v.HasShape {
			if s, ok := v.Shape.Static(); ok {
				out[v.Name] = s
			}
		}
	}
	return out
}
