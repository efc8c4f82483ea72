package prune

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Structured pruning under an accuracy budget.
//
// Sensitivity: each prunable tie group is pruned alone at a few ratios and
// the drift 1 - cosine of the model's outputs against the original is
// measured on calibration samples. Plan: starting from nothing pruned, the
// step (one group, one more ratio step) with the least drift per removed
// channel is taken greedily until the target fraction of all prunable
// channels is removed; drift between measured ratios is interpolated
// linearly. The plan is applied, reconstructed (least squares + BatchNorm
// correction) on the calibration samples and checked on held-out samples.

// Default budget: the pruned model's mean output cosine against the
// original on the held-out samples, and its top-1 agreement where the
// output is a class vector.
const (
	DefaultMinCosine = 0.98
	DefaultMinTop1   = 0.95
	// CollapseCosine is the cosine under which a result is called collapsed
	// whatever the budget.
	CollapseCosine = 0.9
)

// AutoOptions configure Auto.
type AutoOptions struct {
	// Options carries the target Fraction of all prunable output channels
	// and Norm, Multiple and Exclude; Mode must be structured (or empty)
	// and Global and PerLayer unset.
	Options
	// Reconstruct re-fits the layers after pruning (see Reconstruct).
	Reconstruct bool
	Recon       ReconOptions
	// MinCosine and MinTop1 are the budget (DefaultMinCosine and
	// DefaultMinTop1 when 0).
	MinCosine float64
	MinTop1   float64
	// Ratios are the per-layer ratios sensitivity is measured at (0.25,
	// 0.5, 0.75 when empty); no layer is pruned beyond the largest.
	Ratios []float64
	// SensitivitySamples bounds the calibration samples used to measure
	// sensitivity (4 when 0).
	SensitivitySamples int
	// Progress, when set, receives one line per measured step.
	Progress func(string)
}

// Sensitivity is one tie group's measured drift.
type Sensitivity struct {
	Nodes    []string  `json:"nodes"`
	Channels int       `json:"channels"`
	Ratios   []float64 `json:"ratios"`
	// Cosine[i] is the output cosine with the group alone pruned at
	// Ratios[i].
	Cosine []float64 `json:"cosine"`
	// Chosen is the ratio the plan gives the group.
	Chosen float64 `json:"chosen"`
}

// AutoReport is the accuracy side of a sensitivity-driven prune
// (Report.Accuracy).
type AutoReport struct {
	Sensitivity []Sensitivity `json:"sensitivity"`
	// Pruned is the held-out fidelity of the pruned model before
	// reconstruction, Final after it (equal when Reconstruct is off).
	Pruned Fidelity `json:"pruned"`
	Final  Fidelity `json:"final"`
	// PrunedProbes and FinalProbes compare the probe values (the features
	// the head reads) on the held-out samples, before and after
	// reconstruction.
	PrunedProbes Fidelity `json:"pruned_probes"`
	FinalProbes  Fidelity `json:"final_probes"`
	Held         int      `json:"held_out_samples"`
	Calib        int      `json:"calibration_samples"`
	MinCosine    float64  `json:"min_cosine"`
	MinTop1      float64  `json:"min_top1"`
	// Probes are the values sensitivity is measured on: the features
	// before the model's head (see probes).
	Probes []string `json:"probes"`
	// Reconstructed is set when Final is measured after reconstruction.
	Reconstructed bool `json:"reconstructed"`
}

// ErrBudget is wrapped by the error Auto returns when the pruned model
// collapses or is outside the accuracy budget.
var ErrBudget = errors.New("prune: the pruned model is outside the accuracy budget")

