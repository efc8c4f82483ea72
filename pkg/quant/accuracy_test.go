package quant

import (
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/testmodels"
)

func TestControlled(t *testing.T) {
	m := testmodels.MLP()
	samples := seeded(t, m, 4, 16, 7)
	calib := seeded(t, m, 4, 16, 1000)
	tests := []struct {
		name      string
		quantize  QuantizeFunc
		maxDrop   float64
		met       bool
		leftFloat int
	}{
		{"dynamic/loose", func(ex []string) (*graph.Model, *Report, error) {
			return Dynamic(m, DynamicOptions{ExcludeNodes: ex})
		}, 5, true, 0},
		// an impossible limit puts every node back, worst SQNR first
		{"dynamic/impossible", func(ex []string) (*graph.Model, *Report, error) {
			return Dynamic(m, DynamicOptions{ExcludeNodes: ex})
		}, -1, false, 3},
		{"static/impossible", func(ex []string) (*graph.Model, *Report, error) {
			return Static(m, calib, StaticOptions{ExcludeNodes: ex})
		}, -1, false, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, rep, res, err := Controlled(m, tc.quantize, "interp", samples, nil, tc.maxDrop)
			if err != nil {
				t.Fatal(err)
			}
			if res.Met != tc.met || len(rep.LeftInFloat) != tc.leftFloat {
				t.Fatalf("met %v, left in float %v; want %v, %d\n%s", res.Met, rep.LeftInFloat, tc.met, tc.leftFloat, rep)
			}
			if len(res.LayerSQNR) != 3 {
				t.Fatalf("layer SQNR for %d nodes", len(res.LayerSQNR))
			}
			for i := 1; i < len(res.LayerSQNR); i++ {
				if res.LayerSQNR[i].DB < res.LayerSQNR[i-1].DB {
					t.Fatalf("ranking not worst first: %v", res.LayerSQNR)
				}
			}
			if tc.leftFloat > 0 {
				if rep.Int8Ops != 0 || rep.LeftInFloat[0] != res.LayerSQNR[0].Node {
					t.Fatalf("int8 ops %d, first put back %s (worst %s)", rep.Int8Ops, rep.LeftInFloat[0], res.LayerSQNR[0].Node)
				}
				if res.Drop != 0 {
					t.Fatalf("all-float model drops %v points", res.Drop)
				}
			}
			if err := q.Verify(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
