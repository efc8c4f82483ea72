// Package prune removes weights from a model: unstructured magnitude pruning
// (zeroing the smallest weights of Conv, Gemm and MatMul) and structured
// channel pruning (removing whole output channels of Conv and output
// columns of Gemm/MatMul weights, with the graph surgery that keeps every
// consumer consistent). For structured pruning it also chooses per-layer
// ratios by measured sensitivity (Auto), re-fits the layers after the
// removed channels by least squares on calibration activations and corrects
// BatchNorm statistics (Reconstruct), and measures the result against the
// unpruned model (Measure).
//
// Invariants:
//   - Prune changes the model in place only on success; on error the model
//     is untouched (the work happens on a clone).
//   - Graph inputs and outputs keep their names, types and shapes: a channel
//     that reaches a graph output, an op the package does not know, a
//     non-constant weight or a reshape whose mapping is not simple is never
//     pruned (its whole tie group is skipped and the reason reported).
//   - Channels joined by a binary elementwise op (a residual Add or Mul) form
//     one tie group (union-find): the group is pruned with one keep set, or
//     not at all.
//   - Initializer bytes are never modified in place: a pruned weight gets new
//     bytes, and a weight shared with a node that must not change is copied
//     under a new name first.
//   - Unstructured pruning only zeroes values; dense kernels do not get
//     faster from zeros (the report says so).
//   - Structured pruning makes ONNX Runtime faster only when channel counts
//     stay multiples of its NCHWc block (8 on AVX2): Options.Multiple rounds
//     kept counts; without it the report warns when a layer is off the block.
//   - Reconstruct only rewrites constants of a model that Prune produced
//     from the same original (node lists align one to one): re-fitted Conv,
//     Gemm and MatMul weights and biases, corrected BatchNorm statistics and biases; it
//     never adds or removes nodes, and a fit that does not lower the
//     layer's error on the calibration rows is not applied.
//   - Auto (sensitivity-driven ratios) writes nothing into the model unless
//     the held-out result is within the budget; a collapse (cosine < 0.9 or
//     all-zero outputs) is always outside it.
package prune
