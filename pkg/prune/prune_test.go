package prune

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/build"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
	_ "github.com/optictl/optictl/pkg/runtime/backends"
	"github.com/optictl/optictl/testmodels"
)

// runModel runs m on backend with seeded inputs (batch 2) and returns the
// outputs by name. ORT being unavailable skips (fails under CI).
func runModel(t testing.TB, backend string, m *graph.Model, seed int64) map[string]*runtime.Tensor {
	t.Helper()
	out, err := tryRun(t, backend, m, seed, 2)
	if err != nil {
		t.Fatalf("%s: %v", backend, err)
	}
	return out
}

func tryRun(t testing.TB, backend string, m *graph.Model, seed int64, batch int) (map[string]*runtime.Tensor, error) {
	t.Helper()
	s, err := runtime.Open(backend, m, runtime.Options{Threads: 1})
	if err != nil {
		if backend == "ort" && strings.Contains(err.Error(), "library") {
			testutil.Missing(t, "onnxruntime ("+err.Error()+")")
		}
		return nil, fmt.Errorf("open: %w", err)
	}
	defer s.Close()
	in, err := numerics.Seeded(numerics.InputsFromInfos(s.Inputs()), numerics.SeedOptions{Seed: uint64(seed), Dims: numerics.Dims{Batch: int64(batch)}})
	if err != nil {
		return nil, err
	}
	named := map[string]*runtime.Tensor{}
	for i, info := range s.Inputs() {
		named[info.Name] = in[i]
	}
	return runtime.RunNamed(context.Background(), s, named)
}

func maxDiff(t *testing.T, a, b *runtime.Tensor) float64 {
	t.Helper()
	if len(a.Shape) != len(b.Shape) {
		t.Fatalf("shapes differ: %v vs %v", a.Shape, b.Shape)
	}
	for i := range a.Shape {
		if a.Shape[i] != b.Shape[i] {
			t.Fatalf("shapes differ: %v vs %v", a.Shape, b.Shape)
		}
	}
	x, y := a.Float32s(), b.Float32s()
	d := 0.0
	for i := range x {
		d = math.Max(d, math.Abs(float64(x[i])-float64(y[i])))
	}
	return d
}

func layerByWeight(r *Report, prefix string) *Layer {
	for i := range r.Layers {
		if strings.HasPrefix(r.Layers[i].Weight, prefix) {
			return &r.Layers[i]
		}
	}
	return nil
}

// TestStructuredModels prunes every test model and checks that it stays
// valid, runs on both backends with unchanged output shapes, and that
// backends agree.
func TestStructuredModels(t *testing.T) {
	cases := []struct {
		name       string
		model      func() *graph.Model
		wantPruned bool
	}{
		{"cnn", testmodels.CNN, true},
		{"dwsep", testmodels.DepthwiseSeparable, false}, // input and output channels are both pinned,
		{"mlp", testmodels.MLP, true},
		{"transformer", testmodels.TransformerEncoder, true},
		{"transformer_ln17", testmodels.TransformerEncoderLN17, true},
		{"gru", testmodels.GRU, false},
		{"lstm", testmodels.LSTM, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			orig := tc.model()
			m := tc.model()
			rep, err := Prune(m, Options{Fraction: 0.3, Mode: Structured})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Verify(); err != nil {
				t.Fatalf("verify: %v", err)
			}
			if got := rep.ChannelsAfter < rep.ChannelsBefore; got != tc.wantPruned {
				t.Fatalf("pruned = %v, want %v\n%s", got, tc.wantPruned, rep)
			}
			if tc.wantPruned && !(rep.ParamsAfter < rep.ParamsBefore && rep.FLOPsAfter < rep.FLOPsBefore) {
				t.Fatalf("params/FLOPs did not drop:\n%s", rep)
			}
			ref := runModel(t, "interp", orig, 1)
			gi := runModel(t, "interp", m, 1)
			for name, want := range ref {
				got := gi[name]
				if got == nil {
					t.Fatalf("output %q missing", name)
				}
				maxDiff(t, want, got) // checks the shape
			}
			go1 := runModel(t, "ort", m, 1)
			for name, want := range gi {
				if d := maxDiff(t, want, go1[name]); d > 1e-3 {
					t.Errorf("output %q: interp and ort differ by %g", name, d)
				}
			}
			if !tc.wantPruned {
				for name, want := range ref {
					if d := maxDiff(t, want, gi[name]); d != 0 {
						t.Errorf("unpruned model changed output %q by %g", name, d)
					}
				}
			}
		})
	}
}

