package distill

import (
	"fmt"
	"math"
	"sync"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// trainer runs the training steps. A batch is split into parts (Options.
// Workers), each a gorgonia graph of the student for its share of the
// batch, run on its own goroutine; their gradients are combined in part
// order (weighted by part size), so the result depends on the number of
// parts but not on how many cores run them. Part 0's parameters are the
// master copy that Adam updates and that is written back; the others get
// a copy after every step.
type trainer struct {
	o      Options
	useKD  bool
	labels bool
	kinds  []string // loss per output ("" without KD)
	// temps, std and probs are each KD output's temperature, whether its
	// scores are z-scored and whether it is read through its Softmax's
	// input (OutputLoss).
	temps   []float64
	std     []bool
	probs   []bool
	classAt int // the output cross-entropy reads (labels), -1 if none
	batch   int
	parts   []*part
	adam    *adam
	// total is the number of optimizer steps of the whole run (the
	// cosine schedule's period).
	total int
}

// part is one share of the batch: its graph, machine and feed buffers.
type part struct {
	net     *Net
	vm      G.VM
	loss    *G.Node
	lossVal G.Value
	inBuf   [][]float32 // per input
	tgt     []*G.Node   // per output: the teacher's target (nil: no term)
	tgtBuf  [][]float32
	onehot  *G.Node
	ohBuf   []float32
	// kdConst is Σ p·log p ·T²/B over the part's class targets (added to
	// the reported loss so that it is the KL divergence, not the
	// cross-entropy).
	kdConst float64
}

// partSizes splits batch into n parts whose sizes differ by at most one.
func partSizes(batch, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = batch / n
		if i < batch%n {
			s[i]++
		}
	}
	return s
}

// newTrainer builds the parts of src. losses gives each output's loss
// (nil without KD).
func newTrainer(src *graph.Model, o Options, losses []OutputLoss, useKD, labels bool) (*trainer, error) {
	workers := max(o.Workers, 1)
	if workers > o.Batch {
		return nil, fmt.Errorf("distill: %d workers for a batch of %d: every worker needs at least one sample", workers, o.Batch)
	}
	t := &trainer{o: o, useKD: useKD, labels: labels, classAt: -1, batch: o.Batch, adam: &adam{lr: o.LR}}
	for _, l := range losses {
		t.kinds = append(t.kinds, l.Kind)
		t.temps = append(t.temps, l.Temperature)
		t.std = append(t.std, l.Standardized)
		t.probs = append(t.probs, l.FromProbabilities)
	}
	for i, sz := range partSizes(o.Batch, workers) {
		net, err := Build(src, sz)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			for j, out := range net.Outputs {
				if classOutput(out.Shape()) {
					t.classAt = j
					break
				}
			}
			if labels && t.classAt < 0 {
				return nil, fmt.Errorf("distill: labels given but the student has no [batch, classes] output")
			}
		}
		p, err := t.newPart(net)
		if err != nil {
			return nil, err
		}
		t.parts = append(t.parts, p)
	}
	return t, nil
}

// master is the net whose parameters Adam updates (and that is written
// back).
func (t *trainer) master() *Net { return t.parts[0].net }

// classOutput says whether an output shaped [batch, C] or [batch, C, 1, 1]
// (C >= 2) holds class scores.
func classOutput(shp tensor.Shape) bool {
	switch len(shp) {
	case 2:
		return shp[1] >= 2
	case 4:
		return shp[1] >= 2 && shp[2] == 1 && shp[3] == 1
	}
	return false
}

// rows reshapes x [B, ...] to [B, rest].
func rows(x *G.Node) (*G.Node, error) {
	shp := x.Shape()
	if len(shp) == 2 {
		return x, nil
	}
	return G.Reshape(x, tensor.Shape{shp[0], shp.TotalSize() / shp[0]})
}

