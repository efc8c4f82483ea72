package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
)

// column is one column of the table and markdown reports.
type column struct {
	head string
	// value extracts the number (ok false: blank cell).
	value func(r Result) (float64, bool)
	// text formats the number.
	text func(r Result, v float64) string
	// better is -1 when lower is better, +1 when higher is, 0 when the
	// column is not ranked.
	better int
}

func some(v float64) (float64, bool) { return v, true }

func ptr(p *float64) (float64, bool) {
	if p == nil {
		return 0, false
	}
	return *p, true
}

func fixed(prec int) func(Result, float64) string {
	return func(_ Result, v float64) string { return strconv.FormatFloat(v, 'f', prec, 64) }
}

func sig(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

func columns(rep *Report) []column {
	hasLabels := false
	hasSQNR := false
	batched := false
	hasDevice := false
	for _, r := range rep.Results {
		hasDevice = hasDevice || r.Device != nil
		batched = batched || r.Batch > 1
		hasLabels = hasLabels || r.Accuracy.Top1Accuracy != nil
		hasSQNR = hasSQNR || r.Accuracy.SQNRdB != nil
	}
	cols := []column{
		{head: "p50 ms", value: func(r Result) (float64, bool) { return some(r.LatencyMS.P50) }, text: func(_ Result, v float64) string { return sig(v) }, better: -1},
		{head: "p50 95% CI", value: func(r Result) (float64, bool) { return some(r.P50CIms.Lo) }, text: func(r Result, _ float64) string {
			return sig(r.P50CIms.Lo) + "-" + sig(r.P50CIms.Hi)
		}},
		{head: "p90 ms", value: func(r Result) (float64, bool) { return some(r.LatencyMS.P90) }, text: func(_ Result, v float64) string { return sig(v) }, better: -1},
		{head: "p99 ms", value: func(r Result) (float64, bool) { return some(r.LatencyMS.P99) }, text: func(_ Result, v float64) string { return sig(v) }, better: -1},
		{head: "CV", value: func(r Result) (float64, bool) { return some(r.CV) }, text: func(_ Result, v float64) string { return fmt.Sprintf("%.1f%%", 100*v) }},
		{head: "inf/s", value: func(r Result) (float64, bool) { return some(r.ThroughputPerS) }, text: func(_ Result, v float64) string { return sig(v) }, better: +1},
		{head: "speedup", value: func(r Result) (float64, bool) { return some(r.Speedup) }, text: func(r Result, v float64) string {
			s := strconv.FormatFloat(v, 'f', 2, 64) + "x"
			if !r.Reference && !r.SpeedupSignificant {
				s = "~" + s
			}
			return s
		}, better: +1},
		{head: "top1 agree", value: func(r Result) (float64, bool) { return ptr(r.Accuracy.Top1Agreement) }, text: func(_ Result, v float64) string { return fmt.Sprintf("%.2f%%", 100*v) }, better: +1},
	}
	if batched {
		cols = append(cols[:6:6], append([]column{{head: "samples/s", value: func(r Result) (float64, bool) { return some(r.SamplesPerS) }, text: func(_ Result, v float64) string { return sig(v) }, better: +1}}, cols[6:]...)...)
	}
	if hasDevice {
		cols = append(cols,
			column{head: "device ms (sim)", value: func(r Result) (float64, bool) {
				if r.Device == nil {
					return 0, false
				}
				return r.Device.LatencyMS, true
			}, text: func(_ Result, v float64) string { return sig(v) }},
			column{head: "device inf/s (sim)", value: func(r Result) (float64, bool) {
				if r.Device == nil {
					return 0, false
				}
				return r.Device.ThroughputPerS, true
			}, text: func(_ Result, v float64) string { return sig(v) }})
	}
	if hasLabels {
		cols = append(cols, column{head: "top1 acc", value: func(r Result) (float64, bool) { return ptr(r.Accuracy.Top1Accuracy) }, text: func(_ Result, v float64) string { return fmt.Sprintf("%.2f%%", 100*v) }, better: +1})
	}
	cols = append(cols,
		column{head: "cosine", value: func(r Result) (float64, bool) { return ptr(r.Accuracy.Cosine) }, text: fixed(6), better: +1},
		column{head: "max abs err", value: func(r Result) (float64, bool) { return ptr(r.Accuracy.MaxAbsError) }, text: func(_ Result, v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) }, better: -1},
	)
	if hasSQNR {
		cols = append(cols, column{head: "SQNR dB", value: func(r Result) (float64, bool) {
			if r.Accuracy.SQNRdB == nil && r.Accuracy.MaxAbsError != nil && *r.Accuracy.MaxAbsError == 0 {
				return math.Inf(1), true // identical outputs
			}
			return ptr(r.Accuracy.SQNRdB)
		}, text: func(_ Result, v float64) string {
			if math.IsInf(v, 1) {
				return "inf"
			}
			return strconv.FormatFloat(v, 'f', 1, 64)
		}, better: +1})
	}
	cols = append(cols, column{head: "size MB", value: func(r Result) (float64, bool) { return some(float64(r.SizeBytes) / 1e6) }, text: func(_ Result, v float64) string { return sig(v) }, better: -1})
	return cols
}

