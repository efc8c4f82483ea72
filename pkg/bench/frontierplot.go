package bench

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// palette gives each backend its colour (in the order backends appear).
var palette = []color.RGBA{
	{R: 31, G: 119, B: 180, A: 255},
	{R: 255, G: 127, B: 14, A: 255},
	{R: 44, G: 160, B: 44, A: 255},
	{R: 148, G: 103, B: 189, A: 255},
	{R: 140, G: 86, B: 75, A: 255},
}

// box is a label's extent in canvas points.
type box struct{ x0, y0, x1, y1 float64 }

func (a box) overlaps(b box) bool { return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1 }

// PlotPoint is one point of a latency/accuracy plot.
type PlotPoint struct {
	Label    string
	Group    string // one colour per group (the backend)
	X, Y     float64
	Frontier bool // on the Pareto frontier (drawn as a step line)
}

// PlotSpec names a plot's title and axes.
type PlotSpec struct {
	Title, XLabel, YLabel string
}

// DrawFrontier draws the points (x: latency, log scale when the spread is
// over 20x; y: an accuracy figure), one colour per group, the frontier as
// a step line, labels placed where they collide with no other label,
// point or the frontier (a label that finds no free place is left out:
// the table names every point), and the legend right of the data. format
// is "svg" or "png". bench --plot and tune's frontier.svg both use it.
func DrawFrontier(w io.Writer, cs []PlotPoint, spec PlotSpec, format string) error {
	if len(cs) == 0 {
		return fmt.Errorf("bench: plot: no point has both a latency and an accuracy")
	}
	p := plot.New()
	p.Title.Text = spec.Title
	p.X.Label.Text = spec.XLabel
	p.Y.Label.Text = spec.YLabel
	lo, hi := math.Inf(1), 0.0
	for _, c := range cs {
		lo, hi = math.Min(lo, c.X), math.Max(hi, c.X)
	}
	logX := lo > 0 && hi/lo > 20
	if logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		p.X.Label.Text += ", log scale"
	}
	var groups []string
	for _, c := range cs {
		if !slices.Contains(groups, c.Group) {
			groups = append(groups, c.Group)
		}
	}
	legend := plot.NewLegend()
	for i, g := range groups {
		var xys plotter.XYs
		for _, c := range cs {
			if c.Group == g {
				xys = append(xys, plotter.XY{X: c.X, Y: c.Y})
			}
		}
		sc, err := plotter.NewScatter(xys)
		if err != nil {
			return fmt.Errorf("bench: plot: %w", err)
		}
		sc.GlyphStyle.Shape = draw.CircleGlyph{}
		sc.GlyphStyle.Radius = vg.Points(3.5)
		sc.GlyphStyle.Color = palette[i%len(palette)]
		p.Add(sc)
		legend.Add(g, sc)
	}
	var front plotter.XYs
	for _, c := range cs {
		if c.Frontier {
			front = append(front, plotter.XY{X: c.X, Y: c.Y})
		}
	}
	sort.Slice(front, func(i, j int) bool { return front[i].X < front[j].X })
	if len(front) > 0 {
		// A single frontier point still gets a visible step: extend it to
		// the slowest point.
		front = append(front, plotter.XY{X: hi, Y: front[len(front)-1].Y})
		line, err := plotter.NewLine(front)
		if err != nil {
			return fmt.Errorf("bench: plot: %w", err)
		}
		line.StepStyle = plotter.PostStep
		line.Color = color.RGBA{R: 200, A: 255}
		line.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		p.Add(line)
		legend.Add("Pareto frontier", line)
	}
	// Room around the data so that labels fit inside the axes.
	pad := (p.Y.Max - p.Y.Min) * 0.15
	if pad == 0 {
		pad = math.Max(math.Abs(p.Y.Max)*0.1, 0.01)
	}
	p.Y.Min, p.Y.Max = p.Y.Min-pad, p.Y.Max+pad
	if logX {
		p.X.Min, p.X.Max = p.X.Min/1.3, p.X.Max*1.6
	} else {
		span := math.Max(p.X.Max-p.X.Min, p.X.Max*0.1)
		if span == 0 {
			span = 1
		}
		p.X.Min, p.X.Max = math.Max(0, p.X.Min-span*0.1), p.X.Max+span*0.35
	}

	width, height := 8*vg.Inch, 5*vg.Inch
	legendW := 1.4 * vg.Inch
	var cv vg.CanvasWriterTo
	switch format {
	case "svg":
		cv = vgsvg.New(width, height)
	case "png":
		cv = vgimg.PngCanvas{Canvas: vgimg.New(width, height)}
	default:
		return fmt.Errorf("bench: plot: format %q: want svg or png", format)
	}
	dc := draw.New(cv)
	area := draw.Crop(dc, 0, -legendW, 0, 0)
	// Labels are placed on the data canvas the axes will use.
	da := p.DataCanvas(area)
	labels, err := placeLabels(p, da, cs)
	if err != nil {
		return err
	}
	if labels != nil {
		p.Add(labels)
	}
	p.Draw(area)
	lc := draw.Crop(dc, width-legendW+vg.Points(6), 0, 0, 0)
	legend.Top = true
	legend.Left = true
	legend.Draw(lc)
	if _, err := cv.WriteTo(w); err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	return nil
}

