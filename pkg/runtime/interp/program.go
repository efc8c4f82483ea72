package interp

import (
	"context"
	"fmt"
	goruntime "runtime"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Program is a compiled graph: the main graph of a session or a subgraph
// (If/Loop/Scan body) that reads values of its enclosing graph.
type Program struct {
	g       *graph.Graph
	model   *graph.Model
	parent  *Program
	shared  *shared
	slots   map[string]int // build-time only
	nslots  int
	consts  []constSlot
	inputs  []int // slots of graph inputs (in g.Inputs order, initializers excluded for top level)
	inNames []string
	outputs []int
	steps   []*step
	// imports copy outer values into this program's frame at Exec.
	imports []importSlot
	frame   []*runtime.Tensor
	outBuf  []*runtime.Tensor
	vinfo   map[string]*graph.ValueInfo
	// constOf maps slots holding constants (initializers, folded nodes,
	// constants imported from enclosing graphs); build-time only.
	constOf map[int]*runtime.Tensor
	// perf2NoFuse keeps perf2_fuse.go's fusions off (its own fallback
	// programs).
	perf2NoFuse bool
}

type constSlot struct {
	slot int
	t    *runtime.Tensor
}

type importSlot struct{ local, outer int }

type step struct {
	node *graph.Node
	kern Kernel
	in   []int // -1 for omitted inputs
	out  []int // -1 for omitted outputs
	call Call
}

// shared is per-session state common to a program and its subgraphs.
type shared struct {
	threads   int
	maxMemory int64
	allocated int64
	pool      *workerPool
}

// Call is what a Kernel sees.
type Call struct {
	Ctx  context.Context
	Node *graph.Node
	// In holds the node's inputs in order; nil for omitted optional inputs.
	In []*runtime.Tensor
	// outs are the tensors this node produced in the current run.
	outs []*runtime.Tensor
	// own are buffers this step owns and reuses across runs.
	own     []*runtime.Tensor
	scratch [][]uint64
	prog    *Program

	scratchHeaders []*runtime.Tensor
}

// NumOutputs is the number of output slots of the node.
func (c *Call) NumOutputs() int { return len(c.outs) }

// HasOutput reports whether output i is wanted (not omitted).
func (c *Call) HasOutput(i int) bool { return i < len(c.Node.Outputs) && c.Node.Outputs[i] != "" }

// Threads is the number of threads a kernel may use.
func (c *Call) Threads() int { return c.prog.shared.threads }

// Out returns this node's buffer for output i, resized to dtype and shape.
// Its contents are NOT zeroed (use OutZero); it is reused on later runs.
func (c *Call) Out(i int, dt graph.DType, shape []int64) (*runtime.Tensor, error) {
	if i < 0 || i >= len(c.own) {
		return nil, fmt.Errorf("interp: %s: output %d out of range", c.Node, i)
	}
	n, err := numElements(shape)
	if err != nil {
		return nil, fmt.Errorf("interp: %s output %d: %w", c.Node, i, err)
	}
	t := c.own[i]
	if t == nil {
		t = &runtime.Tensor{}
		c.own[i] = t
	}
	t.DType = dt
	t.Shape = append(t.Shape[:0], shape...)
	if dt == graph.String {
		if int64(cap(t.Strings)) < n {
			t.Strings = make([]string, n)
		}
		t.Strings = t.Strings[:n]
		t.Raw = nil
	} else {
		nb := dt.ByteSize(n)
		if int64(cap(t.Raw)) < nb {
			sh := c.prog.shared
			grow := nb - int64(cap(t.Raw))
			if sh.maxMemory > 0 && sh.allocated+grow > sh.maxMemory {
				return nil, fmt.Errorf("interp: %s output %d needs %d bytes: over the memory bound of %d bytes (--max-memory)", c.Node, i, nb, sh.maxMemory)
			}
			if nb > 1<<36 {
				return nil, fmt.Errorf("interp: %s output %d: %s%v is %d bytes, too large", c.Node, i, dt, append([]int64(nil), shape...), nb)
			}
			sh.allocated += grow
			words := make([]uint64, (nb+7)/8)
			t.Raw = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), len(words)*8)
		}
		t.Raw = t.Raw[:nb]
		t.Strings = nil
	}
	c.outs[i] = t
	return t, nil
}

