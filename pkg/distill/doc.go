// Package distill trains a student ONNX model against a teacher's outputs
// (knowledge distillation) with gorgonia.
//
// The trainable graph is built directly from pkg/graph, not through
// onnx-go's gorgonnx backend (whose Gemm and BatchNormalization have no
// gradients, and which exposes no parameters to write back); the tests
// use gorgonnx as an independent reference for the forward pass.
// Supported ops are those of small CNNs and MLPs: Conv (group 1, symmetric
// pads), Relu, MaxPool (symmetric pads), Add (numpy
// broadcasting), MatMul, Gemm, Reshape, Flatten (axis 1) and Identity.
// BatchNormalization is not trained: callers fold it into the convolutions
// first (passes.Optimize at -O2 does), and Build refuses it otherwise.
//
// Invariants:
//   - Every float32 initializer and every float32 Constant node value that
//     a node reads is a trainable parameter (an identity output is the
//     same value); int64 tensors (Reshape shapes) stay constants.
//   - The graph is built for one fixed batch size: the model's batch
//     dimension (its inputs' first dim) is replaced by it, and Reshape
//     targets computed on activations get the batch as their first dim.
//   - WriteBack writes the parameters into the same initializers or
//     Constant nodes they came from, with the same names and shapes, so
//     the written model runs on any backend like the gorgonia forward pass.
//   - Training is deterministic for a given seed and number of workers:
//     parameters start from the student's weights (nothing is initialized
//     at random), the sample order comes from a seeded generator, and a
//     batch split over workers (one graph and tape machine per share, run
//     on its own goroutine) has its gradients combined in share order, so
//     the result does not depend on how many cores run them.
//   - Losses per output are chosen from the output as the accuracy
//     metrics are (ChooseLoss): KD on class scores, MSE on probability
//     maps and single values, cosine on other vectors (embeddings).
//   - With Options.CheckpointDir, checkpoint.json is written last and
//     atomically after each epoch, naming that epoch's student ONNX and
//     Adam state: the folder always describes one complete epoch. Adam is
//     this package's own (gorgonia's AdamSolver hides its moments), so a
//     resume restores the moments, the step count and the seeded sample
//     order and gives the same weights as an uninterrupted run.
package distill
