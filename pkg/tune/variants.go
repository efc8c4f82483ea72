package tune

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/passes"
	"github.com/optictl/optictl/pkg/prune"
	"github.com/optictl/optictl/pkg/quant"
	"github.com/optictl/optictl/pkg/runtime"
)

// Variant is one way of producing a candidate model from the original.
type Variant struct {
	// Name is the variant's id part ("O3-nchwc", "int8-static").
	Name string `json:"name"`
	// Recipe is the optimize command line that produces it.
	Recipe string `json:"recipe"`
	level  passes.Level
	target string
	nchwc  int
	quant  *quant.Recipe
	prune  float64
	// reconstruct: prune.Auto with reconstruction on the calibration
	// samples, else plain structured pruning by weight norm.
	reconstruct bool
	// distill: the pruned model then trained on the original's outputs
	// over the training samples (knowledge distillation).
	distill bool
}

// Variants lists the variants tune can try on this host: original, O2, O3
// (--target ort-cpu), O3-nchwc when the CPU has NCHWc kernels, every
// quantization recipe of the registry that is not itself a search (applied
// after -O2), then structured pruning at each ratio (after -O2, channels
// kept in multiples of the CPU's NCHWc block, 8 by default). hasCalib says
// whether calibration samples exist; a recipe that needs them is listed in
// skipped with the reason.
func Variants(hasCalib bool, pruneRatios []float64) (vs []Variant, skipped map[string]string) {
	skipped = map[string]string{}
	vs = []Variant{
		{Name: "original", Recipe: "(none)"},
		{Name: "O2", Recipe: "-O2", level: passes.O2, target: passes.TargetGeneric},
		{Name: "O3", Recipe: "-O3 --target ort-cpu", level: passes.O3, target: passes.TargetORTCPU},
	}
	if b := runtime.HostNCHWcBlock(); b != 0 {
		vs = append(vs, Variant{Name: "O3-nchwc", Recipe: fmt.Sprintf("-O3 --target ort-cpu --nchwc %d", b), level: passes.O3, target: passes.TargetORTCPU, nchwc: b})
	} else {
		skipped["O3-nchwc"] = "ONNX Runtime has no NCHWc kernels optictl knows of on this CPU"
	}
	for _, r := range quant.Recipes() {
		if r.Search() {
			// tune measures every recipe itself; a search recipe would
			// only repeat that on its own samples.
			skipped[r.Name] = "a search over the other recipes, which tune measures one by one"
			continue
		}
		if r.Calib == quant.CalibRequired && !hasCalib {
			skipped[r.Name] = "needs calibration samples (--calib)"
			continue
		}
		v := Variant{Name: r.Name, Recipe: "-O2 --quantize " + r.Name, level: passes.O2, target: passes.TargetGeneric, quant: r}
		if r.Name == "fp16" {
			v.Recipe += " --keep-io"
		}
		vs = append(vs, v)
	}
	for _, r := range pruneRatios {
		v := Variant{Name: pruneName(r), Recipe: fmt.Sprintf("-O2 --prune %g --prune-multiple %d", r, pruneMultiple()), level: passes.O2, target: passes.TargetGeneric, prune: r}
		if hasCalib {
			// per-layer ratios by sensitivity, layers re-fitted on the
			// calibration samples (optimize --prune-reconstruct)
			v.Recipe += " --prune-reconstruct --calib"
			v.reconstruct = true
		}
		vs = append(vs, v)
	}
	return vs, skipped
}

func pruneName(r float64) string { return fmt.Sprintf("prune-%g", r) }

func distillName(r float64) string { return pruneName(r) + "-distill" }

// distillVariants are the pruned variants recovered by distillation (one
// per ratio) when there are training samples, else listed in skipped.
func distillVariants(pruned []Variant, hasTrain bool, epochs int, skipped map[string]string) []Variant {
	var out []Variant
	for _, p := range pruned {
		if p.prune == 0 {
			continue
		}
		if !hasTrain {
			skipped[distillName(p.prune)] = "needs training samples (--train)"
			continue
		}
		v := p
		v.Name, v.distill = distillName(p.prune), true
		v.Recipe = fmt.Sprintf("%s, then distill --train --epochs %d (student: the pruned model, teacher: the original)", p.Recipe, epochs)
		out = append(out, v)
	}
	return out
}

func pruneMultiple() int {
	if b := runtime.HostNCHWcBlock(); b != 0 {
		return b
	}
	return 8
}

