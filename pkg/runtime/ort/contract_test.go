//go:build cgo

package ort

import (
	"testing"

	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/runtime/runtimetest"
)

// TestSessionContract runs the runtime Session contract on ONNX Runtime.
func TestSessionContract(t *testing.T) {
	needLib(t)
	b, err := runtime.Get("ort")
	if err != nil {
		t.Fatal(err)
	}
	runtimetest.TestSession(t, b)
}
