package quant

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// MixedOptions configure Mixed.
type MixedOptions struct {
	Static  StaticOptions
	Profile ProfileOptions
	// PlanOnly writes the per-layer plan without timing the alternatives
	// (every layer whose int8 kernel is faster; every layer) as whole
	// models.
	PlanOnly bool
}

// mixedOps are the op types int8-mixed lets into the int8 region when
// StaticOptions.OpTypes is empty: the weighted layers the profile
// decides on, and the Add and pools between them (ORT's QLinearAdd and
// QLinear pools). Mul and Sigmoid stay float: ORT's QLinearMul and
// QLinearSigmoid are slower than the float ops on x86 (doc.go).
var mixedOps = []string{"Conv", "MatMul", "Gemm", "Add", "GlobalAveragePool", "AveragePool"}

// carriesInt8 are single-input ops an int8 value passes through between
// two quantized layers without leaving int8 (Relu/Clip are folded into
// the Q before them; the others run on int8 data in ORT).
var carriesInt8 = map[string]bool{"Relu": true, "Clip": true, "MaxPool": true, "Reshape": true, "Flatten": true,
	"Transpose": true, "Squeeze": true, "Unsqueeze": true, "GlobalAveragePool": true, "AveragePool": true}

// Plan decides which profiled layers run in int8: a layer is quantized
// when its float time beats its int8 time by margin, counting the
// boundary ops it pays in the plan: a QuantizeLinear when the layer that
// feeds it (through Relu, pools, reshapes) stays float, a
// DequantizeLinear when any reader does. It starts from the layers whose
// int8 kernel alone is faster and drops the ones that do not pay until
// no more drop (dropping a layer only adds boundaries to its
// neighbours). It sets Int8Chosen, Boundary, Speedup and Why on prof.
func Plan(g *graph.Graph, prof []LayerProfile, margin float64, exclude []string) {
	byName := map[string]int{}
	for i, l := range prof {
		byName[l.Node] = i
	}
	producers, consumers := g.Producers(), g.Consumers()
	nodeOf := map[string]*graph.Node{}
	for _, n := range g.Nodes {
		if n.Name != "" {
			nodeOf[n.Name] = n
		}
	}
	chosen := make([]bool, len(prof))
	outConv := make([]bool, len(prof)) // a Conv writing a model output: Static keeps its output float
	for i, l := range prof {
		n := nodeOf[l.Node]
		outConv[i] = n != nil && n.Is("Conv") && feedsOnlyOutputs(g, n.Outputs[0])
		chosen[i] = !l.Untimed && l.Err == "" && float64(l.Float) > float64(l.kernel())*(1+margin) && n != nil && !outConv[i] && !contains(exclude, l.Node)
	}
	// upstream: the profiled layer feeding n's activation, or -1
	feeder := func(n *graph.Node) int {
		v := n.Inputs[0]
		for depth := 0; depth < 32; depth++ {
			p := producers[v]
			if p == nil || len(p.Inputs) == 0 {
				return -1
			}
			if i, ok := byName[p.Name]; ok && p.Name != "" {
				return i
			}
			if !p.IsDefaultDomain() || !carriesInt8[p.OpType] {
				return -1
			}
			v = p.Inputs[0]
		}
		return -1
	}
	// downstream: whether every reader of n's output (through Relu, pools,
	// reshapes) is a chosen profiled layer reading it as its activation
	var allInt8 func(v string, depth int) bool
	allInt8 = func(v string, depth int) bool {
		if g.IsGraphOutput(v) || depth > 32 {
			return false
		}
		cs := consumers[v]
		if len(cs) == 0 {
			return false
		}
		for _, c := range cs {
			if i, ok := byName[c.Name]; ok && c.Name != "" && c.Inputs[0] == v {
				if !chosen[i] {
					return false
				}
				continue
			}
			if !c.IsDefaultDomain() || !carriesInt8[c.OpType] || len(c.Outputs) != 1 || !allInt8(c.Outputs[0], depth+1) {
				return false
			}
		}
		return true
	}
	cost := func(i int) (time.Duration, string) {
		n := nodeOf[prof[i].Node]
		t := prof[i].kernel()
		var b []string
		if f := feeder(n); f < 0 || !chosen[f] {
			t += prof[i].Quant
			b = append(b, "Q in")
		}
		if !allInt8(n.Outputs[0], 0) {
			t += prof[i].Dequant
			b = append(b, "DQ out")
		}
		if len(b) == 0 {
			return t, "none (inside an int8 region)"
		}
		return t, strings.Join(b, " + ")
	}
	for changed := true; changed; {
		changed = false
		for i := range prof {
			if !chosen[i] {
				continue
			}
			if t, _ := cost(i); float64(prof[i].Float) <= float64(t)*(1+margin) {
				chosen[i], changed = false, true
			}
		}
	}
	for i := range prof {
		l := &prof[i]
		l.Int8Chosen = chosen[i]
		if nodeOf[l.Node] == nil {
			l.Why = "unnamed node: follows the recipe"
			continue
		}
		t, b := cost(i)
		l.Boundary, l.Speedup = b, ratio(l.Float, t)
		switch {
		case l.Untimed:
			l.Why = "not timed: the time budget ran out"
		case l.Err != "":
			l.Why = "not timed: " + l.Err
		case contains(exclude, l.Node):
			l.Why = "left in float by the caller (excluded, or put back by accuracy control)"
		case outConv[i]:
			l.Why = "writes a model output, which stays float: ORT would run a float Conv on dequantized inputs"
		case chosen[i]:
			l.Why = fmt.Sprintf("int8 %.2fx faster with its boundary ops (%s)", l.Speedup, b)
		case l.Kernel <= 1+margin:
			l.Why = fmt.Sprintf("int8 kernel %.2fx of float (needs > %.2fx)", l.Kernel, 1+margin)
		default:
			l.Why = fmt.Sprintf("int8 kernel %.2fx but %.2fx with its boundary ops (%s), needs > %.2fx", l.Kernel, l.Speedup, b, 1+margin)
		}
	}
}

