package quant

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
)

// QuantizeFunc quantizes a float model leaving the named nodes in float.
type QuantizeFunc func(exclude []string) (*graph.Model, *Report, error)

// AccuracyResult is the outcome of Controlled.
type AccuracyResult struct {
	// Metric is the metric judged (numerics.Metric.String: top1,
	// agreement, cosine, sqnr, iou@T) and Verdict the last measurement
	// against the budget.
	Metric  string           `json:"metric"`
	Verdict numerics.Verdict `json:"verdict"`
	// Drop is the accuracy drop in points for the top-1 metrics: top-1
	// accuracy (float minus quantized) with labels, else 100 * (1 - top-1
	// agreement); 0 for the others.
	Drop     float64           `json:"drop_points"`
	Accuracy numerics.Accuracy `json:"accuracy"`
	// RefTop1 is the float model's top-1 accuracy (with labels).
	RefTop1 *float64 `json:"ref_top1,omitempty"`
	// LayerSQNR is each quantized node's output SQNR (dB) against fp32 on
	// the first attempt, worst first.
	LayerSQNR []LayerSQNR `json:"layer_sqnr,omitempty"`
	// Tried lists every attempt, in order: how many of the worst layers
	// were left in float and the verdict.
	Tried []Attempt `json:"tried"`
	// Met reports whether the returned model is within the budget.
	Met bool `json:"met"`
	// Stopped says why the search ended early (the time budget ran out).
	Stopped string `json:"stopped,omitempty"`
}

// Attempt is one quantization Controlled measured.
type Attempt struct {
	// InFloat is the number of quantizable nodes put back in float (the
	// worst by output SQNR).
	InFloat int              `json:"in_float"`
	Verdict numerics.Verdict `json:"verdict"`
}

// LayerSQNR is one node's quantization error.
type LayerSQNR struct {
	Node string  `json:"node"`
	DB   float64 `json:"sqnr_db"`
}

// Control is what accuracy control keeps: the metric (nil: the one that
// fits the float model's first output, numerics.ChooseMetric) and the
// budget it is judged by.
type Control struct {
	Metric *numerics.Metric
	Budget numerics.Budget
	// Deadline, when set, ends the search when passed (before the next
	// attempt): the best model within the budget so far is kept (else
	// the last tried) and AccuracyResult.Stopped says so.
	Deadline time.Time
	// Progress gets one line per attempt.
	Progress Progress
}

// Controlled is ControlledBy with the metric that fits the output and
// numerics.DefaultBudget, its top-1 drop limit set to maxDrop points.
func Controlled(ref *graph.Model, quantize QuantizeFunc, backend string, samples [][]*runtime.Tensor, labels []int, maxDrop float64) (*graph.Model, *Report, *AccuracyResult, error) {
	b := numerics.DefaultBudget
	b.MaxDrop = maxDrop
	return ControlledBy(ref, quantize, backend, samples, labels, Control{Budget: b})
}

