package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/opset"
)

func init() { commands = append(commands, newConvertCmd) }

type convertOptions struct {
	Model string
	Opset int64
	Out   string
	JSON  bool
	List  bool
}

type convertResult struct {
	Model string `json:"model"`
	Out   string `json:"out"`
	*opset.Report
}

func runConvert(g *globalOptions, o *convertOptions) error {
	if o.List {
		list := opset.Adapters()
		if o.JSON {
			enc := json.NewEncoder(g.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(list)
		}
		for _, a := range list {
			fmt.Fprintf(g.Stdout, "%-20s %2d  %s\n", a.Op, a.Since, a.What)
		}
		return nil
	}
	if o.Out == "" {
		return usageErr("convert needs -o OUT (where to write the converted model)")
	}
	if o.Opset < opset.Oldest || o.Opset > opset.Newest {
		return usageErr("--opset %d: want %d..%d (the newest opset this converter knows is %d)", o.Opset, opset.Oldest, opset.Newest, opset.Newest)
	}
	if a, b := absPath(o.Out), absPath(o.Model); a == b {
		return usageErr("-o %s would overwrite the input model", o.Out)
	}
	m, err := graph.Load(o.Model)
	if err != nil {
		return err
	}
	if v := m.Opset(""); v > o.Opset {
		return usageErr("%s is at opset %d; convert only raises opsets (--opset %d)", o.Model, v, o.Opset)
	}
	c, rep, err := opset.Convert(m, o.Opset)
	if err != nil {
		if errors.Is(err, opset.ErrRefused) {
			return fmt.Errorf("%w; nothing was written", err)
		}
		return err
	}
	if err := c.Save(o.Out); err != nil {
		return err
	}
	res := convertResult{Model: o.Model, Out: o.Out, Report: rep}
	if o.JSON {
		enc := json.NewEncoder(g.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	w := g.Stdout
	if rep.From == rep.To {
		fmt.Fprintf(w, "%s is already at opset %d; wrote an unchanged copy to %s\n", o.Model, rep.To, o.Out)
		return nil
	}
	fmt.Fprintf(w, "converted %s from opset %d to %d (IR version %d): %d of %d default-domain nodes adapted; wrote %s\n",
		o.Model, rep.From, rep.To, rep.IRVersion, adaptedNodes(rep), rep.Nodes, o.Out)
	type group struct {
		op, what string
		to       int64
		n        int
	}
	counts := map[[2]string]*group{}
	var order []*group
	for _, ch := range rep.Changes {
		k := [2]string{ch.Op, fmt.Sprint(ch.To)}
		if counts[k] == nil {
			counts[k] = &group{op: ch.Op, what: ch.What, to: ch.To}
			order = append(order, counts[k])
		}
		counts[k].n++
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].to < order[j].to })
	for _, gr := range order {
		fmt.Fprintf(w, "  %-20s -> %2d  %4d node(s)  %s\n", gr.op, gr.to, gr.n, gr.what)
	}
	if g.Verbose {
		for _, ch := range rep.Changes {
			fmt.Fprintf(w, "  %s: %d -> %d: %s\n", ch.Node, ch.From, ch.To, ch.What)
		}
	}
	return nil
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

// adaptedNodes counts distinct nodes in the changes (a node may be adapted
// on several steps).
func adaptedNodes(rep *opset.Report) int {
	seen := map[string]bool{}
	for _, ch := range rep.Changes {
		seen[ch.Node] = true
	}
	return len(seen)
}

func newConvertCmd(g *globalOptions) *cobra.Command {
	o := &convertOptions{}
	cmd := &cobra.Command{
		Use:   "convert MODEL --opset N -o OUT",
		Short: "Raise a model's default-domain opset, adapting every node whose operator changed",
		Long: fmt.Sprintf(`Convert a model to a newer ONNX opset (default-domain operators; other
domains are kept), one version at a time, as onnx's version converter does:
attributes that became inputs (Slice, Pad, Clip, TopK, Squeeze/Unsqueeze,
Split, ReduceX, Dropout), removed attributes (BatchNormalization spatial),
changed meanings (Softmax/LogSoftmax/Hardmax axis at 13, Resize at 11) and
replaced operators (Upsample -> Resize, Scatter -> ScatterElements).
--list prints every adapted operator change.

Opsets %d to %d are read; %d (the default) is the newest written. A node that
cannot be converted is an error naming the node, op, versions and why, and
nothing is written.`, opset.Oldest, opset.Newest, opset.Newest),
		Args: func(cmd *cobra.Command, args []string) error {
			if o.List {
				return exactArgs(0, "no arguments with --list")(cmd, args)
			}
			return exactArgs(1, "one model")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.Model = args[0]
			}
			return runConvert(g, o)
		},
	}
	f := cmd.Flags()
	f.Int64Var(&o.Opset, "opset", opset.Newest, "the default-domain opset to convert to")
	f.StringVarP(&o.Out, "out", "o", "", "where to write the converted model")
	f.BoolVar(&o.JSON, "json", false, "print the report (or --list) as JSON")
	f.BoolVar(&o.List, "list", false, "list the operator changes the converter adapts, and exit")
	return cmd
}
