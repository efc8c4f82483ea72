package opset

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/conformance"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/runtime/ort"
	"github.com/optictl/optictl/pkg/tensorio"
)

// runSet runs a model on one test_data_set folder.
func runSet(backend string, m *graph.Model, set string) ([]*runtime.Tensor, []tensorio.Named, error) {
	s, err := runtime.Open(backend, m, runtime.Options{Threads: 1})
	if err != nil {
		return nil, nil, err
	}
	defer s.Close()
	var inNames []string
	for _, in := range s.Inputs() {
		inNames = append(inNames, in.Name)
	}
	ds, err := tensorio.LoadDataSet(set, inNames, nil)
	if err != nil {
		return nil, nil, err
	}
	byName := map[string]*runtime.Tensor{}
	for _, d := range ds.Inputs {
		byName[d.Name] = d.Tensor
	}
	ins := make([]*runtime.Tensor, len(inNames))
	for i, n := range inNames {
		if ins[i] = byName[n]; ins[i] == nil && i < len(ds.Inputs) {
			ins[i] = ds.Inputs[i].Tensor
		}
	}
	outs, err := s.Run(context.Background(), ins)
	if err != nil {
		return nil, nil, err
	}
	cl := make([]*runtime.Tensor, len(outs))
	for i, o := range outs {
		cl[i] = o.Clone()
	}
	return cl, ds.Outputs, nil
}

// checkModel converts one shared model to Newest and checks, on every
// test_data_set, that it computes what the unconverted model computes on
// the same backend (rtol 1e-4, atol 1e-5: ORT picks other kernels at
// another opset) and the reference outputs
// (rtol 1e-3, atol 1e-4).
func checkModel(backend, dir string) (status string, err error) {
	m, err := graph.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		return "", err
	}
	if m.Opset("") >= Newest {
		return "at newest", nil
	}
	c, rep, err := Convert(m, Newest)
	if err != nil {
		return "refused", err
	}
	sets, err := tensorio.DataSets(dir)
	if err != nil || len(sets) == 0 {
		return "", fmt.Errorf("no test_data_set folders (%v)", err)
	}
	for _, set := range sets {
		before, _, err := runSet(backend, m, set)
		if err != nil {
			// Listed in the log, not a failure: the backend cannot run
			// the model at its own opset either.
			return fmt.Sprintf("converted %d->%d; %s cannot run the unconverted model (%v)", rep.From, rep.To, backend, err), nil
		}
		after, refs, err := runSet(backend, c, set)
		if err != nil {
			return "mismatch", fmt.Errorf("converted: %w", err)
		}
		for k := range before {
			if err := conformance.Compare(after[k], before[k], 1e-4, 1e-5); err != nil {
				return "mismatch", fmt.Errorf("%s output %d against the unconverted model: %w", filepath.Base(set), k, err)
			}
			if k < len(refs) {
				if err := conformance.Compare(after[k], refs[k].Tensor, 1e-3, 1e-4); err != nil {
					return "mismatch", fmt.Errorf("%s output %d against the reference: %w", filepath.Base(set), k, err)
				}
			}
		}
	}
	return fmt.Sprintf("converted %d->%d (%d changes), matching", rep.From, rep.To, len(rep.Changes)), nil
}

func runModels(t *testing.T, backend string) {
	dirs := testutil.RealModels(t)
	if len(dirs) == 0 {
		testutil.Missing(t, "shared models")
	}
	type res struct {
		status string
		err    error
	}
	out := make([]res, len(dirs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, d := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			s, err := checkModel(backend, d)
			out[i] = res{s, err}
		}()
	}
	wg.Wait()
	var lines []string
	for i, d := range dirs {
		r := out[i]
		line := filepath.Base(d) + ": " + r.status
		if r.err != nil {
			line += ": " + r.err.Error()
			t.Errorf("%s %s", backend, line)
		}
		lines = append(lines, line)
	}
	t.Logf("%s, shared models converted to opset %d:\n%s", backend, Newest, strings.Join(lines, "\n"))
}

func TestConvertSharedModelsInterp(t *testing.T) { runModels(t, "interp") }

func TestConvertSharedModelsORT(t *testing.T) {
	if _, _, _, err := ort.Load(""); err != nil {
		testutil.Missing(t, "the ONNX Runtime shared library ("+err.Error()+")")
		return
	}
	runModels(t, "ort")
}
