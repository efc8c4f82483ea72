// Package runtime runs models. Backends (interp: pure Go; ort: ONNX Runtime
// through cgo) register themselves by name and open Sessions on a
// graph.Model; bench, serve, compare and the optimizer's numeric checks only
// ever talk to a Session.
//
// Contract of a Session:
//   - Run takes inputs in Inputs() order and returns outputs in Outputs()
//     order. The returned tensors belong to the session and stay valid until
//     the next Run or Close; use Tensor.Clone to keep them. This is what lets
//     the hot path run without allocating.
//   - A Session is not safe for concurrent Run. Open one session per
//     goroutine (serve keeps a pool of instances).
//   - Errors name the input, the expected and the received dtype/shape.
package runtime