func (t *trainer) newPart(net *Net) (p *part, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("distill: building the loss: %v", r)
		}
	}()
	p = &part{net: net}
	eg := net.G
	B := float32(net.Batch)
	for _, in := range net.Inputs {
		p.inBuf = append(p.inBuf, make([]float32, in.Shape().TotalSize()))
	}
	var terms []*G.Node
	for j, out := range net.Outputs {
		shp := out.Shape()
		p.tgt = append(p.tgt, nil)
		p.tgtBuf = append(p.tgtBuf, nil)
		if !t.useKD {
			continue
		}
		kind := t.kinds[j]
		tshape := shp
		if kind == LossKD || kind == LossCosine {
			tshape = tensor.Shape{shp[0], shp.TotalSize() / shp[0]}
		}
		buf := make([]float32, shp.TotalSize())
		tg := G.NewTensor(eg, tensor.Float32, len(tshape), G.WithShape(tshape...), G.WithName(fmt.Sprintf("teacher%d", j)))
		p.tgt[j], p.tgtBuf[j] = tg, buf
		var term *G.Node
		switch kind {
		case LossKD:
			// KL(p || q) · T², p = softmax(teacher/T) fed in, q = softmax(student/T);
			// with Standardize both are z-scored per sample first; a
			// Softmax output is read through the Softmax's input.
			src := out
			if t.probs[j] {
				src = net.Logits[j]
			}
			o2, err := rows(src)
			if err != nil {
				return nil, err
			}
			T := float32(t.temps[j])
			if t.std[j] {
				if o2, err = zscore(o2); err != nil {
					return nil, err
				}
			}
			scaled, err := G.Mul(o2, G.NewConstant(1/T))
			if err != nil {
				return nil, err
			}
			logq, err := logSoftmax(scaled)
			if err != nil {
				return nil, err
			}
			pl, err := G.HadamardProd(tg, logq)
			if err != nil {
				return nil, err
			}
			s, err := G.Sum(pl)
			if err != nil {
				return nil, err
			}
			w := -T * T / B
			if t.labels {
				w *= float32(t.o.Alpha)
			}
			if term, err = G.Mul(s, G.NewConstant(w)); err != nil {
				return nil, err
			}
		case LossCosine:
			// 1 - mean over the batch of cos(student, teacher); the
			// teacher rows are fed already normalized to unit length.
			o2, err := rows(out)
			if err != nil {
				return nil, err
			}
			dot, err := G.HadamardProd(o2, tg)
			if err != nil {
				return nil, err
			}
			if dot, err = G.Sum(dot, 1); err != nil {
				return nil, err
			}
			sq, err := G.Square(o2)
			if err != nil {
				return nil, err
			}
			n2, err := G.Sum(sq, 1)
			if err != nil {
				return nil, err
			}
			if n2, err = G.Add(n2, G.NewConstant(float32(1e-12))); err != nil {
				return nil, err
			}
			norm, err := G.Sqrt(n2)
			if err != nil {
				return nil, err
			}
			cos, err := G.HadamardDiv(dot, norm)
			if err != nil {
				return nil, err
			}
			mc, err := G.Mean(cos)
			if err != nil {
				return nil, err
			}
			if term, err = G.Sub(G.NewConstant(float32(1)), mc); err != nil {
				return nil, err
			}
		default: // LossMSE
			d, err := G.Sub(out, tg)
			if err != nil {
				return nil, err
			}
			sq, err := G.Square(d)
			if err != nil {
				return nil, err
			}
			if term, err = G.Mean(sq); err != nil {
				return nil, err
			}
		}
		terms = append(terms, term)
	}
	if t.labels {
		// cross-entropy on scores: a Softmax output's input
		src := net.Outputs[t.classAt]
		if net.Logits[t.classAt] != nil {
			src = net.Logits[t.classAt]
		}
		out, err := rows(src)
		if err != nil {
			return nil, err
		}
		if t.useKD && t.classAt < len(t.std) && t.std[t.classAt] {
			// Mixed with standardized KD: the cross-entropy reads the same
			// z-scored scores, so both terms act on one scale (on raw
			// logits thousands apart the cross-entropy's gradient would
			// drown the KD term's, which z-scoring divides by the spread).
			if out, err = zscore(out); err != nil {
				return nil, err
			}
		}
		shp := out.Shape()
		p.ohBuf = make([]float32, shp.TotalSize())
		p.onehot = G.NewTensor(eg, tensor.Float32, 2, G.WithShape(shp...), G.WithName("labels"))
		logp, err := logSoftmax(out)
		if err != nil {
			return nil, err
		}
		pl, err := G.HadamardProd(p.onehot, logp)
		if err != nil {
			return nil, err
		}
		s, err := G.Sum(pl)
		if err != nil {
			return nil, err
		}
		ce, err := G.Mul(s, G.NewConstant(-(1-float32(t.o.Alpha))/B))
		if err != nil {
			return nil, err
		}
		terms = append(terms, ce)
	}
	if len(terms) == 0 {
		return nil, fmt.Errorf("distill: nothing to train on: no teacher outputs and no labels")
	}
	loss := terms[0]
	for _, x := range terms[1:] {
		if loss, err = G.Add(loss, x); err != nil {
			return nil, err
		}
	}
	p.loss = loss
	G.Read(loss, &p.lossVal)
	params := make(G.Nodes, len(net.Params))
	for i, q := range net.Params {
		params[i] = q.Node
	}
	if _, err := G.Grad(loss, params...); err != nil {
		return nil, fmt.Errorf("distill: gradients: %w", err)
	}
	p.vm = G.NewTapeMachine(eg, G.BindDualValues(params...))
	return p, nil
}