// Auto prunes m (structured) to opts.Fraction of its prunable channels with
// per-layer ratios chosen by sensitivity, reconstructs it on calib and
// checks it on held. On success m is replaced by the pruned model. On a
// budget failure it returns the report (with the per-layer table) and an
// error wrapping ErrBudget, and m is unchanged.
func Auto(m *graph.Model, calib, held [][]*runtime.Tensor, o AutoOptions) (rep *Report, err error) {
	defer func() {
		if r := recover(); r != nil {
			rep, err = nil, fmt.Errorf("prune: internal error (model left unchanged): %v", r)
		}
	}()
	if o.Mode == "" {
		o.Mode = Structured
	}
	if o.Mode != Structured || o.Global || o.PerLayer != nil {
		return nil, fmt.Errorf("prune: sensitivity-driven pruning is structured and per layer")
	}
	if len(calib) == 0 || len(held) == 0 {
		return nil, fmt.Errorf("prune: sensitivity-driven pruning needs calibration and held-out samples")
	}
	if o.MinCosine == 0 {
		o.MinCosine = DefaultMinCosine
	}
	if o.MinTop1 == 0 {
		o.MinTop1 = DefaultMinTop1
	}
	if len(o.Ratios) == 0 {
		o.Ratios = []float64{0.25, 0.5, 0.75}
	}
	sort.Float64s(o.Ratios)
	for _, r := range o.Ratios {
		if !(r > 0 && r < 1) {
			return nil, fmt.Errorf("prune: sensitivity ratio %v is not in (0, 1)", r)
		}
	}
	if o.SensitivitySamples <= 0 {
		o.SensitivitySamples = 4
	}
	backend := o.Recon.Backend
	progress := o.Progress
	if progress == nil {
		progress = func(string) {}
	}
	// The tie groups: a dry run at the largest ratio.
	dry := m.Clone()
	base := o.Options
	base.Fraction = o.Ratios[len(o.Ratios)-1]
	drep, err := Prune(dry, base)
	if err != nil {
		return nil, err
	}
	type grp struct {
		nodes []string
		n     int // channels of one member
		width int // members
	}
	byID := map[int]*grp{}
	var groups []*grp
	for _, l := range drep.Layers {
		g := byID[l.Group]
		if g == nil {
			g = &grp{n: l.ChannelsBefore}
			byID[l.Group] = g
			groups = append(groups, g)
		}
		g.nodes = append(g.nodes, l.Node)
		g.width++
	}
	if len(groups) == 0 {
		// Nothing is prunable: the report says why, nothing runs.
		nrep, err := Prune(m, Options{Fraction: o.Fraction, Mode: Structured, Norm: o.Norm, Multiple: o.Multiple, Exclude: o.Exclude, PerLayer: map[string]float64{}})
		if err == nil {
			nrep.Notes = append(nrep.Notes, "nothing was pruned: no layer's output channels can be removed (see the skipped layers)")
		}
		return nrep, err
	}
	ar := &AutoReport{Held: len(held), Calib: len(calib), MinCosine: o.MinCosine, MinTop1: o.MinTop1}
	sens := calib[:min(len(calib), o.SensitivitySamples)]
	// The features the head reads, unless pruning changes their size (the
	// head's input channels are pruned): then the head's outputs.
	features, logits := probes(m)
	ar.Probes = features
	ref, err := probeValues(m, features, sens, backend)
	if err != nil {
		return nil, err
	}
	if got, err := probeValues(dry, features, sens[:1], backend); err != nil || !sameSizes(ref[0], got[0]) {
		ar.Probes = logits
		if ref, err = probeValues(m, logits, sens, backend); err != nil {
			return nil, err
		}
	}
	total := 0
	for _, g := range groups {
		named := ""
		for _, n := range g.nodes {
			if n != "" {
				named = n
				break
			}
		}
		s := Sensitivity{Nodes: g.nodes, Channels: g.n, Ratios: o.Ratios}
		total += g.n * g.width
		for _, r := range o.Ratios {
			c := 1.0
			if named == "" {
				c = -1 // unnamed: cannot be addressed, never chosen
			} else {
				pm := m.Clone()
				po := o.Options
				po.PerLayer = map[string]float64{named: r}
				if _, err := Prune(pm, po); err != nil {
					return nil, err
				}
				got, err := probeValues(pm, ar.Probes, sens, backend)
				if err != nil {
					return nil, err
				}
				f, err := fidelity(ref, got)
				if err != nil {
					return nil, err
				}
				c = f.Cosine
			}
			s.Cosine = append(s.Cosine, c)
		}
		progress(fmt.Sprintf("sensitivity %s (%d channels): cosine %s", strings.Join(g.nodes, ","), g.n, fmtFloats(s.Cosine)))
		ar.Sensitivity = append(ar.Sensitivity, s)
	}
	// Greedy plan in steps of 1/8 up to the largest ratio.
	const step = 0.125
	target := int(math.Round(o.Fraction * float64(total)))
	level := make([]float64, len(groups))
	removed := 0
	drift := func(i int, r float64) float64 {
		s := ar.Sensitivity[i]
		prevR, prevD := 0.0, 0.0
		for k, x := range s.Ratios {
			d := 1 - s.Cosine[k]
			if r <= x+1e-9 {
				return prevD + (d-prevD)*(r-prevR)/(x-prevR)
			}
			prevR, prevD = x, d
		}
		return math.Inf(1)
	}
	chans := func(i int, r float64) int {
		return int(math.Round(r*float64(groups[i].n))) * groups[i].width
	}
	maxR := o.Ratios[len(o.Ratios)-1]
	for removed < target {
		best, bestCost := -1, math.Inf(1)
		for i := range groups {
			if ar.Sensitivity[i].Cosine[0] < 0 {
				continue
			}
			nr := math.Min(level[i]+step, maxR)
			if nr <= level[i] {
				continue
			}
			dc := chans(i, nr) - chans(i, level[i])
			if dc <= 0 {
				level[i] = nr
				continue
			}
			cost := (drift(i, nr) - drift(i, level[i])) / float64(dc)
			if cost < bestCost {
				best, bestCost = i, cost
			}
		}
		if best < 0 {
			return nil, fmt.Errorf("prune: cannot remove %.0f%% of the prunable channels: at most %.0f%% of %d with the largest ratio %g per layer", 100*o.Fraction, 100*float64(removed)/float64(max(total, 1)), total, maxR)
		}
		nr := math.Min(level[best]+step, maxR)
		removed += chans(best, nr) - chans(best, level[best])
		level[best] = nr
	}
	plan := map[string]float64{}
	for i, g := range groups {
		ar.Sensitivity[i].Chosen = level[i]
		if level[i] > 0 {
			for _, n := range g.nodes {
				if n != "" {
					plan[n] = level[i]
					break
				}
			}
		}
	}
	pm := m.Clone()
	po := o.Options
	po.PerLayer = plan
	rep, err = Prune(pm, po)
	if err != nil {
		return nil, err
	}
	rep.Accuracy = ar
	href, err := runOutputs(m, held, backend)
	if err != nil {
		return nil, err
	}
	if ar.Pruned, err = measureAgainst(href, pm, held, backend); err != nil {
		return nil, err
	}
	hprobe, err := probeValues(m, ar.Probes, held, backend)
	if err != nil {
		return nil, err
	}
	probeFid := func(c *graph.Model) (Fidelity, error) {
		got, err := probeValues(c, ar.Probes, held, backend)
		if err != nil {
			return Fidelity{}, err
		}
		f, err := fidelity(hprobe, got)
		f.Top1 = nil
		return f, err
	}
	if ar.PrunedProbes, err = probeFid(pm); err != nil {
		return nil, err
	}
	ar.Final, ar.FinalProbes = ar.Pruned, ar.PrunedProbes
	if o.Reconstruct {
		if err := Reconstruct(m, pm, rep, calib, o.Recon); err != nil {
			return nil, err
		}
		if err := pm.Verify(); err != nil {
			return nil, fmt.Errorf("prune: reconstructed model fails verification: %w", err)
		}
		if ar.Final, err = measureAgainst(href, pm, held, backend); err != nil {
			return nil, err
		}
		ar.Reconstructed = true
		if ar.FinalProbes, err = probeFid(pm); err != nil {
			return nil, err
		}
	}
	rep.ParamsAfter, rep.FLOPsAfter = cost(pm)
	if why := ar.outside(); why != "" {
		return rep, fmt.Errorf("%w: %s", ErrBudget, why)
	}
	*m = *pm
	return rep, nil
}

