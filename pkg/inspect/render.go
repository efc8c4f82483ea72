package inspect

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
)

// WriteJSON writes the report as one JSON object followed by a newline.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	return nil
}

// WriteText writes the report as tables.
func (r *Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	title := r.Path
	if title == "" {
		title = r.GraphName
	}
	fmt.Fprintf(ew, "%s\n\n", title)

	var opsets []string
	for d, v := range r.Opsets {
		opsets = append(opsets, fmt.Sprintf("%s %d", d, v))
	}
	sort.Strings(opsets)
	producer := r.Producer
	if r.ProducerVersion != "" {
		producer += " " + r.ProducerVersion
	}
	if strings.TrimSpace(producer) == "" {
		producer = "(none)"
	}
	rows := [][]string{
		{"producer", producer},
		{"IR version", strconv.FormatInt(r.IRVersion, 10)},
		{"opsets", strings.Join(opsets, ", ")},
		{"nodes", nodesText(r)},
		{"initializers", strconv.Itoa(r.Initializers)},
		{"params (initializers)", fmt.Sprintf("%s (%s)", count(r.Params), bytesText(r.ParamBytes))},
	}
	for _, d := range r.ParamsByDType {
		rows = append(rows, []string{"  " + d.DType, fmt.Sprintf("%s in %d tensors (%s)", count(d.Params), d.Tensors, bytesText(d.Bytes))})
	}
	if r.ConstantParams > 0 {
		rows = append(rows, []string{"params in Constant nodes", count(r.ConstantParams)})
	}
	if r.CostShapeNote != "" {
		rows = append(rows, []string{"costs computed at", r.CostShapeNote})
	}
	rows = append(rows,
		[]string{"MACs", count(r.MACs)},
		[]string{"FLOPs", count(r.FLOPs)},
		[]string{"activations (sum)", bytesText(r.ActivationBytes)},
		[]string{"peak activation memory", peakText(r)},
	)
	if err := table(ew, []any{"model", ""}, rows); err != nil {
		return err
	}

	fmt.Fprintln(ew, "\ninputs and outputs")
	var io [][]string
	for _, v := range r.Inputs {
		io = append(io, []string{"input", v.Name, v.Type})
	}
	for _, v := range r.Outputs {
		io = append(io, []string{"output", v.Name, v.Type})
	}
	if err := table(ew, []any{"kind", "name", "type"}, io); err != nil {
		return err
	}

	fmt.Fprintln(ew, "\nops")
	type kv struct {
		k string
		v int
	}
	var ops []kv
	for k, v := range r.Ops {
		ops = append(ops, kv{k, v})
	}
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].v != ops[j].v {
			return ops[i].v > ops[j].v
		}
		return ops[i].k < ops[j].k
	})
	var orows [][]string
	for _, o := range ops {
		orows = append(orows, []string{o.k, strconv.Itoa(o.v)})
	}
	if err := table(ew, []any{"op", "count"}, orows); err != nil {
		return err
	}

	if len(r.Heaviest) > 0 {
		fmt.Fprintf(ew, "\nheaviest %d nodes\n", len(r.Heaviest))
		var hrows [][]string
		for _, n := range r.Heaviest {
			share := "-"
			if r.FLOPs > 0 {
				share = fmt.Sprintf("%.1f%%", 100*float64(n.FLOPs)/float64(r.FLOPs))
			}
			name := n.Name
			if name == "" {
				name = fmt.Sprintf("#%d", n.Index)
			}
			op := n.OpType
			if n.Domain != "" && n.Domain != "ai.onnx" {
				op = n.Domain + "." + op
			}
			if !n.Known {
				op += " (partial)"
			}
			hrows = append(hrows, []string{name, op, count(n.MACs), count(n.FLOPs), share})
		}
		if err := table(ew, []any{"node", "op", "MACs", "FLOPs", "share"}, hrows); err != nil {
			return err
		}
	}
	if len(r.CustomOps) > 0 {
		fmt.Fprintln(ew, "\nops outside the default ONNX domain")
		var crows [][]string
		for _, c := range r.CustomOps {
			crows = append(crows, []string{c.Domain, c.Op, strconv.Itoa(c.Count)})
		}
		if err := table(ew, []any{"domain", "op", "count"}, crows); err != nil {
			return err
		}
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(ew)
		for _, n := range r.Notes {
			fmt.Fprintf(ew, "note: %s\n", n)
		}
	}
	return ew.err
}

func nodesText(r *Report) string {
	if r.Subgraphs == 0 {
		return strconv.Itoa(r.Nodes)
	}
	return fmt.Sprintf("%d (%d with %d subgraphs)", r.Nodes, r.NodesTotal, r.Subgraphs)
}

func peakText(r *Report) string {
	s := bytesText(r.PeakActivationBytes)
	if r.PeakNode != "" {
		s += " at " + r.PeakNode
	}
	return s
}

func table(w io.Writer, header []any, rows [][]string) error {
	t := tablewriter.NewTable(w, tablewriter.WithHeaderAutoFormat(tw.Off))
	t.Header(header...)
	for _, row := range rows {
		if err := t.Append(row); err != nil {
			return fmt.Errorf("inspect: table: %w", err)
		}
	}
	if err := t.Render(); err != nil {
		return fmt.Errorf("inspect: table: %w", err)
	}
	return nil
}

// count renders 1234567 as "1,234,567 (1.23M)".
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	out := b.String()
	switch {
	case n >= 1e12:
		out += fmt.Sprintf(" (%.2fT)", float64(n)/1e12)
	case n >= 1e9:
		out += fmt.Sprintf(" (%.2fG)", float64(n)/1e9)
	case n >= 1e6:
		out += fmt.Sprintf(" (%.2fM)", float64(n)/1e6)
	case n >= 1e4:
		out += fmt.Sprintf(" (%.1fk)", float64(n)/1e3)
	}
	return out
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
