package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/optictl/optictl/pkg/compare"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tensorio"
)

func init() { commands = append(commands, newCompareCmd) }

type compareOptions struct {
	backends  string
	device    string
	data      []string
	inputs    []string
	shapes    []string
	atol      float64
	rtol      float64
	json      bool
	seed      int64
	threads   int
	maxMemory string
	ort       ortFlags
}

func newCompareCmd(g *globalOptions) *cobra.Command {
	o := &compareOptions{}
	cmd := &cobra.Command{
		Use:   "compare MODEL_A [MODEL_B]",
		Short: "Check that two models, or one model on two backends, compute the same outputs",
		Long: `Compare outputs, Polygraphy-style: one model on two backends
(--backends interp,ort), two models on one backend (MODEL_B against MODEL_A),
or one model against the reference outputs (output_K.pb) of test_data_set
folders given with --data. A data set may hold references for only some
outputs: a reference named after an output (its TensorProto name) checks
that output, an unnamed one the output at its position; the outputs
without a reference are listed as not checked.

Per output it reports the max absolute and relative error, cosine
similarity and, for class-like outputs (last dim > 1), top-1 agreement.
An element passes when |got - ref| <= atol + rtol*|ref|. Exit code 0 when
every output is within tolerance, 3 otherwise (the first failing output is
named), 2 for bad usage.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageErr("compare takes one or two models, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), g, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.backends, "backends", "", "backends, comma-separated: two for one model (reference first), one for two models (default interp, or interp,ort for one model without reference data)")
	f.StringVar(&o.device, "device", "", "device for the backends: cpu (default), cuda, tensorrt")
	f.StringArrayVar(&o.data, "data", nil, "test_data_set_N folder, or a folder of them; repeatable. Their output_K.pb are the reference for a single model on a single backend")
	f.StringArrayVar(&o.inputs, "input", nil, "input data without a data set: name=FILE or FILE; repeatable")
	f.StringArrayVar(&o.shapes, "shape", nil, shapeFlagUsage)
	f.Float64Var(&o.atol, "atol", numerics.DefaultTolerance.ATol, "absolute tolerance")
	f.Float64Var(&o.rtol, "rtol", numerics.DefaultTolerance.RTol, "relative tolerance")
	f.BoolVar(&o.json, "json", false, "print JSON")
	f.Int64Var(&o.seed, "seed", 1, "seed of the random inputs")
	f.IntVar(&o.threads, "threads", 0, "intra-op threads (0: backend default)")
	o.ort.register(cmd, true)
	addMaxMemoryFlag(cmd, &o.maxMemory)
	return cmd
}

// compareSide is one thing being run: a model on a backend.
type compareSide struct {
	Model   string `json:"model"`
	Backend string `json:"backend"`
	sess    runtime.Session
}

func (s compareSide) label() string { return s.Model + " on " + s.Backend }

// compareRound is one comparison on one set of inputs.
type compareRound struct {
	Data      string          `json:"data"`
	Reference string          `json:"reference"`
	Candidate string          `json:"candidate"`
	Result    numerics.Result `json:"result"`
	// Unchecked lists the outputs the data set holds no reference for.
	Unchecked []string `json:"unchecked,omitempty"`
}

type compareReport struct {
	Tolerance numerics.Tolerance `json:"tolerance"`
	Rounds    []compareRound     `json:"comparisons"`
	Pass      bool               `json:"pass"`
}

func (o *compareOptions) run(ctx context.Context, g *globalOptions, models []string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.atol < 0 || o.rtol < 0 {
		return usageErr("--atol and --rtol must not be negative")
	}
	if o.threads < 0 {
		return usageErr("--threads %d: want 0 or more", o.threads)
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
	sets, err := runDataSets(o.data)
	if err != nil {
		return err
	}
	if len(sets) > 0 && len(files) > 0 {
		return usageErr("give inputs either with --data or with --input, not both")
	}
	var backends []string
	for _, b := range strings.Split(o.backends, ",") {
		if b = strings.TrimSpace(b); b != "" {
			backends = append(backends, b)
		}
	}
	useRefs := false
	switch {
	case len(models) == 2:
		if len(backends) > 1 {
			return usageErr("two models run on one backend; --backends lists %d", len(backends))
		}
		if len(backends) == 0 {
			backends = []string{"interp"}
		}
	case len(backends) == 0:
		if len(sets) > 0 {
			backends, useRefs = []string{"interp"}, true
		} else {
			// interp against the first reference implementation linked in
			// (runtime.Capabilities.Reference: ONNX Runtime today).
			refs := runtime.BackendsWith(func(c runtime.Capabilities) bool { return c.Reference })
			if len(refs) == 0 || refs[0] == "interp" {
				return usageErr("no reference backend to compare interp with: give --backends A,B, --data with reference outputs, or a second model")
			}
			backends = []string{"interp", refs[0]}
		}
	case len(backends) == 1:
		if len(sets) == 0 {
			return usageErr("one model on one backend needs reference outputs: give --data with test_data_set folders, a second backend or a second model")
		}
		useRefs = true
	case len(backends) > 2:
		return usageErr("--backends lists %d backends; compare takes two", len(backends))
	}
	sp := runSessionSpec{device: o.device, threads: o.threads, maxMemory: maxMem, shapes: shapes}
	if err := o.ort.apply(backends, o.device, &sp.base); err != nil {
		return err
	}
	var sides []compareSide
	defer func() {
		for _, s := range sides {
			s.sess.Close()
		}
	}()
	if len(models) == 2 {
		for _, m := range models {
			_, s, err := sp.open(backends[0], m)
			if err != nil {
				return err
			}
			sides = append(sides, compareSide{Model: m, Backend: backends[0], sess: s})
		}
	} else {
		for _, b := range backends {
			_, s, err := sp.open(b, models[0])
			if err != nil {
				return err
			}
			sides = append(sides, compareSide{Model: models[0], Backend: b, sess: s})
		}
	}
	// The sides must agree on their interface.
	ref := sides[0]
	for _, s := range sides[1:] {
		if a, b := runIONames(ref.sess.Inputs()), runIONames(s.sess.Inputs()); strings.Join(a, "\x00") != strings.Join(b, "\x00") {
			return usageErr("%s takes inputs %v, %s takes %v", ref.label(), a, s.label(), b)
		}
		if a, b := runIONames(ref.sess.Outputs()), runIONames(s.sess.Outputs()); len(a) != len(b) {
			return usageErr("%s has %d outputs, %s has %d", ref.label(), len(a), s.label(), len(b))
		}
	}
	tol := numerics.Tolerance{ATol: o.atol, RTol: o.rtol}
	rep := compareReport{Tolerance: tol, Pass: true}
	rounds := sets
	if len(rounds) == 0 {
		rounds = []string{""}
	}
	outNames := runIONames(ref.sess.Outputs())
	var firstFail string
	for _, ds := range rounds {
		in, srcs, err := runPrepareInputs(ref.sess, ds, files, o.seed, shapes, maxMem.seeded)
		if err != nil {
			return err
		}
		label := ds
		if ds == "" {
			var parts []string
			for _, s := range srcs {
				parts = append(parts, s.Name+": "+s.Source)
			}
			label = strings.Join(parts, ", ")
		}
		results := make([][]*runtime.Tensor, len(sides))
		for i, s := range sides {
			out, err := compare.RunOnce(ctx, s.sess, in)
			if err != nil {
				return fmt.Errorf("%s: %w", s.label(), err)
			}
			results[i] = out
		}
		type pair struct {
			refName, candName string
			ref, cand         []*runtime.Tensor
			names, unchecked  []string
		}
		var pairs []pair
		if useRefs {
			refs, err := tensorio.LoadDataSet(ds, runIONames(ref.sess.Inputs()), outNames)
			if err != nil {
				return usageErr("--data: %v", err)
			}
			if len(refs.Outputs) == 0 {
				return usageErr("--data %s holds no output_K.pb reference files", ds)
			}
			// A data set may hold references for only some outputs:
			// those are checked (matched by name, else by position), the
			// others listed as unchecked.
			idx, unchecked, err := compare.MatchRefs(outNames, refs.Outputs)
			if err != nil {
				return usageErr("--data %s: %v", ds, err)
			}
			rt := make([]*runtime.Tensor, len(refs.Outputs))
			names := make([]string, len(refs.Outputs))
			for k, nt := range refs.Outputs {
				rt[k], names[k] = nt.Tensor, outNames[idx[k]]
			}
			for i, s := range sides {
				cand := make([]*runtime.Tensor, len(idx))
				for k, j := range idx {
					cand[k] = results[i][j]
				}
				pairs = append(pairs, pair{"reference " + ds, s.label(), rt, cand, names, unchecked})
			}
		} else {
			pairs = append(pairs, pair{sides[0].label(), sides[1].label(), results[0], results[1], outNames, nil})
		}
		for _, p := range pairs {
			res, err := numerics.CompareAll(p.names, p.cand, p.ref, tol)
			if err != nil {
				return err
			}
			rep.Rounds = append(rep.Rounds, compareRound{Data: label, Reference: p.refName, Candidate: p.candName, Result: res, Unchecked: p.unchecked})
			if !res.Pass && rep.Pass {
				rep.Pass = false
				firstFail = res.FirstFailure
				for _, or := range res.Outputs {
					if or.Name == firstFail {
						firstFail = fmt.Sprintf("output %q of %s differs from %s (data %s): max abs err %.4g, max rel err %.4g, %d of %d elements outside atol %g + rtol %g%s",
							or.Name, p.candName, p.refName, label, or.MaxAbs, or.MaxRel, or.Bad, or.Total, tol.ATol, tol.RTol, problemSuffix(or.Problem))
					}
				}
			}
		}
	}
	if o.json {
		if err := runJSON(g.Stdout, compareJSONSafe(rep)); err != nil {
			return err
		}
	} else {
		w := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
		for _, r := range rep.Rounds {
			fmt.Fprintf(w, "%s vs %s\ndata: %s\n", r.Candidate, r.Reference, r.Data)
			fmt.Fprintln(w, "output\tshape\tmax abs\tmax rel\tcosine\ttop-1\tmismatches\tresult")
			for _, or := range r.Result.Outputs {
				top := "-"
				if or.Top1 != nil {
					top = fmt.Sprintf("%.1f%%", 100**or.Top1)
				}
				verdict := "ok"
				if !or.Pass {
					verdict = "FAIL" + problemSuffix(or.Problem)
				}
				fmt.Fprintf(w, "%s\t%s\t%.3g\t%.3g\t%.6f\t%s\t%d/%d\t%s\n", or.Name, runtime.ShapeString(or.Shape), or.MaxAbs, or.MaxRel, or.Cosine, top, or.Bad, or.Total, verdict)
			}
			if len(r.Unchecked) > 0 {
				fmt.Fprintf(w, "not checked (no reference in the data set): %s\n", strings.Join(r.Unchecked, ", "))
			}
			fmt.Fprintln(w)
		}
		if rep.Pass {
			fmt.Fprintf(w, "PASS: all outputs within atol %g, rtol %g\n", tol.ATol, tol.RTol)
		} else {
			fmt.Fprintf(w, "FAIL: %s\n", firstFail)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if !rep.Pass {
		return failedErr(fmt.Errorf("compare: %s", firstFail))
	}
	return nil
}

func problemSuffix(p string) string {
	if p == "" {
		return ""
	}
	return " (" + p + ")"
}

// compareJSONSafe replaces infinities (a NaN mismatch) that JSON cannot carry.
func compareJSONSafe(r compareReport) compareReport {
	for i := range r.Rounds {
		for k := range r.Rounds[i].Result.Outputs {
			o := &r.Rounds[i].Result.Outputs[k]
			o.MaxAbs, o.MaxRel, o.MeanAbs, o.Cosine = runFinite(o.MaxAbs), runFinite(o.MaxRel), runFinite(o.MeanAbs), runFinite(o.Cosine)
			o.WorstGot, o.WorstRef = runFinite(o.WorstGot), runFinite(o.WorstRef)
		}
	}
	return r
}
