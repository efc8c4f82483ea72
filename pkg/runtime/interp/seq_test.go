package interp

import (
	"context"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tensorio"
)

// seqOwnOps are the ops this file's kernels implement.
var seqOwnOps = map[string]bool{"LSTM": true, "GRU": true, "RNN": true, "If": true, "Loop": true, "Scan": true}

// seqCompare checks got against want within rtol/atol and returns a
// description of the first mismatch, or "".
func seqCompare(got, want *runtime.Tensor, rtol, atol float64) string {
	if got.DType != want.DType {
		return "dtype " + got.DType.String() + ", want " + want.DType.String()
	}
	if !seqSameShape(got.Shape, want.Shape) {
		return "shape " + runtime.ShapeString(got.Shape) + ", want " + runtime.ShapeString(want.Shape)
	}
	if got.DType == graph.String {
		for i := range got.Strings {
			if got.Strings[i] != want.Strings[i] {
				return "string mismatch"
			}
		}
		return ""
	}
	g, err := got.AsFloat64()
	if err != nil {
		return err.Error()
	}
	w, err := want.AsFloat64()
	if err != nil {
		return err.Error()
	}
	for i := range g {
		if math.IsNaN(w[i]) && math.IsNaN(g[i]) {
			continue
		}
		if d := math.Abs(g[i] - w[i]); !(d <= atol+rtol*math.Abs(w[i])) {
			return "element " + itoa(i) + ": got " + ftoa(g[i]) + ", want " + ftoa(w[i])
		}
	}
	return ""
}

func itoa(i int) string     { return strconv.Itoa(i) }
func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', 7, 64) }

// seqLoadInputs reads a data set's inputs in the session's input order.
func seqLoadInputs(s *Session, dir string) ([]*runtime.Tensor, error) {
	var in []string
	for _, v := range s.Inputs() {
		in = append(in, v.Name)
	}
	ds, err := tensorio.LoadDataSet(dir, in, nil)
	if err != nil {
		return nil, err
	}
	args := make([]*runtime.Tensor, len(ds.Inputs))
	for i, nt := range ds.Inputs {
		args[i] = nt.Tensor
	}
	return args, nil
}

// seqRunDataSet runs one model on one test_data_set folder and compares.
func seqRunDataSet(t *testing.T, m *graph.Model, s *Session, dir string, rtol, atol float64) {
	t.Helper()
	var in, out []string
	for _, v := range s.Inputs() {
		in = append(in, v.Name)
	}
	for _, v := range s.Outputs() {
		out = append(out, v.Name)
	}
	ds, err := tensorio.LoadDataSet(dir, in, out)
	if err != nil {
		t.Fatal(err)
	}
	args := make([]*runtime.Tensor, len(ds.Inputs))
	for i, nt := range ds.Inputs {
		args[i] = nt.Tensor
	}
	res, err := s.Run(context.Background(), args)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	if len(res) < len(ds.Outputs) {
		t.Fatalf("%s: %d outputs, want %d", dir, len(res), len(ds.Outputs))
	}
	for i, want := range ds.Outputs {
		if msg := seqCompare(res[i], want.Tensor, rtol, atol); msg != "" {
			t.Errorf("%s: output %d (%s): %s", filepath.Base(dir), i, out[i], msg)
		}
	}
}

// TestSeqConformance runs the ONNX node tests of the ops in seq_*.go.
// Tests whose subgraphs use ops not registered yet (other helpers' kernels)
// are skipped with the missing ops named; sequence-typed tests are skipped
// because runtime.Tensor has no sequence type.
func TestSeqConformance(t *testing.T) {
	root := testutil.ConformanceDir(t)
	var dirs []string
	for _, pre := range []string{"test_lstm", "test_gru", "test_rnn", "test_simple_rnn", "test_if", "test_loop", "test_scan"} {
		m, _ := filepath.Glob(filepath.Join(root, pre+"*"))
		dirs = append(dirs, m...)
	}
	if len(dirs) < 20 {
		t.Fatalf("found only %d conformance tests for seq ops", len(dirs))
	}
	passed := 0
	for _, d := range dirs {
		name := filepath.Base(d)
		t.Run(name, func(t *testing.T) {
			switch name {
			case "test_if_seq", "test_if_opt", "test_loop13_seq", "test_loop16_seq_none":
				t.Skip("sequence/optional-typed test: runtime.Tensor has no sequence type")
			}
			m, err := graph.Load(filepath.Join(d, "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			seqShim(m)
			s, err := Open(m, runtime.Options{Threads: 1})
			if err != nil {
				if bad, _ := unsupportedOps(m.Graph); len(bad) > 0 {
					for _, b := range bad {
						if seqOwnOps[strings.Fields(b)[0]] {
							t.Fatalf("own op unsupported: %v", err)
						}
					}
					t.Skipf("needs other helpers' ops: %v", bad)
				}
				t.Fatal(err)
			}
			sets, _ := filepath.Glob(filepath.Join(d, "test_data_set_*"))
			for _, ds := range sets {
				seqRunDataSet(t, m, s, ds, 1e-3, 1e-4)
			}
			if !t.Failed() {
				passed++
			}
		})
	}
	t.Logf("seq conformance: %d of %d passed", passed, len(dirs))
}

// seqReportCPU reports the thread CPU time per op since cpu0 as
// "cpu-ns/op" (the goroutine must be locked to its thread) and returns it;
// 0 when the platform does not tell.
func seqReportCPU(b *testing.B, cpu0 int64) float64 {
	if cpu0 == 0 || b.N == 0 {
		return 0
	}
	ns := float64(seqThreadCPU()-cpu0) / float64(b.N)
	b.ReportMetric(ns, "cpu-ns/op")
	return ns
}
