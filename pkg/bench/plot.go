package bench

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"sort"

	"github.com/optictl/optictl/pkg/numerics"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
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

// WritePlot draws p50 latency (x) against accuracy (y) as an SVG scatter,
// one labelled point per result, with the Pareto frontier drawn as a line.
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
	xys := make(plotter.XYs, len(rep.Results))
	labels := make([]string, len(rep.Results))
	for i, r := range rep.Results {
		label := r.Variant
		if multi {
			label += fmt.Sprintf(" b%d c%d", r.Batch, r.Concurrency)
		}
		pts[i] = Point{Label: label, LatencyMS: r.LatencyMS.P50, Accuracy: *get(r.Accuracy)}
		xys[i] = plotter.XY{X: pts[i].LatencyMS, Y: pts[i].Accuracy}
		labels[i] = label
	}
	p := plot.New()
	p.Title.Text = "latency vs accuracy (" + rep.Backend + ", " + rep.Device + ")"
	p.X.Label.Text = "p50 latency (ms)"
	p.Y.Label.Text = metric
	front := Pareto(pts)
	fxy := make(plotter.XYs, len(front))
	for i, f := range front {
		fxy[i] = plotter.XY{X: f.LatencyMS, Y: f.Accuracy}
	}
	line, err := plotter.NewLine(fxy)
	if err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	line.Color = color.RGBA{R: 200, A: 255}
	line.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
	sc, err := plotter.NewScatter(xys)
	if err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	sc.GlyphStyle.Shape = draw.CircleGlyph{}
	sc.GlyphStyle.Radius = vg.Points(3)
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
	if err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	for i := range lb.TextStyle {
		lb.TextStyle[i].XAlign = draw.XLeft
	}
	lb.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(2)}
	p.Add(line, sc, lb)
	p.Legend.Add("Pareto frontier", line)
	p.Legend.Add("variants", sc)
	p.Legend.Top = true
	// Room for the labels right of the last point and above the top one.
	p.X.Max += (p.X.Max - p.X.Min) * 0.25
	if p.X.Max == p.X.Min {
		p.X.Min, p.X.Max = p.X.Min*0.9, p.X.Max*1.1+1e-9
	}
	if p.Y.Max == p.Y.Min {
		p.Y.Min, p.Y.Max = p.Y.Min-0.05, p.Y.Max+0.05
	}
	wt, err := p.WriterTo(6*vg.Inch, 4*vg.Inch, "svg")
	if err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	if _, err := wt.WriteTo(w); err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	return nil
}
