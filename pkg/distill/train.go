package distill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Options configure Train.
type Options struct {
	Epochs      int
	Batch       int
	LR          float64
	Temperature float64
	// Alpha weighs the distillation term against the cross-entropy on
	// labels (loss = Alpha·KD + (1-Alpha)·CE); used only with labels.
	Alpha float64
	Seed  int64
	// Log, when set, gets one line per epoch.
	Log io.Writer
	// Val, when set, measures the student with the given weights (a model
	// with the current weights written back) before training and after
	// each epoch; its result is printed as "val top-1".
	Val func(m *graph.Model) (float64, error)
	// CheckpointDir, when set, gets a checkpoint after every epoch: the
	// student ONNX, the optimizer state and checkpoint.json (written last,
	// atomically), so an interrupted run leaves the last epoch usable.
	CheckpointDir string
	// Resume continues from CheckpointDir's checkpoint: its weights,
	// optimizer state and position in the seeded sample order, so the
	// result equals an uninterrupted run with the same options. The other
	// options (but Epochs) must be those of the checkpointed run.
	Resume bool
	// Meta is recorded in checkpoint.json (e.g. teacher and student).
	Meta map[string]string
	// Progress, when set, is called after every training step (from the
	// training goroutine; it must return quickly).
	Progress func(Progress)
}

// Progress is the state of an epoch after one training step.
type Progress struct {
	Epoch, Epochs int
	Step, Steps   int
	// Loss is the mean loss of the epoch's steps so far.
	Loss          float64
	SamplesPerSec float64
	Elapsed       time.Duration
}

// Epoch is what one epoch did.
type Epoch struct {
	Epoch int     `json:"epoch"`
	Loss  float64 `json:"loss"`
	// ValTop1 is nil without Options.Val.
	ValTop1       *float64 `json:"val_top1,omitempty"`
	SamplesPerSec float64  `json:"samples_per_sec"`
	Seconds       float64  `json:"seconds"`
}

// Result reports a training run.
type Result struct {
	ValBefore *float64 `json:"val_top1_before,omitempty"`
	Epochs    []Epoch  `json:"epochs"`
}

// IsClassOutput says whether an output shaped [batch, C] gets the
// classification losses (KL on softened logits, cross-entropy on labels);
// other outputs get MSE against the teacher.
func IsClassOutput(shape tensor.Shape) bool { return len(shape) == 2 && shape[1] >= 2 }

// TeacherOutputs runs the teacher on every sample and returns its outputs
// (cloned) per sample: the cache the training steps read.
func TeacherOutputs(ctx context.Context, s runtime.Session, samples [][]*runtime.Tensor) ([][]*runtime.Tensor, error) {
	out := make([][]*runtime.Tensor, len(samples))
	for i, in := range samples {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		res, err := s.Run(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("distill: teacher on sample %d: %w", i, err)
		}
		out[i] = make([]*runtime.Tensor, len(res))
		for j, t := range res {
			out[i][j] = t.Clone()
		}
	}
	return out, nil
}

