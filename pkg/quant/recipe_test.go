package quant

import (
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/testmodels"
)

// TestRecipeRegistry: every registered recipe is documented, looked up by
// name, and quantizes a test model; an unknown name lists the valid ones.
func TestRecipeRegistry(t *testing.T) {
	names := RecipeNames()
	if strings.Join(names, ",") != "fp16,int8-auto,int8-dynamic,int8-mixed,int8-static" {
		t.Errorf("recipes %v", names)
	}
	if _, err := LookupRecipe("int4"); err == nil || !strings.Contains(err.Error(), strings.Join(names, ", ")) {
		t.Errorf("unknown recipe: %v", err)
	}
	if _, err := LookupTarget("tpu"); err == nil || !strings.Contains(err.Error(), "fpga, ort-cpu") {
		t.Errorf("unknown target: %v", err)
	}
	m := testmodels.TransformerEncoder()
	calib := seeded(t, m, 4, 1, 1000)
	for _, r := range Recipes() {
		t.Run(r.Name, func(t *testing.T) {
			if r.Title() == "" || len(r.Title()) > 110 {
				t.Errorf("title %q", r.Title())
			}
			o := RecipeOptions{Calib: calib, PerChannel: true, Asymmetric: true, KeepIO: true}
			if r.Search() {
				vs := r.Variants(m, o)
				if len(vs) < 2 {
					t.Fatalf("%d variants", len(vs))
				}
				return
			}
			if r.Name == "int8-mixed" {
				open(t, "ort", m).Close() // it profiles on ORT: skips (fails in CI) without it
			}
			q, rep, err := r.Quantize(m, o)
			if err != nil {
				t.Fatal(err)
			}
			if r.Name == "int8-mixed" {
				// what pays depends on the CPU: every layer is profiled
				// and decided, with a reason
				if len(rep.Profile) == 0 {
					t.Fatal("int8-mixed: no per-layer profile")
				}
				for _, l := range rep.Profile {
					if l.Why == "" {
						t.Errorf("%s: no reason", l.Node)
					}
				}
				return
			}
			if err := rep.NothingQuantized(); err != nil {
				t.Fatal(err)
			}
			if err := q.Verify(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestTargetPlacement: the target is a parameter of QDQ placement. On the
// transformer, ort-cpu lets MatMul/Gemm read by float ops end the int8
// region with a float output; fpga quantizes every quantized op's output
// and keeps MatMul of two activations in float (no engine for it).
func TestTargetPlacement(t *testing.T) {
	m := testmodels.TransformerEncoder()
	calib := seeded(t, m, 4, 1, 1000)
	ref := runSamples(t, open(t, "interp", m), calib[:1])
	stats := map[string][2]int{}
	for _, target := range []string{"ort-cpu", "fpga"} {
		q, rep, err := Static(m, calib, StaticOptions{PerChannel: true, Asymmetric: true, Target: target})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Target != target {
			t.Errorf("report target %q", rep.Target)
		}
		prod := q.Graph.Producers()
		cons := q.Graph.Consumers()
		floatOut, actMatMul := 0, 0
		for _, n := range q.Graph.Nodes {
			if !n.Is("MatMul") && !n.Is("Gemm") {
				continue
			}
			dq := func(i int) bool { p := prod[n.Inputs[i]]; return p != nil && p.Is("DequantizeLinear") }
			if !dq(0) {
				continue // left in float
			}
			if n.Is("MatMul") && dq(1) && q.Graph.Initializer(prod[n.Inputs[1]].Inputs[0]) == nil {
				actMatMul++
			}
			c := cons[n.Outputs[0]]
			if !q.Graph.IsGraphOutput(n.Outputs[0]) && (len(c) != 1 || !c[0].Is("QuantizeLinear")) {
				floatOut++
			}
		}
		stats[target] = [2]int{floatOut, actMatMul}
		acc := accuracy(t, ref, runSamples(t, open(t, "interp", q), calib[:1]))
		if acc.Cosine == nil || *acc.Cosine < 0.98 {
			t.Errorf("%s: cosine %v against fp32", target, deref(acc.Cosine))
		}
	}
	if s := stats["ort-cpu"]; s[0] == 0 {
		t.Errorf("ort-cpu: %d float-output MatMul/Gemm; want some (MatMulIntegerToFloat/QGemm keep ORT's float fusions)", s[0])
	}
	if s := stats["fpga"]; s[0] != 0 || s[1] != 0 {
		t.Errorf("fpga: %d float-output MatMul/Gemm, %d int8 activation MatMuls; want none", s[0], s[1])
	}
	if _, _, err := Static(m, calib, StaticOptions{Target: "tpu"}); err == nil {
		t.Error("unknown target accepted")
	}
}

// TestStaticOldOpsetReduceMean: an opset-9 model with a ReduceMean (whose
// meaning changes at 18, not 13) is converted to 13 by the version
// converter and quantized per channel; the report says so.
func TestStaticOldOpsetReduceMean(t *testing.T) {
	m := testmodels.CNN()
	m.SetOpset("", 9)
	m.Graph.Nodes = append(m.Graph.Nodes, &graph.Node{Name: "mean", OpType: "ReduceMean", Inputs: []string{"logits"}, Outputs: []string{"mean"},
		Attrs: []*graph.Attr{graph.IntsAttr("axes", 1)}})
	m.Graph.Outputs = append(m.Graph.Outputs, &graph.ValueInfo{Name: "mean", DType: graph.Float, HasType: true})
	calib := seeded(t, m, 4, 1, 1000)
	q, rep, err := Static(m, calib, StaticOptions{PerChannel: true, Asymmetric: true})
	if err != nil {
		t.Fatal(err)
	}
	if q.Opset("") != 13 || rep.NothingQuantized() != nil || !strings.Contains(rep.String(), "default opset converted from 9 to 13 by the version converter") {
		t.Fatalf("opset %d\n%s", q.Opset(""), rep)
	}
	ref := runSamples(t, open(t, "interp", m), calib[:1])
	got := runSamples(t, open(t, "interp", q), calib[:1])
	if acc := accuracy(t, ref, got); acc.Cosine == nil || *acc.Cosine < 0.99 {
		t.Errorf("cosine %v", deref(acc.Cosine))
	}
}