// numElements is graph.NumElements without letting shape escape (so that
// kernels can pass shape literals to Out and Alias without allocating).
func numElements(shape []int64) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 || d != 0 && n > graph.MaxElements/d {
			return graph.NumElements(append([]int64(nil), shape...))
		}
		n *= d
	}
	return n, nil
}

// OutZero is Out with the data zeroed.
func (c *Call) OutZero(i int, dt graph.DType, shape []int64) (*runtime.Tensor, error) {
	t, err := c.Out(i, dt, shape)
	if err != nil {
		return nil, err
	}
	clear(t.Raw)
	clear(t.Strings)
	return t, nil
}

// SetOut makes output i an existing tensor (an input aliased by Reshape or
// Identity, a subgraph's result). The tensor must not be modified later in
// this run.
func (c *Call) SetOut(i int, t *runtime.Tensor) { c.outs[i] = t }

// Alias sets output i to a view of src's data with another shape (same
// dtype, same element count), without copying. The header is reused across
// runs.
func (c *Call) Alias(i int, src *runtime.Tensor, shape []int64) error {
	n, err := numElements(shape)
	if err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	if int(n) != src.Len() {
		return fmt.Errorf("interp: %s: cannot view %d elements as shape %v", c.Node, src.Len(), append([]int64(nil), shape...))
	}
	h := c.aliasHeader(i)
	h.DType = src.DType
	h.Shape = append(h.Shape[:0], shape...)
	h.Raw = src.Raw
	h.Strings = src.Strings
	c.outs[i] = h
	return nil
}

// aliasHeaders are kept apart from owned buffers so aliasing never makes a
// later Out write into another node's data.
func (c *Call) aliasHeader(i int) *runtime.Tensor {
	k := len(c.own) + i
	for len(c.scratchHeaders) <= k {
		c.scratchHeaders = append(c.scratchHeaders, &runtime.Tensor{})
	}
	return c.scratchHeaders[k]
}

// ScratchF32 returns a reusable float32 scratch buffer k of at least n
// elements (contents undefined). It lives as long as the session.
func (c *Call) ScratchF32(k, n int) []float32 {
	for len(c.scratch) <= k {
		c.scratch = append(c.scratch, nil)
	}
	words := (n + 1) / 2
	if len(c.scratch[k]) < words {
		c.scratch[k] = make([]uint64, words)
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(c.scratch[k]))), n)
}

// Parallel runs fn over [0, n) split into contiguous chunks across the
// session's threads (inline when one thread or n is small).
func (c *Call) Parallel(n int, fn func(lo, hi int)) {
	c.prog.shared.pool.run(n, c.prog.shared.threads, fn)
}

// RunSubgraph executes a compiled subgraph with the given inputs (in its
// graph's input order), reading outer values from the current frame. The
// results are owned by the subgraph and overwritten by its next execution:
// a Loop must copy loop-carried values it keeps.
func (c *Call) RunSubgraph(p *Program, inputs []*runtime.Tensor) ([]*runtime.Tensor, error) {
	return p.exec(c.Ctx, c.prog.frame, inputs)
}

// SubgraphInputs and SubgraphOutputs describe a compiled subgraph.
func (p *Program) NumInputs() int      { return len(p.inputs) }
func (p *Program) NumOutputs() int     { return len(p.outputs) }
func (p *Program) Graph() *graph.Graph { return p.g }

func newProgram(m *graph.Model, g *graph.Graph, parent *Program, sh *shared) *Program {
	return &Program{g: g, model: m, parent: parent, shared: sh, slots: map[string]int{}, constOf: map[int]*runtime.Tensor{}}
}

func (p *Program) valueInfo(name string) *graph.ValueInfo {
	for q := p; q != nil; q = q.parent {
		if q.vinfo == nil {
			q.vinfo = q.g.ValueInfoMap()
		}
		if v, ok := q.vinfo[name]; ok {
			return v
		}
	}
	return nil
}

func (p *Program) newSlot(name string) int {
	s := p.nslots
	p.nslots++
	p.slots[name] = s
	return s
}

// resolve finds the slot of a name, importing it from enclosing programs.
func (p *Program) resolve(name string) (int, bool) {
	if s, ok := p.slots[name]; ok {
		return s, true
	}
	if p.parent == nil {
		return 0, false
	}
	outer, ok := p.parent.resolve(name)
	if !ok {
		return 0, false
	}
	s := p.newSlot(name)
	if c, ok := p.parent.constOf[outer]; ok {
		// An outer constant is a constant here too: no copy at run time,
		// and builders see it through BuildContext.Const.
		p.consts = append(p.consts, constSlot{s, c})
		p.constOf[s] = c
		return s, true
	}
	p.imports = append(p.imports, importSlot{local: s, outer: outer})
	return s, true
}