// TestStructuredZeroIsIdentity: fraction 0 leaves the model and its
// outputs bit-identical.
func TestStructuredZeroIsIdentity(t *testing.T) {
	for _, name := range []string{"cnn", "dwsep", "mlp"} {
		t.Run(name, func(t *testing.T) {
			orig := testmodels.All()[name]()
			m := orig.Clone()
			rep, err := Prune(m, Options{Fraction: 0, Mode: Structured, Norm: "l2"})
			if err != nil {
				t.Fatal(err)
			}
			if rep.ChannelsAfter != rep.ChannelsBefore || rep.ParamsAfter != rep.ParamsBefore {
				t.Fatalf("fraction 0 pruned something:\n%s", rep)
			}
			if a, b := orig.Format(), m.Format(); a != b {
				t.Fatalf("model text changed")
			}
			for _, be := range []string{"interp", "ort"} {
				want, got := runModel(t, be, orig, 7), runModel(t, be, m, 7)
				for n := range want {
					if !want[n].Equal(got[n]) {
						t.Errorf("%s: output %q not bit-identical", be, n)
					}
				}
			}
		})
	}
}

// zeroChannels returns a copy of m where input channels (dim) of the named
// weight are zeroed: the naive recompute of what pruning those channels
// upstream must give.
func zeroChannels(t *testing.T, m *graph.Model, weight string, dim int, keep []int, n int) *graph.Model {
	t.Helper()
	c := m.Clone()
	w := c.Graph.Initializer(weight)
	v, _ := w.Float32s()
	v = append([]float32(nil), v...)
	kept := map[int]bool{}
	for _, k := range keep {
		kept[k] = true
	}
	outer, d, inner := splitDims(w.Dims, dim)
	if d != n {
		t.Fatalf("weight %q dim %d is %d, want %d", weight, dim, d, n)
	}
	for o := 0; o < outer; o++ {
		for ch := 0; ch < d; ch++ {
			if !kept[ch] {
				for i := 0; i < inner; i++ {
					v[(o*d+ch)*inner+i] = 0
				}
			}
		}
	}
	replaceInit(c.Graph, weight, graph.NewFloat32(weight, w.Dims, v))
	return c
}

type rnd struct {
	b *build.Builder
	r *rand.Rand
}

func (w *rnd) t(name string, lo, hi float64, dims ...int64) string {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(lo + (hi-lo)*w.r.Float64())
	}
	return w.b.Float32(name, dims, v)
}

func (w *rnd) conv(x, name string, cin, cout, k, group int64) string {
	return w.b.Node("Conv", []string{x, w.t(name+".w", -0.5, 0.5, cout, cin/group, k, k), w.t(name+".b", -0.1, 0.1, cout)},
		graph.IntsAttr("kernel_shape", k, k), graph.IntsAttr("pads", k/2, k/2, k/2, k/2), graph.IntAttr("group", group))
}

func (w *rnd) bn(x, name string, c int64) string {
	return w.b.Node("BatchNormalization", []string{x, w.t(name+".scale", 0.5, 1.5, c), w.t(name+".shift", -0.2, 0.2, c),
		w.t(name+".mean", -0.2, 0.2, c), w.t(name+".var", 0.5, 1.5, c)}, graph.FloatAttr("epsilon", 1e-5))
}

