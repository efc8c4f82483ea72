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
package graph
