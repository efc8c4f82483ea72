package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPassesPrintsFiles checks that `passes` names, for every pass, a
// source file that exists in the repository.
func TestPassesPrintsFiles(t *testing.T) {
	var so, se bytes.Buffer
	if code := Execute([]string{"passes", "--json"}, &so, &se); code != ExitOK {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	var list []passInfo
	if err := json.Unmarshal(so.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	for _, p := range list {
		if !strings.HasPrefix(p.File, "pkg/passes/") || !strings.HasSuffix(p.File, ".go") {
			t.Errorf("pass %s: file %q, want pkg/passes/*.go", p.Name, p.File)
			continue
		}
		if _, err := os.Stat(filepath.Join("..", "..", filepath.FromSlash(p.File))); err != nil {
			t.Errorf("pass %s: %v", p.Name, err)
		}
	}
	so.Reset()
	if code := Execute([]string{"passes"}, &so, &se); code != ExitOK {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	if !strings.Contains(so.String(), "pkg/passes/fuse_conv.go") {
		t.Errorf("table lacks the file of fuse-conv-batchnorm:\n%s", so.String())
	}
}
