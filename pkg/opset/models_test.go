package opset

import (
	"context"
	"fmt"
	"github.com/optictl/optictl/pkg/numerics"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
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
			if err := numerics.Check(after[k], before[k], numerics.Tolerance{RTol: 1e-4, ATol: 1e-5}); err != nil {
				return "mismatch", fmt.Errorf("%s output %d against the unconverted model: %w", filepath.Base(set), k, err)
			}
			if k < len(refs) {
				if err := numerics.Check(after[k], refs[k].Tensor, numerics.Tolerance{RTol: 1e-3, ATol: 1e-4}); err != nil {
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

// TestConvertLightModels converts the ONNX model-zoo "light" architectures
// (opset 9: AlexNet, DenseNet-121, Inception v1/v2, ResNet-50, ShuffleNet,
// SqueezeNet, VGG-19, ZFNet-512; weights made by ConstantOfShape) to Newest
// and checks on ONNX Runtime that each computes what the original computes
// and the stored reference (their constant weights make the output
// independent of the input, so a seeded input stands in for the runner's).
// DenseNet, VGG and ZFNet run only with OPSET_LIGHT=all.
func TestConvertLightModels(t *testing.T) {
	if testing.Short() {
		t.Skip("light models (about 5 s on ONNX Runtime) are skipped in -short mode")
	}
	if _, _, _, err := ort.Load(""); err != nil {
		testutil.Missing(t, "the ONNX Runtime shared library ("+err.Error()+")")
		return
	}
	dir := filepath.Join(testutil.ModelsDir(t), "conformance", "onnx-1.22.0", "light")
	paths, _ := filepath.Glob(filepath.Join(dir, "light_*.onnx"))
	if len(paths) == 0 {
		testutil.Missing(t, dir)
		return
	}
	// the three slowest (8-10 s each) add no adapter the others lack
	slow := map[string]bool{"light_densenet121": true, "light_vgg19": true, "light_zfnet512": true}
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".onnx")
		if slow[name] && os.Getenv("OPSET_LIGHT") != "all" {
			t.Logf("%s: skipped (slow; OPSET_LIGHT=all runs it)", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			m, err := graph.Load(p)
			if err != nil {
				t.Fatal(err)
			}
			c, rep, err := Convert(m, Newest)
			if err != nil {
				t.Fatal(err)
			}
			in := m.Graph.RealInputs()[0]
			dims, ok := in.Shape.Static()
			if !ok {
				t.Fatalf("input %s has dynamic dims", in.Shape)
			}
			x := runtime.NewTensor(graph.Float, dims)
			for i, f := 0, x.Float32s(); i < len(f); i++ {
				f[i] = float32(i%17)/8 - 1
			}
			run := func(mod *graph.Model) *runtime.Tensor {
				s, err := runtime.Open("ort", mod, runtime.Options{Threads: 1})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				outs, err := s.Run(context.Background(), []*runtime.Tensor{x})
				if err != nil {
					t.Fatal(err)
				}
				return outs[0].Clone()
			}
			want, got := run(m), run(c)
			if err := numerics.Check(got, want, numerics.Tolerance{RTol: 1e-4, ATol: 1e-6}); err != nil {
				t.Errorf("against the unconverted model: %v", err)
			}
			_, ref, err := tensorio.LoadPB(filepath.Join(dir, name+"_output_0.pb"))
			if err != nil {
				t.Fatal(err)
			}
			if err := numerics.Check(got, ref, numerics.Tolerance{RTol: 1e-3, ATol: 1e-6}); err != nil {
				t.Errorf("against the reference: %v", err)
			}
			t.Logf("%s: opset %d -> %d, %d changes", name, rep.From, rep.To, len(rep.Changes))
		})
	}
}