// checkData refuses samples, teacher outputs or labels that do not fit
// the student before any training.
func (t *trainer) checkData(samples, teacher [][]*runtime.Tensor, labels []int) error {
	net := t.master()
	for i, s := range samples {
		if len(s) != len(net.Inputs) {
			return fmt.Errorf("distill: sample %d has %d inputs, the student %d", i, len(s), len(net.Inputs))
		}
		for k, x := range s {
			want := net.Inputs[k].Shape()
			per := want.TotalSize() / net.Batch
			if x.DType != graph.Float || x.Len() != per || (len(x.Shape) > 0 && x.Shape[0] != 1) {
				return fmt.Errorf("distill: sample %d input %q is %s%v, want float32 %v with batch 1", i, net.Inputs[k].Name(), x.DType, x.Shape, append([]int{1}, want[1:]...))
			}
		}
		if t.useKD {
			if len(teacher[i]) != len(net.Outputs) {
				return fmt.Errorf("distill: the teacher has %d outputs, the student %d", len(teacher[i]), len(net.Outputs))
			}
			for j, y := range teacher[i] {
				per := net.Outputs[j].Shape().TotalSize() / net.Batch
				if y.DType != graph.Float || y.Len() != per {
					return fmt.Errorf("distill: teacher output %q on sample %d is %s%v: the student's has %d float32 values per sample", net.OutputNames[j], i, y.DType, y.Shape, per)
				}
			}
		}
		if labels != nil {
			c := net.Outputs[t.classAt].Shape()[1]
			if labels[i] < 0 || labels[i] >= c {
				return fmt.Errorf("distill: label %d of sample %d is out of [0, %d)", labels[i], i, c)
			}
		}
	}
	return nil
}

// feed loads the samples idx into the part's graph inputs and targets.
func (t *trainer) feed(p *part, idx []int, samples, teacher [][]*runtime.Tensor, labels []int) error {
	B := p.net.Batch
	for k, in := range p.net.Inputs {
		buf := p.inBuf[k]
		per := len(buf) / B
		for b, i := range idx {
			copy(buf[b*per:(b+1)*per], samples[i][k].Float32s())
		}
		if err := G.Let(in, tensor.New(tensor.WithShape(in.Shape()...), tensor.WithBacking(buf))); err != nil {
			return fmt.Errorf("distill: %w", err)
		}
	}
	p.kdConst = 0
	for j, tg := range p.tgt {
		if tg == nil {
			continue
		}
		buf := p.tgtBuf[j]
		per := len(buf) / B
		for b, i := range idx {
			dst := buf[b*per : (b+1)*per]
			copy(dst, teacher[i][j].Float32s())
			switch t.kinds[j] {
			case LossKD:
				if t.probs[j] {
					logProbs(dst)
				}
				if t.std[j] {
					zscoreInPlace(dst)
				}
				T := t.temps[j]
				p.kdConst += softmaxT(dst, T) * T * T
			case LossCosine:
				unit(dst)
			}
		}
		if err := G.Let(tg, tensor.New(tensor.WithShape(tg.Shape()...), tensor.WithBacking(buf))); err != nil {
			return fmt.Errorf("distill: %w", err)
		}
	}
	if p.onehot != nil {
		c := len(p.ohBuf) / B
		clear(p.ohBuf)
		for b, i := range idx {
			p.ohBuf[b*c+labels[i]] = 1
		}
		if err := G.Let(p.onehot, tensor.New(tensor.WithShape(B, c), tensor.WithBacking(p.ohBuf))); err != nil {
			return fmt.Errorf("distill: %w", err)
		}
	}
	return nil
}

// unit scales v to unit length (a zero vector stays zero).
func unit(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return
	}
	k := 1 / math.Sqrt(s)
	for i, x := range v {
		v[i] = float32(float64(x) * k)
	}
}

// lr is the learning rate of optimizer step it (0-based).
func (t *trainer) lr(it int) float64 {
	if t.o.Schedule == ScheduleCosine && t.total > 0 {
		f := math.Min(float64(it)/float64(t.total), 1)
		return t.o.LR * 0.5 * (1 + math.Cos(math.Pi*f))
	}
	return t.o.LR
}

