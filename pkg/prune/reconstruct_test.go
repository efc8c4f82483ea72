package prune

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/testmodels"
)

// seededSamples makes n single-sample inputs for m.
func seededSamples(t testing.TB, m *graph.Model, n int, seed uint64) [][]*runtime.Tensor {
	return seededBatches(t, m, n, 1, seed)
}

// seededBatches makes n inputs of batch batch for m.
func seededBatches(t testing.TB, m *graph.Model, n int, batch int64, seed uint64) [][]*runtime.Tensor {
	t.Helper()
	s, err := runtime.Open("interp", m, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out [][]*runtime.Tensor
	for i := 0; i < n; i++ {
		in, err := numerics.Seeded(numerics.InputsFromInfos(s.Inputs()), numerics.SeedOptions{Seed: seed + uint64(i), Dims: numerics.Dims{Batch: batch, Shapes: testmodels.InputShapes(m, batch)}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, in)
	}
	return out
}

func TestCholSolve(t *testing.T) {
	// M = [[4 2] [2 3]], X = [[1 2] [3 -1]] -> R = M X.
	M := []float64{4, 2, 2, 3}
	X := []float64{1, 2, 3, -1}
	R := []float64{4*1 + 2*3, 4*2 + 2*-1, 2*1 + 3*3, 2*2 + 3*-1}
	if err := cholSolve(M, R, 2, 2); err != nil {
		t.Fatal(err)
	}
	for i := range X {
		if math.Abs(R[i]-X[i]) > 1e-12 {
			t.Fatalf("x = %v, want %v", R, X)
		}
	}
	if err := cholSolve([]float64{1, 2, 2, 1}, []float64{1, 1}, 2, 1); err == nil {
		t.Fatal("an indefinite matrix was accepted")
	}
}

// TestReconstructImproves: on the test CNN pruned by half, the least-squares
// re-fit lowers every re-fitted layer's error and raises the held-out
// cosine against the unpruned model.
func TestReconstructImproves(t *testing.T) {
	orig := testmodels.CNN()
	calib := seededSamples(t, orig, 12, 100)
	held := seededSamples(t, orig, 6, 900)
	m := orig.Clone()
	rep, err := Prune(m, Options{Fraction: 0.5, Mode: Structured})
	if err != nil {
		t.Fatal(err)
	}
	before, err := Measure(orig, m, held, "interp")
	if err != nil {
		t.Fatal(err)
	}
	if err := Reconstruct(orig, m, rep, calib, ReconOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	after, err := Measure(orig, m, held, "interp")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("before %v; after %v", before, after)
	ls := 0
	for _, l := range rep.Reconstruction.Layers {
		t.Logf("%+v", l)
		if l.Kind == "least-squares" {
			ls++
			if l.Note == "" && !(l.ErrAfter < l.ErrBefore) {
				t.Errorf("%s: error %g -> %g", l.Node, l.ErrBefore, l.ErrAfter)
			}
		}
	}
	if ls == 0 {
		t.Fatal("no layer was re-fitted")
	}
	if !(after.Cosine > before.Cosine) {
		t.Fatalf("cosine %v -> %v: reconstruction did not help", before.Cosine, after.Cosine)
	}
}

// TestAuto: on the test CNN, per-layer ratios chosen by sensitivity meet
// the target, reconstruction keeps the result within a loose budget, and
// an impossible budget fails with ErrBudget, leaving the model unchanged.
func TestAuto(t *testing.T) {
	orig := testmodels.CNN()
	calib := seededSamples(t, orig, 8, 100)
	held := seededSamples(t, orig, 4, 900)
	for _, tc := range []struct {
		name      string
		minCosine float64
		wantErr   bool
	}{
		{"loose budget", 0.9, false},
		{"impossible budget", 0.99999, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := orig.Clone()
			rep, err := Auto(m, calib, held, AutoOptions{Options: Options{Fraction: 0.3}, Reconstruct: true, MinCosine: tc.minCosine})
			if tc.wantErr {
				if !errors.Is(err, ErrBudget) || rep == nil || rep.Accuracy == nil {
					t.Fatalf("err %v, report %v: want ErrBudget with a report", err, rep != nil)
				}
				ar := rep.Accuracy
				if m.Format() != orig.Format() {
					t.Fatal("a failed prune changed the model")
				}
				if !strings.Contains(ar.Table(), "cos@0.5") {
					t.Fatalf("table lacks the sensitivity columns:\n%s", ar.Table())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ar := rep.Accuracy
			t.Logf("\n%s", ar.Table())
			got := 1 - float64(rep.ChannelsAfter)/float64(rep.ChannelsBefore)
			if got < 0.3-0.05 {
				t.Fatalf("removed %.3f of the channels, want about 0.3", got)
			}
			if !(ar.Final.Cosine >= 0.9) || ar.Final.Cosine < ar.Pruned.Cosine-1e-9 {
				t.Fatalf("pruned %v, final %v", ar.Pruned, ar.Final)
			}
			if err := m.Verify(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestAutoDetector: the detector-shaped test net (BN/HardSwish backbone,
// Resize, ConvTranspose head, sigmoid map; convs sharing an input, BNs
// unfused) prunes at 30% with reconstruction without collapsing, and its
// BatchNorm statistics and conv biases are corrected.
func TestAutoDetector(t *testing.T) {
	orig := testmodels.DBNet()
	calib := seededSamples(t, orig, 4, 100)
	held := seededSamples(t, orig, 2, 900)
	m := orig.Clone()
	rep, err := Auto(m, calib, held, AutoOptions{Options: Options{Fraction: 0.3}, Reconstruct: true, MinCosine: 0.95, SensitivitySamples: 2})
	if err != nil {
		if rep != nil && rep.Accuracy != nil {
			t.Log(rep.Accuracy.Table())
		}
		t.Fatal(err)
	}
	ar := rep.Accuracy
	if ar.Final.Zero || ar.Final.Cosine < 0.95 {
		t.Fatalf("final %v", ar.Final)
	}
	kinds := map[string]int{}
	for _, l := range rep.Reconstruction.Layers {
		kinds[l.Kind]++
	}
	if kinds["least-squares"] == 0 || kinds["batchnorm"]+kinds["bias"] == 0 {
		t.Fatalf("fixes %v: want re-fitted convs and corrected statistics", kinds)
	}
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
}

// TestReconstructDense: Gemm and MatMul layers whose input rows were pruned
// are re-fitted too (the MLP: Gemm, MatMul+Add, Gemm).
func TestReconstructDense(t *testing.T) {
	orig := testmodels.MLP()
	calib := seededBatches(t, orig, 8, 32, 100)
	held := seededBatches(t, orig, 4, 8, 900)
	m := orig.Clone()
	rep, err := Prune(m, Options{Fraction: 0.5, Mode: Structured})
	if err != nil {
		t.Fatal(err)
	}
	before, err := Measure(orig, m, held, "interp")
	if err != nil {
		t.Fatal(err)
	}
	if err := Reconstruct(orig, m, rep, calib, ReconOptions{}); err != nil {
		t.Fatal(err)
	}
	after, err := Measure(orig, m, held, "interp")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("before %v; after %v", before, after)
	fitted := map[string]bool{}
	for _, l := range rep.Reconstruction.Layers {
		t.Logf("%+v", l)
		if l.Kind == "least-squares" && l.ErrAfter < l.ErrBefore {
			fitted[l.Node] = true
		}
	}
	if len(fitted) < 2 {
		t.Fatalf("re-fitted %v: want the MatMul and the Gemm after the pruned layers", fitted)
	}
	if !(after.Cosine > before.Cosine) {
		t.Fatalf("cosine %v -> %v", before.Cosine, after.Cosine)
	}
}
