package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/optictl/optictl/pkg/numerics"
)

func fp(v float64) *float64 { return &v }

func gateReport() *Report {
	return &Report{
		Models: []ModelInfo{
			{Variant: "ref", Reference: true, Accuracy: numerics.Accuracy{Samples: 4, Top1Agreement: fp(1), Top1Accuracy: fp(0.9)}},
			{Variant: "fast", Accuracy: numerics.Accuracy{Samples: 4, Top1Agreement: fp(0.95), Top1Accuracy: fp(0.88)}},
			{Variant: "broken", AccuracyError: "inputs differ"},
		},
		Results: []Result{
			{Variant: "ref", Reference: true, Batch: 1, Concurrency: 1, LatencyMS: Summary{P50: 10, P99: 20}, ThroughputPerS: 100, Speedup: 1,
				Accuracy: numerics.Accuracy{Samples: 4, Top1Agreement: fp(1), Top1Accuracy: fp(0.9)}},
			{Variant: "fast", Batch: 1, Concurrency: 1, LatencyMS: Summary{P50: 5, P99: 8}, ThroughputPerS: 200, Speedup: 2,
				Accuracy: numerics.Accuracy{Samples: 4, Top1Agreement: fp(0.95), Top1Accuracy: fp(0.88)}},
			{Variant: "broken", Batch: 1, Concurrency: 1, LatencyMS: Summary{P50: 12, P99: 30}, ThroughputPerS: 80, Speedup: 10.0 / 12},
		},
	}
}

func TestGates(t *testing.T) {
	cases := []struct {
		name   string
		gates  Gates
		failed []string // "gate variant"
	}{
		{"none", Gates{}, nil},
		{"p99 loose", Gates{MaxP99: time.Second}, nil},
		{"p99 tight", Gates{MaxP99: 10 * time.Millisecond}, []string{"max-p99 broken"}},
		{"p99 at the limit passes", Gates{MaxP99: 8 * time.Millisecond}, []string{"max-p99 broken"}},
		{"p50", Gates{MaxP50: 6 * time.Millisecond}, []string{"max-p50 broken"}},
		{"speedup", Gates{MinSpeedup: 1.5}, []string{"min-speedup broken"}},
		{"throughput", Gates{MinThroughput: 150}, []string{"min-throughput broken"}},
		// fast: 90% - 88% = 2 pp; broken: not measured.
		{"accuracy drop 3pp", Gates{MaxAccuracyDrop: 3, AccuracyDropSet: true}, []string{"max-accuracy-drop broken"}},
		{"accuracy drop 1pp", Gates{MaxAccuracyDrop: 1, AccuracyDropSet: true}, []string{"max-accuracy-drop fast", "max-accuracy-drop broken"}},
		{"accuracy drop 0 is a gate", Gates{AccuracyDropSet: true}, []string{"max-accuracy-drop fast", "max-accuracy-drop broken"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := c.gates.Check(gateReport())
			var failed []string
			for _, r := range res {
				if r.Variant == "ref" {
					t.Fatalf("the reference was gated: %+v", r)
				}
				if !r.Passed {
					failed = append(failed, r.Gate+" "+r.Variant)
				}
			}
			if strings.Join(failed, ",") != strings.Join(c.failed, ",") {
				t.Fatalf("failed %v, want %v", failed, c.failed)
			}
			if c.gates.Any() != (len(res) > 0) {
				t.Fatalf("Any() = %v with %d outcomes", c.gates.Any(), len(res))
			}
		})
	}
}

func TestGateSingleModelAndLine(t *testing.T) {
	rep := gateReport()
	rep.Models, rep.Results = rep.Models[:1], rep.Results[:1]
	res := Gates{MaxP99: 15 * time.Millisecond, MinSpeedup: 2}.Check(rep)
	if len(res) != 1 || res[0].Variant != "ref" || res[0].Passed {
		t.Fatalf("a single model is gated on latency, not speedup: %+v", res)
	}
	line := res[0].String()
	for _, want := range []string{"max-p99", "FAILED", "ref", "measured 20 ms", "limit 15 ms"} {
		if !strings.Contains(line, want) {
			t.Fatalf("line %q lacks %q", line, want)
		}
	}
	drop := Gates{MaxAccuracyDrop: 1, AccuracyDropSet: true}.Check(gateReport())
	if !strings.Contains(drop[1].String(), "not measured: inputs differ") {
		t.Fatalf("line %q", drop[1].String())
	}
	// Without labels the drop is the top-1 disagreement.
	d, how, ok := accuracyDrop(numerics.Accuracy{Top1Agreement: fp(1)}, numerics.Accuracy{Top1Agreement: fp(0.97)})
	if !ok || !near(d, 3, 1e-9) || !strings.Contains(how, "disagreement") {
		t.Fatalf("drop %v %q %v", d, how, ok)
	}
}