func finishModel(t *testing.T, b *build.Builder, out string, shape graph.Shape) *graph.Model {
	t.Helper()
	b.Op("Identity", "out", []string{out}, []string{"y"})
	b.Output("y", graph.Float, shape)
	m, err := b.Model()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkEquivalent prunes m and compares its output with the naive
// recompute: the original with the consumer weight's pruned input channels
// zeroed. It returns the report and the pruned model.
func checkEquivalent(t *testing.T, m *graph.Model, opts Options, consumer string, dim int, keep func(*Report) []int, n int) (*Report, *graph.Model) {
	t.Helper()
	p := m.Clone()
	rep, err := Prune(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(); err != nil {
		t.Fatal(err)
	}
	k := keep(rep)
	if len(k) == 0 || len(k) == n {
		t.Fatalf("nothing pruned:\n%s", rep)
	}
	naive := zeroChannels(t, m, consumer, dim, k, n)
	for _, be := range []string{"interp", "ort"} {
		want, got := runModel(t, be, naive, 3), runModel(t, be, p, 3)
		if d := maxDiff(t, want["y"], got["y"]); d > 1e-4 {
			t.Errorf("%s: pruned model differs from naive recompute by %g", be, d)
		}
	}
	return rep, p
}

func keptOf(prefix string) func(*Report) []int {
	return func(r *Report) []int {
		if l := layerByWeight(r, prefix); l != nil {
			return l.Kept
		}
		return nil
	}
}

// TestBatchNormSlicing: Conv -> BN -> Relu -> Conv; BN parameters are the
// original ones at the kept channels and the output equals the naive
// recompute.
func TestBatchNormSlicing(t *testing.T) {
	b := build.New("bn", 13)
	w := &rnd{b, rand.New(rand.NewSource(1))}
	x := b.Input("x", graph.Float, build.Dims("N", 3, 8, 8))
	h := b.Node("Relu", []string{w.bn(w.conv(x, "c1", 3, 10, 3, 1), "bn", 10)})
	h = w.conv(h, "c2", 10, 4, 3, 1)
	m := finishModel(t, b, h, build.Dims("N", 4, 8, 8))
	rep, p := checkEquivalent(t, m, Options{Fraction: 0.5, Mode: Structured}, "c2.w", 1, keptOf("c1.w"), 10)
	keep := layerByWeight(rep, "c1.w").Kept
	if len(keep) != 5 {
		t.Fatalf("kept %d channels, want 5", len(keep))
	}
	for _, name := range []string{"bn.scale", "bn.shift", "bn.mean", "bn.var", "c1.b"} {
		orig, _ := m.Graph.Initializer(name).Float32s()
		got, _ := p.Graph.Initializer(name).Float32s()
		if len(got) != len(keep) {
			t.Fatalf("%s has %d values, want %d", name, len(got), len(keep))
		}
		for i, k := range keep {
			if got[i] != orig[k] {
				t.Errorf("%s[%d] = %v, want original[%d] = %v", name, i, got[i], k, orig[k])
			}
		}
	}
	// The kept channels are those of largest L1 filter norm.
	norms, _ := channelNorms(m.Graph.Initializer("c1.w"), 0, "l1")
	kept := map[int]bool{}
	for _, k := range keep {
		kept[k] = true
	}
	for i := range norms {
		for j := range norms {
			if kept[i] && !kept[j] && norms[i] < norms[j] {
				t.Errorf("kept channel %d (norm %g) over pruned %d (norm %g)", i, norms[i], j, norms[j])
			}
		}
	}
}

// TestDepthwisePropagation: Conv -> DWConv(group=C) -> Relu -> Conv: the
// depthwise weights and group follow the kept channels.
func TestDepthwisePropagation(t *testing.T) {
	b := build.New("dw", 13)
	w := &rnd{b, rand.New(rand.NewSource(2))}
	x := b.Input("x", graph.Float, build.Dims("N", 3, 8, 8))
	h := w.conv(x, "c1", 3, 8, 1, 1)
	h = b.Node("Relu", []string{w.bn(w.conv(h, "dw", 8, 8, 3, 8), "dwbn", 8)})
	h = w.conv(h, "pw", 8, 4, 1, 1)
	m := finishModel(t, b, h, build.Dims("N", 4, 8, 8))
	rep, p := checkEquivalent(t, m, Options{Fraction: 0.25, Mode: Structured}, "pw.w", 1, keptOf("c1.w"), 8)
	if l := layerByWeight(rep, "c1.w"); l.ChannelsAfter != 6 {
		t.Fatalf("c1 kept %d channels, want 6", l.ChannelsAfter)
	}
	for _, n := range p.Graph.Nodes {
		if n.Is("Conv") && n.Inputs[1] == "dw.w" {
			if g := n.AttrInt("group", 0); g != 6 {
				t.Errorf("depthwise group = %d, want 6", g)
			}
			if d := p.Graph.Initializer("dw.w").Dims; d[0] != 6 || d[1] != 1 {
				t.Errorf("depthwise weight dims %v", d)
			}
		}
	}
}

// TestConcat: two Conv branches concatenated on channels feed one Conv;
// its input channels are sliced at each branch's offset.
func TestConcat(t *testing.T) {
	b := build.New("cat", 13)
	w := &rnd{b, rand.New(rand.NewSource(3))}
	x := b.Input("x", graph.Float, build.Dims("N", 3, 8, 8))
	l := b.Node("Relu", []string{w.conv(x, "a", 3, 6, 3, 1)})
	r := b.Node("Relu", []string{w.conv(x, "b", 3, 4, 1, 1)})
	h := b.Node("Concat", []string{l, x, r}, graph.IntAttr("axis", 1))
	h = w.conv(h, "c", 13, 5, 3, 1)
	m := finishModel(t, b, h, build.Dims("N", 5, 8, 8))
	keep := func(rep *Report) []int {
		var k []int
		k = append(k, layerByWeight(rep, "a.w").Kept...)
		k = append(k, 6, 7, 8) // the graph input's channels, never pruned
		for _, i := range layerByWeight(rep, "b.w").Kept {
			k = append(k, 9+i)
		}
		return k
	}
	_, p := checkEquivalent(t, m, Options{Fraction: 0.5, Mode: Structured}, "c.w", 1, keep, 13)
	if d := p.Graph.Initializer("c.w").Dims; d[1] != 3+3+2 {
		t.Errorf("consumer weight dims %v, want 8 input channels", d)
	}
}

// TestResidualTieGroup: channels joined by a residual Add are pruned with
// one keep set; a residual with an untracked value (a graph input) is
// skipped entirely.
func TestResidualTieGroup(t *testing.T) {
	t.Run("cnn", func(t *testing.T) {
		m := testmodels.CNN()
		orig := m.Clone()
		rep, err := Prune(m, Options{Fraction: 0.3, Mode: Structured})
		if err != nil {
			t.Fatal(err)
		}
		stem, c2, c1 := layerByWeight(rep, "stem.conv.weight"), layerByWeight(rep, "block.conv2.weight"), layerByWeight(rep, "block.conv1.weight")
		if stem == nil || c2 == nil || c1 == nil {
			t.Fatalf("layers missing:\n%s", rep)
		}
		if stem.Group != c2.Group || stem.Group == c1.Group {
			t.Fatalf("tie groups wrong: stem %d, conv2 %d, conv1 %d", stem.Group, c2.Group, c1.Group)
		}
		if stem.ChannelsAfter != 11 || c1.ChannelsAfter != 11 {
			t.Fatalf("channels: stem %d, conv1 %d, want 11", stem.ChannelsAfter, c1.ChannelsAfter)
		}
		for i := range stem.Kept {
			if stem.Kept[i] != c2.Kept[i] {
				t.Fatalf("tied layers keep different channels: %v vs %v", stem.Kept, c2.Kept)
			}
		}
		_ = orig
	})
	t.Run("untracked", func(t *testing.T) {
		b := build.New("res", 13)
		w := &rnd{b, rand.New(rand.NewSource(4))}
		x := b.Input("x", graph.Float, build.Dims("N", 6, 8, 8))
		h := b.Node("Relu", []string{w.conv(x, "c1", 6, 6, 3, 1)})
		h = b.Node("Add", []string{h, x})
		h = w.conv(h, "c2", 6, 4, 3, 1)
		m := finishModel(t, b, h, build.Dims("N", 4, 8, 8))
		orig := m.Clone()
		rep, err := Prune(m, Options{Fraction: 0.5, Mode: Structured})
		if err != nil {
			t.Fatal(err)
		}
		if rep.ChannelsAfter != rep.ChannelsBefore || len(rep.Skipped) < 2 {
			t.Fatalf("untracked residual must block pruning:\n%s", rep)
		}
		if orig.Format() != m.Format() {
			t.Fatal("model changed")
		}
	})
}

// TestUnstructuredSparsity: achieved sparsity equals the request within
// rounding, per layer and global, and outputs still run on both backends.
func TestUnstructuredSparsity(t *testing.T) {
	cases := []struct {
		model    string
		fraction float64
		global   bool
	}{
		{"cnn", 0.5, false},
		{"cnn", 0.3, true},
		{"mlp", 0.9, false},
		{"transformer", 0.7, true},
		{"dwsep", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.model, func(t *testing.T) {
			m := testmodels.All()[tc.model]()
			rep, err := Prune(m, Options{Fraction: tc.fraction, Mode: Unstructured, Global: tc.global})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Layers) == 0 {
				t.Fatal("no layers")
			}
			var total int64
			for _, l := range rep.Layers {
				total += l.Params
				if !tc.global && math.Abs(l.Sparsity-tc.fraction) > 1/float64(l.Params)+1e-12 {
					t.Errorf("%s: sparsity %g, want %g", l.Weight, l.Sparsity, tc.fraction)
				}
				w := m.Graph.Initializer(l.Weight)
				v, _ := w.Float32s()
				var z int64
				for _, x := range v {
					if x == 0 {
						z++
					}
				}
				if z != l.Zeros {
					t.Errorf("%s: report says %d zeros, tensor has %d", l.Weight, l.Zeros, z)
				}
			}
			if math.Abs(rep.Sparsity-tc.fraction) > 1/float64(total)+1e-12 && (tc.global || tc.fraction == 0) {
				t.Errorf("overall sparsity %g, want %g", rep.Sparsity, tc.fraction)
			}
			if !strings.Contains(rep.String(), "not faster") || rep.ParamsAfter != rep.ParamsBefore {
				t.Errorf("report lacks the dense note or changed params:\n%s", rep)
			}
			if err := m.Verify(); err != nil {
				t.Fatal(err)
			}
			a, o := runModel(t, "interp", m, 5), runModel(t, "ort", m, 5)
			for n := range a {
				if d := maxDiff(t, a[n], o[n]); d > 1e-3 {
					t.Errorf("%s: interp and ort differ by %g", n, d)
				}
			}
		})
	}
}

// TestErrorsLeaveModel: bad options fail and leave the model untouched.
func TestErrorsLeaveModel(t *testing.T) {
	cases := []Options{
		{Fraction: 1, Mode: Structured},
		{Fraction: -0.1, Mode: Unstructured},
		{Fraction: math.NaN(), Mode: Unstructured},
		{Fraction: 0.3, Mode: "channels"},
		{Fraction: 0.3, Mode: Structured, Norm: "linf"},
	}
	for _, o := range cases {
		m := testmodels.CNN()
		before := m.Format()
		if _, err := Prune(m, o); err == nil || !strings.HasPrefix(err.Error(), "prune: ") {
			t.Errorf("%+v: err = %v", o, err)
		}
		if m.Format() != before {
			t.Errorf("%+v: model changed", o)
		}
	}
	if _, err := Prune(nil, Options{Mode: Structured}); err == nil {
		t.Error("nil model accepted")
	}
}

// TestExcludeAndGlobal: an excluded layer keeps its channels (and so does
// its producer), and global structured pruning removes the requested share
// of all prunable channels.
func TestExcludeAndGlobal(t *testing.T) {
	m := testmodels.CNN()
	var wide string
	for _, n := range m.Graph.Nodes {
		if n.Is("Conv") && n.Inputs[1] == "wide.conv.weight" {
			wide = n.Name
		}
	}
	rep, err := Prune(m, Options{Fraction: 0.5, Mode: Structured, Exclude: []string{wide}})
	if err != nil {
		t.Fatal(err)
	}
	if l := layerByWeight(rep, "wide.conv.weight"); l != nil {
		t.Errorf("excluded layer pruned: %+v", l)
	}
	if l := layerByWeight(rep, "stem.conv.weight"); l != nil {
		t.Errorf("producer of excluded layer pruned: %+v", l)
	}
	if l := layerByWeight(rep, "block.conv1.weight"); l == nil || l.ChannelsAfter != 8 {
		t.Errorf("block.conv1 not pruned to 8: %+v", l)
	}
	g := testmodels.CNN()
	rep, err = Prune(g, Options{Fraction: 0.4, Mode: Structured, Global: true})
	if err != nil {
		t.Fatal(err)
	}
	groupsN := map[int]int{}
	for _, l := range rep.Layers {
		groupsN[l.Group] = l.ChannelsBefore
	}
	tot, after := 0, 0
	for _, l := range rep.Layers {
		after += 0
		_ = l
	}
	for _, n := range groupsN {
		tot += n
	}
	seen := map[int]bool{}
	for _, l := range rep.Layers {
		if !seen[l.Group] {
			seen[l.Group] = true
			after += l.ChannelsAfter
		}
	}
	if want := tot - int(math.Round(0.4*float64(tot))); after != want {
		t.Errorf("global: %d channels left of %d, want %d", after, tot, want)
	}
	if err := g.Verify(); err != nil {
		t.Fatal(err)
	}
	runModel(t, "ort", g, 1)
	var js Report
	b, _ := rep.JSON()
	if err := json.Unmarshal(b, &js); err != nil || js.Mode != Structured || len(js.Layers) != len(rep.Layers) {
		t.Errorf("json round trip: %v", err)
	}
}

// TestMultiple: kept channel counts are rounded to multiples of 8.
func TestMultiple(t *testing.T) {
	m := testmodels.CNN()
	rep, err := Prune(m, Options{Fraction: 0.3, Mode: Structured, Multiple: 8})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"stem.conv.weight": 8, "block.conv1.weight": 8, "block.conv2.weight": 8, "wide.conv.weight": 24}
	for w, n := range want {
		if l := layerByWeight(rep, w); l == nil || l.ChannelsAfter != n {
			t.Errorf("%s: %+v, want %d channels", w, l, n)
		}
	}
	if len(rep.Notes) != 0 {
		t.Errorf("rounded pruning carries notes: %v", rep.Notes)
	}
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	a, o := runModel(t, "interp", m, 2), runModel(t, "ort", m, 2)
	if d := maxDiff(t, a["logits"], o["logits"]); d > 1e-3 {
		t.Errorf("interp and ort differ by %g", d)
	}
	if _, err := Prune(testmodels.CNN(), Options{Fraction: 0.3, Mode: Structured, Multiple: -1}); err == nil {
		t.Error("negative multiple accepted")
	}
}

