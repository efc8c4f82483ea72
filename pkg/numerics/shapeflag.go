package numerics

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
)

// ParseShapeFlags parses repeated --shape values of the form
// "name=1x3x48x320" (or "name=1,3,48,320", optionally in brackets) into
// input name -> dims. This is the one --shape syntax of every command.
//
// A rank-0 (scalar) input is written "name=scalar" or "name=[]": scalar
// inputs (a sample rate, a threshold) exist and an input of unknown rank
// needs a way to be declared one. An empty spec ("name="), a missing '=',
// an empty name, a non-integer or negative dim, mixing 'x' and ',' and a
// shape of more than graph.MaxElements elements are errors, and so is a
// name given twice (the second would silently win otherwise).
func ParseShapeFlags(values []string) (map[string][]int64, error) {
	out := make(map[string][]int64, len(values))
	for _, v := range values {
		i := strings.LastIndex(v, "=")
		if i < 0 {
			return nil, fmt.Errorf("numerics: --shape %q: want NAME=DIMS, e.g. input=1x3x224x224", v)
		}
		name, spec := strings.TrimSpace(v[:i]), strings.TrimSpace(v[i+1:])
		if name == "" {
			return nil, fmt.Errorf("numerics: --shape %q: the input name is empty", v)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("numerics: --shape gives input %q twice", name)
		}
		dims, err := parseDims(spec)
		if err != nil {
			return nil, fmt.Errorf("numerics: --shape %q: %w", v, err)
		}
		out[name] = dims
	}
	return out, nil
}

func parseDims(spec string) ([]int64, error) {
	if strings.HasPrefix(spec, "[") && strings.HasSuffix(spec, "]") {
		spec = strings.TrimSpace(spec[1 : len(spec)-1])
		if spec == "" {
			return []int64{}, nil
		}
	}
	switch spec {
	case "":
		return nil, fmt.Errorf("no dims (use NAME=scalar for a rank-0 input)")
	case "scalar":
		return []int64{}, nil
	}
	sep := "x"
	if strings.Contains(spec, ",") {
		if strings.Contains(spec, "x") {
			return nil, fmt.Errorf("mixes 'x' and ',' between dims")
		}
		sep = ","
	}
	parts := strings.Split(spec, sep)
	dims := make([]int64, len(parts))
	for k, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("dim %d is empty", k)
		}
		d, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("dim %d (%q) is not an integer", k, p)
		}
		if d < 0 {
			return nil, fmt.Errorf("dim %d is negative (%d)", k, d)
		}
		dims[k] = d
	}
	if _, err := graph.NumElements(dims); err != nil {
		return nil, err
	}
	return dims, nil
}

// DefaultMaxMemory is the default --max-memory: the bytes one set of seeded
// inputs may take (and, for run and compare, what a session may plan).
const DefaultMaxMemory = 2 << 30

// MaxMemoryUsage is the help text of every command's --max-memory flag.
const MaxMemoryUsage = "refuse seeded inputs (and interp sessions) needing more than this many bytes (suffixes K, M, G; 0 = no bound)"

// ParseBytes reads a byte count such as 536870912, 512K, 512M or 2G
// (binary multiples; "KiB", "MiB", "GiB" and a trailing "B" are accepted).
// "" gives def; "0" means no bound and gives 0.
func ParseBytes(s string, def int64) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return def, nil
	}
	u := strings.ToUpper(t)
	u = strings.TrimSuffix(u, "IB")
	u = strings.TrimSuffix(u, "B")
	mult := int64(1)
	switch {
	case strings.HasSuffix(u, "K"):
		mult, u = 1<<10, strings.TrimSuffix(u, "K")
	case strings.HasSuffix(u, "M"):
		mult, u = 1<<20, strings.TrimSuffix(u, "M")
	case strings.HasSuffix(u, "G"):
		mult, u = 1<<30, strings.TrimSuffix(u, "G")
	}
	v, err := strconv.ParseInt(u, 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64/mult {
		return 0, fmt.Errorf("numerics: %q is not a byte count (e.g. 536870912, 512M, 2G; 0 for no bound)", s)
	}
	return v * mult, nil
}
