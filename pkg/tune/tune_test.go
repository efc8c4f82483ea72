package tune

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	_ "github.com/optictl/optictl/pkg/runtime/interp"
)

// frontier lists the ids marked pareto.
func frontier(r *Report) []string {
	var out []string
	for _, c := range r.Candidates {
		if c.Pareto {
			out = append(out, c.ID)
		}
	}
	return out
}

// TestRunAndRerun tunes the testmodels MLP on interp (pure Go: no ONNX
// Runtime needed) and reruns it: the rerun measures nothing, takes every
// figure from the cache and gives the same frontier and choice.
func TestRunAndRerun(t *testing.T) {
	out := t.TempDir()
	o := Options{
		Model: "../../testmodels/mlp.onnx", Out: out, Backends: []string{"interp"},
		Variants: []string{"original", "O2", "int8-dynamic", "fp16", "prune-0.25"}, PruneRatios: []float64{0.25},
		ShortIters: 4, LongIters: 6, Rounds: 2, Constraints: Constraints{MaxDrop: -1},
	}
	var log bytes.Buffer
	o.Log = &log
	first, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if first.Candidate("prune-0.25@interp") == nil {
		t.Errorf("no pruned candidate; skipped %+v", first.Skipped)
	}
	if len(first.Candidates) < 3 || first.Measured == 0 || first.Cached != 0 {
		t.Fatalf("first run: %d candidates, measured %d, cached %d", len(first.Candidates), first.Measured, first.Cached)
	}
	if first.Baseline != "original@interp" || !strings.Contains(first.AccuracyOn, "seeded") {
		t.Fatalf("baseline %q, accuracy on %q", first.Baseline, first.AccuracyOn)
	}
	for _, c := range first.Candidates {
		if _, err := os.Stat(c.Path); err != nil {
			t.Errorf("%s: %v", c.ID, err)
		}
		if c.P50MS <= 0 || c.P99MS < c.P50MS || c.ThroughputPerS <= 0 || c.Accuracy.Metric == "" || math.IsNaN(c.Accuracy.Drop) {
			t.Errorf("%s: figures %+v", c.ID, c)
		}
		if !strings.Contains(log.String(), "done  "+c.ID) {
			t.Errorf("no progress line for %s", c.ID)
		}
	}
	if len(frontier(first)) == 0 || first.Chosen == "" {
		t.Fatalf("no frontier or chosen: %+v", first)
	}
	second, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if second.Measured != 0 || second.Cached != first.Measured {
		t.Fatalf("rerun measured %d and took %d from the cache (first run measured %d)", second.Measured, second.Cached, first.Measured)
	}
	if !slices.Equal(frontier(first), frontier(second)) || first.Chosen != second.Chosen {
		t.Fatalf("rerun frontier %v chosen %s, first %v %s", frontier(second), second.Chosen, frontier(first), first.Chosen)
	}
}

func TestRunErrors(t *testing.T) {
	cases := []struct {
		name string
		o    Options
		want string
	}{
		{"no out", Options{Model: "../../testmodels/mlp.onnx"}, "no output folder"},
		{"unknown backend", Options{Model: "../../testmodels/mlp.onnx", Backends: []string{"nope"}}, "unknown backend"},
		{"unknown recipe", Options{Model: "../../testmodels/mlp.onnx", Backends: []string{"interp"}, Variants: []string{"O9"}}, "unknown \"O9\""},
		{"labels without data", Options{Model: "../../testmodels/mlp.onnx", Labels: "x"}, "--labels needs --data"},
		{"bad threads", Options{Model: "../../testmodels/mlp.onnx", Threads: []int{0}}, "positive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.o.Out == "" && c.name != "no out" {
				c.o.Out = t.TempDir()
			}
			_, err := Run(context.Background(), c.o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
		})
	}
}

func cand(id string, p50, p99, tput, drop float64, within bool) Candidate {
	return Candidate{ID: id, Variant: id, Backend: "interp", P50MS: p50, P99MS: p99, ThroughputPerS: tput, Accuracy: Accuracy{Drop: drop, Within: within}}
}

