package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/optictl/optictl/pkg/compare"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tensorio"
)

func init() { commands = append(commands, newRunCmd) }

// runOptions are the flags of `optictl run` (shared in part by compare).
type runOptions struct {
	backend   string
	device    string
	inputs    []string // name=FILE or FILE
	data      string
	shapes    []string // name=1x3x48x320
	out       string
	outFormat string
	json      bool
	seed      int64
	maxMemory string
	threads   int
	first     int
	ort       ortFlags
}

func newRunCmd(g *globalOptions) *cobra.Command {
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run MODEL",
		Short: "Run a model once on given or seeded random inputs and summarize its outputs",
		Long: `Run a model once and print, per output, its shape, dtype, min/max/mean and
first values (or write them with --out).

Inputs come from --input name=FILE (.npy, .npz, ONNX TensorProto .pb), from
--data DIR (a test_data_set_N folder with input_K.pb files), or are seeded
random data that respect each input's dtype and fixed dims (--seed; dynamic
dims are 1 unless --shape name=1x3x48x320 or the given inputs fix them). Seeded
inputs follow numerics' one range policy: floats in [-1, 1), integers in
[0, 4), bools, strings s0..s9; a set larger than --max-memory (default 2G)
is refused naming the input and shape.`,
		Args: exactArgs(1, "one model"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), g, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.backend, "backend", "interp", "backend: "+strings.Join(runtime.Names(), ", "))
	f.StringVar(&o.device, "device", "", "device: cpu (default), cuda, tensorrt (backend permitting)")
	f.StringArrayVar(&o.inputs, "input", nil, "input data: name=FILE, or FILE (.npz, or a .npy/.pb named after the input); repeatable")
	f.StringVar(&o.data, "data", "", "a test_data_set_N folder (input_K.pb), or a folder holding test_data_set_* (the first is used)")
	f.StringArrayVar(&o.shapes, "shape", nil, shapeFlagUsage)
	f.StringVar(&o.out, "out", "", "write each output to DIR/NAME.npy (or .pb with --out-format pb)")
	f.StringVar(&o.outFormat, "out-format", "npy", "format of --out files: npy or pb")
	f.BoolVar(&o.json, "json", false, "print JSON")
	f.Int64Var(&o.seed, "seed", 1, "seed of the random inputs")
	addMaxMemoryFlag(cmd, &o.maxMemory)
	f.IntVar(&o.threads, "threads", 0, "intra-op threads (0: backend default)")
	f.IntVar(&o.first, "first", 5, "how many first values to print per output")
	o.ort.register(cmd, true)
	return cmd
}

// runLoadInputs reads --input flags.
func runLoadInputs(list []string) ([]tensorio.Named, error) {
	var out []tensorio.Named
	for _, s := range list {
		name, path, ok := strings.Cut(s, "=")
		if !ok {
			name, path = "", s
		}
		if path == "" {
			return nil, usageErr("--input %q: want name=FILE or FILE", s)
		}
		ts, err := tensorio.LoadFile(path)
		if err != nil {
			return nil, usageErr("--input %s: %v", s, err)
		}
		if name != "" {
			if len(ts) != 1 {
				return nil, usageErr("--input %s: %s holds %d arrays; name=FILE needs exactly one", s, path, len(ts))
			}
			ts[0].Name = name
		}
		out = append(out, ts...)
	}
	return out, nil
}

// runDataSets expands --data arguments into test_data_set folders.
func runDataSets(dirs []string) ([]string, error) {
	var out []string
	for _, d := range dirs {
		sets, err := tensorio.DataSets(d)
		if err != nil {
			return nil, usageErr("--data %s: %v", d, err)
		}
		if len(sets) == 0 {
			return nil, usageErr("--data %s: no test_data_set_* folder or input_0.pb there", d)
		}
		out = append(out, sets...)
	}
	return out, nil
}

func runIONames(infos []runtime.IOInfo) []string {
	out := make([]string, len(infos))
	for i, v := range infos {
		out[i] = v.Name
	}
	return out
}

// runSessionSpec opens sessions the same way for run and compare.
type runSessionSpec struct {
	device    string
	threads   int
	maxMemory memoryBound
	shapes    map[string][]int64
	base      runtime.Options // the ORT flags (ortFlags.apply)
}

