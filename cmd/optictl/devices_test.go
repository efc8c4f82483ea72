package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/runtime/ort"
)

func TestBackendsCommand(t *testing.T) {
	if len(ort.Candidates("")) == 0 {
		testutil.Missing(t, "ONNX Runtime shared library (run `make setup`)")
	}
	var out, errb bytes.Buffer
	if code := Execute([]string{"backends", "--json"}, &out, &errb); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var reps []backendReport
	if err := json.Unmarshal(out.Bytes(), &reps); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	seen := map[string]backendReport{}
	for _, r := range reps {
		seen[r.Name] = r
	}
	if _, ok := seen["interp"]; !ok {
		t.Fatalf("no interp backend in %+v", reps)
	}
	o, ok := seen["ort"]
	if !ok || o.Library == "" || o.LibraryVersion == "" || o.Error != "" {
		t.Fatalf("ort report %+v", o)
	}
	// A library that cannot be used is an error (exit 1) with a message.
	out.Reset()
	errb.Reset()
	if code := Execute([]string{"backends", "--ort-lib", "/nonexistent/libonnxruntime.so"}, &out, &errb); code != ExitError || errb.Len() == 0 {
		t.Fatalf("bad --ort-lib: exit %d, stderr %q", code, errb.String())
	}
	if code := Execute([]string{"backends", "extra"}, &out, &errb); code != ExitUsage {
		t.Fatalf("extra argument: exit %d", code)
	}
}
