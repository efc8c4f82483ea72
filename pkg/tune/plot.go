package tune

import (
	"fmt"
	"io"
	"math"

	"github.com/optictl/optictl/pkg/bench"
)

// WritePlot draws p50 latency (x) against the accuracy drop (y) for every
// candidate with a measured accuracy, one colour per backend, the
// frontier as a step line (bench.DrawFrontier: labels that do not
// collide, legend outside the data, log latency when the spread is
// wide). format is "svg" or "png".
func WritePlot(w io.Writer, rep *Report, format string) error {
	var pts []bench.PlotPoint
	for _, c := range rep.Candidates {
		if !math.IsNaN(c.Accuracy.Drop) && c.P50MS > 0 {
			pts = append(pts, bench.PlotPoint{Label: c.Variant + "@" + c.Backend, Group: c.Backend, X: c.P50MS, Y: c.Accuracy.Drop, Frontier: c.Pareto})
		}
	}
	if len(pts) == 0 {
		return fmt.Errorf("tune: plot: no candidate has both a latency and an accuracy")
	}
	return bench.DrawFrontier(w, pts, bench.PlotSpec{
		Title:  "latency vs accuracy: " + rep.Model,
		XLabel: "p50 latency (ms; fpga: simulated device)",
		YLabel: "accuracy drop vs original (" + rep.Metric + dropUnit(rep.Metric) + ")",
	}, format)
}

func dropUnit(metric string) string {
	if metric == "top1" || metric == "agreement" {
		return ", points"
	}
	return ", 1 - value"
}
