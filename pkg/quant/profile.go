package quant

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/build"
	"github.com/optictl/optictl/pkg/runtime"
)

// LayerProfile is one Conv/MatMul/Gemm layer timed alone on the target
// backend, in float and in its int8 QDQ form.
type LayerProfile struct {
	Node string `json:"node"`
	Op   string `json:"op"`
	// Shape is the layer's signature: input shape, weight shape and
	// attributes (what the timing depends on).
	Shape string `json:"shape"`
	// Float is the float layer's median latency; Int8 the int8 layer's
	// with its QuantizeLinear in front and DequantizeLinear behind (the
	// layer between float neighbours); Quant and Dequant are those two
	// boundary ops alone.
	Float   time.Duration `json:"float_ns"`
	Int8    time.Duration `json:"int8_ns"`
	Quant   time.Duration `json:"quantize_ns"`
	Dequant time.Duration `json:"dequantize_ns"`
	// Kernel is Float over the int8 kernel alone (Int8 less the boundary
	// ops): the speedup inside an int8 region.
	Kernel float64 `json:"kernel_speedup"`
	// Isolated is Float / Int8: the speedup between float neighbours.
	Isolated float64 `json:"isolated_speedup"`
	// Boundary is what the layer pays in the chosen plan (Q in front, DQ
	// behind, both or none) and Speedup the speedup it then has.
	Boundary string  `json:"boundary,omitempty"`
	Speedup  float64 `json:"speedup"`
	// Int8Chosen is the decision and Why its reason.
	Int8Chosen bool   `json:"int8"`
	Why        string `json:"why"`
	// Cached reports that the timing came from the profile cache.
	Cached bool `json:"cached,omitempty"`
	// Untimed reports that the time budget ran out before this layer was
	// timed (it stays float).
	Untimed bool `json:"untimed,omitempty"`
	// Err says why the layer alone could not be built or timed (it
	// stays float).
	Err string `json:"error,omitempty"`
}

// Kernel returns the int8 kernel's own time (Int8 less the boundary ops,
// at least a tenth of Int8: the subtraction of medians is noisy).
func (l LayerProfile) kernel() time.Duration {
	k := l.Int8 - l.Quant - l.Dequant
	if k < l.Int8/10 {
		k = l.Int8 / 10
	}
	return k
}

// ProfileOptions configure Profile.
type ProfileOptions struct {
	// Backend is the target the layers are timed on (default "ort"),
	// at one intra-op thread.
	Backend string
	// Rounds and Budget bound each layer's interleaved timing (defaults
	// 60 rounds, 300ms).
	Rounds int
	Budget time.Duration
	// Margin is how much faster (as a fraction) int8 must be, boundary
	// ops counted, for a layer to be quantized (default MixedMargin).
	Margin float64
	// Cache holds timings by (backend, op, shape, attributes); nil uses
	// the process-wide DefaultProfileCache.
	Cache *ProfileCache
	// Progress, when set, is called after each layer is timed.
	Progress Progress
	// Deadline, when set, stops the timing: layers not yet timed are
	// marked Untimed (and stay float in Mixed).
	Deadline time.Time
}

// Progress receives one line per step of a long quantization (a layer
// timed, an accuracy attempt, a candidate measured): done of total steps
// (total 0 when unknown). nil is silent.
type Progress func(done, total int, line string)

func (p Progress) report(done, total int, format string, args ...any) {
	if p != nil {
		p(done, total, fmt.Sprintf(format, args...))
	}
}

// pastDeadline reports whether d is set and passed.
func pastDeadline(d time.Time) bool { return !d.IsZero() && time.Now().After(d) }

// MixedMargin is the default speedup margin a layer needs to be
// quantized by int8-mixed: 10%, above the few percent timings wander on
// a shared machine.
const MixedMargin = 0.10

// ProfileCache keeps layer timings by (backend, op, shape, attributes),
// so a layer shape is timed once per process (a model has many layers of
// one shape; a search profiles the same model more than once).
type ProfileCache struct {
	mu sync.Mutex
	m  map[string]LayerProfile
}

// DefaultProfileCache is the process-wide cache Profile uses by default.
var DefaultProfileCache = &ProfileCache{}

func (c *ProfileCache) get(k string) (LayerProfile, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.m[k]
	return l, ok
}