// ErrNothingPays is returned by Mixed when no layer is faster in int8.
var ErrNothingPays = fmt.Errorf("quant: no layer is faster in int8 than in float on this backend")

// Mixed is int8 only where it pays on the target: it profiles every
// Conv/MatMul/Gemm with a constant weight on opts.Profile.Backend
// (Profile, on the first calibration sample), decides per layer (Plan)
// and writes Static's QDQ form (uint8 activations) with the layers that
// do not pay left in float. The Report's Profile holds every layer's
// timing and decision. Unnamed layers are named (op_N) so they can be
// left in float.
func Mixed(m *graph.Model, calib [][]*runtime.Tensor, opts MixedOptions) (*graph.Model, *Report, error) {
	if len(calib) == 0 {
		return nil, nil, fmt.Errorf("quant: int8-mixed needs calibration samples")
	}
	c := m.Clone()
	for _, n := range c.Graph.Nodes {
		if n.Name == "" {
			n.Name = c.Graph.UniqueName(strings.ToLower(n.OpType))
		}
	}
	prof, err := Profile(c, calib[0], opts.Profile)
	if err != nil {
		return nil, nil, err
	}
	margin := opts.Profile.Margin
	if margin == 0 {
		margin = MixedMargin
	}
	Plan(c.Graph, prof, margin, opts.Static.ExcludeNodes)
	so := opts.Static
	so.Asymmetric = true
	if len(so.OpTypes) == 0 {
		so.OpTypes = mixedOps
	}
	// candidates: the plan; every layer whose int8 kernel alone is
	// faster (the plan may be too careful about boundaries: a whole int8
	// region can pay where its layers alone do not); every layer. Each
	// distinct one is timed once against the float model and the fastest
	// is kept.
	type cand struct {
		name    string
		exclude []string
	}
	var cands []cand
	seen := map[string]bool{}
	add := func(name string, in func(l LayerProfile) bool) {
		ex := append([]string(nil), opts.Static.ExcludeNodes...)
		for _, l := range prof {
			if !in(l) && !contains(ex, l.Node) {
				ex = append(ex, l.Node)
			}
		}
		k := strings.Join(ex, "\x00")
		if !seen[k] {
			seen[k] = true
			cands = append(cands, cand{name, ex})
		}
	}
	add("plan", func(l LayerProfile) bool { return l.Int8Chosen })
	if !opts.PlanOnly && !pastDeadline(opts.Profile.Deadline) {
		add("int8 kernel faster", func(l LayerProfile) bool { return l.Kernel > 1+margin })
		add("every layer", func(l LayerProfile) bool { return !l.Untimed && l.Err == "" })
	}
	var (
		best              *graph.Model
		bestRep           *Report
		bestSp            float64
		bestName, timings string
	)
	for i, cd := range cands {
		if i > 0 && pastDeadline(opts.Profile.Deadline) {
			timings += fmt.Sprintf("; %s not timed (time budget spent)", cd.name)
			continue
		}
		so.ExcludeNodes = cd.exclude
		q, rep, err := Static(c, calib, so)
		if err != nil {
			return nil, nil, err
		}
		if len(cands) == 1 || len(rep.Quantized) == 0 {
			if best == nil {
				best, bestRep, bestName = q, rep, cd.name
			}
			continue
		}
		sp, err := mixedSpeed(m, c, q, cd.exclude, opts.Profile.Backend, calib[0])
		if err != nil {
			return nil, nil, err
		}
		timings += fmt.Sprintf("; %s %.2fx", cd.name, sp)
		opts.Profile.Progress.report(i+1, len(cands), "int8-mixed candidate %s (%d layers int8): %.2fx of float", cd.name, len(rep.Quantized), sp)
		if best == nil || bestSp == 0 || sp > bestSp*(1+SearchTieMargin) {
			best, bestRep, bestSp, bestName = q, rep, sp, cd.name
		}
	}
	rep := bestRep
	rep.Mode = "int8-mixed"
	if timings != "" {
		rep.Notes = append(rep.Notes, fmt.Sprintf("whole-model timing against float (%s, 1 thread)%s: kept %s", backendName(opts.Profile.Backend), timings, bestName))
	}
	if bestName != "plan" {
		done := map[string]bool{}
		for _, d := range rep.done {
			done[d[0]] = true
		}
		for i := range prof {
			if done[prof[i].Node] != prof[i].Int8Chosen {
				prof[i].Int8Chosen = done[prof[i].Node]
				prof[i].Why = fmt.Sprintf("%s (%s measured faster as a whole); alone: kernel %.2fx, %.2fx with %s", map[bool]string{true: "int8", false: "float"}[prof[i].Int8Chosen], bestName, prof[i].Kernel, prof[i].Speedup, prof[i].Boundary)
			}
		}
	}
	rep.Profile = prof
	// the profile gives each float layer's reason
	profiled := map[string]bool{}
	for _, l := range prof {
		profiled[l.Node] = true
	}
	var skipped []Skip
	for _, sk := range rep.Skipped {
		if sk.Reason != "excluded by name" || !profiled[skipNode(sk.Node)] {
			skipped = append(skipped, sk)
		}
	}
	rep.Skipped = skipped
	if len(rep.Quantized) == 0 {
		rep.Notes = append(rep.Notes, "no layer is faster in int8 than in float on "+backendName(opts.Profile.Backend)+" (see the per-layer profile)")
	}
	return best, rep, nil
}

