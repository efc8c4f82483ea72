package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
)

func TestInspectCommand(t *testing.T) {
	root := testutil.ModelsDir(t)
	mnist := filepath.Join(root, "mnist", "model.onnx")
	ppocr := filepath.Join(root, "ppocr-cls", "model.onnx")
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.onnx")
	if err := os.WriteFile(junk, []byte{0xff, 0x13, 0x37, 0x00, 0x42, 0x99, 0x01}, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		code int
		out  string // stdout substring
		err  string // stderr substring
	}{
		{"tables", []string{"inspect", mnist}, ExitOK, "Convolution110", ""},
		{"with shape", []string{"inspect", ppocr, "--shape", "x=1x3x48x192"}, ExitOK, "float32[1,3,48,192]", ""},
		{"comma shape", []string{"inspect", ppocr, "--shape", "x=1,3,48,192", "--top", "3"}, ExitOK, "heaviest 3 nodes", ""},
		{"missing file", []string{"inspect", filepath.Join(dir, "nope.onnx")}, ExitError, "", "nope.onnx"},
		{"random bytes", []string{"inspect", junk}, ExitError, "", "junk.onnx"},
		{"no args", []string{"inspect"}, ExitUsage, "", "one model file"},
		{"two args", []string{"inspect", mnist, mnist}, ExitUsage, "", "got 2"},
		{"bad shape syntax", []string{"inspect", mnist, "--shape", "Input3"}, ExitUsage, "", "NAME=DIMS"},
		{"shape of unknown input", []string{"inspect", mnist, "--shape", "nope=1x2"}, ExitUsage, "", `"nope"`},
		{"shape contradicting the model", []string{"inspect", ppocr, "--shape", "x=1x4x48x192"}, ExitUsage, "", "fixes it at 3"},
		{"bad top", []string{"inspect", mnist, "--top", "0"}, ExitUsage, "", "--top"},
		{"unknown flag", []string{"inspect", mnist, "--nope"}, ExitUsage, "", "unknown flag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Execute(c.args, &out, &errb)
			if code != c.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, c.code, errb.String())
			}
			if !strings.Contains(out.String(), c.out) || !strings.Contains(errb.String(), c.err) {
				t.Fatalf("stdout %q\nstderr %q\nwant %q / %q", out.String(), errb.String(), c.out, c.err)
			}
			if code == ExitError {
				if lines := strings.Count(strings.TrimRight(errb.String(), "\n"), "\n"); lines != 0 || out.Len() != 0 {
					t.Errorf("want a one-line error and no stdout, got %q / %q", errb.String(), out.String())
				}
			}
		})
	}
}

func TestInspectJSON(t *testing.T) {
	root := testutil.ModelsDir(t)
	for _, name := range []string{"mnist", "silero-vad-v5", "oww-embedding"} {
		p := filepath.Join(root, name, "model.onnx")
		var out, errb bytes.Buffer
		if code := Execute([]string{"inspect", "--json", p}, &out, &errb); code != ExitOK {
			t.Fatalf("%s: exit %d: %s", name, code, errb.String())
		}
		dec := json.NewDecoder(&out)
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if dec.More() {
			t.Errorf("%s: more than one JSON value on stdout", name)
		}
		m, err := graph.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := obj["nodes"].(float64); !ok || int(n) != len(m.Graph.Nodes) {
			t.Errorf("%s: nodes %v, want %d", name, obj["nodes"], len(m.Graph.Nodes))
		}
		for _, k := range []string{"initializers", "params", "flops", "ops", "inputs", "outputs"} {
			if _, ok := obj[k]; !ok {
				t.Errorf("%s: no %q", name, k)
			}
		}
		ins, _ := obj["inputs"].([]any)
		if len(ins) == 0 {
			t.Fatalf("%s: inputs %v", name, obj["inputs"])
		}
		first, _ := ins[0].(map[string]any)
		for _, k := range []string{"name", "dtype", "shape"} {
			if _, ok := first[k]; !ok {
				t.Errorf("%s: input lacks %q", name, k)
			}
		}
	}
}
