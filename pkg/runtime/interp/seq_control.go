package interp

// Control flow: If, Loop, Scan. Subgraphs are compiled once at Open
// (bc.CompileSubgraph); a run only executes them. Values carried from one
// iteration to the next are copied into buffers the node owns (a subgraph's
// outputs are overwritten by its next execution), alternating between two
// sets so an iteration never writes the buffer it reads.

import (
	"fmt"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

func init() {
	Register("", "If", buildIf)
	Register("", "Loop", buildLoop)
	Register("", "Scan", buildScan)
}

// seqCopyInto makes dst a copy of src, reusing dst's storage.
func seqCopyInto(dst, src *runtime.Tensor) {
	dst.DType = src.DType
	dst.Shape = append(dst.Shape[:0], src.Shape...)
	if src.DType == graph.String {
		dst.Strings = append(dst.Strings[:0], src.Strings...)
		dst.Raw = nil
		return
	}
	dst.Strings = nil
	if cap(dst.Raw) < len(src.Raw) {
		dst.Raw = runtime.NewTensor(graph.Uint8, []int64{int64(len(src.Raw))}).Raw
	}
	dst.Raw = dst.Raw[:len(src.Raw)]
	copy(dst.Raw, src.Raw)
}

func seqScalarBool(t *runtime.Tensor, what string) (bool, error) {
	if t == nil {
		return false, fmt.Errorf("%s is missing", what)
	}
	if t.DType != graph.Bool || len(t.Raw) != 1 {
		return false, fmt.Errorf("%s must be a single bool, got %s%v", what, t.DType, t.Shape)
	}
	return t.Raw[0] != 0, nil
}

func buildIf(n *graph.Node, bc *BuildContext) (Kernel, error) {
	thenG, elseG := n.AttrGraph("then_branch"), n.AttrGraph("else_branch")
	if thenG == nil || elseG == nil {
		return nil, fmt.Errorf("If needs then_branch and else_branch graphs")
	}
	tp, err := bc.CompileSubgraph(thenG)
	if err != nil {
		return nil, fmt.Errorf("then_branch: %w", err)
	}
	ep, err := bc.CompileSubgraph(elseG)
	if err != nil {
		return nil, fmt.Errorf("else_branch: %w", err)
	}
	for _, p := range []*Program{tp, ep} {
		if p.NumInputs() != 0 {
			return nil, fmt.Errorf("branch %q takes %d inputs, want none", p.Graph().Name, p.NumInputs())
		}
		if p.NumOutputs() != len(n.Outputs) {
			return nil, fmt.Errorf("branch %q has %d outputs, the node %d", p.Graph().Name, p.NumOutputs(), len(n.Outputs))
		}
	}
	return func(c *Call) error {
		cond, err := seqScalarBool(c.In[0], "cond")
		if err != nil {
			return err
		}
		p := ep
		if cond {
			p = tp
		}
		outs, err := c.RunSubgraph(p, nil)
		if err != nil {
			return err
		}
		for i, o := range outs {
			c.SetOut(i, o)
		}
		return nil
	}, nil
}

// seqAccum collects the per-iteration values of one scan output.
type seqAccum struct {
	dt    graph.DType
	shape []int64
	raw   []byte
	strs  []string
	n     int
}

func (a *seqAccum) reset() { a.raw, a.strs, a.n = a.raw[:0], a.strs[:0], 0 }

func (a *seqAccum) add(t *runtime.Tensor, k int) error {
	if a.n == 0 {
		a.dt = t.DType
		a.shape = append(a.shape[:0], t.Shape...)
	} else if t.DType != a.dt || !seqSameShape(t.Shape, a.shape) {
		return fmt.Errorf("scan output %d changes from %s%v to %s%v between iterations", k, a.dt, a.shape, t.DType, t.Shape)
	}
	a.raw = append(a.raw, t.Raw...)
	a.strs = append(a.strs, t.Strings...)
	a.n++
	return nil
}

func seqSameShape(a, b []int64) bool {
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

// seqBodyOutInfo gives dtype/shape of a body output for empty results.
func seqBodyOutInfo(g *graph.Graph, i int) (graph.DType, []int64) {
	if i >= len(g.Outputs) {
		return graph.Float, nil
	}
	v := g.Outputs[i]
	var shape []int64
	if v.HasShape {
		for _, d := range v.Shape {
			s := d.Size
			if s < 0 {
				s = 0
			}
			shape = append(shape, s)
		}
	}
	dt := v.DType
	if dt == graph.Undefined {
		dt = graph.Float
	}
	return dt, shape
}

func buildLoop(n *graph.Node, bc *BuildContext) (Kernel, error) {
	body := n.AttrGraph("body")
	if body == nil {
		return nil, fmt.Errorf("Loop needs a body graph")
	}
	if len(n.Inputs) < 2 {
		return nil, fmt.Errorf("Loop needs inputs M and cond (either may be empty)")
	}
	nCarried := len(n.Inputs) - 2
	prog, err := bc.CompileSubgraph(body)
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	if prog.NumInputs() != 2+nCarried {
		return nil, fmt.Errorf("body takes %d inputs, want %d (iteration, cond, %d carried)", prog.NumInputs(), 2+nCarried, nCarried)
	}
	nScan := prog.NumOutputs() - 1 - nCarried
	if nScan < 0 {
		return nil, fmt.Errorf("body has %d outputs, want at least %d", prog.NumOutputs(), 1+nCarried)
	}
	if len(n.Outputs) > nCarried+nScan {
		return nil, fmt.Errorf("node has %d outputs, the body gives %d", len(n.Outputs), nCarried+nScan)
	}
	iterT := runtime.NewTensor(graph.Int64, nil)
	condT := runtime.NewTensor(graph.Bool, nil)
	bufs := [2][]*runtime.Tensor{make([]*runtime.Tensor, nCarried), make([]*runtime.Tensor, nCarried)}
	for k := range bufs {
		for j := range bufs[k] {
			bufs[k][j] = &runtime.Tensor{}
		}
	}
	accs := make([]seqAccum, nScan)
	bodyIn := make([]*runtime.Tensor, 2+nCarried)
	return func(c *Call) error {
		maxIter := int64(-1)
		if m := c.In[0]; m != nil {
			if m.DType != graph.Int64 || m.Len() != 1 {
				return fmt.Errorf("M must be a single int64, got %s%v", m.DType, m.Shape)
			}
			maxIter = m.Int64s()[0]
		}
		cond := true
		if c.In[1] != nil {
			v, err := seqScalarBool(c.In[1], "cond")
			if err != nil {
				return err
			}
			cond = v
		}
		for j := 0; j < nCarried; j++ {
			if c.In[2+j] == nil {
				return fmt.Errorf("loop-carried input %d is missing", j)
			}
			bodyIn[2+j] = c.In[2+j]
		}
		for k := range accs {
			accs[k].reset()
		}
		iters := iterT.Int64s()
		var it int64
		for ; cond && (maxIter < 0 || it < maxIter); it++ {
			if err := c.Ctx.Err(); err != nil {
				return err
			}
			iters[0] = it
			condT.Raw[0] = 1
			bodyIn[0], bodyIn[1] = iterT, condT
			outs, err := c.RunSubgraph(prog, bodyIn)
			if err != nil {
				return err
			}
			if cond, err = seqScalarBool(outs[0], "body output cond"); err != nil {
				return err
			}
			next := bufs[it&1]
			for j := 0; j < nCarried; j++ {
				seqCopyInto(next[j], outs[1+j])
				bodyIn[2+j] = next[j]
			}
			var held int64
			for k := 0; k < nScan; k++ {
				if err := accs[k].add(outs[1+nCarried+k], k); err != nil {
					return err
				}
				held += int64(len(accs[k].raw)) + 16*int64(len(accs[k].strs))
			}
			if limit := seqLoopLimit(c); held > limit {
				return fmt.Errorf("scan outputs after %d iterations take %d bytes, over the bound of %d bytes", it+1, held, limit)
			}
		}
		for j := 0; j < nCarried && j < len(c.Node.Outputs); j++ {
			if c.HasOutput(j) {
				c.SetOut(j, bodyIn[2+j])
			}
		}
		for k := 0; k < nScan; k++ {
			i := nCarried + k
			if i >= len(c.Node.Outputs) || !c.HasOutput(i) {
				continue
			}
			a := &accs[k]
			dt, shape := a.dt, a.shape
			if a.n == 0 {
				dt, shape = seqBodyOutInfo(body, 1+nCarried+k)
			}
			full := append([]int64{int64(a.n)}, shape...)
			t, err := c.Out(i, dt, full)
			if err != nil {
				return err
			}
			if dt == graph.String {
				copy(t.Strings, a.strs)
			} else if len(t.Raw) != len(a.raw) {
				return fmt.Errorf("scan output %d: %d bytes for %s%v", k, len(a.raw), dt, full)
			} else {
				copy(t.Raw, a.raw)
			}
		}
		return nil
	}, nil
}

// seqLoopLimit bounds what a Loop may accumulate: the session's memory
// bound when set, else 16 GiB.
func seqLoopLimit(c *Call) int64 {
	if m := c.prog.shared.maxMemory; m > 0 {
		return m
	}
	return 16 << 30
}

// seqAxisGeom returns (outer, dim, inner bytes) of a tensor around axis.
func seqAxisGeom(t *runtime.Tensor, axis int) (int, int, int) {
	outer, inner := 1, t.DType.Size()
	for i, d := range t.Shape {
		switch {
		case i < axis:
			outer *= int(d)
		case i > axis:
			inner *= int(d)
		}
	}
	return outer, int(t.Shape[axis]), inner
}

// seqTake sets dst to the slice idx along axis of src (shape without
// axis): a view for axis 0, else a copy into *own (reused storage).
func seqTake(dst *runtime.Tensor, own *[]byte, src *runtime.Tensor, axis, idx int) {
	outer, dim, inner := seqAxisGeom(src, axis)
	dst.DType = src.DType
	dst.Shape = append(dst.Shape[:0], src.Shape[:axis]...)
	dst.Shape = append(dst.Shape, src.Shape[axis+1:]...)
	if axis == 0 {
		// A contiguous block: view it.
		dst.Raw = src.Raw[idx*inner : (idx+1)*inner]
		return
	}
	nb := outer * inner
	if cap(*own) < nb || *own == nil {
		*own = runtime.NewTensor(graph.Uint8, []int64{int64(nb)}).Raw
	}
	dst.Raw = (*own)[:nb]
	for o := 0; o < outer; o++ {
		copy(dst.Raw[o*inner:(o+1)*inner], src.Raw[(o*dim+idx)*inner:(o*dim+idx+1)*inner])
	}
}

// seqPut writes src as the slice idx along axis of dst.
func seqPut(dst, src *runtime.Tensor, axis, idx int) {
	outer, dim, inner := seqAxisGeom(dst, axis)
	for o := 0; o < outer; o++ {
		copy(dst.Raw[(o*dim+idx)*inner:(o*dim+idx+1)*inner], src.Raw[o*inner:(o+1)*inner])
	}
}

type scanSpec struct {
	body              *graph.Graph
	prog              *Program
	opset8            bool
	nState, nIn, nOut int
	inAxes, inRev     []int
	outAxes           []int
	outRev            []bool
	inRevB            []bool
	bufs              [2][]*runtime.Tensor
	slices            []*runtime.Tensor
	sliceOwn          [][]byte
	bodyIn            []*runtime.Tensor
}

func buildScan(n *graph.Node, bc *BuildContext) (Kernel, error) {
	s := &scanSpec{body: n.AttrGraph("body"), opset8: bc.Opset > 0 && bc.Opset < 9}
	if s.body == nil {
		return nil, fmt.Errorf("Scan needs a body graph")
	}
	m := int(n.AttrInt("num_scan_inputs", -1))
	if m <= 0 {
		return nil, fmt.Errorf("Scan needs num_scan_inputs >= 1")
	}
	nIn := len(n.Inputs)
	if s.opset8 {
		nIn-- // sequence_lens first
	}
	s.nIn = m
	s.nState = nIn - m
	if s.nState < 0 {
		return nil, fmt.Errorf("num_scan_inputs %d exceeds the %d inputs", m, nIn)
	}
	prog, err := bc.CompileSubgraph(s.body)
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	s.prog = prog
	if prog.NumInputs() != s.nState+m {
		return nil, fmt.Errorf("body takes %d inputs, want %d", prog.NumInputs(), s.nState+m)
	}
	s.nOut = prog.NumOutputs() - s.nState
	if s.nOut < 0 {
		return nil, fmt.Errorf("body has %d outputs, want at least %d states", prog.NumOutputs(), s.nState)
	}
	if len(n.Outputs) > s.nState+s.nOut {
		return nil, fmt.Errorf("node has %d outputs, the body gives %d", len(n.Outputs), s.nState+s.nOut)
	}
	ints := func(name string, k int) ([]int64, error) {
		v := n.AttrInts(name)
		if v == nil {
			return make([]int64, k), nil
		}
		if len(v) != k {
			return nil, fmt.Errorf("%s has %d values, want %d", name, len(v), k)
		}
		return v, nil
	}
	dirName := "scan_input_directions"
	if s.opset8 {
		dirName = "directions"
	}
	inDirs, err := ints(dirName, m)
	if err != nil {
		return nil, err
	}
	inAxes, err := ints("scan_input_axes", m)
	if err != nil {
		return nil, err
	}
	outDirs, err := ints("scan_output_directions", s.nOut)
	if err != nil {
		return nil, err
	}
	outAxes, err := ints("scan_output_axes", s.nOut)
	if err != nil {
		return nil, err
	}
	if s.opset8 {
		for i := range inAxes {
			inAxes[i] = 0 // after removing the batch dim
		}
	}
	for _, v := range inDirs {
		s.inRevB = append(s.inRevB, v != 0)
	}
	for _, v := range inAxes {
		s.inAxes = append(s.inAxes, int(v))
	}
	for _, v := range outDirs {
		s.outRev = append(s.outRev, v != 0)
	}
	for _, v := range outAxes {
		s.outAxes = append(s.outAxes, int(v))
	}
	for k := range s.bufs {
		s.bufs[k] = make([]*runtime.Tensor, s.nState)
		for j := range s.bufs[k] {
			s.bufs[k][j] = &runtime.Tensor{}
		}
	}
	s.slices = make([]*runtime.Tensor, m)
	s.sliceOwn = make([][]byte, m)
	for j := range s.slices {
		s.slices[j] = &runtime.Tensor{}
	}
	s.bodyIn = make([]*runtime.Tensor, s.nState+m)
	if s.opset8 {
		return s.run8, nil
	}
	return s.run9, nil
}

// loop runs the body over seqLen steps. states are the initial states;
// scans the scan inputs (already without a batch dim). put receives each
// iteration's scan outputs with their position; final states are returned.
func (s *scanSpec) loop(c *Call, states, scans []*runtime.Tensor, axes []int, seqLen int, put func(t int, outs []*runtime.Tensor) error) ([]*runtime.Tensor, error) {
	copy(s.bodyIn, states)
	for it := 0; it < seqLen; it++ {
		if err := c.Ctx.Err(); err != nil {
			return nil, err
		}
		for j := 0; j < s.nIn; j++ {
			idx := it
			if s.inRevB[j] {
				idx = seqLen - 1 - it
			}
			seqTake(s.slices[j], &s.sliceOwn[j], scans[j], axes[j], idx)
			s.bodyIn[s.nState+j] = s.slices[j]
		}
		outs, err := c.RunSubgraph(s.prog, s.bodyIn)
		if err != nil {
			return nil, err
		}
		next := s.bufs[it&1]
		for j := 0; j < s.nState; j++ {
			seqCopyInto(next[j], outs[j])
			s.bodyIn[j] = next[j]
		}
		if err := put(it, outs[s.nState:]); err != nil {
			return nil, err
		}
	}
	return s.bodyIn[:s.nState], nil
}

func (s *scanSpec) run9(c *Call) error {
	states := c.In[:s.nState]
	scans := c.In[s.nState : s.nState+s.nIn]
	axes := make([]int, s.nIn) // small; Scan is not on the hot path of the models we target
	seqLen := -1
	for j, t := range scans {
		if t == nil {
			return fmt.Errorf("scan input %d is missing", j)
		}
		a := s.inAxes[j]
		if a < 0 {
			a += len(t.Shape)
		}
		if a < 0 || a >= len(t.Shape) {
			return fmt.Errorf("scan input %d: axis %d out of range for shape %v", j, s.inAxes[j], t.Shape)
		}
		axes[j] = a
		if l := int(t.Shape[a]); seqLen < 0 {
			seqLen = l
		} else if l != seqLen {
			return fmt.Errorf("scan input %d has %d steps along axis %d, input 0 has %d", j, l, a, seqLen)
		}
	}
	for j, t := range states {
		if t == nil {
			return fmt.Errorf("initial state %d is missing", j)
		}
	}
	outT := make([]*runtime.Tensor, s.nOut)
	oaxes := make([]int, s.nOut)
	final, err := s.loop(c, states, scans, axes, seqLen, func(t int, outs []*runtime.Tensor) error {
		for k, o := range outs {
			if outT[k] == nil {
				a := s.outAxes[k]
				if a < 0 {
					a += len(o.Shape) + 1
				}
				if a < 0 || a > len(o.Shape) {
					return fmt.Errorf("scan output %d: axis %d out of range", k, s.outAxes[k])
				}
				oaxes[k] = a
				shape := append(append(append([]int64{}, o.Shape[:a]...), int64(seqLen)), o.Shape[a:]...)
				if s.nState+k >= len(c.Node.Outputs) || !c.HasOutput(s.nState+k) {
					outT[k] = runtime.NewTensor(o.DType, shape)
				} else {
					ot, err := c.Out(s.nState+k, o.DType, shape)
					if err != nil {
						return err
					}
					outT[k] = ot
				}
			}
			if o.DType != outT[k].DType || o.Len()*seqLen != outT[k].Len() || o.DType == graph.String {
				return fmt.Errorf("scan output %d: %s%v does not fit %s%v", k, o.DType, o.Shape, outT[k].DType, outT[k].Shape)
			}
			idx := t
			if s.outRev[k] {
				idx = seqLen - 1 - t
			}
			seqPut(outT[k], o, oaxes[k], idx)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for j := 0; j < s.nState && j < len(c.Node.Outputs); j++ {
		if c.HasOutput(j) {
			c.SetOut(j, final[j])
		}
	}
	for k := 0; k < s.nOut; k++ {
		i := s.nState + k
		if i >= len(c.Node.Outputs) || !c.HasOutput(i) {
			continue
		}
		if outT[k] == nil { // zero steps
			dt, shape := seqBodyOutInfo(s.body, s.nState+k)
			a := s.outAxes[k]
			if a < 0 {
				a += len(shape) + 1
			}
			a = max(0, min(a, len(shape)))
			full := append(append(append([]int64{}, shape[:a]...), 0), shape[a:]...)
			if _, err := c.Out(i, dt, full); err != nil {
				return err
			}
		}
	}
	return nil
}

// run8 is Scan-8: a leading batch axis on states, inputs and outputs, and
// an optional sequence_lens input.
func (s *scanSpec) run8(c *Call) error {
	var lens []int64
	if sl := c.In[0]; sl != nil {
		if sl.DType != graph.Int32 && sl.DType != graph.Int64 {
			return fmt.Errorf("sequence_lens must be int32 or int64, got %s", sl.DType)
		}
		v, err := sl.AsFloat64()
		if err != nil {
			return err
		}
		for _, x := range v {
			lens = append(lens, int64(x))
		}
	}
	states := c.In[1 : 1+s.nState]
	scans := c.In[1+s.nState : 1+s.nState+s.nIn]
	batch, seqLen := -1, -1
	for j, t := range append(append([]*runtime.Tensor{}, states...), scans...) {
		if t == nil {
			return fmt.Errorf("input %d is missing", j+1)
		}
		min := 1
		if j >= s.nState {
			min = 2
		}
		if len(t.Shape) < min {
			return fmt.Errorf("input %d: shape %v lacks the batch/sequence axes", j+1, t.Shape)
		}
		if batch < 0 {
			batch = int(t.Shape[0])
		} else if int(t.Shape[0]) != batch {
			return fmt.Errorf("input %d: batch %d, want %d", j+1, t.Shape[0], batch)
		}
		if j >= s.nState {
			if seqLen < 0 {
				seqLen = int(t.Shape[1])
			} else if int(t.Shape[1]) != seqLen {
				return fmt.Errorf("input %d: %d steps, want %d", j+1, t.Shape[1], seqLen)
			}
		}
	}
	if lens != nil && len(lens) != batch {
		return fmt.Errorf("sequence_lens has %d values for batch %d", len(lens), batch)
	}
	stOut := make([]*runtime.Tensor, s.nState)
	for j, t := range states {
		if j < len(c.Node.Outputs) && c.HasOutput(j) {
			o, err := c.Out(j, t.DType, t.Shape)
			if err != nil {
				return err
			}
			stOut[j] = o
		} else {
			stOut[j] = runtime.NewTensor(t.DType, t.Shape)
		}
	}
	scOut := make([]*runtime.Tensor, s.nOut)
	bStates := make([]*runtime.Tensor, s.nState)
	bScans := make([]*runtime.Tensor, s.nIn)
	axes := make([]int, s.nIn)
	for b := 0; b < batch; b++ {
		for j, t := range states {
			bStates[j] = &runtime.Tensor{}
			seqTake(bStates[j], nil, t, 0, b)
		}
		for j, t := range scans {
			bScans[j] = &runtime.Tensor{}
			seqTake(bScans[j], nil, t, 0, b)
		}
		n := seqLen
		if lens != nil {
			n = int(lens[b])
			if n < 0 || n > seqLen {
				return fmt.Errorf("sequence_lens[%d] = %d is outside [0, %d]", b, n, seqLen)
			}
		}
		final, err := s.loop(c, bStates, bScans, axes, n, func(t int, outs []*runtime.Tensor) error {
			for k, o := range outs {
				if scOut[k] == nil {
					shape := append([]int64{int64(batch), int64(seqLen)}, o.Shape...)
					if i := s.nState + k; i < len(c.Node.Outputs) && c.HasOutput(i) {
						ot, err := c.OutZero(i, o.DType, shape)
						if err != nil {
							return err
						}
						scOut[k] = ot
					} else {
						scOut[k] = runtime.NewTensor(o.DType, shape)
					}
				}
				if o.DType != scOut[k].DType || o.Len()*seqLen*batch != scOut[k].Len() || o.DType == graph.String {
					return fmt.Errorf("scan output %d: %s%v does not fit %s%v", k, o.DType, o.Shape, scOut[k].DType, scOut[k].Shape)
				}
				idx := t
				if s.outRev[k] {
					idx = n - 1 - t
				}
				sz := len(o.Raw)
				copy(scOut[k].Raw[(b*seqLen+idx)*sz:], o.Raw)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for j := range final {
			seqPut(stOut[j], final[j], 0, b)
		}
	}
	for k := 0; k < s.nOut; k++ {
		if i := s.nState + k; i < len(c.Node.Outputs) && c.HasOutput(i) && scOut[k] == nil {
			dt, shape := seqBodyOutInfo(s.body, s.nState+k)
			if _, err := c.OutZero(i, dt, append([]int64{int64(max(batch, 0)), int64(max(seqLen, 0))}, shape...)); err != nil {
				return err
			}
		}
	}
	return nil
}