// VariantNames lists every name --recipes may take with these prune ratios.
func VariantNames(pruneRatios []float64) []string {
	names := []string{"original", "O2", "O3", "O3-nchwc"}
	names = append(names, quant.RecipeNames()...)
	for _, r := range pruneRatios {
		names = append(names, pruneName(r))
	}
	for _, r := range pruneRatios {
		names = append(names, distillName(r))
	}
	return names
}

// generated is a candidate model on disk, as the generation cache keeps it.
type generated struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Note   string `json:"note,omitempty"`
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func fileSHA(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return sha(b), nil
}

// produce writes the variant's model under OUTDIR/candidates, or finds it
// in the generation cache (same original bytes, variant and calibration).
func (t *tuner) produce(v Variant) (generated, error) {
	parts := []string{t.origSHA, v.Name, v.Recipe, t.calibID, fmt.Sprint(t.opts.Shapes)}
	if v.distill {
		parts = append(parts, t.opts.Train, fmt.Sprint(t.opts.TrainSamples, t.opts.Seed))
	}
	key := sha([]byte(strings.Join(parts, "\x00")))
	cpath := filepath.Join(t.opts.Out, "cache", "gen-"+key[:24]+".json")
	if b, err := os.ReadFile(cpath); err == nil {
		var g generated
		if json.Unmarshal(b, &g) == nil {
			if s, err := fileSHA(g.Path); err == nil && s == g.SHA256 {
				return g, nil
			}
		}
	}
	m, note, err := t.build(v)
	if err != nil {
		return generated{}, err
	}
	if err := m.Verify(); err != nil {
		return generated{}, fmt.Errorf("tune: %s fails verification: %w", v.Name, err)
	}
	path := filepath.Join(t.opts.Out, "candidates", v.Name+".onnx")
	if err := m.Save(path); err != nil {
		return generated{}, err
	}
	s, err := fileSHA(path)
	if err != nil {
		return generated{}, err
	}
	g := generated{Path: path, SHA256: s, Note: note}
	if b, err := json.MarshalIndent(g, "", "  "); err == nil {
		writeAtomic(cpath, b)
	}
	return g, nil
}

// build runs the variant's passes (verified numerically, as optimize does)
// and its quantization recipe.
func (t *tuner) build(v Variant) (*graph.Model, string, error) {
	if v.Name == "original" {
		return t.orig.Clone(), "", nil
	}
	var base *graph.Model
	var note string
	if v.prune > 0 {
		b, err := t.o2()
		if err != nil {
			return nil, "", err
		}
		pm, note, err := t.pruned(v, b)
		if err != nil || !v.distill {
			return pm, note, err
		}
		return t.distilled(v, pm, note)
	}
	if v.quant != nil && v.level == passes.O2 {
		b, err := t.o2()
		if err != nil {
			return nil, "", err
		}
		base = b
	} else {
		po := t.passOptions(v)
		out, rep, err := passes.Optimize(t.orig, po)
		if err != nil {
			return nil, "", fmt.Errorf("tune: %s: %w", v.Name, err)
		}
		if len(rep.Rollbacks) > 0 {
			var names []string
			for _, rb := range rep.Rollbacks {
				names = append(names, rb.Pass)
			}
			note = "rolled back: " + strings.Join(names, ", ")
		}
		if v.nchwc != 0 && !hasDomain(out, graph.NCHWcDomain) {
			return nil, "", fmt.Errorf("tune: %s: the NCHWc layout applied to no op of this model", v.Name)
		}
		base = out
	}
	if v.quant == nil {
		return base, note, nil
	}
	ro := quant.RecipeOptions{Calib: t.calib, Backend: t.verifyBackend, PerChannel: true, KeepIO: true}
	q, rep, err := v.quant.Quantize(base, ro)
	if err != nil {
		return nil, "", fmt.Errorf("tune: %s: %w", v.Name, err)
	}
	if err := rep.NothingQuantized(); err != nil {
		return nil, "", fmt.Errorf("tune: %s: %w", v.Name, err)
	}
	return q, note, nil
}

// o2 is the -O2 model quantization starts from (as optimize -O2 --quantize
// does), built once.
func (t *tuner) o2() (*graph.Model, error) {
	if t.o2Model != nil {
		return t.o2Model, nil
	}
	out, _, err := passes.Optimize(t.orig, t.passOptions(Variant{Name: "O2", level: passes.O2, target: passes.TargetGeneric}))
	if err != nil {
		return nil, fmt.Errorf("tune: -O2 (before quantization): %w", err)
	}
	t.o2Model = out
	return out, nil
}

