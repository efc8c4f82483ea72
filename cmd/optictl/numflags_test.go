package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/build"
)

// TestSharedShapeAndMemoryFlags: every command that takes --shape or builds
// inputs parses --shape and --max-memory the same way (numerics), so a
// repeated name or a bad byte count is the same usage error everywhere.
func TestSharedShapeAndMemoryFlags(t *testing.T) {
	model := filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx")
	out := filepath.Join(t.TempDir(), "o.onnx")
	cmds := map[string][]string{
		"run":      {"run", model},
		"compare":  {"compare", model},
		"optimize": {"optimize", model, "-o", out},
		"bench":    {"bench", model, "--iterations", "1"},
		"inspect":  {"inspect", model},
	}
	cases := []struct {
		name string
		args []string
		want string
		mem  bool // --max-memory case (inspect builds no inputs)
	}{
		{"repeated name", []string{"--shape", "x=1x2", "--shape", "x=1x3"}, `gives input "x" twice`, false},
		{"empty dims", []string{"--shape", "x="}, "no dims", false},
		{"bad byte count", []string{"--max-memory", "lots"}, "is not a byte count", true},
	}
	for name, base := range cmds {
		for _, c := range cases {
			if c.mem && name == "inspect" {
				continue
			}
			t.Run(name+"/"+c.name, func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				code := Execute(append(append([]string{}, base...), c.args...), &stdout, &stderr)
				if code != ExitUsage || !strings.Contains(stderr.String(), c.want) {
					t.Fatalf("exit %d (want %d), stderr %q lacks %q", code, ExitUsage, stderr.String(), c.want)
				}
			})
		}
	}
}

func TestParseMaxMemory(t *testing.T) {
	cases := []struct {
		in              string
		session, seeded int64
		bad             bool
	}{
		{"", 0, 2 << 30, false},
		{"0", 0, -1, false},
		{"512M", 512 << 20, 512 << 20, false},
		{"-3", 0, 0, true},
	}
	for _, c := range cases {
		got, err := parseMaxMemory(c.in)
		if (err != nil) != c.bad || !c.bad && (got.session != c.session || got.seeded != c.seeded) {
			t.Errorf("parseMaxMemory(%q) = %+v, %v", c.in, got, err)
		}
	}
}

// TestAbsurdSeededInputRefused: issue 18's [?,3,?,1000000] input made
// optimize grow to gigabytes printing nothing. Seeded inputs over
// --max-memory (default 2G) are refused with exit 1 naming the input and
// its shape, by every command that builds inputs.
func TestAbsurdSeededInputRefused(t *testing.T) {
	dir := t.TempDir()
	save := func(name string, w int64) string {
		b := build.New(name, 13)
		x := b.Input("x", graph.Float, build.Dims("N", 3, "H", w))
		b.Output(b.Node("Relu", []string{x}), graph.Float, build.Dims("N", 3, "H", w))
		m, err := b.Model()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name+".onnx")
		if err := m.Save(p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	huge := save("huge", 1_000_000_000)
	wide := save("wide", 1_000_000)
	out := filepath.Join(dir, "o.onnx")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"optimize, default bound", []string{"optimize", huge, "-o", out}, `seeded input "x" of shape [1,3,1,1000000000] (float32) needs 11.18 GiB, over the 2 GiB bound`},
		{"optimize, --max-memory", []string{"optimize", wide, "-o", out, "--max-memory", "1M"}, `seeded input "x" of shape [1,3,1,1000000]`},
		{"run", []string{"run", huge}, `seeded input "x"`},
		{"compare", []string{"compare", huge}, `seeded input "x"`},
		{"bench", []string{"bench", "--backend", "interp", "--iterations", "1", huge}, `seeded input "x"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Execute(c.args, &stdout, &stderr)
			if code != ExitError || !strings.Contains(stderr.String(), c.want) || !strings.Contains(stderr.String(), "--max-memory") {
				t.Fatalf("exit %d, stderr %q lacks %q", code, stderr.String(), c.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatal("optimize wrote a model")
			}
		})
	}
}
