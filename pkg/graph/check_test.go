package graph_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
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
		}, false, []string{`Gemm "Plus30"`, "rank 4", "2-D"}},
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
