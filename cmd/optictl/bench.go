package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/optictl/optictl/pkg/bench"
	"github.com/optictl/optictl/pkg/runtime"
)

func init() { commands = append(commands, newBenchCmd) }

// benchOptions are bench's flags.
type benchOptions struct {
	maxMemory   string
	backend     string
	backends    []string
	devices     []string
	ortLib      string
	ort         ortFlags
	device      string
	threads     int
	batches     []int
	concurrency []int
	rate        float64
	arrival     string
	duration    time.Duration
	iterations  int
	warmup      int
	rounds      int
	data        string
	samples     int
	labels      string
	shapes      []string
	pixels      pixelFlags
	seed        int64
	jsonOut     string
	csvOut      string
	mdOut       string
	plotOut     string

	maxP99, maxP50  time.Duration
	minSpeedup      float64
	maxAccDrop      float64
	minThroughput   float64
	accuracyDropSet bool
}

func newBenchCmd(g *globalOptions) *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench MODEL [MODEL...]",
		Short: "Measure latency, throughput and accuracy of models side by side, with CI gates",
		Long: `Benchmark one or more models. The first is the reference; the others
are variants compared with it. At each --batch/--concurrency point the
models run in interleaved rounds (A, B, A, B, ...) after an untimed
warm-up, so drift of the machine hits all of them alike.

Closed loop by default (--concurrency workers, one session each, back to
back); --rate R switches to the open loop: requests arrive at R per second
(--arrival constant or poisson), --concurrency workers serve them, and
latency runs from the scheduled arrival, so queueing counts.

Accuracy compares each variant's outputs with the reference's on --data
(ONNX test_data_set_N folders, a .pb/.npy/.npz file, or an MNIST idx image
file) or on seeded random inputs; --labels (one class per line, or an idx
label file, gzip ok) adds top-1 accuracy.

Gates (--max-p99, --max-p50, --min-speedup, --max-accuracy-drop,
--min-throughput) print one line per failure after the report and make
bench exit with status 3; bad flags exit with status 2.

For repeatable numbers at --threads 1, pin the process to one core:
taskset -c 3 optictl bench ...`,
		Example: `  optictl bench model.onnx model.opt.onnx --threads 1 --iterations 2000
  optictl bench fp32.onnx int8.onnx --data testdata/ --labels labels.txt --max-accuracy-drop 1
  optictl bench model.onnx --concurrency 1,4 --rate 200 --arrival poisson --duration 20s
  optictl bench a.onnx b.onnx --json - --max-p99 10ms --min-speedup 1.2`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErr("bench needs at least one model")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.accuracyDropSet = cmd.Flags().Changed("max-accuracy-drop")
			cfg, gates, err := o.config(args, cmd.Flags().Changed("duration"), cmd.Flags().Changed("iterations"))
			if err != nil {
				return err
			}
			return runBench(cmd.Context(), g, o, cfg, gates)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.backend, "backend", "ort", "runtime backend: "+strings.Join(runtime.Names(), ", "))
	f.StringVar(&o.ortLib, "ort-lib", "", "path of libonnxruntime.so (ort backend; default: searched, see the ort package)")
	f.StringVar(&o.device, "device", "cpu", "device: "+orList(runtime.Devices())+" (backend permitting; a missing GPU is an error unless --fallback cpu)")
	f.StringSliceVar(&o.backends, "backends", nil, "sweep: measure every model on each of these backends (comma-separated; rows MODEL@BACKEND, interleaved); replaces --backend")
	f.StringSliceVar(&o.devices, "devices", nil, "sweep: and on each of these devices, for the backends that have them (e.g. cpu,cuda); replaces --device")
	f.IntVar(&o.threads, "threads", 0, "intra-op threads per session (0: backend default)")
	f.IntSliceVar(&o.batches, "batch", []int{1}, "batch sizes (inputs stacked along a dynamic first dim)")
	f.IntSliceVar(&o.concurrency, "concurrency", []int{1}, "concurrent workers, one session each")
	f.Float64Var(&o.rate, "rate", 0, "open loop: requests per second (0: closed loop)")
	f.StringVar(&o.arrival, "arrival", "constant", "open-loop arrivals: constant or poisson")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "timed run per model per point (split over the rounds)")
	f.IntVar(&o.iterations, "iterations", 0, "timed inferences per model per point, instead of --duration")
	f.IntVar(&o.warmup, "warmup", 10, "untimed inferences per session per point")
	f.IntVar(&o.rounds, "rounds", 5, "interleaved rounds per point")
	f.StringVar(&o.data, "data", "", "input data: test_data_set_N folders, a .pb/.npy/.npz file, an idx image file, or a folder of .png/.jpg/.gif images (resized to the input's H×W; see distill --help)")
	addPixelFlags(cmd, &o.pixels, "--data")
	f.IntVar(&o.samples, "samples", 0, "read at most this many --data samples (0: all)")
	f.StringVar(&o.labels, "labels", "", "class labels of the --data samples: one integer per line or an idx label file")
	f.StringArrayVar(&o.shapes, "shape", nil, shapeFlagUsage+"; with --batch a dynamic first dim takes the batch")
	addMaxMemoryFlag(cmd, &o.maxMemory)
	f.Int64Var(&o.seed, "seed", 1, "seed of random inputs, Poisson arrivals and the bootstrap")
	f.StringVar(&o.jsonOut, "json", "", "write the JSON report to FILE (- for stdout)")
	f.StringVar(&o.csvOut, "csv", "", "write a CSV report to FILE (- for stdout)")
	f.StringVar(&o.mdOut, "markdown", "", "write a markdown table to FILE (- for stdout)")
	f.StringVar(&o.plotOut, "plot", "", "write a latency/accuracy SVG scatter with the Pareto frontier to FILE.svg")
	f.DurationVar(&o.maxP99, "max-p99", 0, "gate: fail when a variant's p99 exceeds this")
	f.DurationVar(&o.maxP50, "max-p50", 0, "gate: fail when a variant's p50 exceeds this")
	f.Float64Var(&o.minSpeedup, "min-speedup", 0, "gate: fail when a variant's speedup over the reference is below this")
	f.Float64Var(&o.maxAccDrop, "max-accuracy-drop", 0, "gate: fail when a variant loses more accuracy than this, in percentage points")
	f.Float64Var(&o.minThroughput, "min-throughput", 0, "gate: fail when a variant runs fewer inferences per second")
	o.ort.register(cmd, false)
	return cmd
}

