package bench

import (
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/optictl/optictl/pkg/numerics"
)

// Point is one result placed on the latency/accuracy plane.
type Point struct {
	Label     string
	LatencyMS float64
	Accuracy  float64
}

// plotMetric picks the y axis: top-1 accuracy when every result has it,
// else top-1 agreement with the reference, else cosine similarity.
func plotMetric(rep *Report) (string, func(numerics.Accuracy) *float64, error) {
	all := func(get func(numerics.Accuracy) *float64) bool {
		for _, r := range rep.Results {
			if get(r.Accuracy) == nil {
				return false
			}
		}
		return len(rep.Results) > 0
	}
	for _, m := range []struct {
		name string
		get  func(numerics.Accuracy) *float64
	}{
		{"top-1 accuracy", func(a numerics.Accuracy) *float64 { return a.Top1Accuracy }},
		{"top-1 agreement with the reference", func(a numerics.Accuracy) *float64 { return a.Top1Agreement }},
		{"cosine similarity to the reference", func(a numerics.Accuracy) *float64 { return a.Cosine }},
	} {
		if all(m.get) {
			return m.name, m.get, nil
		}
	}
	return "", nil, fmt.Errorf("bench: --plot: no accuracy metric was measured for every result")
}

// Pareto returns the points no other point beats on both axes (lower
// latency and higher accuracy), sorted by latency.
func Pareto(pts []Point) []Point {
	s := append([]Point{}, pts...)
	sort.SliceStable(s, func(i, j int) bool {
		if s[i].LatencyMS != s[j].LatencyMS {
			return s[i].LatencyMS < s[j].LatencyMS
		}
		return s[i].Accuracy > s[j].Accuracy
	})
	var out []Point
	bestY := math.Inf(-1)
	for _, p := range s {
		if p.Accuracy > bestY {
			out = append(out, p)
			bestY = p.Accuracy
		}
	}
	return out
}

// WritePlot draws p50 latency (x) against accuracy (y) as an SVG, one
// labelled point per result (one colour per backend in a sweep), with the
// Pareto frontier as a step line (DrawFrontier).
func WritePlot(w io.Writer, rep *Report) error {
	metric, get, err := plotMetric(rep)
	if err != nil {
		return err
	}
	multi := false
	for _, r := range rep.Results {
		multi = multi || r.Batch != rep.Results[0].Batch || r.Concurrency != rep.Results[0].Concurrency
	}
	pts := make([]Point, len(rep.Results))
	for i, r := range rep.Results {
		label := r.Variant
		if multi {
			label += fmt.Sprintf(" b%d c%d", r.Batch, r.Concurrency)
		}
		pts[i] = Point{Label: label, LatencyMS: r.LatencyMS.P50, Accuracy: *get(r.Accuracy)}
	}
	onFront := map[string]bool{}
	for _, f := range Pareto(pts) {
		onFront[f.Label] = true
	}
	pp := make([]PlotPoint, len(pts))
	for i, r := range rep.Results {
		group := r.Backend
		if group == "" {
			group = rep.Backend
		}
		pp[i] = PlotPoint{Label: pts[i].Label, Group: group, X: pts[i].LatencyMS, Y: pts[i].Accuracy, Frontier: onFront[pts[i].Label]}
	}
	return DrawFrontier(w, pp, PlotSpec{
		Title:  "latency vs accuracy (" + rep.Backend + ", " + rep.Device + ")",
		XLabel: "p50 latency (ms)",
		YLabel: metric,
	}, "svg")
}
