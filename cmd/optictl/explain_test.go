package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
)

// TestOptimizeExplain checks that --explain prints, per candidate node,
// why a rewrite did not fire, in text and JSON, and refuses passes that do
// not run.
func TestOptimizeExplain(t *testing.T) {
	dir := t.TempDir()
	in := testModel(t, dir)
	// The same model with the Conv's output also a graph output: the BN
	// cannot be folded.
	m, err := graph.Load(in)
	if err != nil {
		t.Fatal(err)
	}
	m.Graph.Outputs = append(m.Graph.Outputs, &graph.ValueInfo{Name: "c", DType: graph.Float, Shape: graph.DimsOf(1, 3, 4, 4), HasShape: true, HasType: true})
	blocked := filepath.Join(dir, "blocked.onnx")
	if err := m.Save(blocked); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "o.onnx")
	tests := []struct {
		name string
		args []string
		code int
		want []string
		not  []string
	}{
		{"fires", []string{"optimize", in, "-o", out, "--explain", "fuse-conv-batchnorm"}, ExitOK,
			[]string{"explain fuse-conv-batchnorm: 0 candidate(s) not rewritten", "rewrote 1 time(s)"}, []string{"graph output"}},
		{"blocked", []string{"optimize", blocked, "-o", out, "--explain", "fuse-conv-batchnorm"}, ExitOK,
			[]string{"explain fuse-conv-batchnorm: 1 candidate(s) not rewritten", "bn (BatchNormalization): conv's output c is a graph output"}, nil},
		{"not explained", []string{"optimize", blocked, "-o", out}, ExitOK, nil, []string{"explain "}},
		{"unknown pass", []string{"optimize", in, "-o", out, "--explain", "nope"}, ExitUsage, []string{"unknown pass \"nope\"", "fuse-gelu"}, nil},
		{"pass records no reasons", []string{"optimize", in, "-o", out, "--explain", "fold-constants"}, ExitUsage, []string{"does not record why it did not fire"}, nil},
		{"pass not run", []string{"optimize", in, "-o", out, "--explain", "fuse-ort-attention"}, ExitUsage, []string{"does not run at -O2 --target generic"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var so, se bytes.Buffer
			code := Execute(tc.args, &so, &se)
			all := so.String() + se.String()
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(all, w) {
					t.Errorf("output has %q:\n%s", w, all)
				}
			}
		})
	}
	var so, se bytes.Buffer
	if code := Execute([]string{"optimize", blocked, "-o", out, "--explain", "fuse-conv-batchnorm", "--json"}, &so, &se); code != ExitOK {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	var res struct {
		Report struct {
			Passes []struct {
				Pass   string `json:"pass"`
				Misses []struct{ Node, Op, Reason string }
			} `json:"passes"`
		} `json:"report"`
	}
	if err := json.Unmarshal(so.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range res.Report.Passes {
		if p.Pass == "fuse-conv-batchnorm" {
			found = len(p.Misses) == 1 && p.Misses[0].Node == "bn" && strings.Contains(p.Misses[0].Reason, "graph output")
		} else if len(p.Misses) > 0 {
			t.Errorf("pass %s not explained but has misses %v", p.Pass, p.Misses)
		}
	}
	if !found {
		t.Errorf("--json lacks the miss of bn:\n%s", so.String())
	}
}
