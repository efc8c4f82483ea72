package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/conformance"
)

func TestConformanceUsage(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"unknown backend", []string{"conformance", "--backend", "nope"}, ExitUsage},
		{"bad regexp", []string{"conformance", "--run", "(", "--dir", t.TempDir()}, ExitUsage},
		{"bad threads", []string{"conformance", "--threads", "0", "--dir", t.TempDir()}, ExitUsage},
		{"stray argument", []string{"conformance", "extra"}, ExitUsage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := Execute(c.args, &out, &errb); code != c.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, c.code, errb.String())
			}
		})
	}
}

func TestConformanceEmptyDirFails(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Execute([]string{"conformance", "--dir", t.TempDir()}, &out, &errb); code == ExitOK {
		t.Fatalf("an empty folder passed: %q", out.String())
	}
}

func TestWriteConformance(t *testing.T) {
	rep := &conformance.Report{Backend: "interp", Total: 2, Pass: 1, Fail: 1, PassRate: 0.5,
		Ops: []conformance.OpStats{{Op: "Add", Total: 2, Pass: 1, Fail: 1}},
		Results: []conformance.Result{
			{Name: "test_add", Op: "Add", Status: conformance.Pass},
			{Name: "test_add_bcast", Op: "Add", Status: conformance.Fail, Detail: "[0] = 1, want 2"},
		}}
	cases := []struct {
		name          string
		json, verbose bool
		want, notWant []string
	}{
		{"table", false, false, []string{"ADD", "1/2 passed (50.0%)"}, []string{"test_add_bcast"}},
		{"table verbose", false, true, []string{"test_add_bcast", "want 2"}, nil},
		{"json", true, false, []string{`"pass_rate": 0.5`, "test_add_bcast"}, []string{`"name": "test_add",`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeConformance(&b, rep, c.json, c.verbose); err != nil {
				t.Fatal(err)
			}
			s := b.String()
			for _, w := range c.want {
				if !strings.Contains(strings.ToUpper(s), strings.ToUpper(w)) {
					t.Errorf("output lacks %q:\n%s", w, s)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(s, w) {
					t.Errorf("output has %q:\n%s", w, s)
				}
			}
			if c.json {
				var back conformance.Report
				if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Pass != 1 {
					t.Fatalf("json does not round-trip: %v %+v", err, back)
				}
			}
		})
	}
}

// A real run over a few node tests, through the command.
func TestConformanceRunJSON(t *testing.T) {
	dir := testutil.ConformanceDir(t)
	if _, err := os.Stat(filepath.Join(dir, "test_abs")); err != nil {
		testutil.Missing(t, "test_abs")
	}
	var out, errb bytes.Buffer
	code := Execute([]string{"conformance", "--dir", dir, "--run", "^test_(abs|relu)$", "--json"}, &out, &errb)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep conformance.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Total != 2 || rep.Pass != 2 {
		t.Fatalf("report %+v, want 2 tests passing", rep)
	}
}
