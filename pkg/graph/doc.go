// Package graph is optictl's in-memory intermediate representation of an ONNX
// model, and the only form that passes, backends, bench and serve see.
//
// A Model owns one top-level Graph. A Graph is a list of Nodes in topological
// order that refer to values by name (ONNX's own namespace rules: one
// producer per name, graph inputs and initializers are producers too, and
// subgraphs of If/Loop/Scan may read names from enclosing graphs).
//
// Invariants kept by every function in this package and expected of passes:
//
//   - Tensor.Raw is immutable once loaded: a rewrite that changes a weight
//     makes a new Tensor rather than editing bytes in place, so Clone can share
//     weight bytes and a rolled-back pass costs no copy.
//   - Everything that ONNX's protobuf carries but the IR does not model
//     (training info, sparse initializers, fields newer than the generated
//     proto) is kept and written back unchanged by Save.
//   - Load never panics and never allocates more than the input warrants:
//     sizes are checked against the file before any buffer is made.
//   - A loaded model's nodes satisfy their operator's schema (CheckSchema:
//     input/output counts, required inputs named, by opset) and carry no
//     convolution or pooling attribute a model cannot have, so no backend
//     kernel indexes a missing input. Check adds the rank and shape checks
//     (it runs shape inference); backends that trust models, like ONNX
//     Runtime, run it before compiling one.
//   - External data is read only from regular files inside the model's
//     folder.
package graph
