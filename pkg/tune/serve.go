package tune

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ServeConfig is the file `optictl serve --config` reads: models, each a
// ladder of variants (most accurate and slowest first, as serve switches
// down the ladder under load), and the p99 objective that drives it.
type ServeConfig struct {
	Models []ServeModel `json:"models"`
	// SLOP99 is a Go duration ("12ms"); "" turns switching off.
	SLOP99 string `json:"slo_p99,omitempty"`
	// Backend and Threads are what the ladder was measured on; serve's
	// flags override them when given.
	Backend string `json:"backend,omitempty"`
	Threads int    `json:"threads,omitempty"`
}

// ServeModel is one served model: Path is its default (first) variant.
type ServeModel struct {
	Name     string         `json:"name"`
	Path     string         `json:"path"`
	Variants []ServeVariant `json:"variants,omitempty"`
}

// ServeVariant is one faster variant of a served model.
type ServeVariant struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// ReadServeConfig reads and checks a serve config (paths relative to the
// file's folder are resolved against it).
func ReadServeConfig(path string) (*ServeConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tune: serve config: %w", err)
	}
	var c ServeConfig
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("tune: serve config %s: %w", path, err)
	}
	if len(c.Models) == 0 {
		return nil, fmt.Errorf("tune: serve config %s: no models", path)
	}
	dir := filepath.Dir(path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	for i := range c.Models {
		m := &c.Models[i]
		if m.Name == "" || m.Path == "" {
			return nil, fmt.Errorf("tune: serve config %s: model %d needs a name and a path", path, i)
		}
		m.Path = abs(m.Path)
		for j := range m.Variants {
			v := &m.Variants[j]
			if v.Name == "" || v.Path == "" {
				return nil, fmt.Errorf("tune: serve config %s: model %q variant %d needs a name and a path", path, m.Name, j)
			}
			v.Path = abs(v.Path)
		}
	}
	return &c, nil
}

// ServeLadder makes the serve config from the report: the frontier
// candidates on the chosen candidate's backend and settings (the
// baseline's when nothing was chosen), slowest first, with maxP99MS
// (--max-p99) as the objective when set (else switching stays off). Paths are
// relative to OUTDIR, where the config is written. ok is false when the
// ladder would be empty.
func ServeLadder(rep *Report, name string, maxP99MS float64) (ServeConfig, bool) {
	anchor := rep.Candidate(rep.Chosen)
	if anchor == nil {
		anchor = rep.Candidate(rep.Baseline)
	}
	if anchor == nil {
		return ServeConfig{}, false
	}
	var ladder []Candidate
	for _, c := range rep.Candidates {
		if (c.Pareto || c.ID == anchor.ID) && c.Backend == anchor.Backend && c.Threads == anchor.Threads && c.Batch == anchor.Batch && !c.Simulated {
			ladder = append(ladder, c)
		}
	}
	if len(ladder) == 0 {
		return ServeConfig{}, false
	}
	sort.SliceStable(ladder, func(i, j int) bool { return ladder[i].P50MS > ladder[j].P50MS })
	rel := func(p string) string {
		if r, err := filepath.Rel(rep.Out, p); err == nil {
			return r
		}
		return p
	}
	m := ServeModel{Name: name, Path: rel(ladder[0].Path)}
	for _, c := range ladder[1:] {
		m.Variants = append(m.Variants, ServeVariant{Name: c.Variant, Path: rel(c.Path)})
	}
	cfg := ServeConfig{Models: []ServeModel{m}, Backend: anchor.Backend, Threads: anchor.Threads}
	// Only a p99 bound the user chose is an SLO: the measured p99 is an
	// in-process figure that a served request (network, queueing) always
	// exceeds, so it would pin traffic to the fastest variant.
	if len(m.Variants) > 0 && maxP99MS > 0 {
		cfg.SLOP99 = fmt.Sprintf("%.3fms", maxP99MS)
	}
	return cfg, true
}
