package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/schollz/progressbar/v3"

	"github.com/optictl/optictl/pkg/quant"
)

// The quantization recipes and QDQ placement targets come from pkg/quant's
// registries: optimize looks --quantize and --quant-target up there and
// reads what each recipe needs (calibration, evaluation data, op types)
// from its declaration.

// quantRecipe is the --quantize recipe (nil when not quantizing).
func quantRecipe(o *optimizeOptions) *quant.Recipe {
	r, _ := quant.LookupRecipe(o.Quantize)
	return r
}

// isSearchRecipe reports whether --quantize names a search recipe
// (int8-auto), which measures accuracy itself.
func isSearchRecipe(name string) bool {
	r, err := quant.LookupRecipe(name)
	return err == nil && r.Search()
}

// checkRecipeFlags validates --quantize and the flags its recipe reads.
func checkRecipeFlags(o *optimizeOptions) error {
	r, err := quant.LookupRecipe(o.Quantize)
	if err != nil {
		return usageErr("--quantize %q: want one of %s (or list)", o.Quantize, strings.Join(quant.RecipeNames(), ", "))
	}
	switch r.Calib {
	case quant.CalibNone:
		if o.Calib != "" {
			return usageErr("--calib is not used by --quantize %s", r.Name)
		}
	case quant.CalibRequired:
		if o.Calib == "" {
			return usageErr("--quantize %s needs --calib DIR (calibration inputs, disjoint from --data)", r.Name)
		}
	}
	if r.Search() && o.Data == "" && o.Calib == "" {
		return usageErr("--quantize %s needs --data or --calib (the samples each variant's accuracy is measured on: --data, else calibration samples held out from calibration)", r.Name)
	}
	if o.Calib != "" && o.Data != "" && filepathClean(o.Data) == filepathClean(o.Calib) {
		return usageErr("--calib and --data are the same (%s): calibration data must be disjoint from evaluation data", o.Calib)
	}
	if o.QuantTarget != "" {
		if !r.PlacesQDQ {
			return usageErr("--quant-target is not used by --quantize %s (it places no QDQ)", r.Name)
		}
		if _, err := quant.LookupTarget(o.QuantTarget); err != nil {
			return usageErr("--quant-target %q: want one of %s", o.QuantTarget, strings.Join(quant.TargetNames(), ", "))
		}
	}
	for _, t := range o.OpTypes {
		if !slices.Contains(r.OpTypes, t) {
			if len(r.OpTypes) == 0 {
				return usageErr("--op-types is not used by --quantize %s", r.Name)
			}
			return usageErr("--op-types: --quantize %s quantizes %s only, not %q", r.Name, andList(r.OpTypes), t)
		}
	}
	return nil
}

// andList writes a, b and c.
func andList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// recipeOptions maps the flags onto the recipe options, with extra nodes
// left in float (accuracy control).
func recipeOptions(o *optimizeOptions, extra []string) quant.RecipeOptions {
	return quant.RecipeOptions{
		Calibrate: o.Calibrate, Percentile: o.Percentile, PerChannel: o.PerChannel, Asymmetric: !o.Symmetric,
		FullRange: !o.ReduceRange, OpTypes: o.OpTypes, ExcludeNodes: append(append([]string(nil), o.ExcludeNodes...), extra...),
		Backend: o.Backend, Target: o.QuantTarget, KeepIO: o.KeepIO,
		Deadline: o.deadline, Progress: o.progress,
	}
}

// quantProgress is the progress sink of a long quantization (int8-auto,
// int8-mixed): a spinner with the current step on a terminal, else one
// line per step on w. done ends it.
func quantProgress(w io.Writer) (p quant.Progress, done func()) {
	if benchIsTerminal(w) {
		bar := progressbar.NewOptions(-1, progressbar.OptionSetWriter(w), progressbar.OptionClearOnFinish(),
			progressbar.OptionSetElapsedTime(true), progressbar.OptionSpinnerType(14))
		return func(_, _ int, line string) {
			bar.Describe(line)
			_ = bar.Add(1)
		}, func() { _ = bar.Finish() }
	}
	return func(_, _ int, line string) { fmt.Fprintln(w, "quantize: "+line) }, func() {}
}

// quantizeFlagHelp is --quantize's help line, from the registry.
func quantizeFlagHelp() string {
	return fmt.Sprintf("after the passes, quantize with a recipe: %s ('--quantize list' describes them)", strings.Join(quant.RecipeNames(), ", "))
}

type recipeInfo struct {
	Name      string `json:"name"`
	Calib     string `json:"calibration"`
	Int8      bool   `json:"int8"`
	PlacesQDQ bool   `json:"places_qdq"`
	Search    bool   `json:"search"`
	Title     string `json:"title"`
	Doc       string `json:"doc"`
}

type targetInfo struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	Doc   string `json:"doc"`
}

// printRecipes is `optimize --quantize list`.
func printRecipes(g *globalOptions, asJSON bool) error {
	calib := map[quant.CalibUse]string{quant.CalibNone: "no", quant.CalibOptional: "optional", quant.CalibRequired: "required"}
	var rs []recipeInfo
	for _, r := range quant.Recipes() {
		rs = append(rs, recipeInfo{Name: r.Name, Calib: calib[r.Calib], Int8: r.Int8, PlacesQDQ: r.PlacesQDQ, Search: r.Search(), Title: r.Title(), Doc: r.Doc})
	}
	var ts []targetInfo
	for _, t := range quant.Targets() {
		ts = append(ts, targetInfo{Name: t.Name, Title: t.Title(), Doc: t.Doc})
	}
	if asJSON {
		enc := json.NewEncoder(g.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Recipes []recipeInfo `json:"recipes"`
			Targets []targetInfo `json:"targets"`
		}{rs, ts})
	}
	t := tablewriter.NewTable(g.Stdout)
	t.Header("Recipe (--quantize)", "Calibration", "Description")
	for _, r := range rs {
		if err := t.Append([]string{r.Name, r.Calib, r.Title}); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	t = tablewriter.NewTable(g.Stdout)
	t.Header("QDQ target (--quant-target)", "Description")
	for _, x := range ts {
		name := x.Name
		if name == quant.DefaultTarget {
			name += " (default)"
		}
		if err := t.Append([]string{name, x.Title}); err != nil {
			return err
		}
	}
	return t.Render()
}
