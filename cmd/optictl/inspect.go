package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/optictl/optictl/pkg/inspect"
)

func init() { commands = append(commands, newInspectCmd) }

// inspectOptions are the parsed flags of `optictl inspect`.
type inspectOptions struct {
	path   string
	json   bool
	shapes []string
	top    int
}

func newInspectCmd(g *globalOptions) *cobra.Command {
	o := &inspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect MODEL.onnx",
		Short: "Show what a model is made of: ops, shapes, params, FLOPs, memory",
		Long: `Show a model's producer, IR version and opsets, its inputs and outputs
with their (symbolic) shapes, the op histogram, node and initializer counts,
parameters and their bytes per dtype, total MACs and FLOPs with the heaviest
nodes, and the estimated peak activation memory for the current node order.
Ops outside the default ONNX domain are listed (ai.onnx.ml is noted).

Shapes come from optictl's own shape inference. Use --shape to fix dynamic
input dims (for example the batch size) so that FLOPs and memory can be
counted: --shape x=1x3x48x320 or --shape x=1,3,48,320, repeatable.`,
		Args: exactArgs(1, "one model file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.path = args[0]
			return runInspect(g, o)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print one JSON object instead of tables")
	cmd.Flags().StringArrayVar(&o.shapes, "shape", nil, shapeFlagUsage)
	cmd.Flags().IntVar(&o.top, "top", 10, "how many of the heaviest nodes to list")
	return cmd
}

func runInspect(g *globalOptions, o *inspectOptions) error {
	shapes, err := parseShapeFlags(o.shapes)
	if err != nil {
		return err
	}
	if o.top < 1 {
		return usageErr("--top must be at least 1, got %d", o.top)
	}
	r, err := inspect.Load(o.path, inspect.Options{Shapes: shapes, Top: o.top})
	if err != nil {
		if errors.Is(err, inspect.ErrShape) {
			return usageErr("%v", err)
		}
		return err
	}
	if o.json {
		return r.WriteJSON(g.Stdout)
	}
	return r.WriteText(g.Stdout)
}