// config turns flags into a bench.Config; every error is a usage error.
func (o *benchOptions) config(models []string, durationSet, iterationsSet bool) (bench.Config, bench.Gates, error) {
	var zero bench.Config
	if durationSet && iterationsSet {
		return zero, bench.Gates{}, usageErr("bench: --duration and --iterations exclude each other")
	}
	backends := o.backends
	if len(backends) == 0 {
		backends = []string{o.backend}
	}
	for _, b := range backends {
		if _, err := runtime.Get(b); err != nil {
			return zero, bench.Gates{}, usageErr("bench: --backend: %v", err)
		}
	}
	if o.threads < 0 {
		return zero, bench.Gates{}, usageErr("bench: --threads %d is negative", o.threads)
	}
	if o.arrival != "constant" && o.arrival != "poisson" {
		return zero, bench.Gates{}, usageErr("bench: --arrival %q is not constant or poisson", o.arrival)
	}
	if o.samples < 0 {
		return zero, bench.Gates{}, usageErr("bench: --samples %d is negative", o.samples)
	}
	if o.maxP99 < 0 || o.maxP50 < 0 || o.minSpeedup < 0 || o.minThroughput < 0 || o.maxAccDrop < 0 {
		return zero, bench.Gates{}, usageErr("bench: gate limits must not be negative")
	}
	stdout := 0
	for _, p := range []string{o.jsonOut, o.csvOut, o.mdOut} {
		if p == "-" {
			stdout++
		}
	}
	if stdout > 1 {
		return zero, bench.Gates{}, usageErr("bench: only one of --json, --csv and --markdown can write to stdout")
	}
	if o.plotOut == "-" {
		return zero, bench.Gates{}, usageErr("bench: --plot needs a file name")
	}
	shapes, err := parseShapeFlags(o.shapes)
	if err != nil {
		return zero, bench.Gates{}, err
	}
	mem, err := parseMaxMemory(o.maxMemory)
	if err != nil {
		return zero, bench.Gates{}, err
	}
	opts := runtime.Options{Device: o.device, Threads: o.threads, Shapes: shapes, ORTLib: o.ortLib, MaxMemory: mem.session}
	var targets []bench.Target
	if len(o.backends) > 0 || len(o.devices) > 0 {
		// a sweep: backend flags are checked against every backend, each
		// device against the backends that declare it
		devices := o.devices
		if len(devices) == 0 {
			devices = []string{o.device}
		}
		if err := o.ort.apply(backends, "", &opts); err != nil {
			return zero, bench.Gates{}, err
		}
		for _, b := range backends {
			be, _ := runtime.Get(b)
			for _, d := range devices {
				if !be.Capabilities().HasDevice(d) {
					continue
				}
				next := opts
				next.Device = d
				if err := runtime.CheckOptions(be, next); err != nil {
					return zero, bench.Gates{}, usageErr("bench: %v", err)
				}
				targets = append(targets, bench.Target{Backend: b, Device: d})
			}
		}
		if len(targets) == 0 {
			return zero, bench.Gates{}, usageErr("bench: no backend of %s has a device of %s", strings.Join(backends, ","), strings.Join(devices, ","))
		}
	} else if err := o.ort.apply([]string{o.backend}, o.device, &opts); err != nil {
		return zero, bench.Gates{}, err
	}
	cfg := bench.Config{
		Models:  models,
		Targets: targets,
		Backend: backends[0],
		Options: opts,
		Batches: o.batches, Concurrency: o.concurrency,
		Warmup: o.warmup, Rounds: o.rounds,
		Data: o.data, DataLimit: o.samples, Labels: o.labels,
		Seed: o.seed, MaxInputBytes: mem.seeded,
	}
	if cfg.Images, err = o.pixels.options(); err != nil {
		return zero, bench.Gates{}, err
	}
	if o.data == "" && o.pixels.String() != "" {
		return zero, bench.Gates{}, usageErr("bench: --pixel-scale, --pixel-mean and --pixel-std normalize --data images; there is no --data")
	}
	if o.device == "cpu" {
		cfg.Options.Device = ""
	}
	if o.rate != 0 {
		cfg.Load = bench.Load{Rate: o.rate, Arrival: o.arrival}
	}
	if iterationsSet {
		cfg.Iterations = o.iterations
		if o.iterations <= 0 {
			return zero, bench.Gates{}, usageErr("bench: --iterations %d is not positive", o.iterations)
		}
	} else {
		cfg.Duration = o.duration
		if o.duration <= 0 {
			return zero, bench.Gates{}, usageErr("bench: --duration %s is not positive", o.duration)
		}
	}
	if o.rounds < 1 {
		return zero, bench.Gates{}, usageErr("bench: --rounds %d is not positive", o.rounds)
	}
	if err := cfg.Validate(); err != nil {
		return zero, bench.Gates{}, usageErr("%v", err)
	}
	gates := bench.Gates{
		MaxP99: o.maxP99, MaxP50: o.maxP50, MinSpeedup: o.minSpeedup,
		MinThroughput: o.minThroughput, MaxAccuracyDrop: o.maxAccDrop, AccuracyDropSet: o.accuracyDropSet,
	}
	return cfg, gates, nil
}

