package numerics

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MetricKind names an accuracy metric of a variant against its reference.
type MetricKind string

// The accuracy metrics (--metric).
const (
	// MetricTop1 is top-1 accuracy against labels (a drop in points).
	MetricTop1 MetricKind = "top1"
	// MetricAgreement is top-1 agreement with the reference on class
	// vectors (a drop in points: 100 * (1 - agreement)).
	MetricAgreement MetricKind = "agreement"
	// MetricCosine is the cosine similarity of all outputs.
	MetricCosine MetricKind = "cosine"
	// MetricSQNR is the signal-to-quantization-noise ratio in dB.
	MetricSQNR MetricKind = "sqnr"
	// MetricIoU is the IoU of the first output's masks binarized at a
	// threshold (probability maps).
	MetricIoU MetricKind = "iou"
)

// DefaultIoUThreshold binarizes probability maps for IoU (DB text
// detectors' usual 0.3).
const DefaultIoUThreshold = 0.3

// MetricKinds lists the metrics in --metric's order.
var MetricKinds = []MetricKind{MetricTop1, MetricAgreement, MetricCosine, MetricSQNR, MetricIoU}

// Metric is an accuracy metric; Threshold is IoU's binarization threshold
// (0: DefaultIoUThreshold).
type Metric struct {
	Kind      MetricKind `json:"kind"`
	Threshold float64    `json:"threshold,omitempty"`
}

// String writes the metric as --metric reads it ("iou@0.3").
func (m Metric) String() string {
	if m.Kind == MetricIoU {
		return fmt.Sprintf("iou@%g", m.threshold())
	}
	return string(m.Kind)
}

func (m Metric) threshold() float64 {
	if m.Threshold > 0 {
		return m.Threshold
	}
	return DefaultIoUThreshold
}

// Title is the metric in words for reports.
func (m Metric) Title() string {
	switch m.Kind {
	case MetricTop1:
		return "top-1 accuracy drop"
	case MetricAgreement:
		return "top-1 agreement drop"
	case MetricCosine:
		return "cosine"
	case MetricSQNR:
		return "SQNR"
	case MetricIoU:
		return fmt.Sprintf("IoU@%g", m.threshold())
	}
	return string(m.Kind)
}

// IsDrop reports whether the metric is judged as a drop in points (lower
// is better) rather than a value with a minimum.
func (m Metric) IsDrop() bool { return m.Kind == MetricTop1 || m.Kind == MetricAgreement }

// ParseMetric reads top1, agreement, cosine, sqnr, iou or iou@T (T in
// (0, 1)).
func ParseMetric(s string) (Metric, error) {
	name, thr, hasThr := strings.Cut(strings.TrimSpace(s), "@")
	m := Metric{Kind: MetricKind(strings.ToLower(name))}
	known := false
	for _, k := range MetricKinds {
		known = known || k == m.Kind
	}
	if !known {
		return Metric{}, fmt.Errorf("numerics: metric %q: want top1, agreement, cosine, sqnr or iou[@T]", s)
	}
	if hasThr {
		if m.Kind != MetricIoU {
			return Metric{}, fmt.Errorf("numerics: metric %q: only iou takes a threshold (@T)", s)
		}
		t, err := strconv.ParseFloat(thr, 64)
		if err != nil || !(t > 0 && t < 1) {
			return Metric{}, fmt.Errorf("numerics: metric %q: threshold %q: want a number in (0, 1)", s, thr)
		}
		m.Threshold = t
	}
	if m.Kind == MetricIoU && m.Threshold == 0 {
		m.Threshold = DefaultIoUThreshold
	}
	return m, nil
}

// ClassShape reports whether an output of this shape is a vector of class
// scores: [C], [N,C] or [N,C,1,1] with C > 1.
func ClassShape(shape []int64) bool {
	switch len(shape) {
	case 1:
		return shape[0] > 1
	case 2:
		return shape[1] > 1
	case 4:
		return shape[1] > 1 && shape[2] == 1 && shape[3] == 1
	}
	return false
}

