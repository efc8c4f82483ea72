package quant

import (
	"errors"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/testmodels"
)

func TestDynamic(t *testing.T) {
	cases := []struct {
		name      string
		model     func() *graph.Model
		batch     int
		quantized int     // nodes expected to be rewritten
		minTop1   float64 // < 0: not a class output, top-1 must not be reported
	}{
		{"mlp", testmodels.MLP, 16, 3, 0.95},
		{"transformer", testmodels.TransformerEncoder, 2, 6, -1},
	}
	for _, tc := range cases {
		for _, full := range []bool{false, true} {
			name := tc.name
			if full {
				name += "/full-range"
			}
			t.Run(name, func(t *testing.T) {
				m := tc.model()
				before := m.Format()
				q, rep, err := Dynamic(m, DynamicOptions{FullRange: full})
				if err != nil {
					t.Fatal(err)
				}
				if m.Format() != before {
					t.Fatal("Dynamic modified its input model")
				}
				if len(rep.Quantized) != tc.quantized || rep.Int8Ops != tc.quantized {
					t.Fatalf("quantized %d nodes (%d int8 ops), want %d\n%s", len(rep.Quantized), rep.Int8Ops, tc.quantized, rep)
				}
				samples := seeded(t, m, 4, tc.batch, 7)
				ref := runSamples(t, open(t, "interp", m), samples)
				gotI := runSamples(t, open(t, "interp", q), samples)
				acc := accuracy(t, ref, gotI)
				if acc.Cosine == nil || *acc.Cosine < 0.99 {
					t.Errorf("interp cosine %v < 0.99", acc.Cosine)
				}
				switch {
				case tc.minTop1 < 0 && acc.Top1Agreement != nil:
					t.Errorf("top-1 agreement %v reported for a [N,T,D] output", *acc.Top1Agreement)
				case tc.minTop1 >= 0 && (acc.Top1Agreement == nil || *acc.Top1Agreement < tc.minTop1):
					t.Errorf("interp top-1 agreement %v < %v", acc.Top1Agreement, tc.minTop1)
				}
				gotO := runSamples(t, open(t, "ort", q), samples)
				accO := accuracy(t, ref, gotO)
				if accO.Cosine == nil || *accO.Cosine < 0.99 {
					t.Errorf("ort cosine %v < 0.99", accO.Cosine)
				}
				// With full-range weights ORT's AVX2 kernels saturate (see
				// DynamicOptions.FullRange): only the default is held to
				// backend agreement.
				if d, lim := maxDiff(gotI, gotO), DefaultBackendATol*maxAbs(ref); d > lim && !full {
					t.Errorf("interp and ort differ by %g > %g", d, lim)
				}
				t.Logf("cosine interp %.5f ort %.5f, top-1 %.3f, sqnr %.1f dB", *acc.Cosine, *accO.Cosine, deref(acc.Top1Agreement), deref(acc.SQNRdB))
			})
		}
	}
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

func TestDynamicSkips(t *testing.T) {
	m := testmodels.MLP()
	q, rep, err := Dynamic(m, DynamicOptions{ExcludeNodes: []string{m.Graph.Nodes[0].Name}, OpTypes: []string{"Gemm"}})
	if err != nil {
		t.Fatal(err)
	}
	// fc1 excluded by name, fc2 is MatMul (not allowed): only fc3 left.
	if len(rep.Quantized) != 1 || len(rep.Skipped) != 2 || rep.FloatOps != 2 {
		t.Fatalf("unexpected report:\n%s", rep)
	}
	if err := q.Verify(); err != nil {
		t.Fatal(err)
	}
	// an old opset made of ops that mean the same at 13: raised, then quantized
	old := testmodels.MLP()
	old.SetOpset("", 10)
	q, rep, err = Dynamic(old, DynamicOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Quantized) != 3 || q.Opset("") != 13 || old.Opset("") != 10 {
		t.Fatalf("opset 10 model: %d quantized, opset %d (input now %d)\n%s", len(rep.Quantized), q.Opset(""), old.Opset(""), rep)
	}
	// an old opset with a node the version converter refuses (Dropout-7's
	// mask, read as a graph output, changes type at 10): nothing is done,
	// the report says why, and NothingQuantized names it
	bad := testmodels.MLP()
	bad.SetOpset("", 9)
	bad.Graph.Nodes = append(bad.Graph.Nodes, &graph.Node{Name: "drop", OpType: "Dropout", Inputs: []string{"logits"}, Outputs: []string{"d_out", "d_mask"}})
	bad.Graph.Outputs = append(bad.Graph.Outputs, &graph.ValueInfo{Name: "d_mask", DType: graph.Float, HasType: true})
	_, rep, err = Dynamic(bad, DynamicOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Quantized) != 0 || !strings.Contains(rep.String(), `version converter refused: opset: Dropout "drop" cannot be converted from opset 9 to 10`) {
		t.Fatalf("opset 9 model with a Dropout mask quantized:\n%s", rep)
	}
	if err := rep.NothingQuantized(); !errors.Is(err, ErrNothingQuantized) || !strings.Contains(err.Error(), `Dropout "drop"`) {
		t.Errorf("NothingQuantized: %v", err)
	}
	// an old opset with Unsqueeze-1 (axes attribute): converted, quantized
	ok := testmodels.MLP()
	ok.SetOpset("", 10)
	ok.Graph.Nodes = append(ok.Graph.Nodes, &graph.Node{Name: "u", OpType: "Unsqueeze", Inputs: []string{"logits"}, Outputs: []string{"u_out"},
		Attrs: []*graph.Attr{graph.IntsAttr("axes", 0)}})
	_, rep, err = Dynamic(ok, DynamicOptions{})
	if err != nil || len(rep.Quantized) != 3 || !strings.Contains(rep.String(), "Unsqueeze@13 x1") || rep.NothingQuantized() != nil {
		t.Fatalf("opset 10 model with Unsqueeze: %v\n%s", err, rep)
	}
}
