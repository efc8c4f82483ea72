package interp

// LSTM, GRU and RNN (ONNX opsets 7-22), float32.
//
// X*W^T for all time steps is computed before the time loop; each step then
// adds H*R^T, applies the fused gate math in one pass over the hidden units
// and writes Y in place. Every buffer is session scratch: a warmed-up run
// allocates nothing.

import (
	"fmt"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

type rnnKind int

const (
	kindRNN rnnKind = iota
	kindGRU
	kindLSTM
)

func init() {
	Register("", "LSTM", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return buildRNN(n, bc, kindLSTM) })
	Register("", "GRU", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return buildRNN(n, bc, kindGRU) })
	Register("", "RNN", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return buildRNN(n, bc, kindRNN) })
}

type rnnSpec struct {
	kind        rnnKind
	gates       int
	hidden      int // 0: from R's shape
	dirs        int
	reverse     bool // single direction, reverse
	layout      int
	clip        float32
	hasClip     bool
	acts        []seqAct // per direction: LSTM f,g,h; GRU f,g; RNN f
	nact        int
	lbr         bool
	inputForget bool
	// wConst: W is a constant, so a padded copy made once stays valid.
	wConst  bool
	wPacked []float32
	wPackKp int
}

func buildRNN(n *graph.Node, bc *BuildContext, kind rnnKind) (Kernel, error) {
	s := &rnnSpec{kind: kind}
	var defaults []string
	switch kind {
	case kindLSTM:
		s.gates, defaults = 4, []string{"Sigmoid", "Tanh", "Tanh"}
	case kindGRU:
		s.gates, defaults = 3, []string{"Sigmoid", "Tanh"}
	default:
		s.gates, defaults = 1, []string{"Tanh"}
	}
	s.nact = len(defaults)
	switch d := n.AttrString("direction", "forward"); d {
	case "forward":
		s.dirs = 1
	case "reverse":
		s.dirs, s.reverse = 1, true
	case "bidirectional":
		s.dirs = 2
	default:
		return nil, fmt.Errorf("bad direction %q", d)
	}
	s.hidden = int(n.AttrInt("hidden_size", 0))
	if s.hidden < 0 {
		return nil, fmt.Errorf("bad hidden_size %d", s.hidden)
	}
	s.layout = int(n.AttrInt("layout", 0))
	if s.layout != 0 && s.layout != 1 {
		return nil, fmt.Errorf("bad layout %d", s.layout)
	}
	if a := n.Attr("clip"); a != nil {
		s.clip, s.hasClip = a.F, true
		if !(s.clip > 0) {
			return nil, fmt.Errorf("clip must be positive, got %v", s.clip)
		}
	}
	var names [][]byte
	if a := n.Attr("activations"); a != nil {
		names = a.Strings
	}
	acts, err := seqParseActs(names, n.AttrFloats("activation_alpha"), n.AttrFloats("activation_beta"), defaults, s.dirs)
	if err != nil {
		return nil, err
	}
	s.acts = acts
	s.lbr = n.AttrInt("linear_before_reset", 0) != 0
	s.inputForget = n.AttrInt("input_forget", 0) != 0
	if bc.NumInputs() < 3 || !bc.HasInput(0) || !bc.HasInput(1) || !bc.HasInput(2) {
		return nil, fmt.Errorf("needs inputs X, W and R")
	}
	s.wConst = bc.Const(1) != nil
	return s.run, nil
}

// rnnDims are the sizes of one run.
type rnnDims struct {
	seq, batch, in, hid, gh int
}

