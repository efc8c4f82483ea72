package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// InCI reports whether tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test, or fails it under CI, because what is named is missing.
func Missing(t testing.TB, what string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s is missing (CI=true: this must not be skipped)", what)
	}
	t.Skipf("%s is missing", what)
}

// SharedDir returns the shared/ folder that sits beside the repository
// (OPTICTL_SHARED overrides). It returns "" when none is found.
func SharedDir() string {
	if d := os.Getenv("OPTICTL_SHARED"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			c := filepath.Join(filepath.Dir(d), "shared")
			if _, err := os.Stat(filepath.Join(c, "models")); err == nil {
				return c
			}
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// ModelsDir returns ../shared/models or skips/fails the test.
func ModelsDir(t testing.TB) string {
	t.Helper()
	d := SharedDir()
	if d == "" {
		Missing(t, "../shared/models")
		return ""
	}
	return filepath.Join(d, "models")
}

// ConformanceDir returns the ONNX node conformance tests folder.
func ConformanceDir(t testing.TB) string {
	t.Helper()
	d := filepath.Join(ModelsDir(t), "conformance", "onnx-1.22.0", "node")
	if _, err := os.Stat(d); err != nil {
		Missing(t, d)
	}
	return d
}

// RealModels lists the model folders under ../shared/models that hold a
// model.onnx (conformance data excluded).
func RealModels(t testing.TB) []string {
	t.Helper()
	root := ModelsDir(t)
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		p := filepath.Join(root, e.Name(), "model.onnx")
		if _, err := os.Stat(p); err == nil {
			out = append(out, filepath.Join(root, e.Name()))
		}
	}
	return out
}

// AllModelFiles lists every .onnx file under ../shared/models, conformance
// tests included.
func AllModelFiles(t testing.TB) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(ModelsDir(t), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && filepath.Ext(p) == ".onnx" {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
