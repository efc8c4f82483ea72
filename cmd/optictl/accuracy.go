package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/olekukonko/tablewriter"

	"github.com/optictl/optictl/pkg/bench"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/quant"
	"github.com/optictl/optictl/pkg/runtime"
)

// The accuracy budget of optimize: whenever it quantizes or prunes, the
// result is measured against the float model with the metric that fits the
// output (numerics.ChooseMetric, or --metric) and must stay within
// numerics.DefaultBudget (or --max-accuracy-drop / --min-metric); a result
// outside it is never written (exit 3, with the table of what was tried).

// budgetHelp is the budget's paragraph in optimize --help.
const budgetHelp = `Accuracy budget: whenever --quantize or --prune changes the model, the
result is measured against the float model and is written only within
the budget; otherwise exit 3, nothing written, with a table of what was
tried. The metric fits the first output (--metric overrides): top1 with
--labels; top-1 agreement for class vectors ([N,C] or [N,C,1,1]);
iou@0.3 (masks binarized at 0.3) for probability maps ([N,1,H,W] with
values in [0, 1], e.g. a Sigmoid); cosine otherwise; sqnr on request.
Default budget: top-1 accuracy or agreement drop <= 1 point, cosine >=
0.99, IoU >= 0.95, SQNR >= 20 dB (--max-accuracy-drop PCT and
--min-metric cosine=V|sqnr=DB|iou[@T]=V override it). Quantization puts
the worst layers (output SQNR) back in float until the budget is met.
Samples: --data; without it, the last 25% of --calib (at least 1),
held out from calibration; else seeded inputs with representative dims.`

// accuracyControl parses --metric, --min-metric and --max-accuracy-drop
// into quant.Control (usage errors). --max-accuracy-drop without a metric
// picks the top-1 one (top1 with --labels, else agreement).
func (o *optimizeOptions) accuracyControl() (quant.Control, error) {
	c := quant.Control{Budget: numerics.DefaultBudget}
	if o.Metric != "" {
		m, err := numerics.ParseMetric(o.Metric)
		if err != nil {
			return c, usageErr("--metric: %v", err)
		}
		c.Metric = &m
	}
	if o.MinMetric != "" {
		m, v, err := numerics.ParseMinMetric(o.MinMetric)
		if err != nil {
			return c, usageErr("--min-metric: %v", err)
		}
		if c.Metric != nil && c.Metric.String() != m.String() {
			return c, usageErr("--min-metric %s bounds %s, but --metric is %s", o.MinMetric, m, c.Metric)
		}
		c.Metric = &m
		c.Budget.SetMin(m, v)
	}
	if o.MaxDrop >= 0 {
		if c.Metric != nil && !c.Metric.IsDrop() {
			return c, usageErr("--max-accuracy-drop bounds the top-1 metrics (top1, agreement); %s takes --min-metric %s=VALUE", c.Metric, c.Metric.Kind)
		}
		if c.Metric == nil {
			m := numerics.Metric{Kind: numerics.MetricAgreement}
			if o.Labels != "" {
				m.Kind = numerics.MetricTop1
			}
			c.Metric = &m
		}
		c.Budget.MaxDrop = o.MaxDrop
	}
	if c.Metric != nil && c.Metric.Kind == numerics.MetricTop1 && o.Labels == "" {
		return c, usageErr("--metric top1 needs --labels (and --data)")
	}
	return c, nil
}

// checkAccuracyFlags validates the accuracy flags (usage errors).
func (o *optimizeOptions) checkAccuracyFlags() error {
	compress := o.Quantize != "" || o.Prune > 0
	switch {
	case o.MaxDrop >= 0 && !compress:
		return usageErr("--max-accuracy-drop needs --quantize or --prune (it bounds what they cost)")
	case o.Metric != "" && !compress:
		return usageErr("--metric needs --quantize or --prune")
	case o.MinMetric != "" && !compress:
		return usageErr("--min-metric needs --quantize or --prune")
	case o.Labels != "" && o.Data == "":
		return usageErr("--labels needs --data (the samples they label)")
	case o.NoVerify && (o.MaxDrop >= 0 || o.Metric != "" || o.MinMetric != "" || o.Labels != ""):
		return usageErr("--no-verify measures nothing: --max-accuracy-drop, --metric, --min-metric and --labels need the accuracy check")
	}
	_, err := o.accuracyControl()
	return err
}