// outside says why the final model is outside the budget ("" when it is
// within).
func (ar *AutoReport) outside() string { return ar.Final.Outside(ar.MinCosine, ar.MinTop1) }

// Outside says why f is outside the budget (mean cosine at least minCosine,
// top-1 agreement at least minTop1 where measured) or collapsed (all-zero
// outputs, cosine < CollapseCosine); "" when it is within.
func (f Fidelity) Outside(minCosine, minTop1 float64) string {
	switch {
	case f.Zero:
		return "the output collapsed to all zeros"
	case f.Cosine < CollapseCosine:
		return fmt.Sprintf("the output collapsed: cosine %.4f < %.2f against the unpruned model", f.Cosine, CollapseCosine)
	case f.Cosine < minCosine:
		return fmt.Sprintf("cosine %.4f < %.4f against the unpruned model", f.Cosine, minCosine)
	case f.Top1 != nil && *f.Top1 < minTop1:
		return fmt.Sprintf("top-1 agreement %.2f%% < %.2f%%", 100**f.Top1, 100*minTop1)
	}
	return ""
}

// Table renders the per-layer sensitivity, the chosen ratios and the
// held-out accuracy.
func (ar *AutoReport) Table() string {
	var b strings.Builder
	if len(ar.Sensitivity) > 0 {
		fmt.Fprintf(&b, "sensitivity: cosine of %s against the unpruned model, each group pruned alone\n", strings.Join(ar.Probes, ", "))
		fmt.Fprintf(&b, "%-40s %8s", "layers (tie group)", "channels")
		for _, r := range ar.Sensitivity[0].Ratios {
			fmt.Fprintf(&b, " %9s", fmt.Sprintf("cos@%g", r))
		}
		fmt.Fprintf(&b, " %7s\n", "chosen")
	}
	for _, s := range ar.Sensitivity {
		name := strings.Join(s.Nodes, ",")
		if len(name) > 40 {
			name = name[:37] + "..."
		}
		fmt.Fprintf(&b, "%-40s %8d", name, s.Channels)
		for _, c := range s.Cosine {
			fmt.Fprintf(&b, " %9.4f", c)
		}
		fmt.Fprintf(&b, " %7.3f\n", s.Chosen)
	}
	feat := func(f Fidelity) string {
		if f.Samples == 0 {
			return ""
		}
		return "; features " + f.String()
	}
	cal := ""
	if ar.Calib > 0 {
		cal = fmt.Sprintf("; calibration %d", ar.Calib)
	}
	fmt.Fprintf(&b, "held-out (%d samples%s): pruned: outputs %s%s\n", ar.Held, cal, ar.Pruned, feat(ar.PrunedProbes))
	if ar.Reconstructed {
		fmt.Fprintf(&b, "after reconstruction: outputs %s%s\n", ar.Final, feat(ar.FinalProbes))
	}
	fmt.Fprintf(&b, "budget: cosine >= %.4f, top-1 agreement >= %.2f%% (class outputs); collapse: cosine < %.2f or all zeros\n", ar.MinCosine, 100*ar.MinTop1, CollapseCosine)
	return b.String()
}

