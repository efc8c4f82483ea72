package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/optictl/optictl/pkg/bench"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/prune"
	"github.com/optictl/optictl/pkg/quant"
	"github.com/optictl/optictl/pkg/runtime"
)

// checkPruneFlags validates the structured pruning budget flags.
func (o *optimizeOptions) checkPruneFlags() error {
	if o.Prune == 0 {
		return nil
	}
	if !(o.PruneMinCosine > 0 && o.PruneMinCosine <= 1) {
		return usageErr("--prune-min-cosine %v: want a value in (0, 1]", o.PruneMinCosine)
	}
	if !(o.PruneMinTop1 > 0 && o.PruneMinTop1 <= 1) {
		return usageErr("--prune-min-top1 %v: want a value in (0, 1]", o.PruneMinTop1)
	}
	if !o.PruneReconstruct && o.PruneMode != prune.Structured {
		return usageErr("--prune-reconstruct is for structured pruning (unstructured pruning removes no channels)")
	}
	if o.PruneGlobal && o.PruneMode == prune.Structured {
		return usageErr("--prune-global is for unstructured pruning (structured ratios are chosen per layer by sensitivity)")
	}
	if o.Calib != "" && o.CalibSamples < 1 {
		return usageErr("--calib-samples %d: want at least 1", o.CalibSamples)
	}
	return nil
}

// applyPrune prunes m as --prune says. Structured pruning chooses per-layer
// ratios by sensitivity, reconstructs on calibration samples (--calib, else
// seeded inputs) and checks the result on held-out samples: a collapse or a
// result outside the budget is an exit-3 failure that returns the report.
func applyPrune(g *globalOptions, o *optimizeOptions, m *graph.Model) (*graph.Model, *prune.Report, error) {
	pm := m.Clone()
	if o.PruneMode != prune.Structured {
		rep, err := prune.Prune(pm, prune.Options{Fraction: o.Prune, Mode: o.PruneMode, Norm: o.PruneNorm, Multiple: o.PruneMultiple, Global: o.PruneGlobal})
		if err != nil {
			return nil, nil, err
		}
		// The budget applies to unstructured pruning too.
		_, held, where, err := pruneSamples(o, m)
		if err != nil {
			return nil, nil, err
		}
		f, err := prune.Measure(m, pm, held, "interp")
		if err != nil {
			return nil, nil, err
		}
		rep.Accuracy = &prune.AutoReport{Pruned: f, Final: f, Held: len(held), MinCosine: o.PruneMinCosine, MinTop1: o.PruneMinTop1}
		rep.Notes = append(rep.Notes, "accuracy measured on "+where)
		if why := f.Outside(o.PruneMinCosine, o.PruneMinTop1); why != "" {
			return nil, rep, failedErr(fmt.Errorf("--prune %g: %w: %s; nothing was written (lower --prune, or loosen --prune-min-cosine/--prune-min-top1)", o.Prune, prune.ErrBudget, why))
		}
		return pm, rep, nil
	}
	opts := prune.Options{Fraction: o.Prune, Mode: prune.Structured, Norm: o.PruneNorm, Multiple: o.PruneMultiple}
	if rep, err := prune.Prune(pm, opts); err != nil || len(rep.Layers) == 0 {
		// Nothing prunable (the report says why): no samples needed.
		if rep != nil {
			rep.Notes = append(rep.Notes, "nothing was pruned: no layer's output channels can be removed (see the skipped layers)")
		}
		return pm, rep, err
	}
	pm = m.Clone()
	calib, held, where, err := pruneSamples(o, m)
	if err != nil {
		return nil, nil, err
	}
	progress := func(string) {}
	if g.Verbose {
		progress = func(s string) { fmt.Fprintln(g.Stderr, "prune:", s) }
	}
	rep, err := prune.Auto(pm, calib, held, prune.AutoOptions{
		Options:     opts,
		Reconstruct: o.PruneReconstruct,
		Recon:       prune.ReconOptions{Backend: "interp"},
		MinCosine:   o.PruneMinCosine,
		MinTop1:     o.PruneMinTop1,
		Progress:    progress,
	})
	if rep != nil && rep.Accuracy != nil {
		rep.Notes = append(rep.Notes, "accuracy measured on "+where)
	}
	if errors.Is(err, prune.ErrBudget) {
		return nil, rep, failedErr(fmt.Errorf("--prune %g: %w; nothing was written (lower --prune, or loosen --prune-min-cosine/--prune-min-top1)", o.Prune, err))
	}
	if err != nil {
		return nil, nil, err
	}
	return pm, rep, nil
}

// pruneSamples returns the calibration and held-out samples for structured
// pruning and says what they are: --calib calibrates and --data is held out;
// with only one of them, its last quarter is held out; with neither, seeded
// inputs.
func pruneSamples(o *optimizeOptions, m *graph.Model) (calib, held [][]*runtime.Tensor, where string, err error) {
	load := func(flag, path string, limit int) ([][]*runtime.Tensor, error) {
		ss, err := bench.LoadData(path, sessionInfos(m), limit)
		if err != nil {
			return nil, usageErr("%s: %v", flag, err)
		}
		all := make([][]*runtime.Tensor, len(ss))
		for i := range ss {
			all[i] = ss[i]
		}
		return all, nil
	}
	split := func(flag string, all [][]*runtime.Tensor) ([][]*runtime.Tensor, [][]*runtime.Tensor, string) {
		if len(all) == 1 {
			return all, all, fmt.Sprintf("the one %s sample, which also calibrates (no held-out sample: pass more)", flag)
		}
		h := max(1, len(all)/4)
		return all[:len(all)-h], all[len(all)-h:], fmt.Sprintf("%d %s samples held out from calibration (calibration: the first %d)", h, flag, len(all)-h)
	}
	switch {
	case o.Calib != "" && o.Data != "":
		if calib, err = load("--calib", o.Calib, o.CalibSamples); err != nil {
			return nil, nil, "", err
		}
		if held, err = load("--data", o.Data, 100); err != nil {
			return nil, nil, "", err
		}
		return calib, held, fmt.Sprintf("%d --data samples (calibration: %d --calib samples)", len(held), len(calib)), nil
	case o.Calib != "" || o.Data != "":
		flag, path, limit := "--calib", o.Calib, o.CalibSamples
		if o.Calib == "" {
			flag, path, limit = "--data", o.Data, 100
		}
		all, err := load(flag, path, limit)
		if err != nil {
			return nil, nil, "", err
		}
		calib, held, where = split(flag, all)
		return calib, held, where, nil
	}
	// Seeded inputs: the first representative dims the model runs on
	// (numerics.VerifyDims), else all dynamic dims 1.
	var firstErr error
	for _, dims := range append(numerics.VerifyDimsBounded(m, o.maxMem.seeded), numerics.Dims{}) {
		all, err := quant.SeededSamples(m, 12, 1, dims, o.maxMem.seeded)
		if err == nil {
			err = runsOn(m, all[0])
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		return all[:8], all[8:], fmt.Sprintf("%d seeded random inputs of shape %s held out from 8 seeded calibration inputs (pass --calib for real samples)", len(all)-8, numerics.DescribeShapes(namedSample(m, all[0]))), nil
	}
	return nil, nil, "", fmt.Errorf("prune: the model does not run on seeded inputs (pass --calib): %w", firstErr)
}

// runsOn reports whether m runs on the interp backend with sample.
func runsOn(m *graph.Model, sample []*runtime.Tensor) error {
	s, err := runtime.Open("interp", m, runtime.Options{Threads: 1})
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = s.Run(context.Background(), sample)
	return err
}
