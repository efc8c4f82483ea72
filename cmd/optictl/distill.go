package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/optictl/optictl/pkg/bench"
	"github.com/optictl/optictl/pkg/distill"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/passes"
	"github.com/optictl/optictl/pkg/prune"
	"github.com/optictl/optictl/pkg/runtime"
)

func init() { commands = append(commands, newDistillCmd) }

type distillOptions struct {
	Teacher, Out   string
	Student        string
	StudentPrune   float64
	StudentWidth   float64
	Train, Labels  string
	Val, ValLabels string
	Limit          int
	Epochs, Batch  int
	LR, T, Alpha   float64
	Seed           int64
	Backend        string
	JSON           bool
	CheckpointDir  string
	Resume         bool
	Workers        int
	Standardize    bool
	Schedule       string
	Loss           []string
	Pixels         pixelFlags
	Progress       string
}

// labelsFromFolders is the --train-labels/--val-labels value that takes
// labels from the class folders of an image folder.
const labelsFromFolders = "folders"

type distillResult struct {
	Teacher string `json:"teacher"`
	Student string `json:"student"`
	Out     string `json:"out"`
	Backend string `json:"teacher_backend"`
	Samples int    `json:"samples"`
	Loss    string `json:"loss"`
	// CheckpointDir holds the last epoch's checkpoint.
	CheckpointDir string `json:"checkpoint_dir"`
	*distill.Result
	// Classes maps the class folder names to label indices (with
	// --train-labels folders or --val-labels folders).
	Classes map[string]int `json:"classes,omitempty"`
	// Pixels is the normalization of image data (--pixel-*).
	Pixels         string  `json:"pixels,omitempty"`
	TeacherSeconds float64 `json:"teacher_seconds"`
	// Notes say what distill did to the student beyond training.
	Notes        []string `json:"notes,omitempty"`
	PeakRSSBytes int64    `json:"peak_rss_bytes"`
}

