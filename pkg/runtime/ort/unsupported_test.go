package ort

import (
	"errors"
	"testing"

	"github.com/optictl/optictl/pkg/runtime"
)

// TestClassify: ONNX Runtime's "no kernel" wordings become
// runtime.ErrUnsupported with the op; other failures do not.
func TestClassify(t *testing.T) {
	cases := []struct {
		msg         string
		unsupported bool
		op, domain  string
	}{
		{"[ErrorCode:NotImplemented] Could not find an implementation for ConvInteger(10) node with name ''", true, "ConvInteger", ""},
		{"Load model failed: Fatal error: com.example:Custom(-1) is not a registered function/op", true, "Custom", "com.example"},
		{"This is an invalid model. In Node, (\"n\", Foo, \"\", -1) : No Op registered for Foo with domain_version of 13", true, "Foo", ""},
		{"[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : something", true, "", ""},
		{"Exception during initialization: layout_ == 0 was false. Batchwise recurrent operations (layout == 1) are not supported.", true, "", ""},
		{"ONNX Runtime only *guarantees* support for models stamped with official released onnx opset versions. Opset 27 is under development", true, "", ""},
		{"[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions for input: x", false, "", ""},
	}
	for _, c := range cases {
		base := errors.New(c.msg)
		err := classify("creating the session: ", base)
		if got := errors.Is(err, runtime.ErrUnsupported); got != c.unsupported {
			t.Errorf("%q: unsupported %v, want %v", c.msg, got, c.unsupported)
			continue
		}
		if !errors.Is(err, base) {
			t.Errorf("%q: the ONNX Runtime error is not wrapped", c.msg)
		}
		if ue, ok := runtime.AsUnsupported(err); ok && (ue.Op != c.op || ue.Domain != c.domain) {
			t.Errorf("%q: op %q domain %q, want %q %q", c.msg, ue.Op, ue.Domain, c.op, c.domain)
		}
	}
}
