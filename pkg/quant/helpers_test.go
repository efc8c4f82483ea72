package quant

import (
	"context"
	"math"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
	_ "github.com/optictl/optictl/pkg/runtime/backends"
)

// open opens a session or skips (fails in CI) when ORT is unavailable.
func open(t *testing.T, backend string, m *graph.Model) runtime.Session {
	t.Helper()
	s, err := runtime.Open(backend, m, runtime.Options{Threads: 1})
	if err != nil {
		if backend == "ort" && !testutil.InCI() {
			t.Skipf("ort unavailable: %v", err)
		}
		t.Fatalf("open %s: %v", backend, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// runSamples runs every sample through a session and clones the outputs.
func runSamples(t *testing.T, s runtime.Session, samples [][]*runtime.Tensor) [][]*runtime.Tensor {
	t.Helper()
	var out [][]*runtime.Tensor
	for i, in := range samples {
		o, err := s.Run(context.Background(), in)
		if err != nil {
			t.Fatalf("sample %d: %v", i, err)
		}
		c := make([]*runtime.Tensor, len(o))
		for k := range o {
			c[k] = o[k].Clone()
		}
		out = append(out, c)
	}
	return out
}

func seeded(t *testing.T, m *graph.Model, n, batch int, seed int64) [][]*runtime.Tensor {
	t.Helper()
	ins, err := numerics.InputsOf(m)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]*runtime.Tensor
	for i := 0; i < n; i++ {
		in, err := numerics.Seeded(ins, numerics.SeedOptions{Seed: uint64(seed + int64(i)), Dims: numerics.Dims{Batch: int64(batch)}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, in)
	}
	return out
}

func accuracy(t *testing.T, ref, got [][]*runtime.Tensor) numerics.Accuracy {
	t.Helper()
	var am numerics.AccuracyMeter
	for i := range ref {
		if err := am.Add(ref[i], got[i], nil); err != nil {
			t.Fatal(err)
		}
	}
	return am.Result()
}

// maxAbs is the largest |x| over all outputs.
func maxAbs(outs [][]*runtime.Tensor) float64 {
	m := 0.0
	for _, o := range outs {
		for _, t := range o {
			v, _ := t.AsFloat64()
			for _, x := range v {
				m = math.Max(m, math.Abs(x))
			}
		}
	}
	return m
}

func maxDiff(a, b [][]*runtime.Tensor) float64 {
	m := 0.0
	for i := range a {
		for k := range a[i] {
			x, _ := a[i][k].AsFloat64()
			y, _ := b[i][k].AsFloat64()
			for j := range x {
				m = math.Max(m, math.Abs(x[j]-y[j]))
			}
		}
	}
	return m
}