func (s *rnnSpec) check(c *Call) (rnnDims, error) {
	var d rnnDims
	x, w, r := c.In[0], c.In[1], c.In[2]
	for i := 0; i < 3; i++ {
		t := c.In[i]
		if t == nil {
			return d, fmt.Errorf("input %d is missing", i)
		}
		if t.DType != graph.Float {
			return d, unsupportedf("input %d: dtype %s is not supported (float32 only)", i, t.DType)
		}
		if len(t.Shape) != 3 {
			return d, fmt.Errorf("input %d: want rank 3, got shape %v", i, t.Shape)
		}
	}
	if s.layout == 0 {
		d.seq, d.batch = int(x.Shape[0]), int(x.Shape[1])
	} else {
		d.batch, d.seq = int(x.Shape[0]), int(x.Shape[1])
	}
	d.in = int(x.Shape[2])
	d.hid = s.hidden
	if d.hid == 0 {
		d.hid = int(r.Shape[2])
	}
	d.gh = s.gates * d.hid
	if d.hid <= 0 || int64(d.seq)*int64(d.batch)*int64(d.gh) > 1<<30 || int64(d.gh)*int64(max(d.in, d.hid)) > 1<<30 {
		return d, fmt.Errorf("sizes out of range: seq %d, batch %d, hidden %d, input %d", d.seq, d.batch, d.hid, d.in)
	}
	if int(w.Shape[0]) != s.dirs || int(w.Shape[1]) != d.gh || int(w.Shape[2]) != d.in {
		return d, fmt.Errorf("W: want shape [%d,%d,%d], got %v", s.dirs, d.gh, d.in, w.Shape)
	}
	if int(r.Shape[0]) != s.dirs || int(r.Shape[1]) != d.gh || int(r.Shape[2]) != d.hid {
		return d, fmt.Errorf("R: want shape [%d,%d,%d], got %v", s.dirs, d.gh, d.hid, r.Shape)
	}
	if len(c.In) > 3 {
		if err := seqWantShape(c.In[3], "B", s.dirs, 2*d.gh, -1); err != nil {
			return d, err
		}
	}
	if len(c.In) > 4 && c.In[4] != nil {
		sl := c.In[4]
		if sl.DType != graph.Int32 || len(sl.Shape) != 1 || int(sl.Shape[0]) != d.batch {
			return d, fmt.Errorf("sequence_lens: want int32 [%d], got %s%v", d.batch, sl.DType, sl.Shape)
		}
		for b, v := range sl.Int32s() {
			if v < 0 || int(v) > d.seq {
				return d, fmt.Errorf("sequence_lens[%d] = %d is outside [0, %d]", b, v, d.seq)
			}
		}
	}
	h0, h1 := s.dirs, d.batch
	if s.layout == 1 {
		h0, h1 = d.batch, s.dirs
	}
	if len(c.In) > 5 {
		if err := seqWantShape(c.In[5], "initial_h", h0, h1, d.hid); err != nil {
			return d, err
		}
	}
	if s.kind == kindLSTM {
		if len(c.In) > 6 {
			if err := seqWantShape(c.In[6], "initial_c", h0, h1, d.hid); err != nil {
				return d, err
			}
		}
		if len(c.In) > 7 {
			if err := seqWantShape(c.In[7], "P", s.dirs, 3*d.hid, -1); err != nil {
				return d, err
			}
		}
	}
	return d, nil
}

// seqWantShape checks an optional float32 input against [a, b] (c < 0) or
// [a, b, c].
func seqWantShape(t *runtime.Tensor, name string, a, b, c int) error {
	if t == nil {
		return nil
	}
	if t.DType != graph.Float {
		return fmt.Errorf("%s: dtype %s, want float32", name, t.DType)
	}
	ok := false
	if c < 0 {
		ok = len(t.Shape) == 2 && int(t.Shape[0]) == a && int(t.Shape[1]) == b
	} else {
		ok = len(t.Shape) == 3 && int(t.Shape[0]) == a && int(t.Shape[1]) == b && int(t.Shape[2]) == c
	}
	if !ok {
		if c < 0 {
			return fmt.Errorf("%s: want shape [%d,%d], got %v", name, a, b, t.Shape)
		}
		return fmt.Errorf("%s: want shape [%d,%d,%d], got %v", name, a, b, c, t.Shape)
	}
	return nil
}

