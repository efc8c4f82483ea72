package ort

import (
	"os"
	"path/filepath"
	"testing"
)

func TestVersionFromName(t *testing.T) {
	cases := []struct{ in, want string }{
		{"/x/libonnxruntime.so.1.24.1", "1.24.1"},
		{"libonnxruntime.so.1.17.0", "1.17.0"},
		{"libonnxruntime.so.1", ""},
		{"libonnxruntime.so", ""},
	}
	for _, c := range cases {
		if got := VersionFromName(c.in); got != c.want {
			t.Errorf("VersionFromName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestVersionOrder(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"1.24.1", "1.24", 1},
		{"1.24", "1.24", 0},
		{"1.9.0", "1.24", -1},
		{"1.17.3", "1.24", -1},
		{"2.0", "1.99.9", 1},
		{"x", "1.0", -1},
	}
	for _, c := range cases {
		if got := compareVersions(c.a, c.b); got != c.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	for v, ok := range map[string]bool{"1.24.1": true, "1.30.0": true, "1.17.1": false, "": true} {
		if versionOK(v) != ok {
			t.Errorf("versionOK(%q) = %v", v, !ok)
		}
	}
}

// TestCandidatesOrder: explicit paths win alone; the cache is searched
// newest version first.
func TestCandidatesOrder(t *testing.T) {
	cache := t.TempDir()
	for _, v := range []string{"1.24.1", "1.30.0"} {
		d := filepath.Join(cache, v)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "libonnxruntime.so."+v), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(EnvLibraryPath, "")
	t.Setenv(EnvCache, cache)
	cs := Candidates("")
	if len(cs) < 2 || cs[0].Source != "cache" || VersionFromName(cs[0].Path) != "1.30.0" || VersionFromName(cs[1].Path) != "1.24.1" {
		t.Fatalf("candidates %+v", cs)
	}
	t.Setenv(EnvLibraryPath, "/some/lib.so")
	cs = Candidates("")
	if len(cs) != 1 || cs[0].Path != "/some/lib.so" || !cs[0].Explicit {
		t.Fatalf("with $%s: %+v", EnvLibraryPath, cs)
	}
	cs = Candidates("/other.so")
	if len(cs) != 1 || cs[0].Path != "/other.so" || cs[0].Source != "--ort-lib" {
		t.Fatalf("with ORTLib: %+v", cs)
	}
}

// TestCandidatesPython: a Python onnxruntime wheel's library is found
// without running Python.
func TestCandidatesPython(t *testing.T) {
	home := t.TempDir()
	d := filepath.Join(home, ".local/lib/python3.11/site-packages/onnxruntime/capi")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(d, "libonnxruntime.so.1.24.2")
	if err := os.WriteFile(lib, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	t.Setenv(EnvLibraryPath, "")
	t.Setenv(EnvCache, "")
	found := false
	for _, c := range Candidates("") {
		if c.Path == lib {
			found = c.Source == "python"
		}
	}
	if !found {
		t.Fatalf("%s not among %+v", lib, Candidates(""))
	}
}
