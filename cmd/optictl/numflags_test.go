package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
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