func (sp runSessionSpec) open(backend, path string) (*graph.Model, runtime.Session, error) {
	if _, err := runtime.Get(backend); err != nil {
		return nil, nil, usageErr("--backend: %v", err)
	}
	m, err := graph.Load(path)
	if err != nil {
		return nil, nil, err
	}
	// --shape must name a model input and agree with its fixed dims.
	declared := map[string]*graph.ValueInfo{}
	var names []string
	for _, v := range m.Graph.Inputs {
		declared[v.Name] = v
		names = append(names, v.Name)
	}
	for name, want := range sp.shapes {
		v, ok := declared[name]
		if !ok {
			return nil, nil, usageErr("--shape %s: the model has no input %q (inputs: %s)", name, name, strings.Join(names, ", "))
		}
		in := numerics.Input{Name: name, DType: v.DType, Ranked: v.HasShape}
		for _, d := range v.Shape {
			in.Shape = append(in.Shape, d.Size)
		}
		if _, err := numerics.ResolveShape(in, numerics.Dims{Shapes: map[string][]int64{name: want}}); err != nil {
			return nil, nil, usageErr("--shape: %v", err)
		}
	}
	opts := sp.base
	opts.Device, opts.Threads, opts.MaxMemory, opts.Shapes = sp.device, sp.threads, sp.maxMemory.session, sp.shapes
	s, err := compare.Open(backend, m, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, s, nil
}

// runInputSource describes where one input's data came from.
type runInputSource struct {
	Name   string  `json:"name"`
	DType  string  `json:"dtype"`
	Shape  []int64 `json:"shape"`
	Source string  `json:"source"`
}

// runPrepareInputs binds data-set, file and random inputs for a session.
func runPrepareInputs(s runtime.Session, dataSet string, files []tensorio.Named, seed int64, shapes map[string][]int64, maxBytes int64) ([]*runtime.Tensor, []runInputSource, error) {
	infos := s.Inputs()
	given := append([]tensorio.Named{}, files...)
	src := map[string]string{}
	for _, f := range files {
		src[f.Name] = "file"
	}
	if dataSet != "" {
		ds, err := tensorio.LoadDataSet(dataSet, runIONames(infos), nil)
		if err != nil {
			return nil, nil, usageErr("--data: %v", err)
		}
		for _, nt := range ds.Inputs {
			dup := false
			for _, f := range files {
				dup = dup || f.Name == nt.Name
			}
			if !dup {
				given = append(given, nt)
				src[nt.Name] = filepath.Base(dataSet)
			}
		}
	}
	matched := 0
	for _, gv := range given {
		for _, info := range infos {
			if info.Name == gv.Name {
				matched++
			}
		}
	}
	all := given
	if matched == len(given) {
		// Seeded data for every input not given; its dynamic dims
		// follow --shape, else the given data (dims shared by name).
		dims := numerics.Dims{Shapes: map[string][]int64{}}
		for _, gv := range given {
			dims.Shapes[gv.Name] = gv.Tensor.Shape
		}
		for k, v := range shapes {
			dims.Shapes[k] = v
		}
		var missing []numerics.Input
		have := map[string]bool{}
		for _, gv := range given {
			have[gv.Name] = true
		}
		for _, in := range numerics.InputsFromInfos(infos) {
			if have[in.Name] {
				dims.Given = append(dims.Given, in)
			} else {
				missing = append(missing, in)
			}
		}
		if len(missing) > 0 {
			ts, err := numerics.Seeded(missing, numerics.SeedOptions{Seed: uint64(seed), Dims: dims, MaxBytes: maxBytes})
			var se *numerics.SizeError
			switch {
			case errors.As(err, &se):
				return nil, nil, err // the model's dims, not the usage
			case err != nil && len(shapes) == 0:
				// The shapes came from the model alone (dims of 2^62, say):
				// a malformed model, exit 1, not bad usage.
				return nil, nil, err
			case err != nil:
				return nil, nil, usageErr("%v", err)
			}
			all = append([]tensorio.Named{}, given...)
			for i, in := range missing {
				all = append(all, tensorio.Named{Name: in.Name, Tensor: ts[i]})
				src[in.Name] = fmt.Sprintf("random (seed %d)", seed)
			}
		}
	}
	// Otherwise Bind takes the tensors by position when none matched by
	// name and the counts agree, or names the input the model lacks.
	bound, err := compare.Bind(infos, all)
	if err != nil {
		return nil, nil, usageErr("%v", err)
	}
	srcs := make([]runInputSource, len(infos))
	for i, info := range infos {
		s := src[info.Name]
		if s == "" {
			s = "file"
		}
		srcs[i] = runInputSource{Name: info.Name, DType: bound[i].DType.String(), Shape: bound[i].Shape, Source: s}
	}
	return bound, srcs, nil
}

type runReport struct {
	Model   string            `json:"model"`
	Backend string            `json:"backend"`
	Device  string            `json:"device"`
	Inputs  []runInputSource  `json:"inputs"`
	Outputs []compare.Summary `json:"outputs"`
	Written []string          `json:"written,omitempty"`
}

func (o *runOptions) run(ctx context.Context, g *globalOptions, model string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.outFormat != "npy" && o.outFormat != "pb" {
		return usageErr("--out-format %q: want npy or pb", o.outFormat)
	}
	if o.threads < 0 {
		return usageErr("--threads %d: want 0 or more", o.threads)
	}
	if o.first < 0 {
		return usageErr("--first %d: want 0 or more", o.first)
	}
	maxMem, err := parseMaxMemory(o.maxMemory)
	if err != nil {
		return err
	}
	shapes, err := parseShapeFlags(o.shapes)
	if err != nil {
		return err
	}
	files, err := runLoadInputs(o.inputs)
	if err != nil {
		return err
	}
	var dataSet string
	if o.data != "" {
		sets, err := runDataSets([]string{o.data})
		if err != nil {
			return err
		}
		dataSet = sets[0]
	}
	sp := runSessionSpec{device: o.device, threads: o.threads, maxMemory: maxMem, shapes: shapes}
	if err := o.ort.apply([]string{o.backend}, o.device, &sp.base); err != nil {
		return err
	}
	_, s, err := sp.open(o.backend, model)
	if err != nil {
		return err
	}
	defer s.Close()
	in, srcs, err := runPrepareInputs(s, dataSet, files, o.seed, shapes, maxMem.seeded)
	if err != nil {
		return err
	}
	outs, err := compare.RunOnce(ctx, s, in)
	if err != nil {
		return err
	}
	rep := runReport{Model: model, Backend: o.backend, Device: s.Device(), Inputs: srcs}
	for i, info := range s.Outputs() {
		rep.Outputs = append(rep.Outputs, compare.Summarize(info.Name, outs[i], o.first))
	}
	if o.out != "" {
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			return err
		}
		for i, info := range s.Outputs() {
			p := filepath.Join(o.out, runFileName(info.Name, i)+"."+o.outFormat)
			if o.outFormat == "pb" {
				err = tensorio.SavePB(p, info.Name, outs[i])
			} else {
				err = tensorio.SaveNPY(p, outs[i])
			}
			if err != nil {
				return err
			}
			rep.Written = append(rep.Written, p)
		}
	}
	if o.json {
		return runJSON(g.Stdout, rep)
	}
	w := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "model %s on %s (%s)\n\n", model, o.backend, s.Device())
	fmt.Fprintln(w, "input\tdtype\tshape\tsource")
	for _, in := range srcs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", in.Name, in.DType, runtime.ShapeString(in.Shape), in.Source)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "output\tdtype\tshape\tmin\tmax\tmean\tfirst values")
	for _, sm := range rep.Outputs {
		first := make([]string, 0, len(sm.First))
		for _, v := range sm.First {
			first = append(first, strconv.FormatFloat(v, 'g', 6, 64))
		}
		first = append(first, sm.Strings...)
		fmt.Fprintf(w, "%s\t%s\t%s\t%.6g\t%.6g\t%.6g\t%s\n", sm.Name, sm.DType, runtime.ShapeString(sm.Shape), sm.Min, sm.Max, sm.Mean, strings.Join(first, " "))
	}
	for _, p := range rep.Written {
		fmt.Fprintf(w, "wrote %s\n", p)
	}
	return w.Flush()
}