// ProbabilityMapShape reports whether an output of this shape is a
// one-channel map: [N,1,H,W] or [N,H,W] with H*W > 1.
func ProbabilityMapShape(shape []int64) bool {
	switch len(shape) {
	case 3:
		return shape[1]*shape[2] > 1
	case 4:
		return shape[1] == 1 && shape[2]*shape[3] > 1
	}
	return false
}

// ChooseMetric picks the metric that fits a's first output: top-1
// accuracy with labels; top-1 agreement for class vectors (ClassShape);
// IoU@DefaultIoUThreshold for probability maps (ProbabilityMapShape with
// every reference value in [0, 1], e.g. a Sigmoid output); cosine for
// anything else.
func ChooseMetric(a Accuracy, labelled bool) Metric {
	switch {
	case labelled && a.Top1Accuracy != nil:
		return Metric{Kind: MetricTop1}
	case ClassShape(a.OutputShape):
		return Metric{Kind: MetricAgreement}
	case ProbabilityMapShape(a.OutputShape) && a.Unit:
		return Metric{Kind: MetricIoU, Threshold: DefaultIoUThreshold}
	}
	return Metric{Kind: MetricCosine}
}

// Budget is the accuracy a variant must keep against its reference: a drop
// in points for the top-1 metrics, a minimum for the others.
type Budget struct {
	MaxDrop   float64 `json:"max_drop_points"`
	MinCosine float64 `json:"min_cosine"`
	MinSQNR   float64 `json:"min_sqnr_db"`
	MinIoU    float64 `json:"min_iou"`
}

// DefaultBudget applies whenever optictl quantizes or prunes: top-1
// (accuracy or agreement) drops at most 1 point, cosine >= 0.99, SQNR >=
// 20 dB, IoU >= 0.95.
var DefaultBudget = Budget{MaxDrop: 1, MinCosine: 0.99, MinSQNR: 20, MinIoU: 0.95}

// Limit is the budget's bound for metric m in words ("<= 1 point",
// ">= 0.95").
func (b Budget) Limit(m Metric) string {
	switch m.Kind {
	case MetricTop1, MetricAgreement:
		return fmt.Sprintf("<= %g points", b.MaxDrop)
	case MetricCosine:
		return fmt.Sprintf(">= %g", b.MinCosine)
	case MetricSQNR:
		return fmt.Sprintf(">= %g dB", b.MinSQNR)
	case MetricIoU:
		return fmt.Sprintf(">= %g", b.MinIoU)
	}
	return "?"
}

// Verdict is one measurement judged against a budget.
type Verdict struct {
	Metric string `json:"metric"`
	// Value is the drop in points (top1, agreement), the cosine, the SQNR
	// in dB (+Inf when identical: written as null in JSON) or the IoU.
	Value float64 `json:"value"`
	Limit string  `json:"limit"`
	Met   bool    `json:"met"`
}

// MarshalJSON writes an infinite Value as null.
func (v Verdict) MarshalJSON() ([]byte, error) {
	type plain struct {
		Metric string   `json:"metric"`
		Value  *float64 `json:"value"`
		Limit  string   `json:"limit"`
		Met    bool     `json:"met"`
	}
	p := plain{Metric: v.Metric, Limit: v.Limit, Met: v.Met}
	if !math.IsInf(v.Value, 0) && !math.IsNaN(v.Value) {
		p.Value = &v.Value
	}
	return json.Marshal(p)
}

// ValueString writes Value in the metric's unit.
func (v Verdict) ValueString() string {
	switch {
	case strings.HasPrefix(v.Metric, "top1"), strings.HasPrefix(v.Metric, "agreement"):
		return fmt.Sprintf("drop %.2f points", v.Value)
	case v.Metric == string(MetricSQNR):
		if math.IsInf(v.Value, 1) {
			return "inf dB (identical)"
		}
		return fmt.Sprintf("%.1f dB", v.Value)
	}
	return fmt.Sprintf("%.4f", v.Value)
}

