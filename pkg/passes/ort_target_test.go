package passes

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/runtime/ort"
	"github.com/optictl/optictl/testmodels"
)

// TestORTTargetRunsOnORT checks the --target ort-cpu rewrites on the
// runtime they are written for: every testmodel and the attention,
// residual and hard-swish golden models, optimized at O3/ort-cpu, must run on ONNX
// Runtime with its own graph optimizations off (so our contrib nodes run
// as written) and agree with the original model on ORT, at several batch
// sizes (the fused ops must not have baked in the seeded shape).
func TestORTTargetRunsOnORT(t *testing.T) {
	if len(ort.Candidates("")) == 0 {
		testutil.Missing(t, "ONNX Runtime shared library (run `make setup`)")
		return
	}
	models := map[string]*graph.Model{
		"attention":         attentionModel(false)(),
		"skip-ln":           skipLNModel(13, false)(),
		"skip-ln17":         skipLNModel(17, true)(),
		"hardswish13":       hardSwishModel(13, "div")(),
		"hardswish14":       hardSwishModel(14, "mul-sixth")(),
		"nchwc-mix":         nchwcModel(),
		"nchwc-elementwise": nchwcElementwiseModel(),
	}
	for name, mk := range testmodels.All() {
		models[name] = mk()
	}
	blocks := []int{0}
	if b := runtime.HostNCHWcBlock(); b != 0 {
		blocks = append(blocks, b)
	}
	for name, m := range models {
		for _, block := range blocks {
			t.Run(fmt.Sprintf("%s/nchwc=%d", name, block), func(t *testing.T) {
				ortTargetCheck(t, m, Options{Level: O3, Target: TargetORTCPU, Verify: true, NCHWcBlock: block}, []int64{1, 3})
			})
		}
	}
}

// needNCHWcORT returns this CPU's NCHWc block size when ONNX Runtime is
// there to run NCHWc models; else it skips (or, ORT missing under CI,
// fails) and returns 0.
func needNCHWcORT(t *testing.T) int {
	t.Helper()
	if len(ort.Candidates("")) == 0 {
		testutil.Missing(t, "ONNX Runtime shared library (run `make setup`)")
		return 0
	}
	block := runtime.HostNCHWcBlock()
	if block == 0 {
		t.Skip("this CPU has no NCHWc kernels in ONNX Runtime (needs x86-64 AVX2+FMA)")
	}
	return block
}

