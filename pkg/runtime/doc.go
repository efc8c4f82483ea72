// Package runtime runs models. Backends (interp: pure Go; ort: ONNX Runtime
// through cgo) register themselves by name and open Sessions on a
// graph.Model; bench, serve, compare and the optimizer's numeric checks only
// ever talk to a Session. Programs link every backend in by importing
// runtime/backends once.
//
// Commands never name a backend: they read Capabilities — the devices a
// backend runs on, the ops it supports (Supports), the options it takes
// (Options, by the flag that sets them, checked with CheckOptions and the
// backend's Validate), whether it is a Reference for numeric checks — and a
// backend that loads a shared library implements LibraryLoader.
//
// "This backend cannot run that" is an error matching ErrUnsupported
// (errors.Is), an *UnsupportedError naming the op; no caller matches
// message text.
//
// Contract of a Session (checked for every backend by runtime/runtimetest):
//   - Run takes inputs in Inputs() order and returns outputs in Outputs()
//     order. The returned tensors belong to the session and stay valid until
//     the next Run or Close; use Tensor.Clone to keep them. This is what lets
//     the hot path run without allocating. Run never writes its inputs.
//   - A Session is not safe for concurrent Run. Open one session per
//     goroutine (serve keeps a pool of instances).
//   - Errors name the input, the expected and the received dtype/shape.
//   - A cancelled ctx makes Run return an error wrapping ctx.Err().
//   - Close may be called twice (nil); Run after Close is an error.
package runtime