func (t *tuner) passOptions(v Variant) passes.Options {
	po := passes.Options{Level: v.level, Target: v.target, NCHWcBlock: v.nchwc, Verify: true, Backend: t.verifyBackend, Shapes: t.opts.Shapes}
	if len(t.eval) > 0 && t.evalReal {
		in := map[string]*runtime.Tensor{}
		for i, v := range t.orig.Graph.RealInputs() {
			if i < len(t.eval[0]) {
				in[v.Name] = t.eval[0][i]
			}
		}
		po.Inputs = in
	}
	return po
}

func hasDomain(m *graph.Model, domain string) bool {
	for _, n := range m.Graph.Nodes {
		if n.Domain == domain {
			return true
		}
	}
	return false
}

// unsupportedOp is the cheap estimate before a backend opens a model: the
// first op its Capabilities say it does not run ("" when all may run).
func unsupportedOp(m *graph.Model, backend string) string {
	b, err := runtime.Get(backend)
	if err != nil {
		return ""
	}
	sup := b.Capabilities().Supports
	if sup == nil {
		return ""
	}
	opset := func(domain string) int64 {
		for _, o := range m.Opsets {
			if o.Domain == domain || (domain == "ai.onnx" && o.Domain == "") {
				return o.Version
			}
		}
		return 0
	}
	var bad string
	m.Graph.Walk(func(g *graph.Graph) error {
		for _, n := range g.Nodes {
			if bad == "" && !sup(n.Domain, n.OpType, opset(n.Domain)) {
				var buf bytes.Buffer
				fmt.Fprintf(&buf, "%s (node %q)", n.OpType, n.Name)
				if n.Domain != "" {
					fmt.Fprintf(&buf, " of domain %s", n.Domain)
				}
				bad = buf.String()
			}
		}
		return nil
	})
	return bad
}

// writeAtomic writes a cache entry through a temporary file renamed into
// place, so that jobs sharing the cache folder never read a torn entry. A
// cache that cannot be written only costs a rerun its time.
func writeAtomic(path string, b []byte) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tune-*.tmp")
	if err != nil {
		return
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Chmod(tmp.Name(), 0o644) != nil || os.Rename(tmp.Name(), path) != nil {
		os.Remove(tmp.Name())
	}
}

// pruneHeld bounds the held-out samples prune.Auto checks the pruned
// model on (tune measures every candidate's accuracy itself afterwards).
const pruneHeld = 32

// pruned prunes the -O2 model b structured to v.prune of its channels:
// with calibration samples as optimize --prune-reconstruct does (per-layer
// ratios by sensitivity, then reconstruction on the calibration samples,
// checked on the evaluation samples), else by weight norm alone. tune's
// own accuracy budget judges the result, so prune's is set loose: only a
// collapsed model (cosine under prune.CollapseCosine) is refused.
func (t *tuner) pruned(v Variant, b *graph.Model) (*graph.Model, string, error) {
	pm := b.Clone()
	opts := prune.Options{Fraction: v.prune, Mode: prune.Structured, Multiple: pruneMultiple()}
	if !v.reconstruct {
		rep, err := prune.Prune(pm, opts)
		if err != nil {
			return nil, "", fmt.Errorf("tune: %s: %w", v.Name, err)
		}
		if rep.ChannelsAfter >= rep.ChannelsBefore {
			return nil, "", fmt.Errorf("tune: %s: no channel pruned (%d prunable channels)", v.Name, rep.ChannelsBefore)
		}
		return pm, fmt.Sprintf("channels %d -> %d (no reconstruction: no --calib)", rep.ChannelsBefore, rep.ChannelsAfter), nil
	}
	var held [][]*runtime.Tensor
	for _, s := range t.eval[:min(len(t.eval), pruneHeld)] {
		held = append(held, s)
	}
	rep, err := prune.Auto(pm, t.calib, held, prune.AutoOptions{
		Options: opts, Reconstruct: true, Recon: prune.ReconOptions{Backend: "interp"},
		MinCosine: prune.CollapseCosine, MinTop1: 0.01,
	})
	if err != nil {
		return nil, "", fmt.Errorf("tune: %s: %w", v.Name, err)
	}
	if rep.ChannelsAfter >= rep.ChannelsBefore {
		return nil, "", fmt.Errorf("tune: %s: no channel pruned (%d prunable channels)", v.Name, rep.ChannelsBefore)
	}
	note := fmt.Sprintf("channels %d -> %d, reconstructed on %d calibration samples", rep.ChannelsBefore, rep.ChannelsAfter, len(t.calib))
	if a := rep.Accuracy; a != nil {
		note += fmt.Sprintf(" (cosine on %d held-out samples %.4f before, %.4f after)", a.Held, a.Pruned.Cosine, a.Final.Cosine)
	}
	return pm, note, nil
}