// cells renders the report's rows; best[i][j] is true where row i holds the
// best value of column j within its batch/concurrency group (groups of one
// model are not ranked; ties are all best).
func cells(rep *Report, cols []column) (rows [][]string, best [][]bool) {
	type key struct{ b, c int }
	group := map[key][]int{}
	for i, r := range rep.Results {
		k := key{r.Batch, r.Concurrency}
		group[k] = append(group[k], i)
	}
	rows = make([][]string, len(rep.Results))
	best = make([][]bool, len(rep.Results))
	for i, r := range rep.Results {
		rows[i] = make([]string, len(cols))
		best[i] = make([]bool, len(cols))
		for j, c := range cols {
			if v, ok := c.value(r); ok {
				rows[i][j] = c.text(r, v)
			}
		}
	}
	for _, idx := range group {
		if len(idx) < 2 {
			continue
		}
		for j, c := range cols {
			if c.better == 0 {
				continue
			}
			var bv float64
			found := false
			for _, i := range idx {
				v, ok := c.value(rep.Results[i])
				if !ok || math.IsNaN(v) {
					continue
				}
				if !found || float64(c.better)*(v-bv) > 0 {
					bv, found = v, true
				}
			}
			for _, i := range idx {
				if v, ok := c.value(rep.Results[i]); ok && found && v == bv {
					best[i][j] = true
				}
			}
		}
	}
	return rows, best
}

// WriteTable writes the human report: a table with the best value of each
// column within each batch/concurrency group marked with '*', a legend and
// the models' sizes and memory.
func WriteTable(w io.Writer, rep *Report) error {
	cols := columns(rep)
	rows, best := cells(rep, cols)
	head := []any{"variant", "batch", "conc"}
	for _, c := range cols {
		head = append(head, c.head)
	}
	t := tablewriter.NewTable(w,
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAlignment(tw.AlignRight),
		tablewriter.WithHeaderAlignment(tw.AlignCenter),
	)
	t.Header(head...)
	for i, r := range rep.Results {
		name := r.Variant
		if r.Reference {
			name += " (ref)"
		}
		row := []any{name, r.Batch, r.Concurrency}
		for j, s := range rows[i] {
			if best[i][j] {
				s += "*"
			}
			row = append(row, s)
		}
		if err := t.Append(row...); err != nil {
			return fmt.Errorf("bench: table: %w", err)
		}
	}
	if err := t.Render(); err != nil {
		return fmt.Errorf("bench: table: %w", err)
	}
	mode := "closed loop"
	if rep.Mode == "open" {
		mode = fmt.Sprintf("open loop, %s arrivals at %g/s (latency from scheduled arrival)", rep.Arrival, rep.Rate)
	}
	fmt.Fprintf(w, "%s on %s%s (%s), %s, %d rounds interleaved, warm-up %d per session.\n", rep.Backend, rep.Device, ioBindingText(rep), threadsText(rep.Threads), mode, rep.Rounds, rep.Warmup)
	fmt.Fprintln(w, "* best in its batch/concurrency group; ~ speedup not significant (p50 95% CIs overlap).")
	for _, m := range rep.Models {
		line := fmt.Sprintf("%s: %s on disk, +%s RSS when opened, device %s", m.Variant, bytesText(m.SizeBytes), bytesText(m.SessionRSSBytes), m.Device)
		if m.AccuracyError != "" {
			line += "; accuracy: " + m.AccuracyError
		} else if m.Accuracy.Samples > 0 {
			line += fmt.Sprintf("; accuracy on %d input sets", m.Accuracy.Samples)
		}
		if m.Accuracy.NonFinite > 0 {
			line += fmt.Sprintf(", %d non-finite outputs", m.Accuracy.NonFinite)
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "peak RSS of the bench process (all models): %s\n", bytesText(rep.PeakRSSBytes))
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "not measured (the backend cannot run it): %s\n", s)
	}
	return nil
}

