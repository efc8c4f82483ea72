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
		// an impossible limit puts every node but one back, worst SQNR
		// first (a model with nothing quantized is no answer)
		{"dynamic/impossible", func(ex []string) (*graph.Model, *Report, error) {
			return Dynamic(m, DynamicOptions{ExcludeNodes: ex})
		}, -1, false, 2},
		{"static/impossible", func(ex []string) (*graph.Model, *Report, error) {
			return Static(m, calib, StaticOptions{ExcludeNodes: ex})
		}, -1, false, 2},
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
			if res.Metric != "agreement" {
				t.Fatalf("metric %s for the MLP's class vectors, want agreement", res.Metric)
			}
			if len(res.Tried) == 0 || res.Tried[len(res.Tried)-1].Verdict != res.Verdict {
				t.Fatalf("tried %+v, verdict %+v", res.Tried, res.Verdict)
			}
			if len(res.LayerSQNR) != 3 && !tc.met {
				t.Fatalf("layer SQNR for %d nodes", len(res.LayerSQNR))
			}
			for i := 1; i < len(res.LayerSQNR); i++ {
				if res.LayerSQNR[i].DB < res.LayerSQNR[i-1].DB {
					t.Fatalf("ranking not worst first: %v", res.LayerSQNR)
				}
			}
			if tc.leftFloat > 0 {
				if rep.Int8Ops == 0 || rep.LeftInFloat[0] != res.LayerSQNR[0].Node || rep.LeftInFloat[1] != res.LayerSQNR[1].Node {
					t.Fatalf("int8 ops %d, put back %v (worst first %v)", rep.Int8Ops, rep.LeftInFloat, res.LayerSQNR)
				}
				// 0, 1, 2 nodes in float: the growth stops at n-1
				if len(res.Tried) != 3 {
					t.Fatalf("tried %+v", res.Tried)
				}
			}
			if err := q.Verify(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
