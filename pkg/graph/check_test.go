package graph_test

import (
	"errors"
	"fmt"
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

// fuzzCheckOps are the ops whose attributes and ranks Check reasons about.
var fuzzCheckOps = []struct{ domain, op string }{
	{"", "Conv"}, {"", "ConvTranspose"}, {"", "ConvInteger"}, {"", "QLinearConv"}, {"", "DeformConv"},
	{"", "MaxPool"}, {"", "AveragePool"}, {"", "LpPool"}, {"", "MaxUnpool"}, {"", "Col2Im"},
	{"", "GroupNormalization"}, {"", "LSTM"}, {"", "GRU"}, {"", "RNN"}, {"", "Gemm"}, {"", "MatMul"},
	{"", "BatchNormalization"}, {"", "Reshape"}, {"", "Max"}, {"com.microsoft", "FusedConv"},
	{"com.microsoft", "FusedGemm"}, {"com.microsoft", "Attention"},
}

// FuzzCheck builds one-node models from fuzzed choices (op, input count,
// input and weight ranks, attribute values, shape operands) and checks that
// LoadBytes and CheckORT never panic, that a model Load accepts passes
// CheckSchema, and that CheckORT leaves the model as it was.
//
//	go test -run '^$' -fuzz=FuzzCheck -fuzztime=60s ./pkg/graph
func FuzzCheck(f *testing.F) {
	f.Add(uint8(0), uint8(2), uint8(4), uint8(4), uint8(0), int64(3), int64(3), int64(1))
	f.Add(uint8(0), uint8(2), uint8(4), uint8(3), uint8(1), int64(0), int64(0), int64(1))
	f.Add(uint8(9), uint8(3), uint8(3), uint8(1), uint8(3), int64(-3), int64(2), int64(0))
	f.Add(uint8(11), uint8(3), uint8(3), uint8(2), uint8(4), int64(4), int64(1), int64(-1))
	f.Add(uint8(10), uint8(3), uint8(4), uint8(1), uint8(5), int64(0), int64(1), int64(2))
	f.Add(uint8(21), uint8(5), uint8(3), uint8(2), uint8(6), int64(1), int64(1), int64(2))
	f.Fuzz(func(t *testing.T, opSel, nin, xrank, wrank, attrSel uint8, a1, a2, a3 int64) {
		op := fuzzCheckOps[int(opSel)%len(fuzzCheckOps)]
		dims := func(rank uint8, base int64) []int64 {
			d := make([]int64, int(rank)%7)
			for i := range d {
				d[i] = base + int64(i%3)
			}
			return d
		}
		g := &graph.Graph{Name: "fuzz"}
		x := &graph.ValueInfo{Name: "x", DType: graph.Float, HasType: true, Shape: graph.ShapeOf(dims(xrank, 2)), HasShape: true}
		g.Inputs = []*graph.ValueInfo{x}
		inputs := []string{"x"}
		for i := 1; i < int(nin)%10; i++ {
			name := fmt.Sprintf("in%d", i)
			switch {
			case i == 1 || i == 3:
				wd := dims(wrank, 1)
				n, _ := graph.NumElements(wd)
				g.Initializers = append(g.Initializers, graph.NewFloat32(name, wd, make([]float32, n)))
			case i == 4:
				name = "" // an omitted optional input
			default:
				g.Initializers = append(g.Initializers, graph.NewInt64(name, []int64{2}, []int64{a1, a2}))
			}
			inputs = append(inputs, name)
		}
		attrNames := []string{"kernel_shape", "strides", "dilations", "pads", "output_padding", "group", "num_groups", "hidden_size"}
		var attrs []*graph.Attr
		for k := 0; k < 3; k++ {
			name := attrNames[(int(attrSel)+k*3)%len(attrNames)]
			switch name {
			case "group", "num_groups", "hidden_size":
				attrs = append(attrs, graph.IntAttr(name, a3))
			case "pads":
				attrs = append(attrs, graph.IntsAttr(name, a1, a2, a1, a3))
			default:
				attrs = append(attrs, graph.IntsAttr(name, a1, a2))
			}
		}
		seen := map[string]bool{}
		var uniq []*graph.Attr
		for _, a := range attrs {
			if !seen[a.Name] {
				seen[a.Name] = true
				uniq = append(uniq, a)
			}
		}
		g.Nodes = []*graph.Node{{Name: "n", OpType: op.op, Domain: op.domain, Inputs: inputs, Outputs: []string{"y"}, Attrs: uniq}}
		g.Outputs = []*graph.ValueInfo{{Name: "y", DType: graph.Float, HasType: true}}
		m := &graph.Model{IRVersion: 9, Opsets: []graph.OpsetImport{{Domain: "", Version: 18}, {Domain: "com.microsoft", Version: 1}}, Graph: g}
		data, err := m.Marshal()
		if err != nil {
			return
		}
		loaded, err := graph.LoadBytes(data)
		if err != nil {
			return
		}
		if err := loaded.CheckSchema(); err != nil {
			t.Fatalf("Load accepted a model that breaks its schema: %v", err)
		}
		before := loaded.Format()
		_ = loaded.CheckORT()
		if loaded.Format() != before {
			t.Fatal("CheckORT modified the model")
		}
	})
}
