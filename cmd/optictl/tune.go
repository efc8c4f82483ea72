package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/spf13/cobra"

	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tune"
)

func init() { commands = append(commands, newTuneCmd) }

// tuneOptions are tune's flags.
type tuneOptions struct {
	out, jsonOut, plotOut         string
	calib, data, labels           string
	calibSamples, samples         int
	recipes, backends             []string
	threads, batches              []int
	shapes                        []string
	timeBudget                    time.Duration
	shortIters, longIters, rounds int
	remeasureIters                int
	train                         string
	trainEpochs, trainSamples     int
	seed                          int64
	maxDrop                       float64
	maxP99                        time.Duration
	minThroughput                 float64
	require                       []string
	noServe                       bool
	prune                         []float64
	devices                       []string
}

func newTuneCmd(g *globalOptions) *cobra.Command {
	o := &tuneOptions{}
	cmd := &cobra.Command{
		Use:   "tune MODEL -o OUTDIR",
		Short: "Search optimization levels, quantization recipes and backends for the latency-accuracy frontier",
		Long: `Produce every variant of MODEL (original, -O2, -O3 --target ort-cpu,
-O3 with NCHWc when this CPU has it, each quantization recipe of the
registry that applies: int8-static needs --calib) with the same library
calls as optimize (passes verified numerically), write each to
OUTDIR/candidates/<variant>.onnx, and measure it on every backend that can
run it (ort, interp; fpga for int8 QDQ models it can lower) at each
--threads and --batch. Pruned variants (--prune ratios) are reconstructed
on the --calib samples when given; with --train each ratio also gets a
distillation-recovered variant (prune-R-distill, --train-epochs).

Before measuring, cheap estimates drop what cannot be faster: a float
rewrite the cost model shows doing at least an earlier one's work (or
byte-identical to it), and an int8 recipe on ort when the per-layer int8
profile finds every layer slower in int8; each skip says why.

Latency comes from bench, each candidate interleaved with the original on
the same backend and settings: first a short measurement of all (the
first rung), then a longer one for all that fit --time-budget (successive
halving keeps the frontier and the faster half). Accuracy compares each
candidate's outputs with the original's on --data (with --labels: top-1),
else on calibration samples held out from calibration, else on seeded
inputs; the report says which. After the search, bench re-measures chosen
against the original (--remeasure-iterations) and the report compares the
two speedups, warning when they differ by more than 10%.

Measurements are cached in OUTDIR/cache (key: sha256 of the model's bytes,
recipe, backend and settings): a rerun measures only what is new.

Writes: a table with the frontier marked, --json REPORT, OUTDIR/frontier.svg
(latency vs accuracy drop), and OUTDIR/serve.json (the frontier on the
chosen candidate's backend as a variant ladder, for optictl serve
--config). --max-accuracy-drop, --max-p99 and --min-throughput pick the
chosen candidate; --require "speedup>=1.2" exits 3 unless it holds for it.`,
		Example: `  optictl tune ../shared/models/mnist/model.onnx -o out/tune-mnist --calib ../shared/models/mnist
  optictl tune model.onnx -o out/t --backends ort --recipes O2,O3,int8-dynamic --require "speedup>=1.2"`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("tune takes one model (got %d)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTune(g, o, args[0], cmd.Flags().Changed("max-accuracy-drop"))
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.out, "out", "o", "", "output folder (candidates/, cache/, frontier.svg, serve.json)")
	f.StringVar(&o.jsonOut, "json", "", "write the JSON report to this file (- for stdout)")
	f.StringVar(&o.plotOut, "plot", "", "SVG plot path (default OUTDIR/frontier.svg)")
	f.StringVar(&o.calib, "calib", "", "calibration samples (test_data_set folders, .pb/.npy/.npz, MNIST idx)")
	f.IntVar(&o.calibSamples, "calib-samples", 64, "calibration samples read at most")
	f.StringVar(&o.data, "data", "", "evaluation samples (as --calib)")
	f.StringVar(&o.labels, "labels", "", "labels of --data (one class per line or an idx label file)")
	f.IntVar(&o.samples, "samples", 200, "evaluation samples read from --data at most")
	f.StringSliceVar(&o.recipes, "recipes", nil, "variants to try (default all that apply): "+strings.Join(tune.VariantNames(nil), ", ")+", prune-R and prune-R-distill for each --prune ratio R")
	f.Float64SliceVar(&o.prune, "prune", []float64{0.25, 0.5}, "structured pruning ratios to try, after -O2 (--recipes without prune-R leaves them out)")
	f.StringSliceVar(&o.backends, "backends", nil, "backends (default every registered one): "+strings.Join(runtime.Names(), ", "))
	f.StringSliceVar(&o.devices, "devices", []string{"cpu"}, "devices to try on the backends that have them: "+orList(runtime.Devices())+" (a session that falls back to the CPU is skipped)")
	f.IntSliceVar(&o.threads, "threads", []int{1}, "intra-op thread counts to measure")
	f.IntSliceVar(&o.batches, "batch", []int{1}, "batch sizes to measure (models with a dynamic first dim)")
	f.StringArrayVar(&o.shapes, "shape", nil, "fix a dynamic input shape: NAME=D1,D2,... (repeatable)")
	f.DurationVar(&o.timeBudget, "time-budget", 10*time.Minute, "wall-time budget: the long measurement goes only to what fits (0: no bound)")
	f.IntVar(&o.shortIters, "short-iterations", 20, "timed inferences per candidate on the first rung")
	f.IntVar(&o.longIters, "iterations", 100, "timed inferences per candidate on the second rung")
	f.StringVar(&o.train, "train", "", "training inputs (as --calib): adds a pruned candidate per --prune ratio recovered by distillation from the original (prune-R-distill)")
	f.IntVar(&o.trainEpochs, "train-epochs", 1, "distillation epochs of the prune-R-distill candidates")
	f.IntVar(&o.trainSamples, "train-samples", 2000, "training samples read from --train at most")
	f.IntVar(&o.remeasureIters, "remeasure-iterations", 0, "timed inferences bench gives chosen and the original after the search (0: three times --iterations; -1: no re-measurement)")
	f.IntVar(&o.rounds, "rounds", 5, "interleaved rounds per measurement")
	f.Int64Var(&o.seed, "seed", 1, "seed of the seeded inputs")
	f.Float64Var(&o.maxDrop, "max-accuracy-drop", -1, "largest accuracy drop for chosen (points for top1/agreement, 1 - value for cosine/IoU; default: the accuracy budget)")
	f.DurationVar(&o.maxP99, "max-p99", 0, "largest p99 latency for chosen")
	f.Float64Var(&o.minThroughput, "min-throughput", 0, "smallest throughput (inferences/s) for chosen")
	f.StringArrayVar(&o.require, "require", nil, `check on chosen, exit 3 when unmet: FIELD>=VALUE with FIELD one of `+strings.Join(tune.RequireFields, ", ")+` (repeatable)`)
	f.BoolVar(&o.noServe, "no-serve-config", false, "do not write OUTDIR/serve.json")
	return cmd
}

// tuneOutput is --json: tune's report plus the --require outcomes.
type tuneOutput struct {
	*tune.Report
	Requirements []requireResult `json:"requirements,omitempty"`
}

type requireResult struct {
	Require  string  `json:"require"`
	Measured float64 `json:"measured"`
	Passed   bool    `json:"passed"`
}

func (o *tuneOptions) toOptions(model string, dropSet bool) (tune.Options, []tune.Requirement, error) {
	if o.out == "" {
		return tune.Options{}, nil, usageErr("tune needs -o OUTDIR")
	}
	if o.labels != "" && o.data == "" {
		return tune.Options{}, nil, usageErr("--labels needs --data")
	}
	if o.trainEpochs < 1 || o.trainSamples < 1 {
		return tune.Options{}, nil, usageErr("--train-epochs and --train-samples must be positive")
	}
	if o.remeasureIters < -1 {
		return tune.Options{}, nil, usageErr("--remeasure-iterations must be -1, 0 or positive, got %d", o.remeasureIters)
	}
	if o.shortIters < 1 || o.longIters < 1 || o.rounds < 1 || o.samples < 1 || o.calibSamples < 1 {
		return tune.Options{}, nil, usageErr("--short-iterations, --iterations, --rounds, --samples and --calib-samples must be positive")
	}
	if o.timeBudget < 0 || o.maxP99 < 0 || o.minThroughput < 0 || (dropSet && o.maxDrop < 0) {
		return tune.Options{}, nil, usageErr("--time-budget, --max-p99, --min-throughput and --max-accuracy-drop must not be negative")
	}
	for _, n := range append(append([]int{}, o.threads...), o.batches...) {
		if n < 1 {
			return tune.Options{}, nil, usageErr("--threads and --batch take positive numbers, got %d", n)
		}
	}
	for _, r := range o.prune {
		if !(r > 0 && r < 1) {
			return tune.Options{}, nil, usageErr("--prune %g: ratios must be in (0, 1)", r)
		}
	}
	for _, d := range o.devices {
		if !contains(runtime.Devices(), d) {
			return tune.Options{}, nil, usageErr("--devices %q: want some of %s", d, orList(runtime.Devices()))
		}
	}
	known := tune.VariantNames(o.prune)
	for _, r := range o.recipes {
		if !contains(known, r) {
			return tune.Options{}, nil, usageErr("--recipes: unknown %q (want some of %s)", r, strings.Join(known, ", "))
		}
	}
	for _, b := range o.backends {
		if _, err := runtime.Get(b); err != nil {
			return tune.Options{}, nil, usageErr("--backends: %v", err)
		}
	}
	shapes, err := parseShapeFlags(o.shapes)
	if err != nil {
		return tune.Options{}, nil, err
	}
	var reqs []tune.Requirement
	for _, s := range o.require {
		r, err := tune.ParseRequirement(s)
		if err != nil {
			return tune.Options{}, nil, usageErr("%v", err)
		}
		reqs = append(reqs, r)
	}
	maxDrop := -1.0
	if dropSet {
		maxDrop = o.maxDrop
	}
	return tune.Options{
		Model: model, Out: o.out, Calib: o.calib, CalibSamples: o.calibSamples, Data: o.data, Labels: o.labels, Samples: o.samples,
		Variants: o.recipes, PruneRatios: o.prune, Backends: o.backends, Devices: o.devices, Threads: o.threads, Batches: o.batches, Shapes: shapes,
		TimeBudget: o.timeBudget, ShortIters: o.shortIters, LongIters: o.longIters, RemeasureIters: o.remeasureIters, Train: o.train, TrainEpochs: o.trainEpochs, TrainSamples: o.trainSamples, Rounds: o.rounds, Seed: o.seed,
		Constraints: tune.Constraints{MaxDrop: maxDrop, MaxP99MS: float64(o.maxP99) / float64(time.Millisecond), MinThroughput: o.minThroughput},
	}, reqs, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func runTune(g *globalOptions, o *tuneOptions, model string, dropSet bool) error {
	opts, reqs, err := o.toOptions(model, dropSet)
	if err != nil {
		return err
	}
	opts.Log = g.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := tune.Run(ctx, opts)
	if err != nil {
		return err
	}
	plotPath := o.plotOut
	if plotPath == "" {
		plotPath = filepath.Join(o.out, "frontier.svg")
	}
	var buf bytes.Buffer
	if err := tune.WritePlot(&buf, rep, "svg"); err != nil {
		fmt.Fprintf(g.Stderr, "note: no plot: %v\n", err)
	} else if err := os.WriteFile(plotPath, buf.Bytes(), 0o644); err != nil {
		return err
	} else {
		rep.Plot = plotPath
	}
	if !o.noServe {
		name := strings.TrimSuffix(filepath.Base(model), filepath.Ext(model))
		if name == "model" {
			name = filepath.Base(filepath.Dir(model))
		}
		if sc, ok := tune.ServeLadder(rep, name, opts.Constraints.MaxP99MS); ok {
			b, _ := json.MarshalIndent(sc, "", "  ")
			p := filepath.Join(o.out, "serve.json")
			if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
				return err
			}
			rep.Serve = p
		}
	}
	out := tuneOutput{Report: rep}
	chosen := rep.Candidate(rep.Chosen)
	failed := false
	for _, r := range reqs {
		rr := requireResult{Require: r.String()}
		if chosen != nil {
			rr.Measured, rr.Passed = r.Check(chosen)
		}
		failed = failed || !rr.Passed
		out.Requirements = append(out.Requirements, rr)
	}
	if o.jsonOut != "" {
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if o.jsonOut == "-" {
			g.Stdout.Write(b)
		} else if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	w := g.Stdout
	if o.jsonOut == "-" {
		w = g.Stderr
	}
	if err := printTune(w, &out); err != nil {
		return err
	}
	if failed {
		var msgs []string
		for _, r := range out.Requirements {
			if !r.Passed {
				if chosen == nil {
					msgs = append(msgs, r.Require+" (nothing was chosen: "+rep.ChosenWhy+")")
				} else {
					msgs = append(msgs, fmt.Sprintf("%s (measured %.3g on %s)", r.Require, r.Measured, chosen.ID))
				}
			}
		}
		return failedErr(fmt.Errorf("tune: --require unmet: %s", strings.Join(msgs, "; ")))
	}
	return nil
}

// printTune writes the candidates (fastest first) with the frontier and
// the chosen one marked, then what was skipped and where things went.
func printTune(w io.Writer, out *tuneOutput) error {
	rep := out.Report
	fmt.Fprintf(w, "accuracy: %s on %s\n", rep.Metric, rep.AccuracyOn)
	if rep.AccuracyNote != "" {
		fmt.Fprintf(w, "note: %s\n", rep.AccuracyNote)
	}
	t := tablewriter.NewTable(w)
	t.Header("", "Candidate", "Recipe", "Device", "p50 ms", "p99 ms", "Inf/s", "Speedup", rep.Metric, "Drop", "Iters", "Cached")
	for _, c := range rep.Candidates {
		mark := ""
		if c.Pareto {
			mark = "F"
		}
		if c.ID == rep.Chosen {
			mark += ">"
		}
		if c.ID == rep.Baseline {
			mark += "B"
		}
		val, drop := "n/a", "n/a"
		if !math.IsNaN(c.Accuracy.Value) {
			val, drop = fmt.Sprintf("%.4g", c.Accuracy.Value), fmt.Sprintf("%.3g", c.Accuracy.Drop)
		}
		cached := ""
		if c.Cached {
			cached = "yes"
		}
		dev := c.Device
		if c.Simulated {
			dev, _, _ = strings.Cut(dev, " ")
			dev += " (simulated)"
		}
		if err := t.Append(mark, c.ID, c.Recipe, dev, fmt.Sprintf("%.3f", c.P50MS), fmt.Sprintf("%.3f", c.P99MS),
			fmt.Sprintf("%.1f", c.ThroughputPerS), fmt.Sprintf("%.2fx", c.Speedup), val, drop, fmt.Sprint(c.Iterations), cached); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	fmt.Fprintln(w, "F: on the frontier (no other candidate is both faster and more accurate); >: chosen; B: baseline")
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "skipped %s: %s\n", s.ID, s.Reason)
	}
	if len(rep.Halved) > 0 {
		fmt.Fprintf(w, "left at the short measurement (--time-budget): %s\n", strings.Join(rep.Halved, ", "))
	}
	if rep.Chosen != "" {
		fmt.Fprintf(w, "chosen: %s (%s)\n", rep.Chosen, rep.ChosenWhy)
	} else {
		fmt.Fprintf(w, "chosen: none (%s)\n", rep.ChosenWhy)
	}
	if r := rep.ChosenRemeasured; r != nil {
		fmt.Fprintf(w, "re-measured by bench against the original (%d iterations): speedup tune %.3gx, bench %.3gx, ratio %.3f\n", r.Iterations, r.SpeedupTune, r.SpeedupBench, r.Ratio)
		if r.Warning != "" {
			fmt.Fprintf(w, "warning: %s\n", r.Warning)
		}
	}
	for _, r := range out.Requirements {
		v := "met"
		if !r.Passed {
			v = "NOT met"
		}
		fmt.Fprintf(w, "require %s: %s (measured %.3g)\n", r.Require, v, r.Measured)
	}
	fmt.Fprintf(w, "measured %d, from cache %d, in %.1fs", rep.Measured, rep.Cached, rep.WallS)
	if rep.TimeBudgetS > 0 {
		fmt.Fprintf(w, " (budget %s)", time.Duration(rep.TimeBudgetS*float64(time.Second)))
	}
	fmt.Fprintln(w)
	if rep.Plot != "" {
		fmt.Fprintf(w, "plot: %s\n", rep.Plot)
	}
	if rep.Serve != "" {
		fmt.Fprintf(w, "serve config: %s (optictl serve --config %s --backend %s)\n", rep.Serve, rep.Serve, backendOf(rep))
	}
	return nil
}

func backendOf(rep *tune.Report) string {
	if c := rep.Candidate(rep.Chosen); c != nil {
		return c.Backend
	}
	if c := rep.Candidate(rep.Baseline); c != nil {
		return c.Backend
	}
	return "ort"
}
