package quant

import (
	"context"
	"fmt"
	"math"
	"sort"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
)

// QuantizeFunc quantizes a float model leaving the named nodes in float.
type QuantizeFunc func(exclude []string) (*graph.Model, *Report, error)

// AccuracyResult is the outcome of Controlled.
type AccuracyResult struct {
	// Drop is the accuracy drop in percentage points: top-1 accuracy
	// (float minus quantized) with labels, else 100 * (1 - top-1
	// agreement).
	Drop     float64           `json:"drop_points"`
	Accuracy numerics.Accuracy `json:"accuracy"`
	// RefTop1 is the float model's top-1 accuracy (with labels).
	RefTop1 *float64 `json:"ref_top1,omitempty"`
	// LayerSQNR is each quantized node's output SQNR (dB) against fp32 on
	// the first attempt, worst first.
	LayerSQNR []LayerSQNR `json:"layer_sqnr,omitempty"`
	// Met reports whether the drop is within the limit.
	Met bool `json:"met"`
}

// LayerSQNR is one node's quantization error.
type LayerSQNR struct {
	Node string  `json:"node"`
	DB   float64 `json:"sqnr_db"`
}

// Controlled quantizes with quantize, measures the drop against ref on
// samples (labels optional), and while the drop exceeds maxDrop points puts
// the quantized node with the worst output SQNR back in float and tries
// again. It returns the last model tried, its report (LeftInFloat filled)
// and the measurement; Met is false when even all-float-but-one could not
// meet the limit (the caller decides what to do).
func Controlled(ref *graph.Model, quantize QuantizeFunc, backend string, samples [][]*runtime.Tensor, labels []int, maxDrop float64) (*graph.Model, *Report, *AccuracyResult, error) {
	if len(samples) == 0 {
		return nil, nil, nil, fmt.Errorf("quant: accuracy control needs samples")
	}
	var exclude []string
	var ranking []LayerSQNR
	for {
		q, rep, err := quantize(exclude)
		if err != nil {
			return nil, nil, nil, err
		}
		rep.LeftInFloat = append([]string(nil), exclude...)
		acc, refTop1, err := Compare(ref, q, backend, samples, labels)
		if err != nil {
			return nil, nil, nil, err
		}
		res := &AccuracyResult{Accuracy: acc, RefTop1: refTop1}
		switch {
		case labels != nil && refTop1 != nil && acc.Top1Accuracy != nil:
			res.Drop = 100 * (*refTop1 - *acc.Top1Accuracy)
		case acc.Top1Agreement != nil:
			res.Drop = 100 * (1 - *acc.Top1Agreement)
		}
		if ranking == nil {
			if ranking, err = layerSQNR(ref, q, rep, backend, samples); err != nil {
				return nil, nil, nil, err
			}
		}
		res.LayerSQNR = ranking
		res.Met = res.Drop <= maxDrop
		if res.Met {
			return q, rep, res, nil
		}
		// next worst layer that is still quantized and has a name
		next := ""
		for _, l := range ranking {
			if l.Node != "" && !contains(exclude, l.Node) {
				next = l.Node
				break
			}
		}
		if next == "" || len(rep.Quantized) == 0 {
			return q, rep, res, nil
		}
		exclude = append(exclude, next)
	}
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
