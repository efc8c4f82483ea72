package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/optictl/optictl/pkg/fpga"
	"github.com/optictl/optictl/pkg/graph"
)

func init() { commands = append(commands, newFPGACmd) }

// fpgaBuildOptions are the parsed flags of `optictl fpga build`.
type fpgaBuildOptions struct {
	model     string
	part      string
	clock     string
	targetFPS float64
	folding   string
	out       string
	json      string
	shapes    []string
	simFrames int
	simLayers bool
	noSynth   bool
}

func newFPGACmd(g *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:   "fpga",
		Short: "Generate streaming dataflow hardware for a quantized model (Verilog, simulation, synthesis)",
		Long: `Turn a QDQ int8 ONNX model into FINN-style streaming dataflow hardware: one
engine per layer (sliding-window generator + matrix-vector-activation unit
for convolutions, MVAU for dense layers, max pools), folded by PE (output
channels in parallel) and SIMD (inputs in parallel), joined by FIFOs.

Everything is open source and runs here: the Verilog is simulated cycle by
cycle with Verilator and synthesized with Yosys (and placed and routed with
nextpnr-ice40 for iCE40). No vendor tools, no bitstream for a board.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	o := &fpgaBuildOptions{}
	build := &cobra.Command{
		Use:   "build MODEL.onnx -o DIR",
		Short: "Lower a QDQ model to Verilog, simulate it with Verilator, synthesize it with Yosys",
		Long: `Lower a QDQ int8 model (optimize --quantize int8-static writes one) to
engines and write synthesizable Verilog-2005 (weights as $readmemh ROM
files), a Verilator testbench and a report to DIR.

Folding: --target-fps N picks PE/SIMD per layer (SIMD through its valid
values first, then PE, FINN's SetFolding) until every layer takes at most
clock/N cycles per frame; --folding F.json takes {"<node>": {"PE": p,
"SIMD": s}} (PE divides the output channels; SIMD divides the inputs per
output, or for convolutions the input channels or the whole k·k·C window;
for depthwise convolutions, on a VVAU, PE divides the channels and SIMD the
k·k taps, SIMD > 1 only with PE = all channels, and --target-fps raises PE
first); average pools take a pixel per cycle and are not folded. Without
either every layer is PE = SIMD = 1. The folding used is written to
DIR/folding.json.

The report gives, per layer, FINN's analytical cycles and the simulated
ones, the measured initiation interval and latency (fps and µs at
--clock), and LUT/FF/BRAM18/DSP from Yosys against the part (and Fmax from
nextpnr on iCE40). Ops before the first and after the last engine (the
input's QuantizeLinear, a final bias Add or Softmax) run on the host; the
report lists them.

  optictl fpga build mnist.int8.onnx --part xc7z020 --clock 100MHz --target-fps 50000 -o out/mnist-fpga`,
		Args: exactArgs(1, "one model file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.model = args[0]
			return runFPGABuild(cmd.Context(), g, o)
		},
	}
	f := build.Flags()
	f.StringVar(&o.part, "part", "xc7z020", "target part: "+strings.Join(fpga.PartNames(), ", "))
	f.StringVar(&o.clock, "clock", "100MHz", "clock frequency (100MHz, 250 MHz or a number of MHz)")
	f.Float64Var(&o.targetFPS, "target-fps", 0, "fold every layer to reach this many frames per second")
	f.StringVar(&o.folding, "folding", "", `JSON file {"node": {"PE": p, "SIMD": s}}`)
	f.StringVarP(&o.out, "out", "o", "", "output folder (required)")
	f.StringVar(&o.json, "json", "", "write the JSON report to FILE (- for stdout)")
	f.StringArrayVar(&o.shapes, "shape", nil, "fix an input's shape, NAME=DIMS; repeatable")
	f.IntVar(&o.simFrames, "sim-frames", 3, "frames to simulate with Verilator (checked bit for bit against the Go model); 0 skips simulation")
	f.BoolVar(&o.simLayers, "sim-layers", true, "also simulate every layer alone for its cycles")
	f.BoolVar(&o.noSynth, "no-synth", false, "skip Yosys synthesis")
	root.AddCommand(build)
	return root
}

// parseClock reads "100MHz", "100 MHz", "0.1GHz" or "100".
func parseClock(s string) (float64, error) {
	t := strings.ToLower(strings.ReplaceAll(s, " ", ""))
	mul := 1.0
	switch {
	case strings.HasSuffix(t, "ghz"):
		mul, t = 1000, strings.TrimSuffix(t, "ghz")
	case strings.HasSuffix(t, "mhz"):
		t = strings.TrimSuffix(t, "mhz")
	case strings.HasSuffix(t, "khz"):
		mul, t = 0.001, strings.TrimSuffix(t, "khz")
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || !(v > 0) || v*mul > 5000 {
		return 0, fmt.Errorf("bad clock %q (want e.g. 100MHz)", s)
	}
	return v * mul, nil
}

func runFPGABuild(ctx context.Context, g *globalOptions, o *fpgaBuildOptions) error {
	if o.out == "" {
		return usageErr("fpga build: -o DIR is required")
	}
	if _, ok := fpga.Parts[o.part]; !ok {
		return usageErr("fpga build: unknown --part %q (known: %s)", o.part, strings.Join(fpga.PartNames(), ", "))
	}
	clock, err := parseClock(o.clock)
	if err != nil {
		return usageErr("fpga build: %v", err)
	}
	if o.targetFPS < 0 {
		return usageErr("fpga build: --target-fps must be positive")
	}
	if o.targetFPS > 0 && o.folding != "" {
		return usageErr("fpga build: --target-fps and --folding exclude each other")
	}
	if o.simFrames < 0 {
		return usageErr("fpga build: --sim-frames must be >= 0")
	}
	shapes, err := parseShapeFlags(o.shapes)
	if err != nil {
		return usageErr("%v", err)
	}
	var folding map[string]fpga.Fold
	if o.folding != "" {
		b, err := os.ReadFile(o.folding)
		if err != nil {
			return fmt.Errorf("fpga build: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&folding); err != nil {
			return usageErr("fpga build: --folding %s: %v (want {\"node\": {\"PE\": p, \"SIMD\": s}})", o.folding, err)
		}
	}
	m, err := graph.Load(o.model)
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	rep, _, err := fpga.Build(ctx, m, o.out, fpga.BuildOptions{
		Part: o.part, ClockMHz: clock, TargetFPS: o.targetFPS, Folding: folding, Shapes: shapes,
		SimFrames: o.simFrames, SimLayers: o.simLayers && o.simFrames > 0, Synth: !o.noSynth,
		Progress: func(s string) { fmt.Fprintln(g.Stderr, "fpga:", s) },
	})
	if err != nil {
		return err
	}
	fb, _ := json.MarshalIndent(rep.Folding, "", "  ")
	if err := os.WriteFile(o.out+"/folding.json", append(fb, '\n'), 0o644); err != nil {
		return fmt.Errorf("fpga build: %w", err)
	}
	rb, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(o.out+"/report.json", append(rb, '\n'), 0o644); err != nil {
		return fmt.Errorf("fpga build: %w", err)
	}
	switch o.json {
	case "":
	case "-":
		_, err := g.Stdout.Write(append(rb, '\n'))
		return err
	default:
		if err := os.WriteFile(o.json, append(rb, '\n'), 0o644); err != nil {
			return fmt.Errorf("fpga build: %w", err)
		}
	}
	printFPGAReport(g.Stdout, rep)
	return nil
}

func printFPGAReport(w io.Writer, r *fpga.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "layer\top\tengine\tPE\tSIMD\tMH\tMW\tcycles (FINN)\tcycles (model)\tcycles (sim)\tDSP est\tBRAM18 est")
	for _, l := range r.Layers {
		sim := "-"
		if l.CyclesSimulated > 0 {
			sim = strconv.Itoa(l.CyclesSimulated)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%d\n", l.Node, l.Op, l.Engine, l.PE, l.SIMD, l.MH, l.MW, l.FINNCyc, l.EstCyc, sim, l.EstDSP, l.EstBRAM18)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%s at %g MHz: ", r.Part, r.ClockMHz)
	if r.Simulated {
		fmt.Fprintf(w, "II %d cycles (estimated %d, bottleneck %s), latency %d cycles = %.2f µs, %.0f frames/s (simulated, %d frames bit-exact)\n",
			r.IICycles, r.IIEstimated, r.Bottleneck, r.LatencyCycles, r.LatencyUS, r.FPS, r.SimFrames)
	} else {
		fmt.Fprintf(w, "II %d cycles estimated (bottleneck %s), %.0f frames/s (analytical, not simulated)\n", r.IIEstimated, r.Bottleneck, r.FPS)
	}
	if res := r.Resources; res != nil {
		fmt.Fprintf(w, "resources (%s): LUT %d/%d, FF %d/%d, BRAM18 %d/%d, DSP %d/%d", res.Source, res.LUT, r.Capacity.LUT, res.FF, r.Capacity.FF, res.BRAM18, r.Capacity.BRAM18, res.DSP, r.Capacity.DSP)
		if res.FmaxMHz > 0 {
			fmt.Fprintf(w, ", Fmax %.1f MHz", res.FmaxMHz)
		}
		if res.Fits {
			fmt.Fprintln(w, ": fits")
		} else {
			fmt.Fprintf(w, ": does not fit (%s)\n", strings.Join(res.Limits, "; "))
			for _, l := range r.Limiting {
				fmt.Fprintln(w, "  limiting:", l)
			}
		}
	}
	e := r.Estimated
	fmt.Fprintf(w, "analytical estimate: LUT %d, BRAM18 %d, DSP %d\n", e.LUT, e.BRAM18, e.DSP)
	for _, h := range r.HostOps {
		fmt.Fprintln(w, "host:", h)
	}
	fmt.Fprintf(w, "design written to %s\n", r.Dir)
}
