package graph

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseShapeFlag parses repeated --shape values of the form
// "name=1x3x48x320" (or "name=1,3,48,320", optionally in brackets) into
// input name -> dims. "name=scalar" or "name=[]" gives a rank-0 shape. A name
// given twice, a missing '=', an empty or negative dim and shapes of more than
// 2^40 elements are errors.
func ParseShapeFlag(values []string) (map[string][]int64, error) {
	out := make(map[string][]int64, len(values))
	for _, v := range values {
		i := strings.LastIndex(v, "=")
		if i < 0 {
			return nil, fmt.Errorf("graph: --shape %q: want NAME=DIMS, e.g. input=1x3x224x224", v)
		}
		name, spec := strings.TrimSpace(v[:i]), strings.TrimSpace(v[i+1:])
		if name == "" {
			return nil, fmt.Errorf("graph: --shape %q: the input name is empty", v)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("graph: --shape gives input %q twice", name)
		}
		dims, err := parseDims(spec)
		if err != nil {
			return nil, fmt.Errorf("graph: --shape %q: %w", v, err)
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
	if _, err := NumElements(dims); err != nil {
		return nil, err
	}
	return dims, nil
}
