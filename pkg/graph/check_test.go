package graph_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/build"
)

// TestCheckRefusesHostileModels mutates the MNIST model the ways that made
// ONNX Runtime abort the process (found by mutating the shared models) and
// checks that Check names the node and the problem. Attribute problems are
// refused by Load already; rank problems by Check.
func TestCheckRefusesHostileModels(t *testing.T) {
	path := filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx")
	node := func(m *graph.Model, name string) *graph.Node {
		for _, n := range m.Graph.Nodes {
			if n.Name == name {
				return n
			}
		}
		t.Fatalf("no node %q", name)
		return nil
	}
	tests := []struct {
		name   string
		mutate func(m *graph.Model)
		atLoad bool // the attribute checks Load runs see it too
		want   []string
	}{
		{"add retyped to conv: rank-3 weight", func(m *graph.Model) { node(m, "Plus30").OpType = "Conv" }, false,
			[]string{`Conv "Plus30"`, `weight "Parameter6" has rank 3 for a rank-4 input`}},
		{"conv transpose with a rank-3 weight", func(m *graph.Model) { node(m, "Plus112").OpType = "ConvTranspose" }, false,
			[]string{`ConvTranspose "Plus112"`, "rank 3"}},
		{"conv on a rank-2 input", func(m *graph.Model) {
			n := node(m, "Times212")
			n.OpType = "Conv"
		}, false, []string{`Conv "Times212"`, "rank 2", "rank >= 3"}},
		{"conv kernel_shape disagrees with the weight", func(m *graph.Model) {
			node(m, "Convolution28").SetAttr(graph.IntsAttr("kernel_shape", 3, 3))
		}, false, []string{`Conv "Convolution28"`, "kernel_shape=[3 3]", "[8,1,5,5]"}},
		{"conv channels disagree", func(m *graph.Model) {
			node(m, "Convolution110").SetAttr(graph.IntAttr("group", 2))
		}, false, []string{`Conv "Convolution110"`, "group 2", "16 channels", "has 8"}},
		{"pool kernel of three axes on a 2-D image", func(m *graph.Model) {
			node(m, "Pooling66").SetAttr(graph.IntsAttr("kernel_shape", 2, 2, 2))
		}, true, []string{`MaxPool "Pooling66"`, "attribute lengths disagree"}},
		{"conv strides 0", func(m *graph.Model) {
			node(m, "Convolution28").SetAttr(graph.IntsAttr("strides", 0, 0))
		}, true, []string{`Conv "Convolution28"`, "strides=[0 0]", ">= 1"}},
		{"pool negative pads", func(m *graph.Model) {
			node(m, "Pooling160").SetAttr(graph.IntsAttr("pads", -5, -5, -5, -5))
		}, true, []string{`MaxPool "Pooling160"`, "pads=[-5 -5 -5 -5]", ">= 0"}},
		{"pool odd pads", func(m *graph.Model) {
			node(m, "Pooling160").SetAttr(graph.IntsAttr("pads", 0, 0, 0))
		}, true, []string{`MaxPool "Pooling160"`, "odd length"}},
		{"pool without kernel_shape", func(m *graph.Model) { node(m, "Pooling66").DelAttr("kernel_shape") }, true,
			[]string{`MaxPool "Pooling66"`, "no kernel_shape"}},
		{"absurd dilation", func(m *graph.Model) {
			node(m, "Convolution28").SetAttr(graph.IntsAttr("dilations", 1<<40, 1))
		}, true, []string{`Conv "Convolution28"`, "absurd"}},
		{"group 0", func(m *graph.Model) { node(m, "Convolution28").SetAttr(graph.IntAttr("group", 0)) }, true,
			[]string{`Conv "Convolution28"`, "group=0"}},
		{"gemm on a rank-4 operand", func(m *graph.Model) {
			n := node(m, "Plus30")
			n.OpType = "Gemm"
		}, false, []string{`Gemm "Plus30"`, "rank 4", "Gemm takes rank 2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := graph.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Check(); err != nil {
				t.Fatalf("the unmutated model fails Check: %v", err)
			}
			tc.mutate(m)
			before := m.Format()
			err = m.Check()
			var ce *graph.CheckError
			if !errors.As(err, &ce) {
				t.Fatalf("Check: %v (%T), want a CheckError", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not mention %q", err, w)
				}
			}
			if m.Format() != before {
				t.Error("Check modified the model")
			}
			// Load runs the attribute half of Check.
			b, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			_, err = graph.LoadBytes(b)
			if tc.atLoad != (err != nil) {
				t.Errorf("LoadBytes: %v, want an error: %v", err, tc.atLoad)
			}
		})
	}
}