func threadsText(n int) string {
	if n <= 0 {
		return "default threads"
	}
	if n == 1 {
		return "1 thread"
	}
	return fmt.Sprintf("%d threads", n)
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// WriteMarkdown writes a GitHub-flavoured markdown table (best values in
// bold) for CI summaries.
func WriteMarkdown(w io.Writer, rep *Report) error {
	cols := columns(rep)
	rows, best := cells(rep, cols)
	var b strings.Builder
	b.WriteString("| variant | batch | conc |")
	for _, c := range cols {
		b.WriteString(" " + c.head + " |")
	}
	b.WriteString("\n| --- | ---: | ---: |")
	for range cols {
		b.WriteString(" ---: |")
	}
	b.WriteString("\n")
	esc := strings.NewReplacer("|", `\|`, "*", `\*`, "_", `\_`)
	for i, r := range rep.Results {
		name := esc.Replace(r.Variant)
		if r.Reference {
			name += " (ref)"
		}
		fmt.Fprintf(&b, "| %s | %d | %d |", name, r.Batch, r.Concurrency)
		for j, s := range rows[i] {
			if best[i][j] && s != "" {
				s = "**" + s + "**"
			}
			b.WriteString(" " + s + " |")
		}
		b.WriteString("\n")
	}
	b.WriteString("\nBold: best in its batch/concurrency group; ~ speedup not significant (p50 95% CIs overlap). " +
		fmt.Sprintf("Backend %s on %s%s, %s, %s loop.\n", rep.Backend, rep.Device, ioBindingText(rep), threadsText(rep.Threads), rep.Mode))
	_, err := io.WriteString(w, b.String())
	return err
}

// CSVHeader is the header row of WriteCSV.
var CSVHeader = []string{"model", "variant", "reference", "batch", "concurrency", "mode", "count",
	"min_ms", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms", "stddev_ms", "cv",
	"p50_ci_lo_ms", "p50_ci_hi_ms", "throughput_per_s", "samples_per_s", "speedup", "speedup_significant",
	"size_bytes", "peak_rss_bytes", "top1_agreement", "top1_accuracy", "max_abs_error", "cosine", "sqnr_db"}

// WriteCSV writes one row per result with the columns of CSVHeader; an
// accuracy metric that was not measured is an empty cell.
func WriteCSV(w io.Writer, rep *Report) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	p := func(v *float64) string {
		if v == nil {
			return ""
		}
		return f(*v)
	}
	for _, r := range rep.Results {
		l := r.LatencyMS
		cw.Write([]string{r.Model, r.Variant, strconv.FormatBool(r.Reference), strconv.Itoa(r.Batch), strconv.Itoa(r.Concurrency), r.Mode, strconv.Itoa(r.Count),
			f(l.Min), f(l.Mean), f(l.P50), f(l.P90), f(l.P95), f(l.P99), f(l.P999), f(l.Max), f(l.Stddev), f(r.CV),
			f(r.P50CIms.Lo), f(r.P50CIms.Hi), f(r.ThroughputPerS), f(r.SamplesPerS), f(r.Speedup), strconv.FormatBool(r.SpeedupSignificant),
			strconv.FormatInt(r.SizeBytes, 10), strconv.FormatInt(r.PeakRSSBytes, 10),
			p(r.Accuracy.Top1Agreement), p(r.Accuracy.Top1Accuracy), p(r.Accuracy.MaxAbsError), p(r.Accuracy.Cosine), p(r.Accuracy.SQNRdB)})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("bench: csv: %w", err)
	}
	return nil
}

// WriteJSON writes the report as indented JSON (the schema is in doc.go).
func WriteJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("bench: json: %w", err)
	}
	return nil
}

// ioBindingText says that the timed runs reused bound inputs and outputs.
func ioBindingText(rep *Report) string {
	if rep.IOBinding {
		return " with io binding (no copies in or out per run)"
	}
	return ""
}
