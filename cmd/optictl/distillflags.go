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
const standardizeUsage = "z-score the teacher's and the student's class scores per sample before the KD softmax (logit standardization, Sun et al. 2024): KD matches the shape of the teacher's scores, not their scale, so it works for students of any logit scale (a new architecture, one trained from scratch); false: classic KD on raw logits"

// describeLoss resolves what the student is trained on and says it in
// words: the loss of each output against the teacher (tout nil: the
// teacher did not run) and the cross-entropy on labels. It returns the
// temperature to train with: T, or distill.AutoTemperature's when T is 0.
func describeLoss(student *graph.Model, tout [][]*runtime.Tensor, spec map[string]string, labels bool, alpha, T float64, standardize bool) (string, float64, error) {
	if tout == nil {
		return "cross-entropy on labels", T, nil
	}
	names, kinds, err := distill.Losses(student, tout, spec)
	if err != nil {
		return "", 0, err
	}
	auto := ""
	if T == 0 {
		T, auto = distill.AutoTemperature(tout, kinds, standardize), ", auto"
	}
	if standardize {
		auto += ", standardized"
	}
	var terms []string
	for i, k := range kinds {
		t := k
		if k == distill.LossKD {
			t = fmt.Sprintf("KD(T=%.4g%s)", T, auto)
			if labels {
				t = fmt.Sprintf("%.6g·%s", alpha, t)
			}
		}
		if len(kinds) > 1 {
			t += " on " + names[i]
		}
		terms = append(terms, t)
	}
	d := strings.Join(terms, " + ")
	if labels {
		return d + fmt.Sprintf(" + %.6g·cross-entropy", 1-alpha), T, nil
	}
	return d + ", no labels", T, nil
}
