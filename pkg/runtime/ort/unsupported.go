package ort

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/optictl/optictl/pkg/runtime"
)

// ONNX Runtime says "I cannot run that" in a few fixed wordings; they are
// matched here, once, and turned into runtime.ErrUnsupported so that no
// caller ever matches ORT's messages.
var (
	// Could not find an implementation for ConvInteger(10) node with name ''
	reNoImpl = regexp.MustCompile(`Could not find an implementation for (\w+)\((\d+)\)`)
	// Fatal error: com.example:Custom(-1) is not a registered function/op
	reNotRegistered = regexp.MustCompile(`(?:([\w.]+):)?(\w+)\(-?\d+\) is not a registered function/op`)
	// No Op registered for Foo with domain_version of 13
	reNoOp = regexp.MustCompile(`No Op registered for (\w+) with domain_version`)
)

// classify wraps err (an ONNX Runtime failure) as "ort: "+what+err, as a
// *runtime.UnsupportedError when ONNX Runtime says it has no kernel for an
// op, or does not implement what the model asks for.
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	reason := "ort: " + what + msg
	if m := reNoImpl.FindStringSubmatch(msg); m != nil {
		return &runtime.UnsupportedError{Op: m[1], Reason: reason, Err: err}
	}
	if m := reNotRegistered.FindStringSubmatch(msg); m != nil {
		return &runtime.UnsupportedError{Op: m[2], Domain: m[1], Reason: reason, Err: err}
	}
	if m := reNoOp.FindStringSubmatch(msg); m != nil {
		return &runtime.UnsupportedError{Op: m[1], Reason: reason, Err: err}
	}
	// "Batchwise recurrent operations (layout == 1) are not supported",
	// "Non per-tensor quantization is not supported now", "Opset 27 is under
	// development and support for this is limited".
	low := strings.ToLower(msg)
	if strings.Contains(msg, "NOT_IMPLEMENTED") || strings.Contains(low, "not implemented") ||
		strings.Contains(low, "not supported") || strings.Contains(low, "is under development") {
		return &runtime.UnsupportedError{Reason: reason, Err: err}
	}
	return fmt.Errorf("ort: %s%w", what, err)
}
