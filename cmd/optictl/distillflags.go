package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/optictl/optictl/pkg/distill"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// temperatureValue is --temperature: "auto" (stored as 0: chosen from the
// teacher's outputs by distill.AutoTemperature) or a positive number.
type temperatureValue float64

func (t *temperatureValue) String() string {
	if *t == 0 {
		return "auto"
	}
	return strconv.FormatFloat(float64(*t), 'g', -1, 64)
}

func (t *temperatureValue) Set(s string) error {
	if strings.EqualFold(s, "auto") {
		*t = 0
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v > 0) {
		return fmt.Errorf("want auto or a number > 0")
	}
	*t = temperatureValue(v)
	return nil
}

func (t *temperatureValue) Type() string { return "auto|T" }

// temperatureUsage is --temperature's help, shared by distill and
// optimize --recover distill.
const temperatureUsage = "softmax temperature of the KD term: a number, or auto = 1 with --kd-standardize (z-scored scores), else half the median spread (standard deviation) of the teacher's class scores, at least 1 (logit scales differ by 1000x between models; a fixed T=4 on logits thousands apart is plain cross-entropy on the teacher's argmax)"

// standardizeUsage is --kd-standardize's help.
const standardizeUsage = "z-score the teacher's and the student's class scores (outputs of 3 or more classes) per sample before the KD softmax (logit standardization, Sun et al. 2024): KD matches the shape of the teacher's scores, not their scale, so it works for students of any logit scale (a new architecture, one trained from scratch); false: classic KD on raw logits"

// describeLoss resolves what the student is trained on (distill.Plan
// with o's Loss, Temperature and Standardize) and says it in words: the
// loss of each output against the teacher (tout nil: the teacher did not
// run) and the cross-entropy on labels (weighted by o.Alpha).
func describeLoss(student *graph.Model, tout [][]*runtime.Tensor, o distill.Options, labels bool) (string, []distill.OutputLoss, error) {
	if tout == nil {
		return "cross-entropy on labels", nil, nil
	}
	plan, err := distill.Plan(student, tout, o)
	if err != nil {
		return "", nil, err
	}
	var terms []string
	for _, l := range plan {
		t := l.Kind
		if l.Kind == distill.LossKD {
			how := ""
			if o.Temperature == 0 {
				how = ", auto"
			}
			if l.Standardized {
				how += ", standardized"
			}
			if l.FromProbabilities {
				how += ", on the Softmax's input"
			}
			t = fmt.Sprintf("KD(T=%.4g%s)", l.Temperature, how)
			if labels {
				t = fmt.Sprintf("%.6g·%s", o.Alpha, t)
			}
		}
		if len(plan) > 1 {
			t += " on " + l.Output
		}
		terms = append(terms, t)
	}
	d := strings.Join(terms, " + ")
	if labels {
		return d + fmt.Sprintf(" + %.6g·cross-entropy", 1-o.Alpha), plan, nil
	}
	return d + ", no labels", plan, nil
}
