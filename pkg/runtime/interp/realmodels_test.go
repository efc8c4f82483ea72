package interp

import (
	"context"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// realModelTol holds per-model tolerances; the default is the issue's
// rtol 1e-3 / atol 1e-4. Any entry here must say why it is wider.
var realModelTol = map[string][2]float64{}

// ortOnlyModels are models whose com.microsoft fused ops only ONNX Runtime
// runs; interp must refuse them at Open, naming those ops.
var ortOnlyModels = map[string]bool{"tiny-gpt2-ortfused": true}

// TestRealModels runs every real model under ../shared/models that has
// test_data_set_* folders and compares interp's outputs with the
// references (computed by ONNX Runtime).
func TestRealModels(t *testing.T) {
	models := testutil.RealModels(t)
	var names []string
	for _, dir := range models {
		sets, _ := filepath.Glob(filepath.Join(dir, "test_data_set_*"))
		if len(sets) > 0 {
			names = append(names, dir)
		}
	}
	if len(names) < 9 {
		t.Fatalf("found %d real models with test data under %s, want at least 9", len(names), testutil.ModelsDir(t))
	}
	for _, dir := range names {
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			m, err := graph.Load(filepath.Join(dir, "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(m, runtime.Options{Threads: 1})
			if ortOnlyModels[name] {
				if err == nil {
					t.Fatalf("interp opened %s, whose com.microsoft ops it should not claim to run", name)
				}
				if !strings.Contains(err.Error(), "unsupported ops") || !strings.Contains(err.Error(), "com.microsoft.") {
					t.Fatalf("Open error does not list the com.microsoft ops: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			tol, ok := realModelTol[name]
			if !ok {
				tol = [2]float64{1e-3, 1e-4}
			}
			sets, _ := filepath.Glob(filepath.Join(dir, "test_data_set_*"))
			sort.Strings(sets)
			for _, ds := range sets {
				seqRunDataSet(t, m, s, ds, tol[0], tol[1])
			}
		})
	}
}

// realModelBench opens a model at 1 thread with its first data set.
func realModelBench(b testing.TB, name string) (*Session, []*runtime.Tensor) {
	b.Helper()
	dir := filepath.Join(testutil.ModelsDir(b), name)
	if _, err := os.Stat(dir); err != nil {
		testutil.Missing(b, dir)
	}
	m, err := graph.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(m, runtime.Options{Threads: 1})
	if err != nil {
		b.Skipf("%s: %v", name, err)
	}
	in, err := seqLoadInputs(s, filepath.Join(dir, "test_data_set_0"))
	if err != nil {
		b.Fatal(err)
	}
	return s, in
}

// BenchmarkRealModels measures one inference at 1 thread:
//
//	go test ./pkg/runtime/interp -run '^$' -bench RealModels -benchmem
func BenchmarkRealModels(b *testing.B) {
	for _, name := range []string{"silero-vad-v5", "silero-vad-16k-op15", "gonnx-ndm", "gonnx-gru", "mnist"} {
		b.Run(name, func(b *testing.B) {
			s, in := realModelBench(b, name)
			ctx := context.Background()
			if _, err := s.Run(ctx, in); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			goruntime.LockOSThread()
			defer goruntime.UnlockOSThread()
			b.ResetTimer()
			cpu0 := seqThreadCPU()
			for i := 0; i < b.N; i++ {
				if _, err := s.Run(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
			seqReportCPU(b, cpu0)
		})
	}
}
