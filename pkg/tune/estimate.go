package tune

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/quant"
)

// Cheap estimates, made before anything is measured: the cost model
// (graph.Cost) drops a float variant that does all the work of an
// earlier one and more, and the per-layer int8 profile (quant.Profile)
// drops an int8 candidate on ort whose every profiled layer is slower in
// int8 than in float. Both are stated in the report's skipped list.

// estimate is a variant's static cost: what the cost model counts and
// the op types it runs.
type estimate struct {
	name     string
	sha      string
	macs     int64
	flops    int64
	params   int64 // parameter bytes, initializers and Constant nodes
	peak     int64
	ops      map[string]int // op type (domain-qualified) -> count
	accClass string         // variants with the same class compute the same function
}

func estimateOf(name, sha, accClass string, m *graph.Model) (estimate, error) {
	r, err := graph.Cost(m)
	if err != nil {
		return estimate{}, err
	}
	e := estimate{name: name, sha: sha, macs: r.MACs, flops: r.FLOPs, params: r.ParamBytes + r.ConstantBytes,
		peak: r.PeakActivationBytes, ops: map[string]int{}, accClass: accClass}
	for _, n := range m.Graph.Nodes {
		op := n.OpType
		if n.Domain != "" && n.Domain != "ai.onnx" {
			op = n.Domain + "." + op
		}
		e.ops[op]++
	}
	return e, nil
}

// dominatedBy says why e need not be measured given an earlier variant
// p that computes the same function ("" when it must be): the same model
// bytes, or at least p's MACs, FLOPs, parameter bytes and peak activation
// memory with every op of p and more (the same work and more, so no
// estimate says it could be faster).
func dominatedBy(e, p estimate) string {
	if e.accClass != p.accClass {
		return ""
	}
	if e.sha == p.sha {
		return fmt.Sprintf("the same model as %s (sha256 %s)", p.name, p.sha[:12])
	}
	if e.macs < p.macs || e.flops < p.flops || e.params < p.params || e.peak < p.peak {
		return ""
	}
	for op, n := range p.ops {
		if e.ops[op] < n {
			return ""
		}
	}
	extra := 0
	for op, n := range e.ops {
		extra += n - p.ops[op]
	}
	return fmt.Sprintf("cost model: dominated by %s (MACs %d >= %d, FLOPs %d >= %d, parameter bytes %d >= %d, peak activations %d >= %d bytes, the same ops and %d more)",
		p.name, e.macs, p.macs, e.flops, p.flops, e.params, p.params, e.peak, p.peak, extra)
}

// int8Slower says why an int8 candidate on ort need not be measured: every
// layer the profile timed is slower (or no faster) in int8, quantize and
// dequantize included, than in float ("" when some layer gains, or none
// was timed).
func int8Slower(ls []quant.LayerProfile) string {
	var timed int
	var worst, best float64
	var bestNode string
	for _, l := range ls {
		if l.Err != "" || l.Untimed || l.Float <= 0 || l.Int8 <= 0 {
			continue
		}
		s := float64(l.Float) / float64(l.Int8)
		if s > 1 {
			return ""
		}
		if timed == 0 || s < worst {
			worst = s
		}
		if timed == 0 || s > best {
			best, bestNode = s, l.Node
		}
		timed++
	}
	if timed == 0 {
		return ""
	}
	return fmt.Sprintf("int8 profile on ort: all %d profiled layers are slower in int8 than in float32 (speedups %.2fx to %.2fx, best %s)", timed, worst, best, bestNode)
}

// accClass groups the variants that compute the same function: the float
// rewrites (their passes are verified numerically) in one class, every
// quantization and pruning in its own.
func accClass(v Variant) string {
	switch {
	case v.quant != nil:
		return "quant:" + v.quant.Name
	case v.prune > 0:
		return v.Name
	default:
		return "float"
	}
}

// int8Verdict is int8Slower of the -O2 model's profile on ort, made once
// per run and kept in the cache (by the original's bytes and the sample),
// so that a rerun does not time the layers again. An error (no ort, a
// layer that cannot be built) gives "": the candidates are measured.
func (t *tuner) int8Verdict() string {
	if t.profiled {
		return t.int8Why
	}
	t.profiled = true
	sample, what := t.eval[0], t.rep.AccuracyOn
	if len(t.calib) > 0 {
		sample, what = t.calib[0], t.calibID
	}
	path := filepath.Join(t.opts.Out, "cache", "int8prof-"+sha([]byte(t.origSHA + "\x00" + what + "\x00" + fmt.Sprint(t.opts.Shapes)))[:24]+".json")
	var c struct {
		Why string `json:"why"`
	}
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &c) == nil {
		t.int8Why = c.Why
		return c.Why
	}
	m, err := t.o2()
	if err != nil {
		return ""
	}
	ls, err := quant.Profile(m, sample, quant.ProfileOptions{Backend: "ort", Rounds: 30, Budget: 150 * time.Millisecond})
	if err != nil {
		return ""
	}
	t.int8Why = int8Slower(ls)
	c.Why = t.int8Why
	if b, err := json.Marshal(c); err == nil {
		writeAtomic(path, b)
	}
	return t.int8Why
}