// TestRealModels prunes the third-party models (both modes): the result
// verifies, runs on ORT, and keeps output shapes; where pruning is not
// possible the model is left as it was.
func TestRealModels(t *testing.T) {
	dirs := testutil.RealModels(t)
	if len(dirs) == 0 {
		testutil.Missing(t, "../shared/models")
	}
	for _, dir := range dirs {
		name := dir[strings.LastIndex(dir, "/")+1:]
		for _, mode := range []string{Structured, Unstructured} {
			t.Run(name+"/"+mode, func(t *testing.T) {
				orig, err := graph.Load(dir + "/model.onnx")
				if err != nil {
					t.Fatal(err)
				}
				m := orig.Clone()
				rep, err := Prune(m, Options{Fraction: 0.3, Mode: mode})
				if err != nil {
					if m.Format() != orig.Format() {
						t.Fatalf("failed (%v) and changed the model", err)
					}
					t.Logf("not pruned: %v", err)
					return
				}
				if err := m.Verify(); err != nil {
					t.Fatal(err)
				}
				t.Logf("channels %d -> %d, sparsity %.3f, params %d -> %d, skipped %d",
					rep.ChannelsBefore, rep.ChannelsAfter, rep.Sparsity, rep.ParamsBefore, rep.ParamsAfter, len(rep.Skipped))
				want, err := tryRun(t, "ort", orig, 1, 1)
				if err != nil {
					t.Skipf("the original does not run on seeded inputs: %v", err)
				}
				got, err := tryRun(t, "ort", m, 1, 1)
				if err != nil {
					t.Fatal(err)
				}
				for n, w := range want {
					g := got[n]
					if g == nil || len(g.Shape) != len(w.Shape) {
						t.Fatalf("output %q changed", n)
					}
					for i := range w.Shape {
						if w.Shape[i] != g.Shape[i] {
							t.Fatalf("output %q shape %v -> %v", n, w.Shape, g.Shape)
						}
					}
				}
			})
		}
	}
}