func (p *Program) compileChild(g *graph.Graph) (*Program, error) {
	child := newProgram(p.model, g, p, p.shared)
	if err := child.compile(false); err != nil {
		return nil, err
	}
	return child, nil
}

// compile assigns slots and builds kernels. top is true for the main graph,
// whose initializers may also be listed as inputs (then they are constants
// the caller cannot override, which is what ORT does too by default).
func (p *Program) compile(top bool) error {
	g := p.g
	inits := g.InitializerMap()
	for _, t := range g.Initializers {
		s := p.newSlot(t.Name)
		p.consts = append(p.consts, constSlot{s, runtime.FromGraphTensor(t)})
	}
	for _, v := range g.Inputs {
		if _, isInit := inits[v.Name]; isInit && top {
			continue
		}
		s := p.newSlot(v.Name)
		p.inputs = append(p.inputs, s)
		p.inNames = append(p.inNames, v.Name)
	}
	constOf := p.constOf
	for _, c := range p.consts {
		constOf[c.slot] = c.t
	}
	opset := func(domain string) int64 {
		if p.model == nil {
			return 0
		}
		return p.model.Opset(domain)
	}
	fz := newPerfFuser(p, opset, constOf)
	plan := perf2Plan(fz) // written-out GELU / LayerNorm (perf2_fuse.go)
	for idx, n := range g.Nodes {
		if fz.skip[n] {
			continue // fused into an earlier step
		}
		b, ok := lookup(n.Domain, n.OpType)
		if !ok {
			return &runtime.UnsupportedError{Op: n.OpType, Domain: n.Domain, Reason: fmt.Sprintf("interp: unsupported op %s", n)}
		}
		if fu := plan[idx]; fu != nil {
			n, b = fu.node, fu.build
		}
		if n.OpType == "Conv" || n.OpType == "FusedConv" {
			if fu := fz.fuseConv(idx); fu != nil {
				n, b = fu.node, nnConvBuilder(fu.act)
			}
		}
		st := &step{node: n, in: make([]int, len(n.Inputs)), out: make([]int, len(n.Outputs))}
		bc := &BuildContext{Opset: opset(n.Domain), Threads: p.shared.threads, prog: p, node: n, model: p.model, consts: make([]*runtime.Tensor, len(n.Inputs))}
		for i, in := range n.Inputs {
			if in == "" {
				st.in[i] = -1
				continue
			}
			s, ok := p.resolve(in)
			if !ok {
				return fmt.Errorf("interp: node %s input %d reads %q, which is not defined before it", n, i, in)
			}
			st.in[i] = s
			if c, ok := constOf[s]; ok {
				bc.consts[i] = c
			}
		}
		k, err := b(n, bc)
		if err != nil {
			return fmt.Errorf("interp: node %s: %w", n, withOp(err, n))
		}
		if n.IsDefaultDomain() && len(n.Inputs) == 2 {
			k = perfWrapBinary(n.OpType, k) // Add/Sub/Mul/Div per-channel fast path
		}
		st.kern = k
		for i, o := range n.Outputs {
			if o == "" {
				st.out[i] = -1
				continue
			}
			st.out[i] = p.newSlot(o)
		}
		st.call = Call{Node: n, In: make([]*runtime.Tensor, len(n.Inputs)), outs: make([]*runtime.Tensor, len(n.Outputs)), own: make([]*runtime.Tensor, len(n.Outputs)), prog: p}
		// Constant nodes, and deterministic nodes whose inputs are all
		// constants (weight reshuffles such as Slice/Concat/Transpose of
		// initializers, shape arithmetic on constants), run once here; their
		// outputs become constants and the node leaves the run-time schedule.
		if p.foldable(n, st, constOf) {
			c := &st.call
			c.Ctx = context.Background()
			for i, s := range st.in {
				if s >= 0 {
					c.In[i] = constOf[s]
				}
			}
			if err := runKernel(k, c); err != nil {
				if n.Is("Constant") {
					return err
				}
				// Leave it to run time, which reports the error in context.
			} else if outs := c.outs; allSet(outs, st.out) {
				for i, s := range st.out {
					if s >= 0 {
						constOf[s] = outs[i]
						p.consts = append(p.consts, constSlot{s, outs[i]})
					}
				}
				continue // no step at run time
			}
			clear(c.In)
			clear(c.outs)
		}
		p.steps = append(p.steps, st)
	}
	for _, v := range g.Outputs {
		s, ok := p.resolve(v.Name)
		if !ok {
			return fmt.Errorf("interp: graph output %q is not produced", v.Name)
		}
		p.outputs = append(p.outputs, s)
	}
	p.constOf = nil
	p.frame = make([]*runtime.Tensor, p.nslots)
	for _, c := range p.consts {
		p.frame[c.slot] = c.t
	}
	p.outBuf = make([]*runtime.Tensor, len(p.outputs))
	p.slots = nil
	return nil
}

