package interp

import (
	"testing"

	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/runtime/runtimetest"
)

// TestSessionContract runs the runtime Session contract on interp.
func TestSessionContract(t *testing.T) {
	b, err := runtime.Get("interp")
	if err != nil {
		t.Fatal(err)
	}
	runtimetest.TestSession(t, b)
}
