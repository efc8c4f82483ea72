package runtime

import (
	"errors"
	"fmt"
	"testing"
)

// TestUnsupportedError: ErrUnsupported matches through wrapping, the op is
// recoverable with AsUnsupported, and the library error stays reachable.
func TestUnsupportedError(t *testing.T) {
	lib := errors.New("NOT_IMPLEMENTED: Could not find an implementation for Foo(13)")
	cases := []struct {
		name    string
		err     error
		is      bool
		op      string
		message string
	}{
		{"plain", &UnsupportedError{Op: "Foo", Domain: "com.example", Reason: "x: unsupported op com.example.Foo"}, true, "com.example.Foo", "x: unsupported op com.example.Foo"},
		{"wrapped twice", fmt.Errorf("passes: %w", fmt.Errorf("node n: %w", &UnsupportedError{Op: "Conv", Reason: "dtype int8 is not supported"})), true, "Conv", "passes: node n: dtype int8 is not supported"},
		{"library error", &UnsupportedError{Op: "Foo", Err: lib}, true, "Foo", lib.Error()},
		{"other error", fmt.Errorf("runtime: input %q: wrong shape", "x"), false, "", `runtime: input "x": wrong shape`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := errors.Is(c.err, ErrUnsupported); got != c.is {
				t.Fatalf("errors.Is = %v, want %v", got, c.is)
			}
			if c.err.Error() != c.message {
				t.Fatalf("message %q, want %q", c.err.Error(), c.message)
			}
			ue, ok := AsUnsupported(c.err)
			if ok != c.is || (ok && ue.OpName() != c.op) {
				t.Fatalf("AsUnsupported = %+v, %v", ue, ok)
			}
		})
	}
	if !errors.Is(&UnsupportedError{Err: lib}, lib) {
		t.Fatal("the library error is not unwrapped")
	}
}
