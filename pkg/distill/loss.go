package distill

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
)

// The losses an output can get against the teacher (Options.Loss).
const (
	// LossAuto picks one of the others from the output (ChooseLoss).
	LossAuto = "auto"
	// LossKD is KL(softmax(teacher/T) ‖ softmax(student/T))·T² on class
	// scores ([N, C] or [N, C, 1, 1]).
	LossKD = "kd"
	// LossMSE is the mean squared error against the teacher's values.
	LossMSE = "mse"
	// LossCosine is 1 − cos(student, teacher) per sample (each sample's
	// values as one vector), averaged over the batch: for embeddings,
	// whose direction matters and whose scale does not.
	LossCosine = "cosine"
)

// LossKinds lists the values Options.Loss takes.
var LossKinds = []string{LossAuto, LossKD, LossMSE, LossCosine}

// ChooseLoss picks the loss for an output from its shape and the
// teacher's values on it, as numerics.ChooseMetric picks the accuracy
// metric: class scores ([N, C] or [N, C, 1, 1], C > 1) get KD; one-channel
// maps whose teacher values all lie in [0, 1] (probability maps, e.g. a
// Sigmoid's) get MSE; vectors of several values per sample (embeddings,
// features) get cosine; one value per sample (a regression) gets MSE.
func ChooseLoss(shape []int64, teacher [][]float32) string {
	if numerics.ClassShape(shape) && len(shape) >= 2 {
		return LossKD
	}
	per := int64(1)
	for _, d := range shape[min(1, len(shape)):] {
		per *= d
	}
	if numerics.ProbabilityMapShape(shape) && inUnit(teacher) {
		return LossMSE
	}
	if per >= 2 {
		return LossCosine
	}
	return LossMSE
}

func inUnit(vals [][]float32) bool {
	for _, v := range vals {
		for _, x := range v {
			if !(x >= 0 && x <= 1) {
				return false
			}
		}
	}
	return true
}

// autoTemperature picks the KD temperature of one output from the
// teacher's raw class scores on it: half the median (over samples) of the
// standard deviation of a sample's scores across classes, at least 1.
// Hinton's usual T = 2-4 assumes logits a few units apart; exporters and
// training recipes give logits of any scale (the ONNX MNIST CNN's are
// thousands apart), and a fixed T then turns KD into plain cross-entropy
// on the teacher's argmax.
func autoTemperature(teacher [][]*runtime.Tensor, j int, probs bool) float64 {
	var sds []float64
	for _, sample := range teacher {
		if j >= len(sample) || sample[j] == nil {
			continue
		}
		v := sample[j].Float32s()
		if len(v) < 2 {
			continue
		}
		if probs {
			v = append([]float32(nil), v...)
			logProbs(v)
		}
		var mu, ss float64
		for _, x := range v {
			mu += float64(x)
		}
		mu /= float64(len(v))
		for _, x := range v {
			ss += (float64(x) - mu) * (float64(x) - mu)
		}
		if sd := math.Sqrt(ss / float64(len(v))); !math.IsNaN(sd) && !math.IsInf(sd, 0) {
			sds = append(sds, sd)
		}
	}
	if len(sds) == 0 {
		return 1
	}
	slices.Sort(sds)
	return math.Max(1, sds[len(sds)/2]/2)
}

// OutputLoss is how one output of the student is trained against the
// teacher.
type OutputLoss struct {
	Output string `json:"output"`
	Kind   string `json:"loss"`
	// Temperature and Standardized apply to KD: the softmax temperature
	// and whether both sides' scores are z-scored per sample first
	// (Options.Standardize, for score outputs of at least 3 classes:
	// z-scores of 2 values are always ±1 and would carry no confidence,
	// and Softmax probabilities keep their calibration).
	Temperature  float64 `json:"temperature,omitempty"`
	Standardized bool    `json:"standardized,omitempty"`
	// FromProbabilities: the output is a Softmax's probabilities and so
	// is the teacher's (values in [0, 1]); KD compares the student's
	// Softmax input with the teacher's log-probabilities, which are its
	// scores up to a constant that softmax ignores.
	FromProbabilities bool `json:"from_probabilities,omitempty"`
}

// minStandardizedClasses is the fewest classes whose scores are z-scored
// under Options.Standardize.
const minStandardizedClasses = 3