// placeLabels tries, for each point in order of latency, a label right,
// left, above and below it, and keeps the first place that overlaps no
// placed label, no point and stays inside the data area.
func placeLabels(p *plot.Plot, da draw.Canvas, cs []PlotPoint) (*labelPlot, error) {
	sty := draw.TextStyle{Font: p.X.Tick.Label.Font, Handler: p.X.Tick.Label.Handler}
	if sty.Handler == nil {
		return nil, nil
	}
	type pt struct{ x, y float64 }
	pts := make([]pt, len(cs))
	for i, c := range cs {
		x, y := p.Transforms(&da)
		pts[i] = pt{float64(x(c.X)), float64(y(c.Y))}
	}
	r := 4.0
	var placed []box
	for _, q := range pts {
		placed = append(placed, box{q.x - r, q.y - r, q.x + r, q.y + r})
	}
	// The frontier's step line is an obstacle too: each step is a
	// horizontal run to the next point, then a vertical drop.
	var fr []pt
	maxX := 0.0
	for i, c := range cs {
		maxX = math.Max(maxX, pts[i].x)
		if c.Frontier {
			fr = append(fr, pts[i])
		}
	}
	sort.Slice(fr, func(i, j int) bool { return fr[i].x < fr[j].x })
	for i, a := range fr {
		nx, ny := maxX, a.y
		if i+1 < len(fr) {
			nx, ny = fr[i+1].x, fr[i+1].y
		}
		placed = append(placed, box{a.x, a.y - 1, nx, a.y + 1}, box{nx - 1, math.Min(a.y, ny), nx + 1, math.Max(a.y, ny)})
	}
	lp := &labelPlot{style: sty}
	order := make([]int, len(cs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return cs[order[a]].Frontier && !cs[order[b]].Frontier })
	for _, i := range order {
		text := cs[i].Label
		w := float64(sty.Width(text))
		h := float64(sty.Height(text))
		q := pts[i]
		for _, off := range [][4]float64{
			{6, -h / 2, 0, -0.5}, // right
			{-6 - w, -h / 2, -1, -0.5},
			{-w / 2, 6, -0.5, 0},
			{-w / 2, -6 - h, -0.5, -1},
			{6, 6, 0, 0},
			{-6 - w, 6, -1, 0},
			{6, -6 - h, 0, -1},
			{-6 - w, -6 - h, -1, -1},
		} {
			b := box{q.x + off[0], q.y + off[1], q.x + off[0] + w, q.y + off[1] + h}
			if b.x0 < float64(da.Min.X) || b.x1 > float64(da.Max.X) || b.y0 < float64(da.Min.Y) || b.y1 > float64(da.Max.Y) {
				continue
			}
			free := true
			for _, o := range placed {
				if b.overlaps(o) {
					free = false
					break
				}
			}
			if !free {
				continue
			}
			placed = append(placed, b)
			lp.items = append(lp.items, placedLabel{x: cs[i].X, y: cs[i].Y, dx: vg.Length(off[0]), dy: vg.Length(off[1]), text: text})
			break
		}
	}
	if len(lp.items) == 0 {
		return nil, nil
	}
	return lp, nil
}

type placedLabel struct {
	x, y   float64   // data
	dx, dy vg.Length // the label's lower-left corner from the point
	text   string
}

// labelPlot draws labels where placeLabels found room.
type labelPlot struct {
	style draw.TextStyle
	items []placedLabel
}

// Plot implements plot.Plotter.
func (l *labelPlot) Plot(c draw.Canvas, p *plot.Plot) {
	x, y := p.Transforms(&c)
	sty := l.style
	sty.XAlign, sty.YAlign = draw.XLeft, draw.YBottom
	for _, it := range l.items {
		c.FillText(sty, vg.Point{X: x(it.x) + it.dx, Y: y(it.y) + it.dy}, it.text)
	}
}
