package tune

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Constraints pick the chosen candidate (zero fields: no bound).
type Constraints struct {
	// MaxDrop bounds the accuracy drop in the metric's unit (points for
	// top1 and agreement, 1 - value otherwise); negative: the accuracy
	// budget (numerics.DefaultBudget or Options.Budget) decides.
	MaxDrop       float64
	MaxP99MS      float64
	MinThroughput float64
}

// Choose picks the fastest candidate (by p50) within the constraints; it
// returns "" and why when none qualifies.
func Choose(cs []Candidate, k Constraints) (string, string) {
	best := -1
	for i, c := range cs {
		acc := c.Accuracy.Within
		if k.MaxDrop >= 0 {
			acc = !math.IsNaN(c.Accuracy.Drop) && c.Accuracy.Drop <= k.MaxDrop
		}
		if !acc || (k.MaxP99MS > 0 && c.P99MS > k.MaxP99MS) || (k.MinThroughput > 0 && c.ThroughputPerS < k.MinThroughput) {
			continue
		}
		if best < 0 || c.P50MS < cs[best].P50MS {
			best = i
		}
	}
	cons := []string{"accuracy within the default budget"}
	if k.MaxDrop >= 0 {
		cons[0] = fmt.Sprintf("accuracy drop <= %g", k.MaxDrop)
	}
	if k.MaxP99MS > 0 {
		cons = append(cons, fmt.Sprintf("p99 <= %g ms", k.MaxP99MS))
	}
	if k.MinThroughput > 0 {
		cons = append(cons, fmt.Sprintf("throughput >= %g/s", k.MinThroughput))
	}
	if best < 0 {
		return "", "no candidate meets " + strings.Join(cons, ", ")
	}
	return cs[best].ID, "fastest p50 with " + strings.Join(cons, ", ")
}

// Requirement is one --require check on the chosen candidate
// ("speedup>=1.2").
type Requirement struct {
	Field string  `json:"field"`
	Op    string  `json:"op"`
	Value float64 `json:"value"`
}

// RequireFields are the fields --require may name.
var RequireFields = []string{"speedup", "p50_ms", "p99_ms", "throughput_per_s", "accuracy_drop"}

// ParseRequirement reads FIELD OP VALUE with OP one of >=, <=, >, <.
func ParseRequirement(s string) (Requirement, error) {
	s = strings.ReplaceAll(s, " ", "")
	for _, op := range []string{">=", "<=", ">", "<"} {
		if i := strings.Index(s, op); i > 0 {
			r := Requirement{Field: s[:i], Op: op}
			known := false
			for _, f := range RequireFields {
				known = known || f == r.Field
			}
			if !known {
				return r, fmt.Errorf("tune: --require %q: unknown field %q (want one of %s)", s, r.Field, strings.Join(RequireFields, ", "))
			}
			v, err := strconv.ParseFloat(s[i+len(op):], 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return r, fmt.Errorf("tune: --require %q: %q is not a number", s, s[i+len(op):])
			}
			r.Value = v
			return r, nil
		}
	}
	return Requirement{}, fmt.Errorf("tune: --require %q: want FIELD>=VALUE (or <=, >, <), e.g. speedup>=1.2", s)
}

// String writes the requirement as --require reads it.
func (r Requirement) String() string { return fmt.Sprintf("%s%s%g", r.Field, r.Op, r.Value) }

// Check evaluates r on c: the measured value and whether it holds.
func (r Requirement) Check(c *Candidate) (float64, bool) {
	var v float64
	switch r.Field {
	case "speedup":
		v = c.Speedup
	case "p50_ms":
		v = c.P50MS
	case "p99_ms":
		v = c.P99MS
	case "throughput_per_s":
		v = c.ThroughputPerS
	case "accuracy_drop":
		v = c.Accuracy.Drop
	}
	switch r.Op {
	case ">=":
		return v, v >= r.Value
	case "<=":
		return v, v <= r.Value
	case ">":
		return v, v > r.Value
	}
	return v, v < r.Value
}