// skipNode is the node name in a Skip's node (`Conv "name"`).
func skipNode(s string) string {
	if i := strings.IndexByte(s, '"'); i >= 0 && strings.HasSuffix(s, `"`) && len(s) > i+1 {
		return s[i+1 : len(s)-1]
	}
	return s
}

// mixedTimings memoizes Mixed's whole-model timings by (model, layers
// left in float): accuracy control quantizes the same model many times.
// The entry holds the model, so its address is not reused while cached.
var mixedTimings sync.Map

type mixedTiming struct {
	m       *graph.Model
	speedup float64
}

func mixedSpeed(key, ref, q *graph.Model, exclude []string, backend string, in []*runtime.Tensor) (float64, error) {
	k := fmt.Sprintf("%p|%s", key, strings.Join(exclude, "\x00"))
	if v, ok := mixedTimings.Load(k); ok {
		return v.(mixedTiming).speedup, nil
	}
	sp, err := MeasureSpeed(ref, q, backendName(backend), in, 100, 500*time.Millisecond)
	if err != nil {
		return 0, fmt.Errorf("quant: int8-mixed: %w", err)
	}
	mixedTimings.Store(k, mixedTiming{key, sp.Speedup})
	return sp.Speedup, nil
}

func backendName(b string) string {
	if b == "" {
		return "ort"
	}
	return b
}

