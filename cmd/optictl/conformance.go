package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/spf13/cobra"

	"github.com/optictl/optictl/pkg/conformance"
	"github.com/optictl/optictl/pkg/runtime"
)

func init() { commands = append(commands, newConformanceCmd) }

type conformanceOptions struct {
	backend         string
	dir             string
	json            bool
	run             string
	verboseFailures bool
	timeout         time.Duration
	threads         int
	ortLib          string
}

func newConformanceCmd(g *globalOptions) *cobra.Command {
	o := &conformanceOptions{}
	cmd := &cobra.Command{
		Use:   "conformance",
		Short: "Run the ONNX node conformance tests on a backend",
		Long: `Run every ONNX node test folder (model.onnx + test_data_set_N with
input_K.pb / output_K.pb) through a backend, compare its outputs with the
references (rtol 1e-3, atol 1e-7, as onnx's backend test runner) and print a
per-op pass / fail / unsupported / error table and the overall pass rate.

The default --dir is ../shared/models/conformance/onnx-1.22.0/node, found
from the current folder upwards; Debian's libonnx-testdata folder
(/usr/share/onnx/... /node) works too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.exec(cmd, g)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.backend, "backend", "interp", "backend: "+fmt.Sprint(runtime.Names()))
	f.StringVar(&o.dir, "dir", "", "folder of test_* folders (default ../shared/models/conformance/onnx-1.22.0/node)")
	f.BoolVar(&o.json, "json", false, "print one JSON object")
	f.StringVar(&o.run, "run", "", "run only tests whose folder name matches this regular expression")
	f.BoolVar(&o.verboseFailures, "verbose-failures", false, "list every failing, unsupported and erroring test with the reason")
	f.DurationVar(&o.timeout, "timeout", 60*time.Second, "per-test timeout")
	f.IntVar(&o.threads, "threads", 1, "intra-op threads per test")
	f.StringVar(&o.ortLib, "ort-lib", "", "path of libonnxruntime.so (ort backend)")
	return cmd
}

// defaultConformanceDir looks for ../shared/models/conformance/onnx-1.22.0/node
// beside the module (or any parent of the current folder).
func defaultConformanceDir() (string, error) {
	rel := filepath.Join("shared", "models", "conformance", "onnx-1.22.0", "node")
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		for _, c := range []string{filepath.Join(d, rel), filepath.Join(filepath.Dir(d), rel)} {
			if st, err := os.Stat(c); err == nil && st.IsDir() {
				return c, nil
			}
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	return "", fmt.Errorf("no conformance data found (looked for %s above %s); pass --dir", rel, wd)
}

func (o *conformanceOptions) exec(cmd *cobra.Command, g *globalOptions) error {
	if _, err := runtime.Get(o.backend); err != nil {
		return usageErr("unknown --backend %q (have %v)", o.backend, runtime.Names())
	}
	opts := conformance.Options{Timeout: o.timeout, Threads: o.threads}
	opts.Session.ORTLib = o.ortLib
	if o.run != "" {
		re, err := regexp.Compile(o.run)
		if err != nil {
			return usageErr("bad --run: %v", err)
		}
		opts.Run = re
	}
	if o.timeout <= 0 {
		return usageErr("--timeout must be positive")
	}
	if o.threads <= 0 {
		return usageErr("--threads must be positive")
	}
	dir := o.dir
	if dir == "" {
		d, err := defaultConformanceDir()
		if err != nil {
			return usageErr("%v", err)
		}
		dir = d
	}
	rep, err := conformance.RunContext(cmd.Context(), dir, o.backend, opts)
	if err != nil {
		return err
	}
	return writeConformance(g.Stdout, rep, o.json, o.verboseFailures)
}

func writeConformance(w io.Writer, rep *conformance.Report, asJSON, verbose bool) error {
	if asJSON {
		out := *rep
		if !verbose {
			// Keep the per-test list to the tests that did not pass.
			out.Results = nil
			for _, r := range rep.Results {
				if r.Status != conformance.Pass {
					out.Results = append(out.Results, r)
				}
			}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	t := tablewriter.NewTable(w)
	t.Header("OP", "TESTS", "PASS", "FAIL", "UNSUPPORTED", "ERROR")
	for _, s := range rep.Ops {
		if err := t.Append(s.Op, fmt.Sprint(s.Total), fmt.Sprint(s.Pass), fmt.Sprint(s.Fail),
			fmt.Sprint(s.Unsupported), fmt.Sprint(s.Error)); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	if verbose {
		for _, r := range rep.Results {
			if r.Status != conformance.Pass {
				fmt.Fprintf(w, "%-12s %s [%s]: %s\n", r.Status, r.Name, r.Op, r.Detail)
			}
		}
	}
	fmt.Fprintf(w, "%s: %d/%d passed (%.1f%%), %d failed, %d unsupported, %d errors\n",
		rep.Backend, rep.Pass, rep.Total, 100*rep.PassRate, rep.Fail, rep.Unsupported, rep.Error)
	return nil
}
