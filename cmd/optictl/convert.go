package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/optictl/optictl/pkg/numerics"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"github.com/optictl/optictl/pkg/bench"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/opset"
	"github.com/optictl/optictl/pkg/runtime"
)

func init() { commands = append(commands, newConvertCmd) }

type convertOptions struct {
	Model string
	Opset int64
	Out   string
	JSON  bool
	List  bool
	// Data, when set, holds inputs both models run on (Backend) before
	// anything is written; their outputs must agree within RTol/ATol.
	Data       string
	Backend    string
	RTol, ATol float64
}

type convertResult struct {
	Model string `json:"model"`
	Out   string `json:"out"`
	// Verified says on what the converted model was checked against the
	// original ("" when no --data was given).
	Verified string `json:"verified,omitempty"`
	*opset.Report
}

// verifyConversion runs the original and the converted model on every
// sample of --data and compares their outputs.
func verifyConversion(o *convertOptions, m, c *graph.Model) (string, error) {
	samples, err := bench.LoadData(o.Data, sessionInfos(m), 100)
	if err != nil {
		return "", usageErr("--data: %v", err)
	}
	run := func(mod *graph.Model) ([][]*runtime.Tensor, error) {
		s, err := runtime.Open(o.Backend, mod, runtime.Options{Threads: 1})
		if err != nil {
			return nil, err
		}
		defer s.Close()
		var out [][]*runtime.Tensor
		for _, in := range samples {
			res, err := s.Run(context.Background(), in)
			if err != nil {
				return nil, err
			}
			cl := make([]*runtime.Tensor, len(res))
			for i, t := range res {
				cl[i] = t.Clone()
			}
			out = append(out, cl)
		}
		return out, nil
	}
	want, err := run(m)
	if err != nil {
		return "", fmt.Errorf("the original model on %s: %w", o.Backend, err)
	}
	got, err := run(c)
	if err != nil {
		return "", failedErr(fmt.Errorf("the converted model does not run on %s: %w; nothing was written", o.Backend, err))
	}
	for i := range want {
		for k := range want[i] {
			if err := numerics.Check(got[i][k], want[i][k], numerics.Tolerance{RTol: o.RTol, ATol: o.ATol}); err != nil {
				return "", failedErr(fmt.Errorf("sample %d output %d (%s): the converted model differs: %w; nothing was written", i, k, c.Graph.Outputs[k].Name, err))
			}
		}
	}
	return fmt.Sprintf("outputs match the original on %s (%d sample(s) of --data, rtol %g, atol %g)", o.Backend, len(samples), o.RTol, o.ATol), nil
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
	if o.Data == "" && (o.Backend != "interp" || o.RTol != 1e-4 || o.ATol != 1e-5) {
		return usageErr("--backend, --rtol and --atol set the --data check: give --data")
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
	res := convertResult{Model: o.Model, Out: o.Out, Report: rep}
	if o.Data != "" {
		if res.Verified, err = verifyConversion(o, m, c); err != nil {
			return err
		}
	}
	if err := c.Save(o.Out); err != nil {
		return err
	}
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
	if res.Verified != "" {
		fmt.Fprintf(w, "verification: %s\n", res.Verified)
	} else {
		fmt.Fprintln(w, "verification: not checked numerically (pass --data to compare outputs with the original)")
	}
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
nothing is written. With --data both models run on those inputs first and
must agree (else exit 3, nothing written).`, opset.Oldest, opset.Newest, opset.Newest),
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
	f.StringVar(&o.Data, "data", "", "inputs (test_data_set folders, .pb/.npy/.npz) to run both models on before writing: outputs must match (exit 3 otherwise)")
	f.StringVar(&o.Backend, "backend", "interp", "backend that runs the --data check")
	f.Float64Var(&o.RTol, "rtol", 1e-4, "relative tolerance of the --data check")
	f.Float64Var(&o.ATol, "atol", 1e-5, "absolute tolerance of the --data check")
	return cmd
}