func (s *rnnSpec) run(c *Call) error {
	d, err := s.check(c)
	if err != nil {
		return err
	}
	seq, batch, in, hid, gh := d.seq, d.batch, d.in, d.hid, d.gh
	dirs := s.dirs
	// Outputs.
	var y, yh, yc []float32
	if c.HasOutput(0) {
		shape := []int64{int64(seq), int64(dirs), int64(batch), int64(hid)}
		if s.layout == 1 {
			shape = []int64{int64(batch), int64(seq), int64(dirs), int64(hid)}
		}
		t, err := c.Out(0, graph.Float, shape)
		if err != nil {
			return err
		}
		y = t.Float32s()
	}
	hshape := []int64{int64(dirs), int64(batch), int64(hid)}
	if s.layout == 1 {
		hshape = []int64{int64(batch), int64(dirs), int64(hid)}
	}
	if c.HasOutput(1) {
		t, err := c.Out(1, graph.Float, hshape)
		if err != nil {
			return err
		}
		yh = t.Float32s()
	}
	if s.kind == kindLSTM && c.HasOutput(2) {
		t, err := c.Out(2, graph.Float, hshape)
		if err != nil {
			return err
		}
		yc = t.Float32s()
	}
	x := c.In[0].Float32s()
	wAll, rAll := c.In[1].Float32s(), c.In[2].Float32s()
	in3 := func(i int) []float32 {
		if i < len(c.In) && c.In[i] != nil {
			return c.In[i].Float32s()
		}
		return nil
	}
	bAll, h0All := in3(3), in3(5)
	var seqLens []int32
	if len(c.In) > 4 && c.In[4] != nil {
		seqLens = c.In[4].Int32s()
	}
	var c0All, pAll []float32
	if s.kind == kindLSTM {
		c0All, pAll = in3(6), in3(7)
	}
	// Scratch: 0 xw [seq*batch*gh], 1 h [batch*hid], 2 cell [batch*hid],
	// 3 gates [gh], 4 bias [gh], 5 rbias for GRU h gate [hid], 6 tmp [hid].
	xw := c.ScratchF32(0, seq*batch*gh)
	h := c.ScratchF32(1, batch*hid)
	cell := c.ScratchF32(2, batch*hid)
	g := c.ScratchF32(3, gh)
	bias := c.ScratchF32(4, gh)
	rbh := c.ScratchF32(5, hid)
	tmp := c.ScratchF32(6, hid)
	xIdx := func(t, b int) int {
		if s.layout == 0 {
			return (t*batch + b) * in
		}
		return (b*seq + t) * in
	}
	yIdx := func(t, dir, b int) int {
		if s.layout == 0 {
			return ((t*dirs+dir)*batch + b) * hid
		}
		return ((b*seq+t)*dirs + dir) * hid
	}
	hIdx := func(dir, b int) int {
		if s.layout == 0 {
			return (dir*batch + b) * hid
		}
		return (b*dirs + dir) * hid
	}
	for dir := 0; dir < dirs; dir++ {
		w := wAll[dir*gh*in : (dir+1)*gh*in]
		r := rAll[dir*gh*hid : (dir+1)*gh*hid]
		acts := s.acts[dir*s.nact : (dir+1)*s.nact]
		// Bias: Wb + Rb, except the GRU h gate with linear_before_reset,
		// whose Rbh is applied inside the reset product.
		clear(bias)
		clear(rbh)
		if bAll != nil {
			wb := bAll[dir*2*gh : dir*2*gh+gh]
			rb := bAll[dir*2*gh+gh : (dir+1)*2*gh]
			for i := range bias {
				bias[i] = wb[i] + rb[i]
			}
			if s.kind == kindGRU && s.lbr {
				for i := 0; i < hid; i++ {
					bias[2*hid+i] = wb[2*hid+i]
					rbh[i] = rb[2*hid+i]
				}
			}
		}
		// X*W^T + bias for every step. With the SIMD kernel, an input size
		// that is not a multiple of 8 (4 features, say) is zero-padded so
		// the whole product stays on the fast path.
		wUse, kp := w, in
		var xp []float32
		if seqHasAVX2 && in%8 != 0 && seq*batch > 0 {
			kp = (in + 7) &^ 7
			wUse = s.padW(c, w, dir, gh, in, kp)
			xp = c.ScratchF32(8, kp)
			clear(xp[in:])
		}
		for t := 0; t < seq; t++ {
			for b := 0; b < batch; b++ {
				row := xw[(t*batch+b)*gh : (t*batch+b+1)*gh]
				copy(row, bias)
				xv := x[xIdx(t, b) : xIdx(t, b)+in]
				if xp != nil {
					copy(xp, xv)
					xv = xp
				}
				seqMatVecAdd(row, wUse, xv, kp, 0, gh)
			}
		}
		// Initial state.
		for b := 0; b < batch; b++ {
			hb := h[b*hid : (b+1)*hid]
			cb := cell[b*hid : (b+1)*hid]
			if h0All != nil {
				copy(hb, h0All[hIdx(dir, b):hIdx(dir, b)+hid])
			} else {
				clear(hb)
			}
			if c0All != nil {
				copy(cb, c0All[hIdx(dir, b):hIdx(dir, b)+hid])
			} else {
				clear(cb)
			}
		}
		var p []float32
		if pAll != nil {
			p = pAll[dir*3*hid : (dir+1)*3*hid]
		}
		rev := s.reverse || dir == 1
		for step := 0; step < seq; step++ {
			t := step
			if rev {
				t = seq - 1 - step
			}
			for b := 0; b < batch; b++ {
				if seqLens != nil && t >= int(seqLens[b]) {
					if y != nil {
						clear(y[yIdx(t, dir, b) : yIdx(t, dir, b)+hid])
					}
					continue
				}
				hb := h[b*hid : (b+1)*hid]
				copy(g, xw[(t*batch+b)*gh:(t*batch+b+1)*gh])
				switch s.kind {
				case kindLSTM:
					seqMatVecAdd(g, r, hb, hid, 0, gh)
					s.lstmCell(g, hb, cell[b*hid:(b+1)*hid], p, acts, hid)
				case kindGRU:
					// z and r gates see H*R^T; the h gate is handled by gruCell.
					seqMatVecAdd(g, r, hb, hid, 0, 2*hid)
					s.gruCell(g, hb, r[2*hid*hid:], rbh, tmp, acts, hid)
				default:
					seqMatVecAdd(g, r, hb, hid, 0, gh)
					if s.hasClip {
						seqClip(g, s.clip)
					}
					acts[0].apply(g)
					copy(hb, g)
				}
				if y != nil {
					copy(y[yIdx(t, dir, b):yIdx(t, dir, b)+hid], hb)
				}
			}
		}
		for b := 0; b < batch; b++ {
			if yh != nil {
				copy(yh[hIdx(dir, b):hIdx(dir, b)+hid], h[b*hid:(b+1)*hid])
			}
			if yc != nil {
				copy(yc[hIdx(dir, b):hIdx(dir, b)+hid], cell[b*hid:(b+1)*hid])
			}
		}
	}
	return nil
}