func (c *ProfileCache) put(k string, l LayerProfile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]LayerProfile{}
	}
	c.m[k] = l
}

// Len is the number of cached shapes.
func (c *ProfileCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// profiled is one Conv/MatMul/Gemm node with a constant float weight.
type profiled struct {
	n  *graph.Node
	in string // activation input
}

// profiledLayers lists m's main-graph Conv/MatMul/Gemm nodes whose second
// input is a float initializer (what Static quantizes with int8 weights).
func profiledLayers(g *graph.Graph) []profiled {
	inits := g.InitializerMap()
	var out []profiled
	for _, n := range g.Nodes {
		if !n.IsDefaultDomain() || len(n.Inputs) < 2 || len(n.Outputs) == 0 {
			continue
		}
		switch n.OpType {
		case "Conv", "MatMul", "Gemm":
		default:
			continue
		}
		if w := inits[n.Inputs[1]]; w == nil || w.DType != graph.Float {
			continue
		}
		if inits[n.Inputs[0]] != nil {
			continue
		}
		out = append(out, profiled{n: n, in: n.Inputs[0]})
	}
	return out
}

func attrKey(n *graph.Node) string {
	var b strings.Builder
	as := append([]*graph.Attr(nil), n.Attrs...)
	sort.Slice(as, func(i, j int) bool { return as[i].Name < as[j].Name })
	for _, a := range as {
		fmt.Fprintf(&b, " %s=", a.Name)
		switch {
		case len(a.Ints) > 0:
			fmt.Fprint(&b, a.Ints)
		case len(a.S) > 0:
			b.Write(a.S)
		case a.F != 0:
			fmt.Fprint(&b, a.F)
		default:
			fmt.Fprint(&b, a.I)
		}
	}
	return b.String()
}

func dimsString(d []int64) string {
	s := make([]string, len(d))
	for i, v := range d {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, "x")
}

// Profile times every Conv/MatMul/Gemm layer of m that has a constant
// float weight alone on the target backend: a one-node model of that
// layer's shape (taken from running m on sample) in float against its
// int8 QDQ form (QuantizeLinear, the layer with int8 weights,
// DequantizeLinear, as Static writes it with uint8 activations), and the
// boundary QuantizeLinear and DequantizeLinear on their own, in
// interleaved runs at one thread (medians). Timings are cached per shape.
// The decisions (Int8Chosen) are left to Plan.
func Profile(m *graph.Model, sample []*runtime.Tensor, o ProfileOptions) ([]LayerProfile, error) {
	if o.Backend == "" {
		o.Backend = "ort"
	}
	if o.Rounds <= 0 {
		o.Rounds = 60
	}
	if o.Budget <= 0 {
		o.Budget = 300 * time.Millisecond
	}
	if o.Cache == nil {
		o.Cache = DefaultProfileCache
	}
	c := m.Clone()
	constantsToInits(c.Graph)
	layers := profiledLayers(c.Graph)
	if len(layers) == 0 {
		return nil, nil
	}
	// one run with every layer's input exposed gives the shapes
	e := c.Clone()
	for _, l := range layers {
		if !e.Graph.IsGraphOutput(l.in) {
			e.Graph.Outputs = append(e.Graph.Outputs, &graph.ValueInfo{Name: l.in, DType: graph.Float, HasType: true})
		}
	}
	s, err := runtime.Open(o.Backend, e, runtime.Options{Threads: 1})
	if err != nil {
		return nil, fmt.Errorf("quant: profile: %w", err)
	}
	outs, err := s.Run(context.Background(), sample)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("quant: profile: %w", err)
	}
	acts := map[string]*runtime.Tensor{}
	for i, io := range s.Outputs() {
		if i < len(outs) {
			acts[io.Name] = outs[i].Clone()
		}
	}
	s.Close()
	opset := c.Opset("")
	if opset < 13 {
		opset = 13
	}
	inits := c.Graph.InitializerMap()
	res := make([]LayerProfile, 0, len(layers))
	for i, l := range layers {
		x := acts[l.in]
		if x == nil || x.DType != graph.Float {
			res = append(res, LayerProfile{Node: l.n.Name, Op: l.n.OpType, Err: fmt.Sprintf("its input %s was not computed as float", l.in)})
			continue
		}
		w := inits[l.n.Inputs[1]]
		shape := fmt.Sprintf("%s in %s w %s%s", l.n.OpType, dimsString(x.Shape), dimsString(w.Dims), attrKey(l.n))
		if len(l.n.Inputs) > 2 && l.n.Inputs[2] != "" {
			shape += " +bias"
		}
		key := o.Backend + "|" + shape
		lp, ok := o.Cache.get(key)
		switch {
		case ok:
			lp.Cached = true
		case pastDeadline(o.Deadline):
			lp = LayerProfile{Untimed: true}
		default:
			lp, err = timeLayer(l.n, x, inits, opset, o)
			if err != nil {
				// the layer stays float; the profile says why
				lp = LayerProfile{Err: err.Error()}
			} else {
				o.Cache.put(key, lp)
			}
		}
		lp.Node, lp.Op, lp.Shape = l.n.Name, l.n.OpType, shape
		res = append(res, lp)
		if lp.Err != "" {
			o.Progress.report(i+1, len(layers), "profile %s: not timed: %s", l.n.String(), lp.Err)
		} else if lp.Untimed {
			o.Progress.report(i+1, len(layers), "profile %s: not timed, time budget spent", l.n.String())
		} else {
			o.Progress.report(i+1, len(layers), "profile %s: float %v, int8 %v (kernel %.2fx)", l.n.String(), lp.Float.Round(time.Microsecond), lp.Int8.Round(time.Microsecond), lp.Kernel)
		}
	}
	return res, nil
}