// TestCheckORTAttentionBias: the schema lets com.microsoft Attention omit
// its bias, so Check accepts that; ONNX Runtime 1.24's kernel then
// dereferences it (SIGSEGV), so CheckORT refuses it.
func TestCheckORTAttentionBias(t *testing.T) {
	m, err := graph.Load(filepath.Join(testutil.ModelsDir(t), "tiny-gpt2-ortfused", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CheckORT(); err != nil {
		t.Fatalf("the unmutated model fails CheckORT: %v", err)
	}
	var att *graph.Node
	for _, n := range m.Graph.Nodes {
		if n.OpType == "Attention" && n.Domain == "com.microsoft" {
			att = n
			break
		}
	}
	if att == nil {
		t.Fatal("no com.microsoft Attention node")
	}
	att.Inputs[2] = ""
	if err := m.Check(); err != nil {
		t.Errorf("Check: %v (the schema allows it)", err)
	}
	err = m.CheckORT()
	if err == nil || !strings.Contains(err.Error(), att.String()) || !strings.Contains(err.Error(), "no bias") {
		t.Errorf("CheckORT: %v", err)
	}
}

// TestCheckOneNodeCrashers covers the single-node models that made ONNX
// Runtime 1.24 abort (SIGFPE, SIGABRT) or hang, found by probing ops with
// absurd attributes and operands.
func TestCheckOneNodeCrashers(t *testing.T) {
	ones := func(dims ...int64) *graph.Tensor {
		n, _ := graph.NumElements(dims)
		return graph.NewFloat32("", dims, make([]float32, n))
	}
	named := func(t *graph.Tensor, name string) *graph.Tensor { t.Name = name; return t }
	tests := []struct {
		name   string
		x      []int64
		op     string
		inits  []*graph.Tensor
		attrs  []*graph.Attr
		atLoad bool
		want   string
	}{
		{"group norm with 0 groups (SIGFPE)", []int64{1, 4, 8, 8}, "GroupNormalization",
			[]*graph.Tensor{named(ones(4), "s"), named(ones(4), "b")}, []*graph.Attr{graph.IntAttr("num_groups", 0)}, true, "num_groups=0"},
		{"col2im block_shape 0 (SIGFPE)", []int64{1, 4, 8}, "Col2Im",
			[]*graph.Tensor{graph.NewInt64("is", []int64{2}, []int64{4, 2}), graph.NewInt64("bs", []int64{2}, []int64{0, 1})}, nil, true, "block_shape"},
		{"col2im strides 0 (SIGFPE)", []int64{1, 4, 8}, "Col2Im",
			[]*graph.Tensor{graph.NewInt64("is", []int64{2}, []int64{4, 2}), graph.NewInt64("bs", []int64{2}, []int64{2, 1})},
			[]*graph.Attr{graph.IntsAttr("strides", 0, 0)}, true, "strides=[0 0]"},
		{"col2im negative pads (hang)", []int64{1, 4, 8}, "Col2Im",
			[]*graph.Tensor{graph.NewInt64("is", []int64{2}, []int64{4, 2}), graph.NewInt64("bs", []int64{2}, []int64{2, 1})},
			[]*graph.Attr{graph.IntsAttr("pads", -3, -3, -3, -3)}, true, "pads=[-3 -3 -3 -3]"},
		{"lstm weight of rank 2 (SIGABRT)", []int64{2, 1, 3}, "LSTM",
			[]*graph.Tensor{named(ones(16, 3), "w"), named(ones(16, 4), "r")}, []*graph.Attr{graph.IntAttr("hidden_size", 4)}, false,
			`input 1 ("w") has rank 2, LSTM takes rank 3`},
		{"1-D conv with a 2-D kernel (assertion)", []int64{1, 4, 8}, "Conv",
			[]*graph.Tensor{named(ones(2, 4, 3, 3), "w")}, nil, false, `weight "w" has rank 4 for a rank-3 input`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := build.New(tc.name, 18)
			dims := make([]any, len(tc.x))
			for i, d := range tc.x {
				dims[i] = d
			}
			ins := []string{b.Input("x", graph.Float, build.Dims(dims...))}
			for _, init := range tc.inits {
				ins = append(ins, b.Initializer(init))
			}
			b.Op(tc.op, "probe", ins, []string{"y"}, tc.attrs...)
			b.Output("y", graph.Float, nil)
			m, err := b.Model()
			if err != nil {
				t.Fatal(err)
			}
			err = m.Check()
			if err == nil || !strings.Contains(err.Error(), tc.op+` "probe"`) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check: %v, want it to name the node and %q", err, tc.want)
			}
			data, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := graph.LoadBytes(data); (err != nil) != tc.atLoad {
				t.Errorf("LoadBytes: %v, want an error: %v", err, tc.atLoad)
			}
		})
	}
}
