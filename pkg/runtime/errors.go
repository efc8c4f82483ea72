package runtime

import "errors"

// ErrUnsupported is matched (errors.Is) by every error that means "this
// backend cannot run that": an op without a kernel, an attribute value or a
// dtype a kernel does not handle, an op its library has no implementation
// for. It is not a verdict on the model, which may run elsewhere: callers
// (the optimizer's numeric checks, constant folding, conformance) try
// another backend or report the op as unsupported instead of failing.
var ErrUnsupported = errors.New("unsupported by the backend")

// UnsupportedError is the error a backend returns for something it cannot
// run. It matches ErrUnsupported and unwraps to Err (the backend library's
// own error, when there is one).
type UnsupportedError struct {
	// Op and Domain name the operator ("" Domain: ai.onnx); Op is "" when
	// the failure is not about one op.
	Op, Domain string
	// Reason is the whole message, as the backend words it (it names the
	// backend, the node and the op).
	Reason string
	Err    error
}

func (e *UnsupportedError) Error() string {
	if e.Reason == "" && e.Err != nil {
		return e.Err.Error()
	}
	return e.Reason
}

// Is makes errors.Is(err, ErrUnsupported) hold.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

func (e *UnsupportedError) Unwrap() error { return e.Err }

// OpName is "Op" for the default domain, else "domain.Op".
func (e *UnsupportedError) OpName() string {
	if e.Domain == "" || e.Domain == "ai.onnx" {
		return e.Op
	}
	return e.Domain + "." + e.Op
}

// AsUnsupported returns the UnsupportedError in err's chain, if any.
func AsUnsupported(err error) (*UnsupportedError, bool) {
	var ue *UnsupportedError
	ok := errors.As(err, &ue)
	return ue, ok
}