// padW returns direction dir's W [gh, in] with rows zero-padded to kp.
// A constant W is padded once per session (all directions at once).
func (s *rnnSpec) padW(c *Call, w []float32, dir, gh, in, kp int) []float32 {
	if s.wConst {
		if s.wPackKp != kp || len(s.wPacked) != s.dirs*gh*kp {
			all := c.In[1].Float32s()
			s.wPacked = make([]float32, s.dirs*gh*kp)
			for r := 0; r < s.dirs*gh; r++ {
				copy(s.wPacked[r*kp:r*kp+in], all[r*in:(r+1)*in])
			}
			s.wPackKp = kp
		}
		return s.wPacked[dir*gh*kp : (dir+1)*gh*kp]
	}
	wp := c.ScratchF32(7, gh*kp)
	for r := 0; r < gh; r++ {
		copy(wp[r*kp:r*kp+in], w[r*in:(r+1)*in])
		clear(wp[r*kp+in : (r+1)*kp])
	}
	return wp
}

func seqClip(x []float32, c float32) {
	for i, v := range x {
		x[i] = min(max(v, -c), c)
	}
}

// lstmCell applies the LSTM gate math (gate order i, o, f, c) to the
// pre-activations g, updating h and cell in place.
func (s *rnnSpec) lstmCell(g, h, cell, p []float32, acts []seqAct, hid int) {
	gi, gop, gf, gc := g[:hid], g[hid:2*hid], g[2*hid:3*hid], g[3*hid:4*hid]
	if p != nil {
		pi, pf := p[:hid], p[2*hid:3*hid]
		for j := range gi {
			gi[j] += pi[j] * cell[j]
			gf[j] += pf[j] * cell[j]
		}
	}
	if s.hasClip {
		seqClip(g, s.clip)
	}
	f, gg, hh := acts[0], acts[1], acts[2]
	if f.kind == actSigmoid && gg.kind == actTanh && hh.kind == actTanh && !s.inputForget && !s.hasClip && p == nil {
		// The common case: i, o, f are contiguous sigmoid gates.
		f.apply(g[:3*hid])
		gg.apply(gc)
		gc, gi, gf = gc[:hid], gi[:hid], gf[:hid]
		cell = cell[:hid]
		for j := range cell {
			cell[j] = gf[j]*cell[j] + gi[j]*gc[j]
		}
		copy(h, cell)
		hh.apply(h)
		h, gop = h[:hid], gop[:hid]
		for j := range h {
			h[j] *= gop[j]
		}
		return
	}
	f.apply(gi)
	if s.inputForget {
		for j := range gf {
			gf[j] = 1 - gi[j]
		}
	} else {
		f.apply(gf)
	}
	gg.apply(gc)
	for j := 0; j < hid; j++ {
		cell[j] = gf[j]*cell[j] + gi[j]*gc[j]
	}
	if p != nil {
		po := p[hid : 2*hid]
		for j := range gop {
			gop[j] += po[j] * cell[j]
		}
	}
	if s.hasClip {
		seqClip(gop, s.clip)
	}
	f.apply(gop)
	copy(h, cell)
	hh.apply(h)
	for j := range h {
		h[j] *= gop[j]
	}
}

// gruCell finishes a GRU step (gate order z, r, h): g holds X*W^T + biases
// for all gates and H*R^T for z and r. rh is the h-gate block of R.
func (s *rnnSpec) gruCell(g, h, rh, rbh, tmp []float32, acts []seqAct, hid int) {
	gz, gr, gh := g[:hid], g[hid:2*hid], g[2*hid:3*hid]
	if s.hasClip {
		seqClip(g[:2*hid], s.clip)
	}
	f, gg := acts[0], acts[1]
	f.apply(gz)
	f.apply(gr)
	if s.lbr {
		// gh += r (.) (H*Rh^T + Rbh)
		copy(tmp, rbh)
		seqMatVecAdd(tmp, rh, h, hid, 0, hid)
		for j := range gh {
			gh[j] += gr[j] * tmp[j]
		}
	} else {
		// gh += (r (.) H)*Rh^T
		for j := range tmp {
			tmp[j] = gr[j] * h[j]
		}
		seqMatVecAdd(gh, rh, tmp, hid, 0, hid)
	}
	if s.hasClip {
		seqClip(gh, s.clip)
	}
	gg.apply(gh)
	for j := range h {
		z := gz[j]
		h[j] = (1-z)*gh[j] + z*h[j]
	}
}