// ByGain lists the int8 layers of a profile from the smallest measured
// gain (float time minus int8 time in the plan) to the largest: the order
// in which to put them back in float when the whole model is not faster.
func ByGain(prof []LayerProfile) []string {
	var ls []LayerProfile
	for _, l := range prof {
		if l.Int8Chosen {
			ls = append(ls, l)
		}
	}
	gain := func(l LayerProfile) float64 {
		if l.Speedup <= 0 {
			return 0
		}
		return float64(l.Float) * (1 - 1/l.Speedup)
	}
	sort.SliceStable(ls, func(i, j int) bool { return gain(ls[i]) < gain(ls[j]) })
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Node
	}
	return out
}

// ProfileTable renders a profile: one line per layer with its timings,
// speedups and decision.
func ProfileTable(prof []LayerProfile) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %-24s %-9s %-9s %-7s %-8s %-5s %s\n", "layer", "float", "int8+q/dq", "kernel", "in plan", "int8", "why")
	for _, l := range prof {
		yes := "no"
		if l.Int8Chosen {
			yes = "yes"
		}
		name := l.Node
		if len(name) > 24 {
			name = name[:21] + "..."
		}
		fmt.Fprintf(&b, "  %-24s %-9v %-9v %-7s %-8s %-5s %s\n", name, l.Float.Round(time.Microsecond), l.Int8.Round(time.Microsecond),
			fmt.Sprintf("%.2fx", l.Kernel), fmt.Sprintf("%.2fx", l.Speedup), yes, l.Why)
	}
	return b.String()
}

// SpeedTry is one model KeepFaster timed: how many int8 layers it put
// back in float and the speed measured.
type SpeedTry struct {
	BackInFloat []string `json:"back_in_float"`
	Speed       Speed    `json:"speed"`
}

// KeepFaster makes sure the quantized model q (quantize(rep.LeftInFloat),
// timed as sp) is not slower than ref: while the measured speedup is
// below 1, it puts the int8 layers with the smallest profiled gain
// (ByGain of rep.Profile) back in float, 1, 2, 4, ... of them, and times
// each such model once against ref (MeasureSpeed on in, on backend). It
// returns the first model that is not slower with its report and speed,
// and every try; ok is false when every int8 layer back in float would be
// needed (nothing left that pays): the caller refuses.
func KeepFaster(ref, q *graph.Model, rep *Report, sp Speed, quantize QuantizeFunc, backend string, in []*runtime.Tensor, rounds int, budget time.Duration) (*graph.Model, *Report, Speed, []SpeedTry, bool, error) {
	var tries []SpeedTry
	if sp.Speedup >= 1 {
		return q, rep, sp, nil, true, nil
	}
	var order []string
	for _, n := range ByGain(rep.Profile) {
		if !contains(rep.LeftInFloat, n) {
			order = append(order, n)
		}
	}
	for k := 1; k < len(order); k = min(2*k, len(order)) {
		back := order[:k]
		q2, rep2, err := quantize(append(append([]string(nil), rep.LeftInFloat...), back...))
		if err != nil {
			return nil, nil, sp, tries, false, err
		}
		if len(rep2.Quantized) == 0 {
			break
		}
		sp2, err := MeasureSpeed(ref, q2, backend, in, rounds, budget)
		if err != nil {
			return nil, nil, sp, tries, false, err
		}
		tries = append(tries, SpeedTry{BackInFloat: append([]string(nil), back...), Speed: sp2})
		if sp2.Speedup >= 1 {
			rep2.LeftInFloat = rep.LeftInFloat
			rep2.Notes = append(rep2.Notes, fmt.Sprintf("the planned model measured %.2fx of float; %d int8 layers with the smallest gain put back in float: %s",
				sp.Speedup, k, strings.Join(back, ", ")))
			return q2, rep2, sp2, tries, true, nil
		}
		if k == len(order)-1 {
			break
		}
	}
	return q, rep, sp, tries, false, nil
}