// Judge measures a by metric m and checks it against the budget. refTop1
// is the reference's top-1 accuracy (top1 only). It fails when a lacks
// what m needs (top1 without labels, agreement on an output that is not a
// class vector, ...), naming the output's shape.
func (b Budget) Judge(m Metric, a Accuracy, refTop1 *float64) (Verdict, error) {
	v := Verdict{Metric: m.String(), Limit: b.Limit(m)}
	switch m.Kind {
	case MetricTop1:
		if a.Top1Accuracy == nil || refTop1 == nil {
			return v, fmt.Errorf("numerics: metric top1 needs labels (--labels)")
		}
		v.Value = 100 * (*refTop1 - *a.Top1Accuracy)
		v.Met = v.Value <= b.MaxDrop
	case MetricAgreement:
		if a.Top1Agreement == nil {
			return v, fmt.Errorf("numerics: metric agreement needs class vectors ([N,C] or [N,C,1,1]); the first output has shape %v", a.OutputShape)
		}
		v.Value = 100 * (1 - *a.Top1Agreement)
		v.Met = v.Value <= b.MaxDrop
	case MetricCosine:
		if a.Cosine == nil {
			return v, fmt.Errorf("numerics: no cosine: the outputs are not numeric or one side is all zeros")
		}
		v.Value = *a.Cosine
		v.Met = v.Value >= b.MinCosine
	case MetricSQNR:
		v.Value = math.Inf(1) // identical outputs
		if a.SQNRdB != nil {
			v.Value = *a.SQNRdB
		} else if a.MaxAbsError == nil || *a.MaxAbsError != 0 {
			return v, fmt.Errorf("numerics: no SQNR: the outputs are not numeric or the reference is all zeros")
		}
		v.Met = v.Value >= b.MinSQNR
	case MetricIoU:
		if a.IoU == nil {
			return v, fmt.Errorf("numerics: no IoU: the first output (shape %v) was not measured as a mask", a.OutputShape)
		}
		v.Value = *a.IoU
		v.Met = v.Value >= b.MinIoU
	default:
		return v, fmt.Errorf("numerics: unknown metric %q", m.Kind)
	}
	if a.NonFinite > 0 {
		v.Met = false
	}
	return v, nil
}

// SetMin sets the budget's bound for metric m: a drop in points for the
// top-1 metrics, else a minimum.
func (b *Budget) SetMin(m Metric, v float64) {
	switch m.Kind {
	case MetricTop1, MetricAgreement:
		b.MaxDrop = v
	case MetricCosine:
		b.MinCosine = v
	case MetricSQNR:
		b.MinSQNR = v
	case MetricIoU:
		b.MinIoU = v
	}
}

// ParseMinMetric reads --min-metric NAME=VALUE (e.g. iou=0.97,
// iou@0.5=0.9, cosine=0.995, sqnr=25): the metric to use and its minimum.
// The top-1 metrics take a drop (use --max-accuracy-drop).
func ParseMinMetric(s string) (Metric, float64, error) {
	name, val, ok := strings.Cut(s, "=")
	if !ok {
		return Metric{}, 0, fmt.Errorf("numerics: %q: want METRIC=VALUE (cosine=0.995, sqnr=25, iou=0.97, iou@0.5=0.9)", s)
	}
	m, err := ParseMetric(name)
	if err != nil {
		return Metric{}, 0, err
	}
	if m.IsDrop() {
		return Metric{}, 0, fmt.Errorf("numerics: %q: %s is bounded by a drop in points: use --max-accuracy-drop", s, m.Kind)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return Metric{}, 0, fmt.Errorf("numerics: %q: value %q is not a number", s, val)
	}
	if m.Kind != MetricSQNR && (v < -1 || v > 1) {
		return Metric{}, 0, fmt.Errorf("numerics: %q: %s is at most 1", s, m.Kind)
	}
	return m, v, nil
}