// timeLayer builds the one-node float model of n, its int8 form and the
// boundary ops, and times them interleaved.
func timeLayer(n *graph.Node, x *runtime.Tensor, inits map[string]*graph.Tensor, opset int64, o ProfileOptions) (LayerProfile, error) {
	var lp LayerProfile
	b := build.New("layer", opset)
	in := b.Input("x", graph.Float, build.Dims(anyDims(x.Shape)...))
	ins := []string{in}
	for _, name := range n.Inputs[1:] {
		if name == "" {
			ins = append(ins, "")
			continue
		}
		t := inits[name]
		if t == nil {
			return lp, fmt.Errorf("input %s is not a constant", name)
		}
		ins = append(ins, b.Initializer(t.Clone()))
	}
	b.Op(n.OpType, "layer", ins, []string{"y"}, n.Attrs...)
	b.Output("y", graph.Float, nil)
	fm, err := b.Model()
	if err != nil {
		return lp, err
	}
	// the float output: its shape and range
	fs, err := runtime.Open(o.Backend, fm, runtime.Options{Threads: 1})
	if err != nil {
		return lp, err
	}
	y, err := fs.Run(context.Background(), []*runtime.Tensor{x})
	if err == nil {
		y = []*runtime.Tensor{y[0].Clone()}
	}
	fs.Close()
	if err != nil {
		return lp, err
	}
	qm, rep, err := Static(fm, [][]*runtime.Tensor{{x}}, StaticOptions{Asymmetric: true, PerChannel: true, Backend: o.Backend})
	if err != nil {
		return lp, err
	}
	if len(rep.Quantized) == 0 {
		return lp, fmt.Errorf("the layer alone is not quantized: %w", rep.NothingQuantized())
	}
	// Static leaves a graph output in float; inside a model the layer's
	// output is quantized (QLinearConv, QGemm with a uint8 output), so
	// give the one-node model that Q and the DQ behind it.
	if err := quantizeOutput(qm, "y", y[0]); err != nil {
		return lp, err
	}
	qIn, err := boundaryModel("QuantizeLinear", x.Shape, opset)
	if err != nil {
		return lp, err
	}
	dqOut, err := boundaryModel("DequantizeLinear", y[0].Shape, opset)
	if err != nil {
		return lp, err
	}
	u8 := runtime.NewTensor(graph.Uint8, y[0].Shape)
	for i := range u8.Raw {
		u8.Raw[i] = byte(i * 7)
	}
	med, err := timeInterleaved(o.Backend, []*graph.Model{fm, qm, qIn, dqOut},
		[][]*runtime.Tensor{{x}, {x}, {x}, {u8}}, o.Rounds, o.Budget)
	if err != nil {
		return lp, err
	}
	lp.Float, lp.Int8, lp.Quant, lp.Dequant = med[0], med[1], med[2], med[3]
	lp.Kernel = ratio(lp.Float, lp.kernel())
	lp.Isolated = ratio(lp.Float, lp.Int8)
	return lp, nil
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func anyDims(d []int64) []any {
	out := make([]any, len(d))
	for i, v := range d {
		out[i] = v
	}
	return out
}

// quantizeOutput puts QuantizeLinear (uint8, the range of ref) and
// DequantizeLinear on graph output v when its producer is not already a
// DequantizeLinear.
func quantizeOutput(m *graph.Model, v string, ref *runtime.Tensor) error {
	var p *graph.Node
	for _, n := range m.Graph.Nodes {
		for i, o := range n.Outputs {
			if o == v {
				p = n
				_ = i
			}
		}
	}
	if p == nil {
		return fmt.Errorf("no node writes %s", v)
	}
	if p.Is("DequantizeLinear") {
		return nil
	}
	lo, hi := 0.0, 0.0
	for _, f := range ref.Float32s() {
		lo, hi = min(lo, float64(f)), max(hi, float64(f))
	}
	scale := (hi - lo) / 255
	if scale <= 0 {
		scale = 1
	}
	zp := byte(min(255, max(0, -lo/scale+0.5)))
	g := m.Graph
	yf, yq := g.UniqueName(v+"_float"), g.UniqueName(v+"_q")
	ys, yz := g.UniqueName(v+"_scale"), g.UniqueName(v+"_zero_point")
	for i, o := range p.Outputs {
		if o == v {
			p.Outputs[i] = yf
		}
	}
	g.Initializers = append(g.Initializers, graph.NewFloat32(ys, nil, []float32{float32(scale)}),
		&graph.Tensor{Name: yz, DType: graph.Uint8, Dims: []int64{}, Raw: []byte{zp}})
	g.Nodes = append(g.Nodes,
		&graph.Node{Name: yq, OpType: "QuantizeLinear", Inputs: []string{yf, ys, yz}, Outputs: []string{yq}},
		&graph.Node{Name: v + "_dq", OpType: "DequantizeLinear", Inputs: []string{yq, ys, yz}, Outputs: []string{v}})
	return nil
}

// boundaryModel is a one-node QuantizeLinear (float -> uint8) or
// DequantizeLinear (uint8 -> float) of the given shape.
func boundaryModel(op string, shape []int64, opset int64) (*graph.Model, error) {
	b := build.New("boundary", opset)
	inType, outType := graph.Float, graph.Uint8
	if op == "DequantizeLinear" {
		inType, outType = graph.Uint8, graph.Float
	}
	x := b.Input("x", inType, build.Dims(anyDims(shape)...))
	scale := b.Scalar("scale", 0.05)
	zp := b.Initializer(&graph.Tensor{Name: "zp", DType: graph.Uint8, Dims: []int64{}, Raw: []byte{128}})
	b.Op(op, "boundary", []string{x, scale, zp}, []string{"y"})
	b.Output("y", outType, nil)
	return b.Model()
}

// timeInterleaved opens each model on backend (one thread), warms them up
// and runs them in turn, rotating which goes first, until rounds rounds
// are done or budget is spent (at least 5), and returns each one's median
// latency.
func timeInterleaved(backend string, models []*graph.Model, inputs [][]*runtime.Tensor, rounds int, budget time.Duration) ([]time.Duration, error) {
	ss := make([]runtime.Session, len(models))
	defer func() {
		for _, s := range ss {
			if s != nil {
				s.Close()
			}
		}
	}()
	for i, m := range models {
		s, err := runtime.Open(backend, m, runtime.Options{Threads: 1})
		if err != nil {
			return nil, err
		}
		ss[i] = s
	}
	ctx := context.Background()
	run := func(i int) (time.Duration, error) {
		t0 := time.Now()
		_, err := ss[i].Run(ctx, inputs[i])
		return time.Since(t0), err
	}
	for w := 0; w < 2; w++ {
		for i := range ss {
			if _, err := run(i); err != nil {
				return nil, err
			}
		}
	}
	ts := make([][]time.Duration, len(ss))
	start := time.Now()
	for r := 0; r < rounds && (r < 5 || time.Since(start) < budget); r++ {
		for j := range ss {
			i := (j + r) % len(ss)
			d, err := run(i)
			if err != nil {
				return nil, err
			}
			ts[i] = append(ts[i], d)
		}
	}
	out := make([]time.Duration, len(ss))
	for i := range ts {
		out[i] = median(ts[i])
	}
	return out, nil
}