// Train distills into student (modified in place: its weights are the
// trained ones on success; on error it is unchanged). samples are the
// student's inputs per sample (each input with a leading batch dim of 1);
// teacher holds the teacher's outputs per sample, in the student's output
// order (nil when Alpha is 0 with labels: labels-only training); labels
// (optional) are class indices per sample.
func Train(ctx context.Context, student *graph.Model, samples, teacher [][]*runtime.Tensor, labels []int, o Options) (*Result, error) {
	if o.Epochs < 0 || o.Batch < 1 || !(o.LR > 0) || !(o.Temperature > 0) || o.Alpha < 0 || o.Alpha > 1 {
		return nil, fmt.Errorf("distill: bad options: epochs %d, batch %d, lr %g, temperature %g, alpha %g (want epochs >= 0, batch >= 1, lr > 0, temperature > 0, alpha in [0,1])",
			o.Epochs, o.Batch, o.LR, o.Temperature, o.Alpha)
	}
	n := len(samples)
	if n < o.Batch {
		return nil, fmt.Errorf("distill: %d training samples, fewer than one batch of %d", n, o.Batch)
	}
	useKD := labels == nil || o.Alpha > 0
	if useKD && len(teacher) != n {
		return nil, fmt.Errorf("distill: %d teacher outputs for %d samples", len(teacher), n)
	}
	if labels != nil && len(labels) != n {
		return nil, fmt.Errorf("distill: %d labels for %d training samples", len(labels), n)
	}
	if o.Resume && o.CheckpointDir == "" {
		return nil, fmt.Errorf("distill: resume needs a checkpoint folder")
	}
	src := student
	var ck *Checkpoint
	var st *adamState
	if o.Resume {
		var err error
		if ck, err = ReadCheckpoint(o.CheckpointDir); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%w in %s", ErrNoCheckpoint, o.CheckpointDir)
			}
			return nil, err
		}
		want, got := o.ckptOpts(n, labels != nil), ck.Options
		want.Epochs, got.Epochs = 0, 0
		if want != got {
			return nil, fmt.Errorf("distill: resume: the checkpoint in %s was made with other options or data (%+v), this run has %+v", o.CheckpointDir, got, want)
		}
		if src, st, err = loadCheckpoint(o.CheckpointDir, ck); err != nil {
			return nil, err
		}
	}
	net, err := Build(src, o.Batch)
	if err != nil {
		return nil, err
	}
	tr, err := newTrainer(net, o, useKD, labels != nil)
	if err != nil {
		return nil, err
	}
	if st != nil {
		tr.adam.st = *st
	}
	if err := tr.checkData(samples, teacher, labels); err != nil {
		return nil, err
	}
	res := &Result{}
	first := 1
	// prev is the checkpoint whose files the next one replaces: a fresh
	// run into a folder holding another run's checkpoint removes its files.
	prev := ck
	if ck == nil && o.CheckpointDir != "" {
		prev, _ = ReadCheckpoint(o.CheckpointDir)
	}
	if ck != nil {
		first = ck.Epoch + 1
		res.ValBefore = ck.ValBefore
		res.Epochs = append(res.Epochs, ck.History...)
	}
	val := func() (*float64, error) {
		if o.Val == nil {
			return nil, nil
		}
		m := student.Clone()
		if err := net.WriteBack(m); err != nil {
			return nil, err
		}
		v, err := o.Val(m)
		return &v, err
	}
	if ck == nil {
		if res.ValBefore, err = val(); err != nil {
			return nil, err
		}
		if o.Log != nil && o.Val != nil {
			fmt.Fprintf(o.Log, "epoch 0: val top-1 %.2f%%\n", 100**res.ValBefore)
		}
	} else if o.Log != nil {
		fmt.Fprintf(o.Log, "resuming after epoch %d (%s)\n", ck.Epoch, o.CheckpointDir)
	}
	rng := rand.New(rand.NewSource(o.Seed))
	for ep := 1; ep < first; ep++ {
		rng.Perm(n) // the sample orders of the epochs already done
	}
	steps := n / o.Batch
	for ep := first; ep <= o.Epochs; ep++ {
		start := time.Now()
		perm := rng.Perm(n)
		var sum float64
		for s := 0; s < steps; s++ {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("distill: %w", err)
			}
			loss, err := tr.step(perm[s*o.Batch:(s+1)*o.Batch], samples, teacher, labels)
			if err != nil {
				return nil, err
			}
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return nil, fmt.Errorf("distill: epoch %d step %d: loss is %g (lower --lr)", ep, s+1, loss)
			}
			sum += loss
			if o.Progress != nil {
				el := time.Since(start)
				o.Progress(Progress{Epoch: ep, Epochs: o.Epochs, Step: s + 1, Steps: steps, Loss: sum / float64(s+1),
					SamplesPerSec: float64((s+1)*o.Batch) / el.Seconds(), Elapsed: el})
			}
		}
		secs := time.Since(start).Seconds()
		e := Epoch{Epoch: ep, Loss: sum / float64(steps), Seconds: secs, SamplesPerSec: float64(steps*o.Batch) / secs}
		if e.ValTop1, err = val(); err != nil {
			return nil, err
		}
		res.Epochs = append(res.Epochs, e)
		if o.Log != nil {
			line := fmt.Sprintf("epoch %d: loss %.5f", ep, e.Loss)
			if o.Val != nil {
				line += fmt.Sprintf(", val top-1 %.2f%%", 100**e.ValTop1)
			}
			fmt.Fprintf(o.Log, "%s, %.0f samples/s, %.1fs\n", line, e.SamplesPerSec, secs)
		}
		if o.CheckpointDir != "" {
			m := student.Clone()
			if err := net.WriteBack(m); err != nil {
				return nil, err
			}
			c := &Checkpoint{Epoch: ep, Loss: e.Loss, ValTop1: e.ValTop1, Seed: o.Seed, Options: o.ckptOpts(n, labels != nil),
				Meta: o.Meta, History: res.Epochs, ValBefore: res.ValBefore}
			if err := writeCheckpoint(o.CheckpointDir, c, m, &tr.adam.st, prev); err != nil {
				return nil, err
			}
			prev = c
		}
	}
	if err := net.WriteBack(student); err != nil {
		return nil, err
	}
	return res, nil
}