// plan resolves every output's loss (resolveLosses) and, for KD outputs,
// its standardization and temperature: Options.Temperature when set, else
// 1 on z-scores, else autoTemperature of the teacher's raw scores.
func plan(net *Net, teacher [][]*runtime.Tensor, o Options) ([]OutputLoss, error) {
	kinds, err := resolveLosses(net, teacher, o.Loss)
	if err != nil {
		return nil, err
	}
	out := make([]OutputLoss, len(kinds))
	for j, k := range kinds {
		out[j] = OutputLoss{Output: net.OutputNames[j], Kind: k}
		if k != LossKD {
			continue
		}
		shp := net.Outputs[j].Shape()
		if net.Logits[j] != nil {
			var vals [][]float32
			for _, t := range teacher {
				if j < len(t) && t[j] != nil {
					vals = append(vals, t[j].Float32s())
				}
			}
			out[j].FromProbabilities = inUnit(vals)
		}
		// Probabilities keep their scale: their calibration is part of
		// what the model delivers, and log-probabilities share one scale.
		out[j].Standardized = o.Standardize && !out[j].FromProbabilities && shp.TotalSize()/shp[0] >= minStandardizedClasses
		switch {
		case o.Temperature > 0:
			out[j].Temperature = o.Temperature
		case out[j].Standardized:
			out[j].Temperature = 1
		default:
			out[j].Temperature = autoTemperature(teacher, j, out[j].FromProbabilities)
		}
	}
	return out, nil
}

// Plan says how Train will train each output of student against the
// teacher's cached outputs with options o (loss, temperature,
// standardization), for reports made before training.
func Plan(student *graph.Model, teacher [][]*runtime.Tensor, o Options) ([]OutputLoss, error) {
	net, err := Build(student, 1)
	if err != nil {
		return nil, err
	}
	return plan(net, teacher, o)
}

// ParseLoss reads --loss values: KIND (every output) or OUTPUT=KIND,
// repeated or comma-separated. The result maps output names to kinds; the
// key "" is the default for outputs not named.
func ParseLoss(specs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, spec := range specs {
		for _, s := range strings.Split(spec, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			name, kind := "", s
			if i := strings.LastIndexByte(s, '='); i >= 0 {
				name, kind = s[:i], s[i+1:]
				if name == "" {
					return nil, fmt.Errorf("--loss %q: empty output name before '='", s)
				}
			}
			if !slices.Contains(LossKinds, kind) {
				return nil, fmt.Errorf("--loss %q: unknown loss %q (want one of %s)", s, kind, strings.Join(LossKinds, ", "))
			}
			if old, ok := out[name]; ok && old != kind {
				return nil, fmt.Errorf("--loss: %s given twice (%s and %s)", orDefault(name), old, kind)
			}
			out[name] = kind
		}
	}
	return out, nil
}

func orDefault(name string) string {
	if name == "" {
		return "the default loss"
	}
	return "output " + name
}

// resolveLosses gives every output of net its loss kind: Options.Loss by
// output name, else its "" entry, else auto; auto is decided by
// ChooseLoss on the teacher's cached outputs. KD on an output that is not
// a class-score vector, and a name that is no output, are errors.
func resolveLosses(net *Net, teacher [][]*runtime.Tensor, spec map[string]string) ([]string, error) {
	for name := range spec {
		if name != "" && !slices.Contains(net.OutputNames, name) {
			return nil, fmt.Errorf("distill: --loss names %q, which is not an output of the student (outputs: %s)", name, strings.Join(net.OutputNames, ", "))
		}
	}
	kinds := make([]string, len(net.Outputs))
	for j, out := range net.Outputs {
		name := net.OutputNames[j]
		kind, ok := spec[name]
		if !ok {
			kind = spec[""]
		}
		shape := make([]int64, len(out.Shape()))
		for i, d := range out.Shape() {
			shape[i] = int64(d)
		}
		if kind == "" || kind == LossAuto {
			var vals [][]float32
			for _, t := range teacher {
				if j < len(t) && t[j] != nil && t[j].DType == graph.Float {
					vals = append(vals, t[j].Float32s())
				}
			}
			kind = ChooseLoss(shape, vals)
		}
		if kind == LossKD && !classOutput(out.Shape()) {
			return nil, fmt.Errorf("distill: output %q is %v, not class scores [batch, classes]: KD needs class scores (use --loss %s=mse or cosine)", name, out.Shape(), name)
		}
		kinds[j] = kind
	}
	return kinds, nil
}

// minProb bounds probabilities below before their log (a teacher's
// exact 0).
const minProb = 1e-30

// logProbs replaces probabilities by their logs.
func logProbs(v []float32) {
	for i, x := range v {
		v[i] = float32(math.Log(math.Max(float64(x), minProb)))
	}
}
