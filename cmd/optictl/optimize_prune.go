package main

import (
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
	if o.Prune == 0 || o.PruneMode != prune.Structured {
		return nil
	}
	if !(o.PruneMinCosine > 0 && o.PruneMinCosine <= 1) {
		return usageErr("--prune-min-cosine %v: want a value in (0, 1]", o.PruneMinCosine)
	}
	if !(o.PruneMinTop1 > 0 && o.PruneMinTop1 <= 1) {
		return usageErr("--prune-min-top1 %v: want a value in (0, 1]", o.PruneMinTop1)
	}
	if o.PruneGlobal {
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
		return pm, rep, err
	}
	calib, held, where, err := pruneSamples(o, m)
	if err != nil {
		return nil, nil, err
	}
	progress := func(string) {}
	if g.Verbose {
		progress = func(s string) { fmt.Fprintln(g.Stderr, "prune:", s) }
	}
	rep, err := prune.Auto(pm, calib, held, prune.AutoOptions{
		Options:     prune.Options{Fraction: o.Prune, Mode: prune.Structured, Norm: o.PruneNorm, Multiple: o.PruneMultiple},
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
// pruning and says what they are: --calib split (the last quarter held
// out), else seeded inputs.
func pruneSamples(o *optimizeOptions, m *graph.Model) (calib, held [][]*runtime.Tensor, where string, err error) {
	if o.Calib != "" {
		ss, err := bench.LoadData(o.Calib, sessionInfos(m), o.CalibSamples)
		if err != nil {
			return nil, nil, "", usageErr("--calib: %v", err)
		}
		all := make([][]*runtime.Tensor, len(ss))
		for i := range ss {
			all[i] = ss[i]
		}
		if len(all) == 1 {
			return all, all, "the one --calib sample, which also calibrates (no held-out sample: pass more to --calib)", nil
		}
		h := max(1, len(all)/4)
		return all[:len(all)-h], all[len(all)-h:], fmt.Sprintf("%d --calib samples held out from calibration (calibration: the first %d)", h, len(all)-h), nil
	}
	dims := numerics.VerifyDimsBounded(m, o.maxMem.seeded)[0]
	all, err := quant.SeededSamples(m, 12, 1, dims, o.maxMem.seeded)
	if err != nil {
		return nil, nil, "", err
	}
	return all[:8], all[8:], fmt.Sprintf("%d seeded random inputs held out from 8 seeded calibration inputs (pass --calib for real samples)", len(all)-8), nil
}
