package interp

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/onnxpb"
	"github.com/optictl/optictl/pkg/runtime"
)

// nnLoadPB reads an ONNX TensorProto file. It wraps the tensor in a model as
// an initializer so that graph's own converter (typed fields, raw data) does
// the decoding.
func nnLoadPB(path string) (*runtime.Tensor, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tp := &onnxpb.TensorProto{}
	if err := proto.Unmarshal(data, tp); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	name := "t"
	tp.Name = &name
	ir := int64(8)
	mp := &onnxpb.ModelProto{IrVersion: &ir, Graph: &onnxpb.GraphProto{Initializer: []*onnxpb.TensorProto{tp}}}
	b, err := proto.Marshal(mp)
	if err != nil {
		return nil, err
	}
	m, err := graph.LoadBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return runtime.FromGraphTensor(m.Graph.Initializers[0]), nil
}

// nnCompare checks got against want within atol + rtol·|want| (exact for
// integers; NaNs must match).
func nnCompare(got, want *runtime.Tensor, rtol, atol float64) error {
	if got.DType != want.DType {
		return fmt.Errorf("dtype %s, want %s", got.DType, want.DType)
	}
	if !nnSameShape(got.Shape, want.Shape) {
		return fmt.Errorf("shape %v, want %v", got.Shape, want.Shape)
	}
	if got.DType == graph.String {
		for i := range want.Strings {
			if got.Strings[i] != want.Strings[i] {
				return fmt.Errorf("[%d] = %q, want %q", i, got.Strings[i], want.Strings[i])
			}
		}
		return nil
	}
	if !got.DType.IsFloat() || nnQIsFloat(got.DType) {
		if string(got.Raw) != string(want.Raw) {
			g, _ := got.AsFloat64()
			w, _ := want.AsFloat64()
			for i := range w {
				if i < len(g) && g[i] != w[i] {
					return fmt.Errorf("[%d] = %v, want %v", i, g[i], w[i])
				}
			}
			return fmt.Errorf("raw data differs")
		}
		return nil
	}
	g, err := got.AsFloat64()
	if err != nil {
		return err
	}
	w, err := want.AsFloat64()
	if err != nil {
		return err
	}
	if len(g) != len(w) {
		return fmt.Errorf("%d values, want %d", len(g), len(w))
	}
	for i := range w {
		if math.IsNaN(w[i]) != math.IsNaN(g[i]) {
			return fmt.Errorf("[%d] = %v, want %v", i, g[i], w[i])
		}
		if math.IsNaN(w[i]) || g[i] == w[i] {
			continue
		}
		if d := math.Abs(g[i] - w[i]); !(d <= atol+rtol*math.Abs(w[i])) {
			return fmt.Errorf("[%d] = %v, want %v (|diff| %.3g)", i, g[i], w[i], d)
		}
	}
	return nil
}

// nnRunDataSet runs a model on one test_data_set folder and compares.
func nnRunDataSet(m *graph.Model, dir string, rtol, atol float64) error {
	s, err := runtime.Open("interp", m, runtime.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	var ins []*runtime.Tensor
	for i := 0; ; i++ {
		p := filepath.Join(dir, fmt.Sprintf("input_%d.pb", i))
		if _, err := os.Stat(p); err != nil {
			break
		}
		t, err := nnLoadPB(p)
		if err != nil {
			return err
		}
		ins = append(ins, t)
	}
	outs, err := s.Run(context.Background(), ins)
	if err != nil {
		return err
	}
	for i := 0; ; i++ {
		p := filepath.Join(dir, fmt.Sprintf("output_%d.pb", i))
		if _, err := os.Stat(p); err != nil {
			if i == 0 {
				return fmt.Errorf("no output_0.pb in %s", dir)
			}
			break
		}
		want, err := nnLoadPB(p)
		if err != nil {
			return err
		}
		if i >= len(outs) {
			return fmt.Errorf("output %d missing", i)
		}
		if err := nnCompare(outs[i], want, rtol, atol); err != nil {
			return fmt.Errorf("output %d: %w", i, err)
		}
	}
	return nil
}

// nnConformancePrefixes are the node tests of the ops helper "nn" owns.
var nnConformancePrefixes = []string{
	"test_conv", "test_basic_conv", "test_convtranspose", "test_gemm", "test_matmul",
	"test_maxpool", "test_averagepool", "test_globalaveragepool", "test_globalmaxpool",
	"test_batchnorm", "test_layer_normalization", "test_instancenorm", "test_group_normalization",
	"test_lrn", "test_mvn", "test_quantizelinear", "test_dequantizelinear",
	"test_dynamicquantizelinear", "test_matmulinteger", "test_convinteger", "test_basic_convinteger",
	"test_qlinearconv", "test_qlinearmatmul", "test_lppool", "test_globallppool",
	"test_rms_normalization", "test_lpnormalization", "test_l1normalization", "test_l2normalization",
	"test_maxunpool",
}

// TestNNConformance runs the ONNX node tests of nn's ops through the interp
// backend, reports the pass count, and asserts a floor that only goes up.
func TestNNConformance(t *testing.T) {
	root := testutil.ConformanceDir(t)
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, "_expanded") || strings.Contains(n, "_expanded_") {
			continue
		}
		for _, p := range nnConformancePrefixes {
			if strings.HasPrefix(n, p) {
				names = append(names, n)
				break
			}
		}
	}
	sort.Strings(names)
	pass := 0
	var fails []string
	for _, name := range names {
		dir := filepath.Join(root, name)
		err := func() error {
			m, err := graph.Load(filepath.Join(dir, "model.onnx"))
			if err != nil {
				return err
			}
			return nnRunDataSet(m, filepath.Join(dir, "test_data_set_0"), 1e-3, 1e-4)
		}()
		if err != nil {
			fails = append(fails, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		pass++
	}
	for _, f := range fails {
		t.Log("FAIL " + f)
	}
	t.Logf("nn conformance: %d/%d passed", pass, len(names))
	const floor = 185
	if pass < floor {
		t.Errorf("nn conformance: %d passed, floor is %d", pass, floor)
	}
}
