package numerics

import (
	"fmt"
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Accuracy holds a variant's agreement with the reference on the same
// inputs. Every field is omitted when it was not measured, so an empty
// object means "not measured".
type Accuracy struct {
	// Samples is the number of input sets compared.
	Samples int `json:"samples,omitempty"`
	// Top1Agreement is the fraction of rows of the first output whose
	// argmax equals the reference's (a row is one item of the first axis
	// when the output has rank >= 2; otherwise the whole output). Only for
	// class vectors (see ClassShape): top-1 of anything else means nothing.
	Top1Agreement *float64 `json:"top1_agreement,omitempty"`
	// IoU is the intersection over union of the first output's masks,
	// reference and variant each binarized at IoUThreshold (value >
	// threshold), over all samples; set only for probability maps
	// (ProbabilityMapShape with every reference value in [0, 1]) or when
	// the meter was given a threshold.
	// Two empty masks count as IoU 1.
	IoU          *float64 `json:"iou,omitempty"`
	IoUThreshold float64  `json:"iou_threshold,omitempty"`
	// OutputShape is the first output's shape on the first sample; Unit
	// says whether every reference value of it lay in [0, 1]. Metric
	// choice (ChooseMetric) reads them.
	OutputShape []int64 `json:"output_shape,omitempty"`
	Unit        bool    `json:"unit_range,omitempty"`
	// MaxAbsError is max |variant - reference| over every element of every
	// numeric output.
	MaxAbsError *float64 `json:"max_abs_error,omitempty"`
	// Cosine is the cosine similarity of all outputs, flattened and
	// concatenated over the samples.
	Cosine *float64 `json:"cosine,omitempty"`
	// SQNRdB is 10 log10(sum ref^2 / sum (ref-variant)^2); omitted when the
	// outputs are identical (infinite SQNR).
	SQNRdB *float64 `json:"sqnr_db,omitempty"`
	// Top1Accuracy is the fraction of rows whose argmax equals the label
	// (only with --labels).
	Top1Accuracy *float64 `json:"top1_accuracy,omitempty"`
	// Labelled is the number of rows compared against labels.
	Labelled int `json:"labelled,omitempty"`
	// NonFinite counts NaN or Inf values in the variant's outputs (those
	// elements are left out of the error metrics).
	NonFinite int `json:"nonfinite,omitempty"`
}

// Empty reports whether nothing was measured.
func (a Accuracy) Empty() bool { return a.Samples == 0 && a.Top1Accuracy == nil }

// AccuracyMeter accumulates Accuracy over samples. Set IoUThreshold
// before the first Add to binarize masks at another value than
// DefaultIoUThreshold.
type AccuracyMeter struct {
	IoUThreshold float64

	shape0                   []int64
	notUnit, class           bool
	inter, union             int
	samples, rows, agree     int
	labelled, correct        int
	numeric                  bool
	maxAbs, dot, rr, vv, err float64
	nonFinite                int
	row                      int // next label index
}

// Add compares one sample's outputs (variant against reference, in the
// session's output order). labels, when non-nil, are consumed row by row
// of the first output across calls.
func (m *AccuracyMeter) Add(ref, got []*runtime.Tensor, labels []int) error {
	if len(ref) != len(got) {
		return fmt.Errorf("numerics: the variant has %d outputs, the reference %d", len(got), len(ref))
	}
	m.samples++
	for i := range ref {
		r, g := ref[i], got[i]
		if r.DType == graph.String || g.DType == graph.String {
			continue
		}
		if len(r.Shape) != len(g.Shape) || r.Len() != g.Len() {
			return fmt.Errorf("numerics: output %d: variant shape %v, reference %v", i, g.Shape, r.Shape)
		}
		rv, err := r.AsFloat64()
		if err != nil {
			return fmt.Errorf("numerics: output %d: %w", i, err)
		}
		gv, err := g.AsFloat64()
		if err != nil {
			return fmt.Errorf("numerics: output %d: %w", i, err)
		}
		m.numeric = true
		for k := range rv {
			a, b := rv[k], gv[k]
			if math.IsNaN(b) || math.IsInf(b, 0) || math.IsNaN(a) || math.IsInf(a, 0) {
				if !(math.IsNaN(b) || math.IsInf(b, 0)) {
					continue
				}
				m.nonFinite++
				continue
			}
			d := math.Abs(a - b)
			m.maxAbs = max(m.maxAbs, d)
			m.dot += a * b
			m.rr += a * a
			m.vv += b * b
			m.err += d * d
		}
		if i == 0 {
			if m.shape0 == nil {
				m.shape0 = append([]int64{}, r.Shape...)
				m.class = ClassShape(r.Shape)
			}
			thr := m.threshold()
			for k := range rv {
				a, b := rv[k], gv[k]
				if !(a >= 0 && a <= 1) {
					m.notUnit = true
				}
				ra, ga := a > thr, b > thr
				if ra && ga {
					m.inter++
				}
				if ra || ga {
					m.union++
				}
			}
			rows, width := splitRows(r.Shape, len(rv))
			for k := range rows {
				ra := Argmax(rv[k*width : (k+1)*width])
				ga := Argmax(gv[k*width : (k+1)*width])
				m.rows++
				if ra == ga {
					m.agree++
				}
				if labels != nil {
					if m.row < len(labels) {
						m.labelled++
						if ga == labels[m.row] {
							m.correct++
						}
					}
					m.row++
				}
			}
		}
	}
	return nil
}

func (m *AccuracyMeter) threshold() float64 {
	if m.IoUThreshold > 0 {
		return m.IoUThreshold
	}
	return DefaultIoUThreshold
}

func splitRows(shape []int64, n int) (rows, width int) {
	if len(shape) >= 2 && shape[0] > 0 {
		return int(shape[0]), n / int(shape[0])
	}
	return 1, n
}

// Result returns the accumulated metrics.
func (m *AccuracyMeter) Result() Accuracy {
	a := Accuracy{Samples: m.samples, NonFinite: m.nonFinite}
	if m.samples == 0 {
		return a
	}
	f := func(v float64) *float64 { return &v }
	if m.rows > 0 && m.class {
		a.Top1Agreement = f(float64(m.agree) / float64(m.rows))
	}
	if m.shape0 != nil {
		a.OutputShape, a.Unit = m.shape0, !m.notUnit
		if a.Unit && ProbabilityMapShape(m.shape0) || m.IoUThreshold > 0 {
			a.IoUThreshold = m.threshold()
			if m.union == 0 {
				a.IoU = f(1)
			} else {
				a.IoU = f(float64(m.inter) / float64(m.union))
			}
		}
	}
	if m.numeric {
		a.MaxAbsError = f(m.maxAbs)
		switch {
		case m.rr > 0 && m.vv > 0:
			a.Cosine = f(m.dot / math.Sqrt(m.rr*m.vv))
		case m.rr == 0 && m.vv == 0:
			a.Cosine = f(1)
		}
		if m.err > 0 && m.rr > 0 {
			a.SQNRdB = f(10 * math.Log10(m.rr/m.err))
		}
	}
	if m.labelled > 0 {
		a.Top1Accuracy = f(float64(m.correct) / float64(m.labelled))
		a.Labelled = m.labelled
	}
	return a
}
