package tune

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/quant"
)

func TestDominatedBy(t *testing.T) {
	o2 := estimate{name: "O2", sha: "aaaaaaaaaaaaaaaa", macs: 100, flops: 250, params: 400, peak: 64, ops: map[string]int{"Conv": 2, "Relu": 2}, accClass: "float"}
	with := func(f func(e *estimate)) estimate {
		e := o2
		e.name, e.sha = "O3", "bbbbbbbbbbbbbbbb"
		e.ops = map[string]int{"Conv": 2, "Relu": 2}
		f(&e)
		return e
	}
	for _, tc := range []struct {
		name string
		e    estimate
		want string // substring; "" means not dominated
	}{
		{"same bytes", with(func(e *estimate) { e.sha = o2.sha }), "the same model as O2"},
		{"same cost and ops", with(func(e *estimate) {}), "cost model: dominated by O2"},
		{"an extra op", with(func(e *estimate) { e.ops["Transpose"] = 1; e.flops = 260 }), "1 more"},
		{"fewer MACs", with(func(e *estimate) { e.macs = 90 }), ""},
		{"less peak memory", with(func(e *estimate) { e.peak = 32 }), ""},
		{"a fused op instead", with(func(e *estimate) { delete(e.ops, "Relu"); e.ops["com.microsoft.FusedConv"] = 2; e.ops["Conv"] = 0 }), ""},
		{"another function", with(func(e *estimate) { e.sha = o2.sha; e.accClass = "quant:int8-static" }), ""},
	} {
		got := dominatedBy(tc.e, o2)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: dominatedBy = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestInt8Slower(t *testing.T) {
	ms := time.Millisecond
	lay := func(node string, f, i time.Duration) quant.LayerProfile {
		return quant.LayerProfile{Node: node, Op: "Conv", Float: f, Int8: i}
	}
	for _, tc := range []struct {
		name string
		ls   []quant.LayerProfile
		want string
	}{
		{"all slower", []quant.LayerProfile{lay("c1", 2*ms, 3*ms), lay("c2", 1*ms, 4*ms)}, "all 2 profiled layers are slower"},
		{"one faster", []quant.LayerProfile{lay("c1", 2*ms, 3*ms), lay("c2", 4*ms, 1*ms)}, ""},
		{"untimed and failed layers do not count", []quant.LayerProfile{lay("c1", 2*ms, 3*ms), {Node: "c2", Untimed: true}, {Node: "c3", Err: "no"}}, "all 1 profiled layers"},
		{"nothing timed", []quant.LayerProfile{{Node: "c2", Untimed: true}}, ""},
		{"no layers", nil, ""},
	} {
		got := int8Slower(tc.ls)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: int8Slower = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestEstimateOfModel counts a real model: the MLP has MACs, parameters
// and the op types it runs, and is dominated by itself.
func TestEstimateOfModel(t *testing.T) {
	m, err := graph.Load("../../testmodels/mlp.onnx")
	if err != nil {
		t.Fatal(err)
	}
	e, err := estimateOf("original", "0123456789abcdef", "float", m)
	if err != nil {
		t.Fatal(err)
	}
	if e.params <= 0 || e.ops["Gemm"] != 2 {
		t.Fatalf("estimate %+v", e)
	}
	c := e
	c.name, c.sha = "O2", "fedcba9876543210"
	if why := dominatedBy(c, e); !strings.Contains(why, "dominated by original") {
		t.Fatalf("an identical cost is not dominated: %q", why)
	}
}

// TestInt8VerdictCache: a verdict in the cache is reused (a rerun times
// no layer), and a profile that cannot run (no ort in this test binary)
// skips nothing and caches nothing.
func TestInt8VerdictCache(t *testing.T) {
	out := t.TempDir()
	if err := os.MkdirAll(filepath.Join(out, "cache"), 0o755); err != nil {
		t.Fatal(err)
	}
	newTuner := func() *tuner {
		tu := &tuner{opts: Options{Model: "../../testmodels/mlp.onnx", Out: out, Samples: 8}, rep: &Report{}, origSHA: "abc"}
		var err error
		if tu.orig, err = graph.Load(tu.opts.Model); err != nil {
			t.Fatal(err)
		}
		if err := tu.loadSamples(); err != nil {
			t.Fatal(err)
		}
		return tu
	}
	tu := newTuner()
	if why := tu.int8Verdict(); why != "" {
		t.Fatalf("without ort: %q", why)
	}
	if m, _ := filepath.Glob(filepath.Join(out, "cache", "int8prof-*")); len(m) != 0 {
		t.Fatalf("a failed profile was cached: %v", m)
	}
	tu = newTuner()
	// the verdict a run on ort would have written
	path := filepath.Join(out, "cache", "int8prof-"+sha([]byte(tu.origSHA + "\x00" + tu.rep.AccuracyOn + "\x00" + fmt.Sprint(tu.opts.Shapes)))[:24]+".json")
	if err := os.WriteFile(path, []byte(`{"why":"int8 profile on ort: all 2 profiled layers are slower"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if why := tu.int8Verdict(); !strings.Contains(why, "all 2 profiled layers") {
		t.Fatalf("cached verdict not used: %q", why)
	}
}