// noFold lists deterministic-looking ops whose results must not be
// computed once at Open.
var noFold = map[string]bool{
	"RandomNormal": true, "RandomUniform": true, "RandomNormalLike": true, "RandomUniformLike": true,
	"Multinomial": true, "Bernoulli": true, "If": true, "Loop": true, "Scan": true,
}

// foldable reports whether node n (built as st) can run at Open: a
// default-domain op without subgraphs whose present inputs are constants.
func (p *Program) foldable(n *graph.Node, st *step, constOf map[int]*runtime.Tensor) bool {
	if n.Is("Constant") {
		return true
	}
	if !n.IsDefaultDomain() || noFold[n.OpType] || len(n.Subgraphs()) > 0 {
		return false
	}
	present := 0
	for _, s := range st.in {
		if s < 0 {
			continue
		}
		if _, ok := constOf[s]; !ok {
			return false
		}
		present++
	}
	return present > 0
}

// allSet reports whether every wanted output was produced.
func allSet(outs []*runtime.Tensor, slots []int) bool {
	for i, s := range slots {
		if s >= 0 && (i >= len(outs) || outs[i] == nil) {
			return false
		}
	}
	return true
}

// exec runs the program. outer is the enclosing program's frame (nil at top).
// A kernel panic (a bug, or an input a kernel failed to validate) is
// recovered here, once per execution rather than once per node, and
// reported as an error naming the node.
func (p *Program) exec(ctx context.Context, outer []*runtime.Tensor, inputs []*runtime.Tensor) (res []*runtime.Tensor, err error) {
	if len(inputs) != len(p.inputs) {
		return nil, fmt.Errorf("interp: graph %q takes %d inputs, got %d", p.g.Name, len(p.inputs), len(inputs))
	}
	f := p.frame
	for _, im := range p.imports {
		f[im.local] = outer[im.outer]
	}
	for i, s := range p.inputs {
		f[s] = inputs[i]
	}
	cur := -1
	defer func() {
		if r := recover(); r != nil {
			name := "?"
			if cur >= 0 && cur < len(p.steps) {
				name = p.steps[cur].node.String()
			}
			res, err = nil, fmt.Errorf("interp: node %s: internal error: %v", name, r)
		}
	}()
	for k, st := range p.steps {
		if k&63 == 0 && ctx.Err() != nil {
			return nil, fmt.Errorf("interp: %w", ctx.Err())
		}
		cur = k
		c := &st.call
		c.Ctx = ctx
		for i, s := range st.in {
			if s < 0 {
				c.In[i] = nil
			} else {
				c.In[i] = f[s]
			}
		}
		for i := range c.outs {
			c.outs[i] = nil
		}
		if err := st.kern(c); err != nil {
			return nil, kernelErr(c, err)
		}
		for i, s := range st.out {
			if s >= 0 {
				if c.outs[i] == nil {
					return nil, fmt.Errorf("interp: node %s produced no output %d", st.node, i)
				}
				f[s] = c.outs[i]
			}
		}
	}
	for i, s := range p.outputs {
		p.outBuf[i] = f[s]
	}
	return p.outBuf, nil
}

// kernelErr prefixes a kernel's error with the node unless it already
// carries the package prefix (errors from nested subgraphs do).
func kernelErr(c *Call, err error) error {
	err = withOp(err, c.Node)
	if strings.HasPrefix(err.Error(), "interp: ") {
		return err
	}
	return fmt.Errorf("interp: node %s: %w", c.Node, err)
}

