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
	Epochs int
	Batch  int
	LR     float64
	// Temperature softens the KD term's softmax; 0 picks it per output
	// (1 on z-scored scores, else half the median spread of the teacher's
	// scores: see Plan).
	Temperature float64
	// Alpha weighs the distillation term against the cross-entropy on
	// labels (loss = Alpha·KD + (1-Alpha)·CE); used only with labels.
	Alpha float64
	Seed  int64
	// Standardize z-scores the teacher's and the student's class scores
	// (outputs of at least 3 classes) per sample before the KD softmax (logit standardization, Sun et al.,
	// CVPR 2024): KD then matches the shape of the teacher's scores, not
	// their scale, which a student of another architecture (or one
	// trained from scratch) does not share.
	Standardize bool
	// Workers splits every batch into this many parts trained in
	// parallel (one graph and goroutine each) whose gradients are
	// combined in a fixed order: the weights depend on Workers and Seed,
	// not on the machine. 0 means 1.
	Workers int
	// Schedule is the learning-rate schedule: ScheduleConstant ("" too)
	// or ScheduleCosine.
	Schedule string
	// Loss gives each output its loss against the teacher (LossAuto,
	// LossKD, LossMSE, LossCosine) by output name; the key "" is the
	// default; missing means LossAuto (ChooseLoss).
	Loss map[string]string
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

// The learning-rate schedules (Options.Schedule).
const (
	ScheduleConstant = "constant"
	// ScheduleCosine decays the rate from LR to 0 over the run's steps
	// (Epochs × steps per epoch) along a half cosine.
	ScheduleCosine = "cosine"
)

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
	// Temperature is the KD temperature of the first KD output and
	// Temperatures that of each (chosen per output when
	// Options.Temperature is 0: 1 on z-scored scores, else from the
	// spread of the teacher's scores).
	Temperature  float64            `json:"temperature,omitempty"`
	Temperatures map[string]float64 `json:"temperatures,omitempty"`
	// Losses is the loss each output was trained with against the
	// teacher (by output name; empty for labels-only training).
	Losses map[string]string `json:"losses,omitempty"`
	Epochs []Epoch           `json:"epochs"`
}

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
	if o.Epochs < 0 || o.Batch < 1 || !(o.LR > 0) || !(o.Temperature >= 0) || o.Alpha < 0 || o.Alpha > 1 || o.Workers < 0 {
		return nil, fmt.Errorf("distill: bad options: epochs %d, batch %d, lr %g, temperature %g, alpha %g, workers %d (want epochs >= 0, batch >= 1, lr > 0, temperature >= 0 (0: auto), alpha in [0,1], workers >= 0)",
			o.Epochs, o.Batch, o.LR, o.Temperature, o.Alpha, o.Workers)
	}
	switch o.Schedule {
	case "":
		o.Schedule = ScheduleConstant
	case ScheduleConstant, ScheduleCosine:
	default:
		return nil, fmt.Errorf("distill: unknown learning-rate schedule %q (want %s or %s)", o.Schedule, ScheduleConstant, ScheduleCosine)
	}
	o.Workers = max(o.Workers, 1)
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
	probe, err := Build(student, 1)
	if err != nil {
		return nil, err
	}
	var losses []OutputLoss
	res := &Result{}
	if useKD {
		if losses, err = plan(probe, teacher, o); err != nil {
			return nil, err
		}
		res.Losses = map[string]string{}
		for _, l := range losses {
			res.Losses[l.Output] = l.Kind
			if l.Kind == LossKD {
				if res.Temperatures == nil {
					res.Temperature = l.Temperature
					res.Temperatures = map[string]float64{}
				}
				res.Temperatures[l.Output] = l.Temperature
			}
		}
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
		if o.Schedule != ScheduleCosine {
			// A cosine schedule spans the run's epochs: only a constant
			// rate lets --epochs grow on resume.
			want.Epochs, got.Epochs = 0, 0
		}
		if o.Schedule == ScheduleCosine && got.Schedule == ScheduleCosine && want.Epochs != got.Epochs {
			return nil, fmt.Errorf("distill: resume: the checkpoint in %s is of a %d-epoch run with the cosine learning-rate schedule, which spans the run's epochs: resume it with --epochs %d (a constant schedule lets --epochs grow)", o.CheckpointDir, got.Epochs, got.Epochs)
		}
		if want != got {
			return nil, fmt.Errorf("distill: resume: the checkpoint in %s was made with other options or data (%+v), this run has %+v", o.CheckpointDir, got, want)
		}
		if src, st, err = loadCheckpoint(o.CheckpointDir, ck); err != nil {
			return nil, err
		}
	}
	tr, err := newTrainer(src, o, losses, useKD, labels != nil)
	if err != nil {
		return nil, err
	}
	defer tr.close()
	net := tr.master()
	if st != nil {
		tr.adam.st = *st
	}
	if err := tr.checkData(samples, teacher, labels); err != nil {
		return nil, err
	}
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
	tr.total = steps * o.Epochs
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