// TestNCHWcDynamicBatch: with dynamic dims (an unnamed batch, or named
// height and width that a conv turns into unknown dims), shape inference
// cannot tell that the residual Add's inputs have one shape; the probes
// (dims fixed to 2, then 3) can, so the Add still becomes the conv's Sum
// input. ORT checks the result at batch 1 and 3.
func TestNCHWcDynamicBatch(t *testing.T) {
	block := needNCHWcORT(t)
	if block == 0 {
		return
	}
	for _, tc := range []struct {
		name string
		dims map[int]graph.Dim
	}{
		{"unnamed batch", map[int]graph.Dim{0: {Size: -1}}},
		{"named height and width", map[int]graph.Dim{2: {Size: -1, Param: "H"}, 3: {Size: -1, Param: "W"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := nchwcModel()
			for i, d := range tc.dims {
				m.Graph.Inputs[0].Shape[i] = d
			}
			m.Graph.Outputs[0].Shape[0] = graph.Dim{Size: -1}
			out := ortTargetCheck(t, m, Options{Level: O3, Target: TargetORTCPU, Verify: true, NCHWcBlock: block}, []int64{1, 3})
			for _, n := range out.Graph.Nodes {
				if n.Is("Add") {
					t.Fatalf("the residual Add was not fused into the NCHWc conv:\n%s", out.Format())
				}
			}
		})
	}
}

// TestORTNCHWcZoo runs layout-nchwc over model-zoo architectures (their
// ConstantOfShape weights folded first) whose graphs exercise the rest of
// the rewrite: channel Concat (squeezenet, inception), BatchNormalization
// and AveragePool inside NCHWc regions (densenet121), grouped convs and a
// channel shuffle (shufflenet), residual Add into the conv's Sum (resnet50).
// ONNX Runtime runs the result with its optimizations off.
func TestORTNCHWcZoo(t *testing.T) {
	block := needNCHWcORT(t)
	if block == 0 {
		return
	}
	light := filepath.Join(testutil.ModelsDir(t), "conformance", "onnx-1.22.0", "light")
	for _, tc := range []struct {
		arch string
		all  bool // every conv fits the kernels (shufflenet's 3-group convs have 20-channel groups)
	}{{"squeezenet", true}, {"shufflenet", false}, {"inception_v2", true}, {"densenet121", true}, {"resnet50", true}} {
		arch := tc.arch
		t.Run(arch, func(t *testing.T) {
			m, err := graph.Load(filepath.Join(light, "light_"+arch+".onnx"))
			if err != nil {
				testutil.Missing(t, "light model-zoo models ("+err.Error()+")")
				return
			}
			out := ortTargetCheck(t, m, Options{Level: O3, Target: TargetORTCPU, NCHWcBlock: block,
				FreezeInitializers: true, FoldGrow: true, FoldMaxBytes: 1 << 30}, []int64{1})
			ops := map[string]int{}
			for _, n := range out.Graph.Nodes {
				ops[n.Domain+"."+n.OpType]++
			}
			left := ops[".Conv"] + ops["ai.onnx.Conv"] + ops["com.microsoft.FusedConv"]
			if ops[NCHWcDomain+".Conv"] == 0 || (tc.all && left > 0) {
				t.Errorf("convs left out of the NCHWc layout: %v", ops)
			}
		})
	}
}

// ortTargetCheck optimizes m with opts and checks that ONNX Runtime (its
// own optimizations off) runs the result as it runs m, at each batch size
// given for m's dynamic dims. It returns the optimized model.
func ortTargetCheck(t *testing.T, m *graph.Model, opts Options, batches []int64) *graph.Model {
	t.Helper()
	out, rep, err := Optimize(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rollbacks) > 0 {
		t.Fatalf("rolled back: %+v", rep.Rollbacks)
	}
	ref := m
	if opts.FreezeInitializers {
		ref = frozenReference(m)
	}
	orig, err := runtime.Open("ort", ref, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	opt, err := runtime.Open("ort", out, runtime.Options{Threads: 1, OptLevel: "off"})
	if err != nil {
		t.Fatalf("ORT does not open the O3/ort-cpu model: %v\n%s", err, out.Format())
	}
	defer opt.Close()
	for _, batch := range batches {
		shapes := map[string][]int64{}
		for _, v := range m.Graph.RealInputs() {
			dims := make([]int64, len(v.Shape))
			for i, d := range v.Shape {
				dims[i] = d.Size
				if !d.Known() {
					dims[i] = batch
					if s, ok := testmodels.SampleDim(d.Param); ok {
						dims[i] = s // dbnet's height and width
					}
				}
			}
			shapes[v.Name] = dims
		}
		in, err := seededInputs(m, shapes, uint64(batch))
		if err != nil {
			t.Fatal(err)
		}
		want, err := runtime.RunNamed(context.Background(), orig, in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := runtime.RunNamed(context.Background(), opt, in)
		if err != nil {
			t.Fatalf("batch %d: %v", batch, err)
		}
		for k, w := range want {
			if err := compareTensor(w, got[k], numerics.Tolerance{ATol: 1e-4, RTol: 1e-3}); err != nil {
				t.Errorf("batch %d: output %s: %v", batch, k, err)
			}
		}
	}
	t.Log(fmt.Sprintf("nodes %d -> %d", rep.Before.Nodes, rep.After.Nodes))
	return out
}

// frozenReference is m with its weights no longer graph inputs and its
// unread initializers dropped (ORT refuses those), as FreezeInitializers
// leaves the optimized model.
func frozenReference(m *graph.Model) *graph.Model {
	c := m.Clone()
	c.Graph.Inputs = c.Graph.RealInputs()
	read := map[string]bool{}
	for _, n := range c.Graph.Nodes {
		for _, in := range n.Inputs {
			read[in] = true
		}
	}
	for _, o := range c.Graph.Outputs {
		read[o.Name] = true
	}
	c.Graph.Initializers = slices.DeleteFunc(c.Graph.Initializers, func(t *graph.Tensor) bool { return !read[t.Name] })
	return c
}