func runBench(ctx context.Context, g *globalOptions, o *benchOptions, cfg bench.Config, gates bench.Gates) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	// The table goes to stdout unless a machine-readable report does.
	tableOut := g.Stdout
	if o.jsonOut == "-" || o.csvOut == "-" || o.mdOut == "-" {
		tableOut = g.Stderr
	}
	var bar *progressbar.ProgressBar
	if benchIsTerminal(g.Stdout) && o.jsonOut != "-" {
		cfg.Progress = func(done, total int) {
			if bar == nil {
				bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(g.Stderr),
					progressbar.OptionSetDescription("bench"), progressbar.OptionClearOnFinish(),
					progressbar.OptionShowCount(), progressbar.OptionSetElapsedTime(true))
			}
			bar.Set(done)
		}
	}
	rep, err := bench.Run(ctx, cfg)
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return err
	}
	var failed []bench.GateResult
	if gates.Any() {
		rep.Gates = gates.Check(rep)
		for _, r := range rep.Gates {
			if !r.Passed {
				failed = append(failed, r)
			}
		}
	}
	if err := bench.WriteTable(tableOut, rep); err != nil {
		return err
	}
	for _, out := range []struct {
		path  string
		write func(io.Writer, *bench.Report) error
	}{{o.jsonOut, bench.WriteJSON}, {o.csvOut, bench.WriteCSV}, {o.mdOut, bench.WriteMarkdown}, {o.plotOut, bench.WritePlot}} {
		if out.path == "" {
			continue
		}
		if err := benchWriteTo(out.path, g.Stdout, rep, out.write); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		for _, r := range failed {
			fmt.Fprintln(g.Stderr, r.String())
		}
		return failedErr(fmt.Errorf("bench: %d of %d gate checks failed", len(failed), len(rep.Gates)))
	}
	return nil
}

func benchWriteTo(path string, stdout io.Writer, rep *bench.Report, write func(io.Writer, *bench.Report) error) error {
	if path == "-" {
		return write(stdout, rep)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := write(f, rep); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// benchIsTerminal reports whether w is a terminal (the progress bar shows only then).
func benchIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