func fmtFloats(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.4f", x)
	}
	return strings.Join(s, " ")
}

// probes returns the values sensitivity is measured on: from each graph
// output, back through ops that only squash, scale or reshape (Softmax,
// Sigmoid, an Add or Mul of a constant, Reshape, ...) and through the head
// (a MatMul or Gemm) to its data input, then through reshapes. A softmax
// over two classes says little about drift; the feature vector the head
// reads says more.
func probes(m *graph.Model) (features, logits []string) {
	g := m.Graph
	prod := map[string]*graph.Node{}
	for _, n := range g.Nodes {
		for _, o := range n.Outputs {
			prod[o] = n
		}
	}
	consts := constMap(m)
	reshape := map[string]bool{"Reshape": true, "Flatten": true, "Squeeze": true, "Unsqueeze": true, "Identity": true, "Dropout": true, "Transpose": true}
	squash := map[string]bool{"Softmax": true, "LogSoftmax": true, "Sigmoid": true, "Tanh": true}
	seenF, seenL := map[string]bool{}, map[string]bool{}
	for _, o := range g.Outputs {
		t, head := o.Name, false
		logit := ""
		for {
			n := prod[t]
			if n == nil || !n.IsDefaultDomain() || len(n.Inputs) == 0 {
				break
			}
			op := n.OpType
			constOther := len(n.Inputs) == 2 && consts[n.Inputs[1]] != nil
			switch {
			case reshape[op], !head && squash[op], !head && constOther && (op == "Add" || op == "Mul" || op == "Sub" || op == "Div"):
				t = n.Inputs[0]
				continue
			case !head && (op == "MatMul" || op == "Gemm" && n.AttrInt("transA", 0) == 0) && len(n.Inputs) >= 2 && consts[n.Inputs[1]] != nil:
				logit = t
				t, head = n.Inputs[0], true
				continue
			}
			break
		}
		if logit == "" {
			logit = t
		}
		if !seenF[t] {
			seenF[t] = true
			features = append(features, t)
		}
		if !seenL[logit] {
			seenL[logit] = true
			logits = append(logits, logit)
		}
	}
	return features, logits
}

func sameSizes(a, b []*runtime.Tensor) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Len() != b[i].Len() {
			return false
		}
	}
	return true
}

// probeValues runs m on samples and returns the named values per sample.
func probeValues(m *graph.Model, names []string, samples [][]*runtime.Tensor, backend string) ([][]*runtime.Tensor, error) {
	if backend == "" {
		backend = "interp"
	}
	vals, err := collectValues(m, names, samples, backend)
	if err != nil {
		return nil, err
	}
	out := make([][]*runtime.Tensor, len(samples))
	for i := range samples {
		for _, n := range names {
			out[i] = append(out[i], vals[n][i])
		}
	}
	return out, nil
}