func TestChoose(t *testing.T) {
	cs := []Candidate{
		cand("fast-bad", 1, 2, 1000, 5, false),
		cand("mid", 2, 8, 500, 0.5, true),
		cand("slow", 4, 5, 250, 0, true),
	}
	cases := []struct {
		name string
		k    Constraints
		want string
	}{
		{"budget", Constraints{MaxDrop: -1}, "mid"},
		{"loose drop", Constraints{MaxDrop: 10}, "fast-bad"},
		{"tight drop", Constraints{MaxDrop: 0.1}, "slow"},
		{"p99", Constraints{MaxDrop: -1, MaxP99MS: 6}, "slow"},
		{"throughput", Constraints{MaxDrop: -1, MinThroughput: 600}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, why := Choose(cs, c.k)
			if got != c.want || why == "" {
				t.Fatalf("chose %q (%s), want %q", got, why, c.want)
			}
		})
	}
}

func TestParetoSet(t *testing.T) {
	its := []*item{{c: cand("a", 1, 1, 1, 2, true)}, {c: cand("b", 2, 2, 1, 1, true)}, {c: cand("c", 3, 3, 1, 1, true)}, {c: cand("d", 4, 4, 1, 0, true)}, {c: cand("e", 5, 5, 1, math.NaN(), true)}}
	var pts []point
	for _, it := range its {
		pts = append(pts, point{it: it, lat: it.c.P50MS, drop: it.c.Accuracy.Drop})
	}
	front := paretoSet(pts)
	var got []string
	for _, it := range its {
		if front[it] {
			got = append(got, it.c.ID)
		}
	}
	if want := []string{"a", "b", "d"}; !slices.Equal(got, want) {
		t.Fatalf("frontier %v, want %v", got, want)
	}
}

func TestParseRequirement(t *testing.T) {
	c := cand("x", 2, 3, 100, 0.5, true)
	c.Speedup = 1.5
	cases := []struct {
		in      string
		wantErr bool
		pass    bool
	}{
		{"speedup>=1.2", false, true},
		{"speedup >= 2", false, false},
		{"p99_ms<3", false, false},
		{"p99_ms<=3", false, true},
		{"throughput_per_s>50", false, true},
		{"accuracy_drop<=0.1", false, false},
		{"latency>=1", true, false},
		{"speedup>=fast", true, false},
		{"speedup", true, false},
	}
	for _, tc := range cases {
		r, err := ParseRequirement(tc.in)
		if (err != nil) != tc.wantErr {
			t.Fatalf("%q: err %v", tc.in, err)
		}
		if err != nil {
			continue
		}
		if _, ok := r.Check(&c); ok != tc.pass {
			t.Errorf("%q on %+v: %v, want %v", tc.in, c, ok, tc.pass)
		}
	}
}