// ControlledBy quantizes with quantize, measures the result against ref on
// samples (labels optional) with c's metric, and while it is outside c's
// budget puts the quantized nodes with the worst output SQNR back in
// float: 1, 2, 4, ... of them until the budget is met, then bisects
// between the last count that failed and the first that met it, so n
// layers cost O(log n) attempts. Something always stays quantized: a count
// that leaves nothing quantized ends the search unmet. It
// returns the model kept (the one that met the budget with the fewest
// nodes in float, else the last tried), its report (LeftInFloat filled)
// and the measurement with every attempt; Met is false when the budget
// could not be met (the caller decides what to do).
func ControlledBy(ref *graph.Model, quantize QuantizeFunc, backend string, samples [][]*runtime.Tensor, labels []int, c Control) (*graph.Model, *Report, *AccuracyResult, error) {
	if len(samples) == 0 {
		return nil, nil, nil, fmt.Errorf("quant: accuracy control needs samples")
	}
	type outcome struct {
		q   *graph.Model
		rep *Report
		res *AccuracyResult
		// empty: putting these layers back left nothing quantized (a
		// static region needs its neighbours): no answer, not measured
		empty bool
	}
	var (
		ranking []LayerSQNR
		metric  numerics.Metric
		tried   []Attempt
	)
	if c.Metric != nil {
		metric = *c.Metric
	}
	try := func(k int) (*outcome, error) {
		var exclude []string
		for _, l := range ranking[:k] {
			exclude = append(exclude, l.Node)
		}
		q, rep, err := quantize(exclude)
		if err != nil {
			return nil, err
		}
		rep.LeftInFloat = append([]string(nil), exclude...)
		if k > 0 && len(rep.Quantized) == 0 {
			return &outcome{q: q, rep: rep, empty: true}, nil
		}
		acc, refTop1, err := CompareAt(ref, q, backend, samples, labels, metric.Threshold)
		if err != nil {
			return nil, err
		}
		if metric.Kind == "" {
			metric = numerics.ChooseMetric(acc, labels != nil)
		}
		v, err := c.Budget.Judge(metric, acc, refTop1)
		if err != nil {
			return nil, fmt.Errorf("quant: accuracy control: %w", err)
		}
		res := &AccuracyResult{Metric: metric.String(), Verdict: v, Accuracy: acc, RefTop1: refTop1, Met: v.Met}
		if metric.IsDrop() {
			res.Drop = v.Value
		}
		tried = append(tried, Attempt{InFloat: k, Verdict: v})
		c.Progress.report(len(tried), 0, "accuracy: %d layers in float: %s %s (%s)", k, res.Metric, v.ValueString(), map[bool]string{true: "within the budget", false: "outside the budget"}[v.Met])
		return &outcome{q: q, rep: rep, res: res}, nil
	}
	stopped := ""
	finish := func(o *outcome) (*graph.Model, *Report, *AccuracyResult, error) {
		o.res.LayerSQNR = ranking
		o.res.Tried = tried
		o.res.Stopped = stopped
		return o.q, o.rep, o.res, nil
	}
	// out of time: stop before the next attempt
	outOfTime := func() bool {
		if pastDeadline(c.Deadline) {
			stopped = fmt.Sprintf("time budget spent after %d attempts; kept the best one so far", len(tried))
			return true
		}
		return false
	}
	first, err := try(0)
	if err != nil {
		return nil, nil, nil, err
	}
	if first.res.Met || len(first.rep.Quantized) == 0 {
		return finish(first)
	}
	all, err := layerSQNR(ref, first.q, first.rep, backend, samples)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, l := range all {
		if l.Node != "" {
			ranking = append(ranking, l)
		}
	}
	limit := len(ranking) - 1 // keep at least one quantized node
	if len(all) > len(ranking) {
		limit = len(ranking) // unnamed nodes stay quantized anyway
	}
	// grow: 1, 2, 4, ... nodes in float until the budget is met
	lo, last := 0, first
	var hi *outcome
	hiK := 0
	for k := 1; k <= limit; {
		if outOfTime() {
			break
		}
		o, err := try(k)
		if err != nil {
			return nil, nil, nil, err
		}
		if o.empty {
			break
		}
		if o.res.Met {
			hi, hiK = o, k
			break
		}
		lo, last = k, o
		if k == limit {
			break
		}
		k = min(2*k, limit)
	}
	if hi == nil {
		return finish(last)
	}
	// bisect between lo (outside the budget) and hiK (within it)
	for hiK-lo > 1 && !outOfTime() {
		mid := (lo + hiK) / 2
		o, err := try(mid)
		if err != nil {
			return nil, nil, nil, err
		}
		if !o.empty && o.res.Met {
			hi, hiK = o, mid
		} else {
			lo = mid
		}
	}
	return finish(hi)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// layerSQNR runs both models with every quantized node's output exposed
// and ranks the nodes by SQNR of that output, worst first.
func layerSQNR(ref, q *graph.Model, rep *Report, backend string, samples [][]*runtime.Tensor) ([]LayerSQNR, error) {
	var names []string
	for _, d := range rep.done {
		names = append(names, d[1])
	}
	expose := func(m *graph.Model) (runtime.Session, map[string]int, error) {
		c := m.Clone()
		for _, n := range names {
			if !c.Graph.IsGraphOutput(n) {
				c.Graph.Outputs = append(c.Graph.Outputs, &graph.ValueInfo{Name: n, DType: graph.Float, HasType: true})
			}
		}
		s, err := runtime.Open(backend, c, runtime.Options{Threads: 1})
		if err != nil {
			return nil, nil, fmt.Errorf("quant: per-layer SQNR: %w", err)
		}
		idx := map[string]int{}
		for i, o := range s.Outputs() {
			idx[o.Name] = i
		}
		return s, idx, nil
	}
	rs, ri, err := expose(ref)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	qs, qi, err := expose(q)
	if err != nil {
		return nil, err
	}
	defer qs.Close()
	sig := make([]float64, len(names))
	noise := make([]float64, len(names))
	for k, in := range samples {
		ro, err := rs.Run(context.Background(), in)
		if err != nil {
			return nil, fmt.Errorf("quant: per-layer SQNR: sample %d: %w", k, err)
		}
		rc := make([]*runtime.Tensor, len(ro))
		for i := range ro {
			rc[i] = ro[i].Clone()
		}
		qo, err := qs.Run(context.Background(), in)
		if err != nil {
			return nil, fmt.Errorf("quant: per-layer SQNR: sample %d: %w", k, err)
		}
		for j, n := range names {
			a, b := rc[ri[n]], qo[qi[n]]
			if a.DType != graph.Float || b.DType != graph.Float || a.Len() != b.Len() {
				continue
			}
			af, bf := a.Float32s(), b.Float32s()
			for i := range af {
				d := float64(af[i]) - float64(bf[i])
				sig[j] += float64(af[i]) * float64(af[i])
				noise[j] += d * d
			}
		}
	}
	out := make([]LayerSQNR, len(names))
	for j := range names {
		db := math.Inf(1)
		if noise[j] > 0 {
			db = 10 * math.Log10(sig[j]/noise[j])
		}
		out[j] = LayerSQNR{Node: rep.done[j][0], DB: db}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].DB < out[b].DB })
	return out, nil
}