// evalSamples returns the samples accuracy is measured on and the
// calibration samples left to calibrate with: --data when given; else the
// last 25% of calib (at least 1) held out from calibration; with a single
// calibration sample, that sample (said so); else seeded inputs with
// representative dynamic dims (numerics.VerifyDims), never 1s.
func evalSamples(o *optimizeOptions, m *graph.Model, calib [][]*runtime.Tensor) (eval, keep [][]*runtime.Tensor, checked string, err error) {
	switch {
	case o.Data != "":
		if eval, err = loadSamples(o.Data, m, 1000); err != nil {
			return nil, nil, "", err
		}
		return eval, calib, fmt.Sprintf("%d samples of --data on %s", len(eval), o.Backend), nil
	case len(calib) == 1:
		return calib, calib, fmt.Sprintf("the 1 calibration sample it was calibrated on (too few to hold one out; pass --data) on %s", o.Backend), nil
	case len(calib) > 1:
		hold := max(1, len(calib)/4)
		keep, eval = calib[:len(calib)-hold], calib[len(calib)-hold:]
		return eval, keep, fmt.Sprintf("%d held-out calibration %s; calibrated on %d; on %s", len(eval), plural(len(eval), "sample"), len(keep), o.Backend), nil
	}
	dims := numerics.VerifyDimsBounded(m, o.maxMem.seeded)[0]
	if eval, err = quant.SeededSamples(m, 8, 1, dims, o.maxMem.seeded); err != nil {
		return nil, nil, "", err
	}
	return eval, calib, fmt.Sprintf("%d seeded random inputs of shape %s on %s (pass --data or --calib for real inputs)", len(eval), numerics.DescribeShapes(namedSample(m, eval[0])), o.Backend), nil
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

// triedRow is one line of the table of what was tried.
type triedRow struct {
	Variant string
	quant.Attempt
}

// printTried writes the table of what accuracy control tried: variant and
// layers in float, metric, value, budget, verdict.
func printTried(w io.Writer, rows []triedRow) error {
	t := tablewriter.NewTable(w)
	t.Header("Variant", "In float", "Metric", "Value", "Budget", "Verdict")
	for _, r := range rows {
		verdict := "outside"
		if r.Verdict.Met {
			verdict = "within"
		}
		if err := t.Append([]string{r.Variant, strconv.Itoa(r.InFloat), r.Verdict.Metric, r.Verdict.ValueString(), r.Verdict.Limit, verdict}); err != nil {
			return err
		}
	}
	return t.Render()
}

// triedRows lists a quantization result's attempts (int8-auto: every
// variant's).
func triedRows(qr *quantizeResult, recipe string) []triedRow {
	var rows []triedRow
	if len(qr.Search) > 0 {
		for _, c := range qr.Search {
			if c.Accuracy == nil {
				continue
			}
			for _, a := range c.Accuracy.Tried {
				rows = append(rows, triedRow{c.Variant, a})
			}
		}
		return rows
	}
	if qr.Control != nil {
		for _, a := range qr.Control.Tried {
			rows = append(rows, triedRow{recipe, a})
		}
	}
	return rows
}

// pruneAccuracy is the budget check of --prune: the pruned model against
// the model before pruning.
type pruneAccuracy struct {
	Checked  string            `json:"checked"`
	Metric   string            `json:"metric"`
	Verdict  numerics.Verdict  `json:"verdict"`
	Accuracy numerics.Accuracy `json:"accuracy"`
}

// checkPruneBudget measures the pruned model against the one before
// pruning with the budget's metric, on --data, the held-out part of
// --calib, or seeded inputs (evalSamples). With --no-verify it measures
// nothing and returns nil.
func checkPruneBudget(o *optimizeOptions, before, pruned *graph.Model) (*pruneAccuracy, error) {
	if o.NoVerify {
		return nil, nil
	}
	ctl, err := o.accuracyControl()
	if err != nil {
		return nil, err
	}
	var calib [][]*runtime.Tensor
	if o.Calib != "" {
		ss, err := bench.LoadData(o.Calib, sessionInfos(before), o.CalibSamples)
		if err != nil {
			return nil, usageErr("--calib: %v", err)
		}
		for i := range ss {
			calib = append(calib, ss[i])
		}
	}
	samples, _, checked, err := evalSamples(o, before, calib)
	if err != nil {
		return nil, err
	}
	var labels []int
	if o.Labels != "" {
		if labels, err = bench.LoadLabels(o.Labels); err != nil {
			return nil, usageErr("--labels: %v", err)
		}
	}
	var thr float64
	if ctl.Metric != nil {
		thr = ctl.Metric.Threshold
	}
	acc, refTop1, err := quant.CompareAt(before, pruned, o.Backend, samples, labels, thr)
	if err != nil {
		return nil, fmt.Errorf("the pruned model does not run: %w", err)
	}
	m := numerics.ChooseMetric(acc, labels != nil)
	if ctl.Metric != nil {
		m = *ctl.Metric
	}
	v, err := ctl.Budget.Judge(m, acc, refTop1)
	if err != nil {
		return nil, fmt.Errorf("accuracy budget of --prune: %w", err)
	}
	pa := &pruneAccuracy{Checked: checked, Metric: m.String(), Verdict: v, Accuracy: acc}
	if !v.Met {
		return pa, failedErr(fmt.Errorf("accuracy budget: --prune %g leaves %s %s, outside %s; nothing was written (--max-accuracy-drop or --min-metric loosen the budget)", o.Prune, pa.Metric, v.ValueString(), v.Limit))
	}
	return pa, nil
}

// printPruneAccuracy writes the --prune budget check (a table when it
// failed).
func printPruneAccuracy(w io.Writer, o *optimizeOptions, pa *pruneAccuracy) error {
	if pa == nil {
		return nil
	}
	if !pa.Verdict.Met {
		fmt.Fprintf(w, "accuracy budget, what was tried (%s):\n", pa.Checked)
		return printTried(w, []triedRow{{Variant: fmt.Sprintf("prune %g %s", o.Prune, o.PruneMode), Attempt: quant.Attempt{Verdict: pa.Verdict}}})
	}
	fmt.Fprintf(w, "pruned vs unpruned (%s): %s %s, within %s\n", pa.Checked, pa.Metric, pa.Verdict.ValueString(), pa.Verdict.Limit)
	return nil
}
