package quant

import (
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/testmodels"
)

func TestFP16(t *testing.T) {
	cases := []struct {
		name  string
		model func() *graph.Model
		batch int
		// kept lists ops that must still read float32 after conversion
		kept []string
	}{
		{"mlp", testmodels.MLP, 8, nil},
		{"cnn", testmodels.CNN, 2, []string{"BatchNormalization"}},
		{"transformer", testmodels.TransformerEncoder, 2, []string{"Softmax", "ReduceMean"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.model()
			q, rep, err := FP16(m, FP16Options{KeepIO: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Quantized) == 0 {
				t.Fatalf("nothing converted:\n%s", rep)
			}
			halfInits := 0
			for _, in := range q.Graph.Initializers {
				if in.DType == graph.Float16 {
					halfInits++
				}
			}
			if halfInits == 0 {
				t.Fatal("no float16 initializers")
			}
			for _, op := range tc.kept {
				found := false
				for _, s := range rep.Skipped {
					found = found || len(s.Node) >= len(op) && s.Node[:len(op)] == op
				}
				if !found {
					t.Errorf("%s not reported as kept in float32:\n%s", op, rep)
				}
			}
			samples := seeded(t, m, 3, tc.batch, 7)
			ref := runSamples(t, open(t, "interp", m), samples)
			for _, be := range []string{"interp", "ort"} {
				got := runSamples(t, open(t, be, q), samples)
				acc := accuracy(t, ref, got)
				if acc.Cosine == nil || *acc.Cosine < 0.999 {
					t.Errorf("%s: cosine %v < 0.999", be, acc.Cosine)
				}
				// top-1 only for class vectors: the transformer's [N,T,D] has none
				if class := tc.name != "transformer"; class && (acc.Top1Agreement == nil || *acc.Top1Agreement < 0.95) || !class && acc.Top1Agreement != nil {
					t.Errorf("%s: top-1 agreement %v (class output %v)", be, deref(acc.Top1Agreement), class)
				}
				if acc.Cosine != nil {
					t.Logf("%s: cosine %.6f sqnr %.1f dB", be, *acc.Cosine, deref(acc.SQNRdB))
				}
			}
		})
	}
}

func TestFP16NoKeepIO(t *testing.T) {
	q, _, err := FP16(testmodels.MLP(), FP16Options{})
	if err != nil {
		t.Fatal(err)
	}
	if q.Graph.Inputs[0].DType != graph.Float16 || q.Graph.Outputs[0].DType != graph.Float16 {
		t.Fatalf("io not float16: %s %s", q.Graph.Inputs[0].TypeString(), q.Graph.Outputs[0].TypeString())
	}
	s := open(t, "ort", q)
	if s.Inputs()[0].DType != graph.Float16 {
		t.Fatalf("ort sees input %s", s.Inputs()[0].DType)
	}
}
