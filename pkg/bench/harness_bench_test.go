package bench

import (
	"context"
	"testing"

	"github.com/optictl/optictl/pkg/runtime"
)

// BenchmarkHarnessOverhead is the per-inference cost of the closed-loop
// harness around a session that does nothing: two clock reads, an atomic
// decrement and an append per iteration (goal: under 1 us).
func BenchmarkHarnessOverhead(b *testing.B) {
	in := []*runtime.Tensor{runtime.FromFloat32([]int64{1, 4}, make([]float32, 4))}
	w := []Worker{{Session: &noopSession{out: in}, Inputs: in}}
	b.ReportAllocs()
	b.ResetTimer()
	run, err := Measure(context.Background(), w, Load{}, b.N, 0)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if len(run.Latencies) != b.N {
		b.Fatalf("%d latencies for %d iterations", len(run.Latencies), b.N)
	}
}
