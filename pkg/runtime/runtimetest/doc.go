// Package runtimetest is the contract every runtime backend's sessions must
// keep, as a test suite a backend runs from its own _test.go (in the style
// of gonum's testlapack):
//
//	func TestSessionContract(t *testing.T) {
//		b, _ := runtime.Get("mybackend")
//		runtimetest.TestSession(t, b)
//	}
//
// The suite builds its tiny models with pkg/graph/build and checks, per
// subtest: computed values; output ownership (outputs stay valid until the
// next Run, a Clone survives it, inputs are never written); reuse of one
// session across runs whose dynamic dims change; sessions on separate
// goroutines at once; wrong input count, dtype, shape, data length and names
// rejected with errors naming the input; a cancelled context returning an
// error that wraps context.Canceled without hanging, and the session still
// usable after it; Close twice returning nil; Run after Close an error,
// never a panic; an op the backend cannot run refused at Open with
// runtime.ErrUnsupported naming the op.
//
// Invariants: the suite needs nothing but the backend (no files, no
// network) and runs in well under a second on a working backend.
package runtimetest
