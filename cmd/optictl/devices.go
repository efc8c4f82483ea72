package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/optictl/optictl/pkg/runtime"
)

func init() { commands = append(commands, newBackendsCmd) }

type backendsOptions struct {
	json   bool
	ortLib string
}

type backendReport struct {
	Name    string   `json:"name"`
	Devices []string `json:"devices"`
	DTypes  []string `json:"dtypes,omitempty"`
	PureGo  bool     `json:"pure_go"`
	// Options are the session flags the backend takes.
	Options []string `json:"options,omitempty"`
	// Library fields are set for the ort backend.
	Library        string `json:"library,omitempty"`
	LibraryVersion string `json:"library_version,omitempty"`
	LibrarySource  string `json:"library_source,omitempty"`
	Error          string `json:"error,omitempty"`
}

func newBackendsCmd(g *globalOptions) *cobra.Command {
	o := &backendsOptions{}
	cmd := &cobra.Command{
		Use:   "backends",
		Short: "List runtime backends, their devices, and the ONNX Runtime library in use",
		Long: `List the registered runtime backends with their devices and dtypes. For
the ort backend, load ONNX Runtime the way a session would (--ort-lib,
$ONNXRUNTIME_SHARED_LIBRARY_PATH, the .cache/ort that make setup fills, a
Python onnxruntime, system library folders) and report which library and
version it found, or why none could be used (exit 1).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error { return runBackends(g, o) },
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print a JSON array instead of text")
	cmd.Flags().StringVar(&o.ortLib, "ort-lib", "", "path of libonnxruntime.so (default: searched)")
	return cmd
}

func runBackends(g *globalOptions, o *backendsOptions) error {
	var reps []backendReport
	var libErr error
	for _, name := range runtime.Names() {
		b, err := runtime.Get(name)
		if err != nil {
			return err
		}
		c := b.Capabilities()
		r := backendReport{Name: name, Devices: c.Devices, PureGo: c.PureGo}
		for _, op := range c.Options {
			r.Options = append(r.Options, "--"+op.Name)
		}
		for _, dt := range c.DTypes {
			r.DTypes = append(r.DTypes, dt.String())
		}
		if l, ok := b.(runtime.LibraryLoader); ok {
			var err error
			r.Library, r.LibraryVersion, r.LibrarySource, err = l.LoadLibrary(o.ortLib)
			if err != nil {
				r.Error = err.Error()
				libErr = errors.Join(libErr, err)
			}
		}
		reps = append(reps, r)
	}
	if o.json {
		enc := json.NewEncoder(g.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(reps); err != nil {
			return err
		}
	} else {
		for _, r := range reps {
			fmt.Fprintf(g.Stdout, "%s\tdevices: %v\tpure Go: %v\n", r.Name, r.Devices, r.PureGo)
			if len(r.Options) > 0 {
				fmt.Fprintf(g.Stdout, "\toptions: %s\n", strings.Join(r.Options, " "))
			}
			if r.Library != "" {
				fmt.Fprintf(g.Stdout, "\tONNX Runtime %s: %s (from %s)\n", r.LibraryVersion, r.Library, r.LibrarySource)
			}
		}
	}
	return libErr
}