func newDistillCmd(g *globalOptions) *cobra.Command {
	o := &distillOptions{}
	cmd := &cobra.Command{
		Use:   "distill TEACHER -o OUT (--student S | --student-prune F | --student-width W) --train DATA",
		Short: "Train a smaller student model on a teacher's outputs (knowledge distillation)",
		Long: `Train a student to reproduce a teacher (knowledge distillation), with gorgonia.

The student is --student S.onnx (same inputs and outputs as the teacher),
the teacher structured-pruned by --student-prune F (a fraction of channels),
or the teacher at --student-width W (every prunable layer keeps W of its
channels: structured pruning of 1-W per layer).
The teacher runs once over --train on --backend (ort when it loads, else
interp) and its outputs are cached.

Losses against the teacher, per output (--loss KIND or OUTPUT=KIND; auto
picks as the accuracy metrics do): class scores ([batch, classes]) get
kd = KL(softmax(z(teacher)/T) || softmax(z(student)/T))·T², where z
z-scores each sample's scores (--kd-standardize, the default: logit scales
differ by orders of magnitude between models, and a student need not share
the teacher's) and T is --temperature (auto: 1 on z-scores; without
standardization, half the median spread of the teacher's scores); probability
maps (one channel, values in [0,1]) and single values get mse; other
vectors (embeddings, features) get cosine = 1 - cos(student, teacher).
With --train-labels the loss is alpha·KD + (1-alpha)·cross-entropy
(--alpha 0: labels only, the teacher does not run).
Optimizer: Adam at --lr, decayed to 0 over all epochs along a half cosine
(--lr-schedule cosine; constant keeps --lr). Each batch is split over
--workers parts trained in parallel, one core each, their gradients
combined in a fixed order: the weights depend on --workers, not on the
machine.

Supported student ops: Conv (any group, depthwise included; symmetric
pads), BatchNormalization (folded into the convolutions first by the -O2
passes), Relu, LeakyRelu, Sigmoid, Tanh, Clip/Relu6, HardSigmoid,
HardSwish, Add, Sub, Mul, Div, Max, Min (broadcasting), Neg, Sqrt, MaxPool,
AveragePool (stride = kernel), GlobalAveragePool, MatMul, Gemm, Softmax
(last axis), Concat, Transpose, Reshape, Flatten, Squeeze, Unsqueeze,
Dropout, Identity, Constant. A student with dynamic dims other than the
batch, or with Shape arithmetic, is trained at the first training
sample's shape (fixed and folded into constants, as optimize --shape
NAME=DIMS -O1 does), and the trained weights are written back into the
dynamic graph when they keep their names there (else the fixed-shape
student is written, with a note).

Data (--train, --val; as bench --data): MNIST idx (.gz), .npy/.npz, .pb,
test_data_set folders, or a folder of images (.png, .jpg/.jpeg, .gif; a
folder with test_data_set_N or input_0.pb keeps its meaning). Images are
read at any depth in sorted path order (--limit takes the first N: with
class folders, the first classes), one
sample each for a model with one image input: resized (bilinear) to the
input's H×W, or kept at their size when H and W are dynamic and all images
share one; grayscale luma for 1 channel, RGB for 3; laid out NCHW, or NHWC
when the last dim is 1 or 3 and the second is not. Pixels are 0-255 (as
idx), then (x*--pixel-scale - --pixel-mean)/--pixel-std per channel, e.g.
--pixel-scale 1/255 --pixel-mean 0.485,0.456,0.406
--pixel-std 0.229,0.224,0.225; the --pixel-* flags also apply to idx images
and are an error with tensor data. The decoded set may take at most 1 GiB.
--train-labels folders (--val-labels folders) takes labels from class
folders, DIR/<class>/<image>: class i is the i-th folder name in sorted
order (-v and --json print the mapping); more classes than the model's
outputs, or different classes in --train and --val, are errors.

With --val and --val-labels every epoch reports the top-1 accuracy. One
line per epoch. When stderr is a terminal (and without --json), a progress
bar there shows the epoch, steps, running loss, samples/s and the ETA of
the training left, redrawn in place up to 10 times a second and cleared
before each epoch's line; --progress always or never forces it on or off.
The same --seed (and --workers) gives the same weights.
Nothing is written to -o unless training finishes; the output is written
atomically.

After each epoch a checkpoint (the student ONNX, Adam's state, and
checkpoint.json with epoch, loss, val top-1, seed and options, written
last) goes to --checkpoint-dir (default: OUT without its extension +
".ckpt"); Ctrl-C leaves the last one usable. --resume continues from it
with the same options and data (--epochs may grow with --lr-schedule
constant) and gives the same
weights as an uninterrupted run.`,
		Args: exactArgs(1, "one teacher model"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Teacher = args[0]
			f := cmd.Flags()
			if n := countTrue(f.Changed("student"), f.Changed("student-prune"), f.Changed("student-width")); n != 1 {
				return usageErr("distill: give exactly one of --student, --student-prune and --student-width")
			}
			if f.Changed("student-width") {
				if !(o.StudentWidth > 0 && o.StudentWidth < 1) {
					return usageErr("distill: --student-width %g is not in (0, 1)", o.StudentWidth)
				}
			}
			if f.Changed("alpha") && o.Labels == "" {
				return usageErr("distill: --alpha weighs KD against --train-labels; without labels training is pure KD")
			}
			if (o.Val == "") != (o.ValLabels == "") {
				return usageErr("distill: --val and --val-labels go together (top-1 needs labels)")
			}
			if o.Out == "" || o.Train == "" {
				return usageErr("distill: -o and --train are required")
			}
			if o.Epochs < 1 || o.Batch < 1 || !(o.LR > 0) || !(o.T >= 0) || o.Alpha < 0 || o.Alpha > 1 || o.Limit < 0 {
				return usageErr("distill: want --epochs >= 1, --batch >= 1, --lr > 0, --temperature auto or > 0, --alpha in [0,1], --limit >= 0")
			}
			if o.Workers < 1 || o.Workers > o.Batch {
				return usageErr("distill: --workers %d must be in [1, --batch %d]", o.Workers, o.Batch)
			}
			if o.Schedule != distill.ScheduleCosine && o.Schedule != distill.ScheduleConstant {
				return usageErr("distill: --lr-schedule %q: want cosine or constant", o.Schedule)
			}
			if _, err := distill.ParseLoss(o.Loss); err != nil {
				return usageErr("distill: %v", err)
			}
			if len(o.Loss) > 0 && o.Labels != "" && o.Alpha == 0 {
				return usageErr("distill: --loss sets the loss against the teacher, and --alpha 0 trains on labels only")
			}
			if f.Changed("student-prune") && !(o.StudentPrune > 0 && o.StudentPrune < 1) {
				return usageErr("distill: --student-prune %g is not in (0, 1)", o.StudentPrune)
			}
			if _, err := o.Pixels.options(); err != nil {
				return err
			}
			if _, err := progressMode(o.Progress, o.JSON, g.Stderr); err != nil {
				return err
			}
			return runDistill(g, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Out, "out", "o", "", "where to write the trained student")
	f.StringVar(&o.Student, "student", "", "the student model (same inputs and outputs as the teacher)")
	f.Float64Var(&o.StudentPrune, "student-prune", 0, "student = the teacher with this fraction of channels structured-pruned (0-1)")
	f.Float64Var(&o.StudentWidth, "student-width", 0, "student = the teacher with every prunable layer's channels scaled by this (0-1; structured pruning of 1-W per layer)")
	f.StringVar(&o.Train, "train", "", "training inputs (idx, .npy/.npz, .pb, test_data_set folders, or a folder of .png/.jpg/.gif images)")
	f.StringVar(&o.Labels, "train-labels", "", "training labels (idx, one integer a line, or \"folders\": the class folders of an image folder): mixed KD + cross-entropy")
	f.StringVar(&o.Val, "val", "", "validation inputs, measured before training and after each epoch")
	f.StringVar(&o.ValLabels, "val-labels", "", "validation labels (top-1; idx, one integer a line, or \"folders\")")
	f.IntVar(&o.Limit, "limit", 0, "use at most this many training samples, the first in file order (0: all)")
	addPixelFlags(cmd, &o.Pixels, "--train and --val")
	f.StringVar(&o.Progress, "progress", "auto", "progress bar on stderr: auto (when stderr is a terminal and without --json), always or never")
	f.IntVar(&o.Epochs, "epochs", 3, "training epochs")
	f.IntVar(&o.Batch, "batch", 32, "batch size")
	f.Float64Var(&o.LR, "lr", 3e-3, "Adam learning rate (the peak of the cosine schedule)")
	f.Var((*temperatureValue)(&o.T), "temperature", temperatureUsage)
	f.Float64Var(&o.Alpha, "alpha", 0.5, "weight of the KD term against cross-entropy on --train-labels (0: labels only)")
	f.Int64Var(&o.Seed, "seed", 1, "seed of the sample order")
	f.StringVar(&o.Backend, "backend", "", "backend that runs the teacher and the validation (default: ort when it loads, else interp)")
	f.BoolVar(&o.JSON, "json", false, "print the report as JSON")
	f.StringVar(&o.CheckpointDir, "checkpoint-dir", "", "checkpoint after each epoch into this folder (default: OUT without its extension + .ckpt)")
	f.IntVar(&o.Workers, "workers", 2, "split every batch into this many parts trained in parallel (one core each); the weights depend on --workers and --seed, not on the machine")
	f.BoolVar(&o.Standardize, "kd-standardize", true, standardizeUsage)
	f.StringVar(&o.Schedule, "lr-schedule", distill.ScheduleCosine, "learning-rate schedule: cosine (decay from --lr to 0 over all epochs) or constant")
	f.StringSliceVar(&o.Loss, "loss", nil, "loss against the teacher: auto, kd, mse or cosine, for every output or as OUTPUT=KIND (repeatable; auto: kd for class scores, mse for probability maps and single values, cosine for embeddings)")
	f.BoolVar(&o.Resume, "resume", false, "continue from the last checkpoint in --checkpoint-dir (same options and data; --epochs may grow with --lr-schedule constant)")
	return cmd
}

func runDistill(g *globalOptions, o *distillOptions) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	teacher, err := graph.Load(o.Teacher)
	if err != nil {
		return err
	}
	var student *graph.Model
	studentName := o.Student
	if o.Student != "" {
		if student, err = graph.Load(o.Student); err != nil {
			return err
		}
	} else if o.StudentWidth > 0 {
		// Width W keeps W of every prunable layer's channels: structured
		// pruning with the uniform per-layer fraction 1-W (not global).
		student = teacher.Clone()
		if _, err := prune.Prune(student, prune.Options{Fraction: 1 - o.StudentWidth, Mode: prune.Structured}); err != nil {
			return fmt.Errorf("distill: --student-width: %w", err)
		}
		studentName = fmt.Sprintf("teacher at width %g", o.StudentWidth)
	} else {
		student = teacher.Clone()
		if _, err := prune.Prune(student, prune.Options{Fraction: o.StudentPrune, Mode: prune.Structured}); err != nil {
			return fmt.Errorf("distill: --student-prune: %w", err)
		}
		studentName = fmt.Sprintf("teacher structured-pruned %g", o.StudentPrune)
	}
	if slices.ContainsFunc(student.Graph.Nodes, func(n *graph.Node) bool { return n.Is("BatchNormalization") }) {
		folded, _, err := passes.Optimize(student, passes.Options{Level: passes.O2})
		if err != nil {
			return fmt.Errorf("distill: folding BatchNormalization (-O2): %w", err)
		}
		student = folded
	}
	infos := sessionInfos(student)
	img, err := o.Pixels.options()
	if err != nil {
		return err
	}
	img.ClassFolders = o.Labels == labelsFromFolders
	samples, labels, classes, err := distillData(o.Train, infos, o.Limit, img, "--train")
	if err != nil {
		return err
	}
	if o.Labels != "" && !img.ClassFolders {
		if labels, err = distillLabels(o.Labels, len(samples), o.Limit > 0, "--train-labels"); err != nil {
			return err
		}
	}
	// A student with dynamic dims (other than the batch) or Shape
	// arithmetic is trained at the training data's shape: fixed and folded
	// into constants (as optimize --shape NAME=DIMS -O1 would); the
	// trained weights go back into the dynamic student when they keep
	// their names there.
	dynamic := student
	if fixed, shapes, err := fixStudentShapes(student, samples); err != nil {
		return err
	} else if fixed != nil {
		student = fixed
		if g.Verbose {
			fmt.Fprintf(g.Stderr, "distill: training the student at the data's shape %s\n", shapes)
		}
	}
	var valSamples [][]*runtime.Tensor
	var valLabels []int
	if o.Val != "" {
		img.ClassFolders = o.ValLabels == labelsFromFolders
		var valClasses []string
		if valSamples, valLabels, valClasses, err = distillData(o.Val, infos, 0, img, "--val"); err != nil {
			return err
		}
		if !img.ClassFolders {
			if valLabels, err = distillLabels(o.ValLabels, len(valSamples), false, "--val-labels"); err != nil {
				return err
			}
		} else if classes != nil && !slices.Equal(classes, valClasses) {
			return fmt.Errorf("distill: the class folders of --train (%s) and --val (%s) differ: label i must be the same class in both", strings.Join(classes, ", "), strings.Join(valClasses, ", "))
		}
		if classes == nil {
			classes = valClasses
		}
	}
	if classes != nil {
		if err := checkClasses(student, classes); err != nil {
			return err
		}
	}
	backend := o.Backend
	open := func(m *graph.Model) (runtime.Session, error) {
		if backend != "" {
			return runtime.Open(backend, m, runtime.Options{})
		}
		if s, err := runtime.Open("ort", m, runtime.Options{}); err == nil {
			backend = "ort"
			return s, nil
		}
		backend = "interp"
		return runtime.Open("interp", m, runtime.Options{})
	}
	res := distillResult{Teacher: o.Teacher, Student: studentName, Out: o.Out, Samples: len(samples), CheckpointDir: o.checkpointDir(), Pixels: o.Pixels.String()}
	if classes != nil {
		res.Classes = make(map[string]int, len(classes))
		for i, c := range classes {
			res.Classes[c] = i
		}
	}
	var tout [][]*runtime.Tensor
	lossSpec, _ := distill.ParseLoss(o.Loss)
	if labels == nil || o.Alpha > 0 {
		s, err := open(teacher)
		if err != nil {
			return fmt.Errorf("distill: teacher: %w", err)
		}
		start := time.Now()
		tout, err = distill.TeacherOutputs(ctx, s, samples)
		s.Close()
		if err != nil {
			return err
		}
		res.TeacherSeconds = time.Since(start).Seconds()
	}
	dopts := distill.Options{Epochs: o.Epochs, Batch: o.Batch, LR: o.LR, Temperature: o.T, Alpha: o.Alpha, Seed: o.Seed,
		Workers: o.Workers, Standardize: o.Standardize, Schedule: o.Schedule, Loss: lossSpec,
		CheckpointDir: o.checkpointDir(), Resume: o.Resume, Meta: map[string]string{"teacher": o.Teacher, "student": studentName, "train": o.Train}}
	if res.Loss, _, err = describeLoss(student, tout, dopts, labels != nil); err != nil {
		return err
	}
	if res.Pixels != "" {
		dopts.Meta["pixels"] = res.Pixels
	}
	showBar, err := progressMode(o.Progress, o.JSON, g.Stderr)
	if err != nil {
		return err
	}
	bar := newProgressBar(g.Stderr, showBar)
	defer bar.Done()
	if showBar {
		dopts.Progress = bar.Update
	}
	if !o.JSON {
		dopts.Log = bar.ClearBefore(g.Stdout)
	}
	if valSamples != nil {
		dopts.Val = func(m *graph.Model) (float64, error) { return top1(ctx, open, m, valSamples, valLabels) }
	}
	if !o.JSON {
		fmt.Fprintf(g.Stdout, "distill %s -> %s: student %s, %d samples, loss %s\n", o.Teacher, o.Out, studentName, len(samples), res.Loss)
		if g.Verbose && classes != nil {
			parts := make([]string, len(classes))
			for i, c := range classes {
				parts[i] = fmt.Sprintf("%d=%s", i, c)
			}
			fmt.Fprintf(g.Stdout, "classes (from class folders): %s\n", strings.Join(parts, " "))
		}
		if g.Verbose && res.Pixels != "" {
			fmt.Fprintf(g.Stdout, "pixels: %s\n", res.Pixels)
		}
	}
	tr, err := distill.Train(ctx, student, samples, tout, labels, dopts)
	bar.Done()
	if err != nil {
		return err
	}
	if student != dynamic {
		if carryWeights(dynamic, student) {
			student = dynamic
		} else {
			res.Notes = append(res.Notes, "the student is written at the training data's input shape: folding its shape arithmetic renamed weights, so the trained weights do not map back onto the dynamic graph")
		}
	}
	if err := student.Save(o.Out); err != nil {
		return err
	}
	res.Result = tr
	res.Backend = backend
	res.PeakRSSBytes = bench.PeakRSS()
	if o.JSON {
		enc := json.NewEncoder(g.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	teach := "teacher not run (labels only)"
	if tout != nil {
		teach = fmt.Sprintf("teacher on %s: %.1fs", backend, res.TeacherSeconds)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(g.Stdout, "note: %s\n", n)
	}
	fmt.Fprintf(g.Stdout, "wrote %s (%s; peak RSS %.0f MiB)\n", o.Out, teach, float64(res.PeakRSSBytes)/(1<<20))
	return nil
}

func distillSamples(path string, infos []runtime.IOInfo, limit int, flag string) ([][]*runtime.Tensor, error) {
	s, _, _, err := distillData(path, infos, limit, bench.ImageOptions{}, flag)
	return s, err
}

// distillData reads --train or --val; with img.ClassFolders it also gives
// the labels and class names of an image folder's class folders.
func distillData(path string, infos []runtime.IOInfo, limit int, img bench.ImageOptions, flag string) ([][]*runtime.Tensor, []int, []string, error) {
	data, err := bench.LoadDataWith(path, infos, limit, img)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("distill: %s: %w", flag, err)
	}
	out := make([][]*runtime.Tensor, len(data.Samples))
	for i, d := range data.Samples {
		out[i] = d
	}
	return out, data.Labels, data.Classes, nil
}

// checkClasses refuses more class folders than the model's first output
// has classes (its last dim, when fixed).
func checkClasses(m *graph.Model, classes []string) error {
	if len(m.Graph.Outputs) == 0 {
		return nil
	}
	out := m.Graph.Outputs[0]
	if len(out.Shape) == 0 {
		return nil
	}
	if n := out.Shape[len(out.Shape)-1].Size; n > 0 && int64(len(classes)) > n {
		return fmt.Errorf("distill: %d class folders (%s) but output %q has %d classes", len(classes), strings.Join(classes, ", "), out.Name, n)
	}
	return nil
}

// distillLabels reads labels for n samples; with truncate (a --limit),
// a longer label file is cut to n.
func distillLabels(path string, n int, truncate bool, flag string) ([]int, error) {
	l, err := bench.LoadLabels(path)
	if err != nil {
		return nil, fmt.Errorf("distill: %s: %w", flag, err)
	}
	if truncate && len(l) > n {
		l = l[:n]
	}
	if len(l) != n {
		return nil, fmt.Errorf("distill: %s has %d labels for %d samples", flag, len(l), n)
	}
	return l, nil
}

// top1 is the share of samples whose first output's argmax is the label.
func top1(ctx context.Context, open func(*graph.Model) (runtime.Session, error), m *graph.Model, samples [][]*runtime.Tensor, labels []int) (float64, error) {
	s, err := open(m)
	if err != nil {
		return 0, fmt.Errorf("distill: validation: %w", err)
	}
	defer s.Close()
	ok := 0
	for i, in := range samples {
		out, err := s.Run(ctx, in)
		if err != nil {
			return 0, fmt.Errorf("distill: validation sample %d: %w", i, err)
		}
		v := out[0].Float32s()
		best := 0
		for j := range v {
			if v[j] > v[best] {
				best = j
			}
		}
		if best == labels[i] {
			ok++
		}
	}
	return float64(ok) / float64(len(samples)), nil
}

// checkpointDir is --checkpoint-dir, by default OUT without its extension
// plus ".ckpt" (student.onnx -> student.ckpt).
func (o *distillOptions) checkpointDir() string {
	if o.CheckpointDir != "" {
		return o.CheckpointDir
	}
	return strings.TrimSuffix(o.Out, filepath.Ext(o.Out)) + ".ckpt"
}

func countTrue(b ...bool) int {
	n := 0
	for _, x := range b {
		if x {
			n++
		}
	}
	return n
}

// fixStudentShapes returns the student with its inputs fixed at the first
// training sample's shapes and its shape arithmetic folded into
// constants (passes fold-shapes, fold-constants and the dead-code
// cleanups), or nil when every input already has fixed dims after the
// batch. shapes describes the shapes used.
func fixStudentShapes(m *graph.Model, samples [][]*runtime.Tensor) (*graph.Model, string, error) {
	inputs := m.Graph.RealInputs()
	dynamic := false
	for _, in := range inputs {
		for i, d := range in.Shape {
			if i > 0 && d.Size <= 0 {
				dynamic = true
			}
		}
		if !in.HasShape {
			dynamic = true
		}
	}
	if !dynamic || len(samples) == 0 {
		return nil, "", nil
	}
	if len(samples[0]) != len(inputs) {
		return nil, "", fmt.Errorf("distill: a training sample has %d inputs, the student %d", len(samples[0]), len(inputs))
	}
	shapes := map[string][]int64{}
	var desc []string
	for i, in := range inputs {
		shapes[in.Name] = append([]int64(nil), samples[0][i].Shape...)
		desc = append(desc, fmt.Sprintf("%s=%s", in.Name, joinDims(samples[0][i].Shape)))
	}
	fixed, _, err := passes.Optimize(m, passes.Options{
		Passes: []string{"fold-shapes", "fold-constants", "eliminate-dead-nodes", "eliminate-unused-initializers"},
		Shapes: shapes,
	})
	if err != nil {
		return nil, "", fmt.Errorf("distill: fixing the student's input shapes at the training data's (%s): %w", strings.Join(desc, ", "), err)
	}
	return fixed, strings.Join(desc, ", "), nil
}

func joinDims(d []int64) string {
	parts := make([]string, len(d))
	for i, x := range d {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, "x")
}

// carryWeights copies the float32 initializers and Constant values of src
// (the trained, shape-fixed student) into dst (the same student before
// its shapes were fixed) by name, and reports whether every one of them
// had a counterpart of the same dims there; dst is unchanged otherwise.
func carryWeights(dst, src *graph.Model) bool {
	inits := map[string]int{}
	for i, t := range dst.Graph.Initializers {
		inits[t.Name] = i
	}
	consts := map[string]*graph.Node{}
	for _, n := range dst.Graph.Nodes {
		if n.Is("Constant") && len(n.Outputs) == 1 && n.AttrTensor("value") != nil {
			consts[n.Outputs[0]] = n
		}
	}
	type move struct {
		init int
		node *graph.Node
		t    *graph.Tensor
	}
	var moves []move
	for _, t := range src.Graph.Initializers {
		if t.DType != graph.Float {
			continue
		}
		if i, ok := inits[t.Name]; ok && slices.Equal(dst.Graph.Initializers[i].Dims, t.Dims) {
			moves = append(moves, move{init: i, t: t})
			continue
		}
		if n, ok := consts[t.Name]; ok && slices.Equal(n.AttrTensor("value").Dims, t.Dims) {
			moves = append(moves, move{init: -1, node: n, t: t})
			continue
		}
		return false
	}
	for _, n := range src.Graph.Nodes {
		if !n.Is("Constant") || len(n.Outputs) != 1 {
			continue
		}
		v := n.AttrTensor("value")
		if v == nil || v.DType != graph.Float {
			continue
		}
		d, ok := consts[n.Outputs[0]]
		if !ok || !slices.Equal(d.AttrTensor("value").Dims, v.Dims) {
			return false
		}
		moves = append(moves, move{init: -1, node: d, t: v})
	}
	for _, m := range moves {
		if m.node != nil {
			t := m.t.Clone()
			t.Name = ""
			m.node.SetAttr(graph.TensorAttr("value", t))
			continue
		}
		dst.Graph.Initializers[m.init] = m.t.Clone()
	}
	return true
}
