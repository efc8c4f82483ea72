package quant

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/opset"
)

// quantOpset is the default-domain opset quantization raises older models
// to: per-channel DequantizeLinear (axis) needs 13, QuantizeLinear 10,
// DynamicQuantizeLinear 11.
const quantOpset = 13

// raiseOpset converts m to quantOpset with the version converter
// (pkg/opset) and returns the note that says so for the report: from what
// version, why, and which operators were adapted. On error m is unchanged
// and the error names the node that could not be converted.
func raiseOpset(m *graph.Model, why string) (*graph.Model, string, error) {
	c, rep, err := opset.Convert(m, quantOpset)
	if err != nil {
		return nil, "", err
	}
	count := map[string]int{}
	for _, ch := range rep.Changes {
		count[fmt.Sprintf("%s@%d", ch.Op, ch.To)]++
	}
	var parts []string
	for k, n := range count {
		parts = append(parts, fmt.Sprintf("%s x%d", k, n))
	}
	sort.Strings(parts)
	adapted := "no node needed adapting"
	if len(parts) > 0 {
		adapted = "adapted: " + strings.Join(parts, ", ")
	}
	return c, fmt.Sprintf("default opset converted from %d to %d by the version converter (%s; %s)", rep.From, rep.To, why, adapted), nil
}

// ErrNothingQuantized is wrapped by the error of Report.NothingQuantized.
var ErrNothingQuantized = errors.New("quant: nothing quantized")

// NothingQuantized returns nil when the rewrite quantized at least one
// node, else an error (wrapping ErrNothingQuantized) that says why: the
// report's notes (an opset the converter refused, ...), then the reasons
// nodes were left in float, most frequent first. A caller that asked for
// quantization treats it as a failure: writing the unchanged model as if
// it were quantized would mislead.
func (r *Report) NothingQuantized() error {
	if r == nil || len(r.Quantized) > 0 {
		return nil
	}
	var why []string
	why = append(why, r.Notes...)
	reasons := map[string][]string{}
	for _, s := range r.Skipped {
		reasons[s.Reason] = append(reasons[s.Reason], s.Node)
	}
	keys := make([]string, 0, len(reasons))
	for k := range reasons {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if len(reasons[keys[i]]) != len(reasons[keys[j]]) {
			return len(reasons[keys[i]]) > len(reasons[keys[j]])
		}
		return keys[i] < keys[j]
	})
	for i, k := range keys {
		if i == 3 {
			why = append(why, fmt.Sprintf("%d more reason(s)", len(keys)-3))
			break
		}
		nodes := reasons[k]
		ex := nodes[0]
		if len(nodes) > 1 {
			ex += fmt.Sprintf(" and %d more", len(nodes)-1)
		}
		why = append(why, fmt.Sprintf("%s: %s", ex, k))
	}
	if len(why) == 0 {
		why = append(why, "the model has no node this recipe quantizes")
	}
	mode := r.Mode
	if mode == "" {
		mode = "quantization"
	}
	return fmt.Errorf("%w by %s: %s", ErrNothingQuantized, mode, strings.Join(why, "; "))
}