// step trains on the samples idx (one batch) and returns the batch loss.
func (t *trainer) step(idx []int, samples, teacher [][]*runtime.Tensor, labels []int) (float64, error) {
	loss, err := t.gradients(idx, samples, teacher, labels)
	if err != nil {
		return 0, err
	}
	t.adam.lr = t.lr(t.adam.st.Iter)
	if err := t.adam.step(t.master().Params); err != nil {
		return 0, err
	}
	for k, p := range t.parts {
		if k > 0 {
			for i, prm := range p.net.Params {
				copy(prm.Node.Value().Data().([]float32), t.master().Params[i].Node.Value().Data().([]float32))
			}
		}
		p.vm.Reset()
	}
	return loss, nil
}

// gradients runs the parts on their shares of idx and leaves the batch's
// gradient in the master's parameters (the other parts' are cleared); it
// returns the batch loss.
func (t *trainer) gradients(idx []int, samples, teacher [][]*runtime.Tensor, labels []int) (float64, error) {
	errs := make([]error, len(t.parts))
	run := func(k int, p *part, sub []int) {
		defer func() {
			if r := recover(); r != nil {
				errs[k] = fmt.Errorf("distill: training step: %v", r)
			}
		}()
		if err := t.feed(p, sub, samples, teacher, labels); err != nil {
			errs[k] = err
			return
		}
		if err := p.vm.RunAll(); err != nil {
			errs[k] = fmt.Errorf("distill: training step: %w", err)
		}
	}
	off := 0
	var wg sync.WaitGroup
	for k, p := range t.parts {
		sub := idx[off : off+p.net.Batch]
		off += p.net.Batch
		if k == len(t.parts)-1 {
			run(k, p, sub)
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); run(k, p, sub) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			for _, p := range t.parts {
				p.vm.Reset()
			}
			return 0, err
		}
	}
	// Combine: the batch gradient is the size-weighted mean of the
	// parts' (each a mean over its own samples), summed in part order.
	var loss float64
	for _, p := range t.parts {
		w := float64(p.net.Batch) / float64(t.batch)
		l := float64(p.lossVal.Data().(float32))
		kd := p.kdConst / float64(p.net.Batch)
		if t.labels {
			kd *= t.o.Alpha
		}
		loss += w * (l + kd)
	}
	if len(t.parts) > 1 {
		m := t.master()
		for i, prm := range m.Params {
			g0, err := gradOf(prm)
			if err != nil {
				return 0, err
			}
			w0 := float32(float64(m.Batch) / float64(t.batch))
			for k := range g0 {
				g0[k] *= w0
			}
			for _, p := range t.parts[1:] {
				g, err := gradOf(p.net.Params[i])
				if err != nil {
					return 0, err
				}
				w := float32(float64(p.net.Batch) / float64(t.batch))
				for k := range g0 {
					g0[k] += w * g[k]
				}
				clear(g)
			}
		}
	}
	return loss, nil
}

func gradOf(p *Param) ([]float32, error) {
	gv, err := p.Node.Grad()
	if err != nil {
		return nil, fmt.Errorf("distill: gradient of %q: %w", p.Name, err)
	}
	g, ok := gv.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("distill: gradient of %q is not float32", p.Name)
	}
	return g, nil
}

func (t *trainer) close() {
	for _, p := range t.parts {
		p.vm.Close()
	}
}

// zscore standardizes every row of x [B, C]: (x - mean) / sqrt(var + eps).
func zscore(x *G.Node) (*G.Node, error) {
	shp := x.Shape()
	mu, err := G.Mean(x, 1)
	if err != nil {
		return nil, err
	}
	if mu, err = G.Reshape(mu, tensor.Shape{shp[0], 1}); err != nil {
		return nil, err
	}
	c, err := G.BroadcastSub(x, mu, nil, []byte{1})
	if err != nil {
		return nil, err
	}
	sq, err := G.Square(c)
	if err != nil {
		return nil, err
	}
	v, err := G.Mean(sq, 1)
	if err != nil {
		return nil, err
	}
	if v, err = G.Add(v, G.NewConstant(float32(zscoreEps))); err != nil {
		return nil, err
	}
	sd, err := G.Sqrt(v)
	if err != nil {
		return nil, err
	}
	if sd, err = G.Reshape(sd, tensor.Shape{shp[0], 1}); err != nil {
		return nil, err
	}
	return G.BroadcastHadamardDiv(c, sd, nil, []byte{1})
}

const zscoreEps = 1e-6

// zscoreInPlace standardizes v as zscore does one row.
func zscoreInPlace(v []float32) {
	var mu float64
	for _, x := range v {
		mu += float64(x)
	}
	mu /= float64(len(v))
	var ss float64
	for _, x := range v {
		ss += (float64(x) - mu) * (float64(x) - mu)
	}
	sd := math.Sqrt(ss/float64(len(v)) + zscoreEps)
	for i, x := range v {
		v[i] = float32((float64(x) - mu) / sd)
	}
}