type trainer struct {
	net    *Net
	o      Options
	useKD  bool
	labels bool
	vm     G.VM
	adam   *adam
	loss   *G.Node
	// per input: backing buffer; per output: teacher target buffer
	inBuf   [][]float32
	tgt     []*G.Node
	tgtBuf  [][]float32
	class   []bool
	onehot  *G.Node
	ohBuf   []float32
	classAt int
	// kdConst is Σ p·log p ·T²/B of the batch (added to the reported loss
	// so that it is the KL divergence, not the cross-entropy).
	kdConst float64
	lossVal G.Value
}

func newTrainer(net *Net, o Options, useKD, labels bool) (t *trainer, err error) {
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, fmt.Errorf("distill: building the loss: %v", r)
		}
	}()
	t = &trainer{net: net, o: o, useKD: useKD, labels: labels, classAt: -1}
	eg := net.G
	B := float32(net.Batch)
	T := float32(o.Temperature)
	for i, in := range net.Inputs {
		t.inBuf = append(t.inBuf, make([]float32, in.Shape().TotalSize()))
		_ = i
	}
	var terms []*G.Node
	for j, out := range net.Outputs {
		shp := out.Shape()
		cls := IsClassOutput(shp)
		t.class = append(t.class, cls)
		if cls && t.classAt < 0 {
			t.classAt = j
		}
		t.tgt = append(t.tgt, nil)
		t.tgtBuf = append(t.tgtBuf, nil)
		if !useKD {
			continue
		}
		buf := make([]float32, shp.TotalSize())
		tg := G.NewTensor(eg, tensor.Float32, len(shp), G.WithShape(shp...), G.WithName(fmt.Sprintf("teacher%d", j)))
		t.tgt[j], t.tgtBuf[j] = tg, buf
		var term *G.Node
		if cls {
			// KL(p || q) · T², p = softmax(teacher/T) fed in, q = softmax(student/T).
			scaled, err := G.Mul(out, G.NewConstant(1/T))
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
			if term, err = G.Mul(s, G.NewConstant(-T*T/B)); err != nil {
				return nil, err
			}
			if labels {
				if term, err = G.Mul(term, G.NewConstant(float32(o.Alpha))); err != nil {
					return nil, err
				}
			}
		} else {
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
	if labels {
		if t.classAt < 0 {
			return nil, fmt.Errorf("distill: labels given but the student has no [batch, classes] output")
		}
		out := net.Outputs[t.classAt]
		shp := out.Shape()
		t.ohBuf = make([]float32, shp.TotalSize())
		t.onehot = G.NewTensor(eg, tensor.Float32, 2, G.WithShape(shp...), G.WithName("labels"))
		logp, err := logSoftmax(out)
		if err != nil {
			return nil, err
		}
		pl, err := G.HadamardProd(t.onehot, logp)
		if err != nil {
			return nil, err
		}
		s, err := G.Sum(pl)
		if err != nil {
			return nil, err
		}
		ce, err := G.Mul(s, G.NewConstant(-(1-float32(o.Alpha))/B))
		if err != nil {
			return nil, err
		}
		terms = append(terms, ce)
	}
	loss := terms[0]
	for _, x := range terms[1:] {
		if loss, err = G.Add(loss, x); err != nil {
			return nil, err
		}
	}
	t.loss = loss
	G.Read(loss, &t.lossVal)
	params := make(G.Nodes, len(net.Params))
	for i, p := range net.Params {
		params[i] = p.Node
	}
	if _, err := G.Grad(loss, params...); err != nil {
		return nil, fmt.Errorf("distill: gradients: %w", err)
	}
	t.vm = G.NewTapeMachine(eg, G.BindDualValues(params...))
	// The loss is already a batch mean: no division by the batch size
	// in the optimizer.
	t.adam = &adam{lr: o.LR}
	return t, nil
}

// checkData refuses samples, teacher outputs or labels that do not fit
// the student before any training.
func (t *trainer) checkData(samples, teacher [][]*runtime.Tensor, labels []int) error {
	for i, s := range samples {
		if len(s) != len(t.net.Inputs) {
			return fmt.Errorf("distill: sample %d has %d inputs, the student %d", i, len(s), len(t.net.Inputs))
		}
		for k, x := range s {
			want := t.net.Inputs[k].Shape()
			per := want.TotalSize() / t.net.Batch
			if x.DType != graph.Float || x.Len() != per || (len(x.Shape) > 0 && x.Shape[0] != 1) {
				return fmt.Errorf("distill: sample %d input %q is %s%v, want float32 %v with batch 1", i, t.net.Inputs[k].Name(), x.DType, x.Shape, append([]int{1}, want[1:]...))
			}
		}
		if t.useKD {
			if len(teacher[i]) != len(t.net.Outputs) {
				return fmt.Errorf("distill: the teacher has %d outputs, the student %d", len(teacher[i]), len(t.net.Outputs))
			}
			for j, y := range teacher[i] {
				per := t.net.Outputs[j].Shape().TotalSize() / t.net.Batch
				if y.DType != graph.Float || y.Len() != per {
					return fmt.Errorf("distill: teacher output %q on sample %d is %s%v: the student's has %d float32 values per sample", t.net.OutputNames[j], i, y.DType, y.Shape, per)
				}
			}
		}
		if labels != nil {
			c := t.net.Outputs[t.classAt].Shape()[1]
			if labels[i] < 0 || labels[i] >= c {
				return fmt.Errorf("distill: label %d of sample %d is out of [0, %d)", labels[i], i, c)
			}
		}
	}
	return nil
}

func (t *trainer) step(idx []int, samples, teacher [][]*runtime.Tensor, labels []int) (float64, error) {
	B := t.net.Batch
	for k, in := range t.net.Inputs {
		buf := t.inBuf[k]
		per := len(buf) / B
		for b, i := range idx {
			copy(buf[b*per:(b+1)*per], samples[i][k].Float32s())
		}
		if err := G.Let(in, tensor.New(tensor.WithShape(in.Shape()...), tensor.WithBacking(buf))); err != nil {
			return 0, fmt.Errorf("distill: %w", err)
		}
	}
	t.kdConst = 0
	T := t.o.Temperature
	for j, tg := range t.tgt {
		if tg == nil {
			continue
		}
		buf := t.tgtBuf[j]
		per := len(buf) / B
		for b, i := range idx {
			dst := buf[b*per : (b+1)*per]
			copy(dst, teacher[i][j].Float32s())
			if t.class[j] {
				t.kdConst += softmaxT(dst, T)
			}
		}
		if err := G.Let(tg, tensor.New(tensor.WithShape(tg.Shape()...), tensor.WithBacking(buf))); err != nil {
			return 0, fmt.Errorf("distill: %w", err)
		}
	}
	if t.onehot != nil {
		c := len(t.ohBuf) / B
		clear(t.ohBuf)
		for b, i := range idx {
			t.ohBuf[b*c+labels[i]] = 1
		}
		if err := G.Let(t.onehot, tensor.New(tensor.WithShape(B, c), tensor.WithBacking(t.ohBuf))); err != nil {
			return 0, fmt.Errorf("distill: %w", err)
		}
	}
	if err := t.vm.RunAll(); err != nil {
		return 0, fmt.Errorf("distill: training step: %w", err)
	}
	if err := t.adam.step(t.net.Params); err != nil {
		return 0, err
	}
	loss := float64(t.lossVal.Data().(float32))
	t.vm.Reset()
	if t.labels {
		return loss + t.o.Alpha*t.kdConst*T*T/float64(B), nil
	}
	return loss + t.kdConst*T*T/float64(B), nil
}

// softmaxT replaces logits by softmax(logits/T) in place and returns
// Σ p·log p.
func softmaxT(v []float32, T float64) float64 {
	mx := math.Inf(-1)
	for _, x := range v {
		mx = math.Max(mx, float64(x)/T)
	}
	var sum float64
	e := make([]float64, len(v))
	for i, x := range v {
		e[i] = math.Exp(float64(x)/T - mx)
		sum += e[i]
	}
	var plogp float64
	for i := range v {
		p := e[i] / sum
		v[i] = float32(p)
		if p > 0 {
			plogp += p * math.Log(p)
		}
	}
	return plogp
}

// logSoftmax is a numerically stable log-softmax over axis 1 of [B, C]
// (gorgonia's LogSoftMax takes the log of a softmax that underflows).
func logSoftmax(x *G.Node) (*G.Node, error) {
	shp := x.Shape()
	mx, err := G.Max(x, 1)
	if err != nil {
		return nil, err
	}
	if mx, err = G.Reshape(mx, tensor.Shape{shp[0], 1}); err != nil {
		return nil, err
	}
	sh, err := G.BroadcastSub(x, mx, nil, []byte{1})
	if err != nil {
		return nil, err
	}
	e, err := G.Exp(sh)
	if err != nil {
		return nil, err
	}
	s, err := G.Sum(e, 1)
	if err != nil {
		return nil, err
	}
	l, err := G.Log(s)
	if err != nil {
		return nil, err
	}
	if l, err = G.Reshape(l, tensor.Shape{shp[0], 1}); err != nil {
		return nil, err
	}
	return G.BroadcastSub(sh, l, nil, []byte{1})
}
