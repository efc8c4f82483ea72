package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRootExitCodes(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"version", []string{"--version"}, ExitOK, "optictl version"},
		{"help", []string{"--help"}, ExitOK, "optimize"},
		{"unknown flag", []string{"--no-such-flag"}, ExitUsage, ""},
		{"unknown command", []string{"frobnicate"}, ExitUsage, ""},
		// The OS says "invalid argument" for a NUL in a path: still a bad
		// file, not bad usage.
		{"NUL in a model path", []string{"inspect", "a\x00b.onnx"}, ExitError, ""},
		{"invalid flag value", []string{"inspect", "--top", "x", "m.onnx"}, ExitUsage, ""},
		{"too many arguments", []string{"inspect", "a.onnx", "b.onnx"}, ExitUsage, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Execute(c.args, &out, &errb)
			if code != c.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, c.code, errb.String())
			}
			if c.out != "" && !strings.Contains(out.String(), c.out) {
				t.Fatalf("stdout %q lacks %q", out.String(), c.out)
			}
		})
	}
}
