//go:build linux

package interp

import (
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/testmodels"
)

// BenchmarkPerf2CPU times testmodels' transformer at 1 thread with the
// perf2_* changes off ("base": math.Erf, math.Exp, scalar packing, no
// GELU/LayerNorm fusion) and on ("perf2"), every other fast path on, in
// interleaved blocks, by the thread's CPU time:
//
//	go test -run XXX -bench Perf2CPU -benchtime=2000x ./pkg/runtime/interp
func BenchmarkPerf2CPU(b *testing.B) {
	for _, name := range []string{"transformer", "transformer_ln17"} {
		b.Run(name, func(b *testing.B) {
			defer func() { perf2FastOn, perf2FuseOn = true, true }()
			set := func(on bool) { perf2FastOn, perf2FuseOn = on, on }
			m := testmodels.All()[name]()
			x := runtime.NewTensor(graph.Float, []int64{1, 16, 64})
			for i := range x.Float32s() {
				x.Float32s()[i] = float32(i%17)/8 - 1
			}
			ins := []*runtime.Tensor{x}
			abCPU(b, m, ins, set, "perf2")
		})
	}
}
