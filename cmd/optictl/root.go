package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes (documented in the README).
const (
	ExitOK     = 0
	ExitError  = 1
	ExitUsage  = 2
	ExitFailed = 3 // a check or gate failed; the report was still printed
)

// version is set by -ldflags "-X main.version=..."; otherwise read from build info.
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// globalOptions are the flags every command sees.
type globalOptions struct {
	Verbose bool
	Stdout  io.Writer
	Stderr  io.Writer
	Log     *slog.Logger
}

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr marks an error as bad usage (exit 2, usage printed).
func usageErr(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// failedErr marks a failed check or gate (exit 3).
func failedErr(err error) error { return &exitError{code: ExitFailed, err: err} }

// commands registers every subcommand; files add to it in init().
var commands []func(g *globalOptions) *cobra.Command

func newRoot(g *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:   "optictl",
		Short: "Make ONNX models faster, prove they still compute the same thing, measure and serve them",
		Long: `optictl optimizes ONNX models (fusion, folding, reordering, pruning,
quantization), checks every rewrite numerically against the original,
measures latency and accuracy side by side, and serves models over the
KServe v2 protocol.

  optictl inspect model.onnx                 what is inside: ops, shapes, params, FLOPs
  optictl run model.onnx                     run once on seeded or given inputs
  optictl compare a.onnx b.onnx              do two models (or backends) agree?
  optictl optimize model.onnx -o opt.onnx    rewrite into a faster, verified model
  optictl bench model.onnx opt.onnx          latency/throughput/accuracy, side by side
  optictl tune model.onnx -o out/            the latency-accuracy frontier across recipes and backends
  optictl serve model.onnx                   KServe v2 over HTTP and gRPC, batching, caching, variants
  optictl fpga build q.onnx -o out/          streaming FPGA hardware: Verilog, simulation, synthesis
  optictl distill teacher.onnx -o s.onnx     train a smaller student on the teacher's outputs
  optictl convert model.onnx -o new.onnx     raise the opset, adapting every changed operator`,
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr("unknown command %q for optictl", args[0])
			}
			return cmd.Help()
		},
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			level := slog.LevelWarn
			if g.Verbose {
				level = slog.LevelDebug
			}
			g.Log = slog.New(slog.NewTextHandler(g.Stderr, &slog.HandlerOptions{Level: level}))
		},
	}
	root.SetOut(g.Stdout)
	root.SetErr(g.Stderr)
	root.PersistentFlags().BoolVarP(&g.Verbose, "verbose", "v", false, "log what optictl is doing to stderr")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: ExitUsage, err: err}
	})
	for _, mk := range commands {
		root.AddCommand(mk(g))
	}
	return root
}

// Execute runs optictl with args and returns the exit code.
func Execute(args []string, stdout, stderr io.Writer) int {
	g := &globalOptions{Stdout: stdout, Stderr: stderr, Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	root := newRoot(g)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	code := ExitError
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	} else if isCobraUsage(err) {
		code = ExitUsage
	}
	fmt.Fprintf(stderr, "optictl: %v\n", err)
	if code == ExitUsage {
		fmt.Fprintln(stderr, "Run 'optictl --help' or 'optictl COMMAND --help' for usage.")
	}
	return code
}

// isCobraUsage recognises the usage errors cobra and pflag return as plain
// errors. It matches their messages' beginnings only: an error about a model
// (an OS error's "invalid argument" for a NUL in an external data path, a
// node that "accepts" something) is wrapped behind the model's path and
// must stay exit 1, not 2.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command ", "unknown flag: ", "unknown shorthand flag: ", "accepts ", "requires at least ", "requires at most ", "invalid argument "} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// exactArgs is cobra.ExactArgs with a usage exit code.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErr("%s takes %s, got %d arguments", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}