// TestValueInfoUpdated: a model carrying value_info keeps it consistent
// with the pruned shapes (no stale channel counts).
func TestValueInfoUpdated(t *testing.T) {
	m := testmodels.CNN()
	if _, err := graph.InferShapes(m, graph.InferOptions{}); err != nil {
		t.Fatal(err)
	}
	n := len(m.Graph.ValueInfo)
	if n == 0 {
		t.Fatal("no value_info to test with")
	}
	if _, err := Prune(m, Options{Fraction: 0.5, Mode: Structured}); err != nil {
		t.Fatal(err)
	}
	if len(m.Graph.ValueInfo) != n {
		t.Errorf("value_info entries %d -> %d", n, len(m.Graph.ValueInfo))
	}
	res, err := graph.InferShapes(m.Clone(), graph.InferOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) > 0 {
		t.Fatalf("stale value_info: %v", res.Problems)
	}
	chans := map[int64]bool{}
	for _, v := range m.Graph.ValueInfo {
		if len(v.Shape) == 4 {
			chans[v.Shape[1].Size] = true
		}
	}
	if chans[32] || !chans[8] || !chans[16] {
		t.Errorf("channel dims in value_info: %v", chans)
	}
	runModel(t, "ort", m, 1)
}

// TestConformanceModelsNoPanic prunes every ONNX node conformance model
// both ways: Prune either succeeds with a model that verifies, or fails
// cleanly (never an internal error) leaving the model unchanged.
func TestConformanceModelsNoPanic(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	root := testutil.ConformanceDir(t)
	dirs, err := os.ReadDir(root)
	if err != nil {
		testutil.Missing(t, root)
	}
	n := 0
	for _, d := range dirs {
		m, err := graph.Load(filepath.Join(root, d.Name(), "model.onnx"))
		if err != nil {
			continue
		}
		for _, mode := range []string{Structured, Unstructured} {
			c := m.Clone()
			before := c.Format()
			_, err := Prune(c, Options{Fraction: 0.5, Mode: mode})
			switch {
			case err != nil && strings.Contains(err.Error(), "internal error"):
				t.Errorf("%s/%s: %v", d.Name(), mode, err)
			case err != nil && c.Format() != before:
				t.Errorf("%s/%s: failed and changed the model", d.Name(), mode)
			case err == nil:
				if verr := c.Verify(); verr != nil {
					t.Errorf("%s/%s: %v", d.Name(), mode, verr)
				}
			}
		}
		n++
	}
	if n < 100 {
		t.Fatalf("only %d conformance models loaded", n)
	}
}

// TestMultipleLeavesSmallLayers: a layer with no more channels than
// Multiple is pruned unrounded (rounding could only keep it whole), so
// the result does not depend on the host's NCHWc block (8 or 16): the
// MNIST CNN's 8-channel conv prunes at Multiple 8 as at 16.
func TestMultipleLeavesSmallLayers(t *testing.T) {
	for _, multiple := range []int{8, 16} {
		m, err := graph.Load(filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Prune(m, Options{Fraction: 0.25, Mode: Structured, Multiple: multiple})
		if err != nil {
			t.Fatal(err)
		}
		if rep.ChannelsBefore != 8 || rep.ChannelsAfter != 6 {
			t.Errorf("multiple %d: channels %d -> %d, want 8 -> 6", multiple, rep.ChannelsBefore, rep.ChannelsAfter)
		}
	}
}