// TestPlotAndLadder renders the plot of a crowded report to SVG and PNG
// (look at the PNG with -plot-out) and writes the serve ladder, which
// ReadServeConfig reads back slowest first.
func TestPlotAndLadder(t *testing.T) {
	dir := t.TempDir()
	rep := &Report{Model: "m.onnx", Out: dir, Metric: "agreement", Baseline: "original@ort"}
	for i, c := range []Candidate{
		cand("original", 1.0, 1.2, 1000, 0, true), cand("O2", 0.99, 1.1, 1010, 0, true), cand("O3", 0.98, 1.1, 1020, 0, true),
		cand("int8-static", 0.5, 0.7, 2000, 0.8, true), cand("fp16", 0.7, 0.9, 1400, 0.1, true),
	} {
		c.ID, c.Backend = c.Variant+"@ort", "ort"
		c.Path = filepath.Join(dir, "candidates", c.Variant+".onnx")
		c.Pareto = i == 2 || i == 3 || i == 4
		rep.Candidates = append(rep.Candidates, c)
	}
	sim := cand("int8-static", 40, 40, 25, 0.8, true)
	sim.ID, sim.Backend, sim.Simulated = "int8-static@fpga", "fpga", true
	rep.Candidates = append(rep.Candidates, sim)
	rep.Chosen = "int8-static@ort"
	var svg, pngb bytes.Buffer
	if err := WritePlot(&svg, rep, "svg"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"frontier", "ort", "fpga", "log scale", "int8-static@ort"} {
		if !strings.Contains(svg.String(), want) {
			t.Errorf("svg lacks %q", want)
		}
	}
	if err := WritePlot(&pngb, rep, "png"); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(pngb.Bytes())); err != nil {
		t.Fatal(err)
	}
	if p := os.Getenv("TUNE_PLOT_OUT"); p != "" {
		os.WriteFile(p, pngb.Bytes(), 0o644)
	}
	sc, ok := ServeLadder(rep, "m", 5)
	if !ok {
		t.Fatal("no ladder")
	}
	b, _ := json.Marshal(sc)
	p := filepath.Join(dir, "serve.json")
	os.WriteFile(p, b, 0o644)
	got, err := ReadServeConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	m := got.Models[0]
	var names []string
	for _, v := range m.Variants {
		names = append(names, v.Name)
	}
	if m.Path != filepath.Join(dir, "candidates", "O3.onnx") || !slices.Equal(names, []string{"fp16", "int8-static"}) || got.SLOP99 != "5.000ms" || got.Backend != "ort" {
		t.Fatalf("ladder %+v", got)
	}
	for _, bad := range []string{`{}`, `{"models":[{"name":"m"}]}`, `{"models":[{"name":"m","path":"a"}],"extra":1}`} {
		os.WriteFile(p, []byte(bad), 0o644)
		if _, err := ReadServeConfig(p); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// TestTimeBudgetHalving: with no time left after the short rung, only the
// short rung's frontier and the baseline get the long measurement.
func TestTimeBudgetHalving(t *testing.T) {
	o := Options{
		Model: "../../testmodels/mlp.onnx", Out: t.TempDir(), Backends: []string{"interp"},
		Variants:   []string{"original", "O2", "int8-dynamic", "fp16"},
		ShortIters: 3, LongIters: 5, Rounds: 1, TimeBudget: 1, Constraints: Constraints{MaxDrop: -1},
	}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Candidates {
		halved := slices.Contains(rep.Halved, c.ID)
		if want := map[bool]int{true: 3, false: 5}[halved]; c.Iterations != want {
			t.Errorf("%s: %d iterations, halved %v", c.ID, c.Iterations, halved)
		}
		if halved && c.Variant == "original" {
			t.Errorf("the baseline was halved")
		}
	}
	if len(rep.Halved) == 0 || len(rep.Halved) == len(rep.Candidates) {
		t.Fatalf("halved %v of %d", rep.Halved, len(rep.Candidates))
	}
}

// TestPruneReconstructed tunes the MNIST CNN on interp with --calib: the
// pruned candidates are made by prune.Auto with reconstruction (their
// recipe and note say so) and their accuracy is measured like any other.
func TestPruneReconstructed(t *testing.T) {
	dir := filepath.Join(testutil.ModelsDir(t), "mnist")
	o := Options{
		Model: filepath.Join(dir, "model.onnx"), Out: t.TempDir(), Calib: dir, Backends: []string{"interp"},
		Variants: []string{"original", "prune-0.25"}, PruneRatios: []float64{0.25},
		ShortIters: 4, LongIters: 6, Rounds: 2, Constraints: Constraints{MaxDrop: -1}, RemeasureIters: -1,
	}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Candidate("prune-0.25@interp")
	if c == nil {
		t.Fatalf("no pruned candidate; skipped %+v", rep.Skipped)
	}
	if !strings.Contains(c.Recipe, "--prune-reconstruct") || !strings.Contains(c.Note, "reconstructed on") || math.IsNaN(c.Accuracy.Drop) {
		t.Fatalf("pruned candidate %+v", c)
	}
}

// TestPruneDistilled adds a distillation-recovered pruned candidate from
// --train (64 MNIST training images, one epoch): its recipe and note say
// how it was made and its accuracy is measured; without --train it is
// skipped with the reason.
func TestPruneDistilled(t *testing.T) {
	dir := filepath.Join(testutil.ModelsDir(t), "mnist")
	mn := testutil.MNISTDir(t)
	o := Options{
		Model: filepath.Join(dir, "model.onnx"), Out: t.TempDir(), Backends: []string{"interp"},
		Variants: []string{"original", "prune-0.5-distill"}, PruneRatios: []float64{0.5},
		Train: filepath.Join(mn, "train-images-idx3-ubyte.gz"), TrainSamples: 64,
		ShortIters: 4, LongIters: 6, Rounds: 2, Constraints: Constraints{MaxDrop: -1}, RemeasureIters: -1,
	}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Candidate("prune-0.5-distill@interp")
	if c == nil {
		t.Fatalf("no distilled candidate; skipped %+v", rep.Skipped)
	}
	if !strings.Contains(c.Recipe, "distill --train --epochs 1") || !strings.Contains(c.Note, "distilled 1 epoch(s) on 64 --train samples") || math.IsNaN(c.Accuracy.Drop) {
		t.Fatalf("distilled candidate %+v", c)
	}
	o.Train, o.Out = "", t.TempDir()
	rep, err = Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(rep.Skipped, func(s Skipped) bool {
		return s.ID == "prune-0.5-distill" && strings.Contains(s.Reason, "--train")
	}) {
		t.Fatalf("without --train: skipped %+v", rep.Skipped)
	}
}
