//go:build linux

package interp

import (
	"context"
	"path/filepath"
	goruntime "runtime"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/testmodels"
)

// perfSetAll switches every perf_* fast path on or off.
func perfSetAll(on bool) {
	perfFuseOn, perfDirectOn, perfDWOn, perfChanOn, perfPoolOn = on, on, on, on, on
}

// BenchmarkPerfModelsCPU times whole models at 1 thread with the perf_*
// fast paths off ("base") and on ("perf"), in interleaved blocks, by the
// thread's CPU time (steadier than wall time on a shared machine):
//
//	go test -run XXX -bench PerfModelsCPU -benchtime=200x ./pkg/runtime/interp
func BenchmarkPerfModelsCPU(b *testing.B) {
	type model struct {
		name string
		m    func(b *testing.B) (*graph.Model, []*runtime.Tensor)
	}
	shared := func(name string) func(b *testing.B) (*graph.Model, []*runtime.Tensor) {
		return func(b *testing.B) (*graph.Model, []*runtime.Tensor) {
			dir := filepath.Join(testutil.ModelsDir(b), name)
			m, err := graph.Load(filepath.Join(dir, "model.onnx"))
			if err != nil {
				testutil.Missing(b, dir)
			}
			return m, nnBenchInputs(b, dir)
		}
	}
	gen := func(name string, xs []int64) func(b *testing.B) (*graph.Model, []*runtime.Tensor) {
		return func(b *testing.B) (*graph.Model, []*runtime.Tensor) {
			x := runtime.NewTensor(graph.Float, xs)
			for i := range x.Float32s() {
				x.Float32s()[i] = float32(i%17)/8 - 1
			}
			return testmodels.All()[name](), []*runtime.Tensor{x}
		}
	}
	for _, tc := range []model{
		{"mnist", shared("mnist")}, {"ppocr-cls", shared("ppocr-cls")},
		{"cnn", gen("cnn", []int64{1, 3, 32, 32})}, {"dwsep", gen("dwsep", []int64{1, 16, 32, 32})},
		{"transformer", gen("transformer", []int64{1, 16, 64})},
	} {
		b.Run(tc.name, func(b *testing.B) {
			defer perfSetAll(true)
			m, ins := tc.m(b)
			abCPU(b, m, ins, perfSetAll, "perf")
		})
	}
}

// abCPU times session A (set(false) at Open and around each block) against
// session B (set(true)) on one model, interleaved in blocks of 10 runs on
// one locked OS thread, by thread CPU time (steadier than wall time on a
// shared machine), and reports base-cpu-ns/op, NAME-cpu-ns/op and speedup.
func abCPU(b *testing.B, m *graph.Model, ins []*runtime.Tensor, set func(bool), name string) {
	var sess [2]*Session
	for i := range sess {
		set(i == 1)
		s, err := Open(m, runtime.Options{Threads: 1})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Run(context.Background(), ins); err != nil {
			b.Fatal(err)
		}
		sess[i] = s
	}
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	var cpu [2]int64
	const block = 10
	b.ResetTimer()
	for done := 0; done < b.N; done += block {
		for i, s := range sess {
			set(i == 1)
			t0 := seqThreadCPU()
			for k := 0; k < block && done+k < b.N; k++ {
				if _, err := s.Run(context.Background(), ins); err != nil {
					b.Fatal(err)
				}
			}
			cpu[i] += seqThreadCPU() - t0
		}
	}
	b.ReportMetric(float64(cpu[0])/float64(b.N), "base-cpu-ns/op")
	b.ReportMetric(float64(cpu[1])/float64(b.N), name+"-cpu-ns/op")
	if cpu[1] > 0 {
		b.ReportMetric(float64(cpu[0])/float64(cpu[1]), "speedup")
	}
}