// runKernel converts a kernel panic (a bug, or an input the kernel failed
// to validate) into an error naming the node, so one bad request never
// takes the process down.
func runKernel(k Kernel, c *Call) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("interp: node %s: internal error: %v", c.Node, r)
		}
	}()
	if err := k(c); err != nil {
		return kernelErr(c, err)
	}
	return nil
}

// unsupportedOps lists ops (incl. in subgraphs) without a kernel, and the
// first such node.
func unsupportedOps(g *graph.Graph) (list []string, first *graph.Node) {
	count := map[string]int{}
	_ = g.Walk(func(s *graph.Graph) error {
		for _, n := range s.Nodes {
			if !Supported(n.Domain, n.OpType) {
				if first == nil {
					first = n
				}
				k := n.OpType
				if !n.IsDefaultDomain() {
					k = n.Domain + "." + n.OpType
				}
				count[k]++
			}
		}
		return nil
	})
	var out []string
	for k, v := range count {
		out = append(out, fmt.Sprintf("%s (%d nodes)", k, v))
	}
	sort.Strings(out)
	return out, first
}

// workerPool runs Call.Parallel chunks on persistent workers: threads-1
// goroutines per session, started on first use (the caller runs a chunk
// too). A chunk goes to a worker only when one is idle (an unbuffered,
// non-blocking send); otherwise the caller runs it itself, so a Parallel
// nested in a chunk (a subgraph's kernel, say) can never deadlock. A panic
// in a chunk is re-raised in the caller, where exec turns it into an error
// naming the node. The workers reference only the queue, not the pool, and
// exit when the session is garbage (a cleanup closes the queue).
type workerPool struct {
	mu sync.Mutex
	q  *poolQueue
}

type poolQueue struct{ work chan poolTask }

// poolCall is one Parallel call: its chunks and the first panic.
type poolCall struct {
	wg       sync.WaitGroup
	mu       sync.Mutex
	panicked bool
	val      any
}

type poolTask struct {
	fn     func(lo, hi int)
	lo, hi int
	call   *poolCall
}

func (t poolTask) run() {
	defer func() {
		if r := recover(); r != nil {
			t.call.mu.Lock()
			if !t.call.panicked {
				t.call.panicked, t.call.val = true, r
			}
			t.call.mu.Unlock()
		}
		t.call.wg.Done()
	}()
	t.fn(t.lo, t.hi)
}

func (q *poolQueue) worker() {
	for {
		t, ok := <-q.work
		if !ok {
			return
		}
		t.run()
	}
}

// queue returns the pool's queue, starting its workers on first use.
func (wp *workerPool) queue(workers int) *poolQueue {
	wp.mu.Lock()
	defer wp.mu.Unlock()
	if wp.q == nil {
		q := &poolQueue{work: make(chan poolTask)}
		for i := 0; i < workers; i++ {
			go q.worker()
		}
		wp.q = q
		goruntime.AddCleanup(wp, func(q *poolQueue) { close(q.work) }, q)
	}
	return wp.q
}

// poolPersistent selects the persistent workers; off, each Parallel call
// starts goroutines (the earlier scheme, kept for A/B benchmarks).
var poolPersistent = true

func (wp *workerPool) run(n, threads int, fn func(lo, hi int)) {
	if threads <= 1 || n < 2 {
		fn(0, n)
		return
	}
	if !poolPersistent {
		wp.spawn(n, threads, fn)
		return
	}
	q := wp.queue(threads - 1)
	if threads > n {
		threads = n
	}
	call := &poolCall{}
	chunk := (n + threads - 1) / threads
	for lo := chunk; lo < n; lo += chunk {
		t := poolTask{fn: fn, lo: lo, hi: min(lo+chunk, n), call: call}
		call.wg.Add(1)
		select {
		case q.work <- t:
		default:
			t.run() // no idle worker
		}
	}
	first := poolTask{fn: fn, lo: 0, hi: min(chunk, n), call: call}
	call.wg.Add(1)
	first.run()
	call.wg.Wait()
	if call.panicked {
		panic(call.val)
	}
}

// spawn is run with one goroutine per chunk (poolPersistent off).
func (wp *workerPool) spawn(n, threads int, fn func(lo, hi int)) {
	if threads > n {
		threads = n
	}
	var wg sync.WaitGroup
	chunk := (n + threads - 1) / threads
	for lo := chunk; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(lo, hi)
	}
	fn(0, min(chunk, n))
	wg.Wait()
}