// runFileName makes an output name safe as a file name.
func runFileName(name string, i int) string {
	s := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 || r == ':' {
			return '_'
		}
		return r
	}, name)
	if s == "" || s == "." || s == ".." {
		s = fmt.Sprintf("output_%d", i)
	}
	return s
}

func runJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(runJSONSafe(v))
}

// runJSONSafe passes v through; NaN/Inf floats are rejected by
// encoding/json, so summaries replace them before encoding.
func runJSONSafe(v any) any {
	switch r := v.(type) {
	case runReport:
		for i := range r.Outputs {
			s := &r.Outputs[i]
			s.Min, s.Max, s.Mean = runFinite(s.Min), runFinite(s.Max), runFinite(s.Mean)
			for k := range s.First {
				s.First[k] = runFinite(s.First[k])
			}
		}
		return r
	}
	return v
}

// runFinite maps NaN and ±Inf to values JSON can carry (NaN -> 0 is not
// acceptable, so the largest float with the sign is used and NaN becomes
// the max float too; the "nans" count says how many there were).
func runFinite(f float64) float64 {
	switch {
	case math.IsNaN(f):
		return math.MaxFloat64
	case math.IsInf(f, 1):
		return math.MaxFloat64
	case math.IsInf(f, -1):
		return -math.MaxFloat64
	}
	return f
}
