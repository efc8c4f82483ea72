// Package distill trains a student ONNX model against a teacher's outputs
// (knowledge distillation) with gorgonia.
//
// The trainable graph is built directly from pkg/graph, not through
// onnx-go's gorgonnx backend (whose Gemm and BatchNormalization have no
// gradients, and which exposes no parameters to write back); the tests
// use gorgonnx as an independent reference for the forward pass.
// Supported ops cover small CNNs, MLPs and exported mobile
// nets (MobileNetV3, Paddle OCR):
//   - Conv (any group: depthwise through one Im2Col whatever the channel
//     count, other groups as one convolution per group on slices of the
//     input and of the one weight; symmetric pads), MatMul (2-D), Gemm;
//   - BatchNormalization (inference form): a per-channel affine map whose
//     scale and bias are trained while mean and var stay constants (they
//     are not parameters and are written back unchanged);
//   - Relu, LeakyRelu, Sigmoid, Tanh, Clip (min/max as attributes or
//     constant inputs; Relu6), HardSigmoid, HardSwish, Neg, Sqrt, all with
//     gradients (Clip and the hard activations are built from Rectify);
//   - Add, Sub, Mul, Div, Max, Min (variadic) with numpy broadcasting
//     (Max and Min built from Rectify);
//   - MaxPool (no padding), AveragePool (stride = kernel, no padding),
//     GlobalAveragePool, Softmax (last axis only);
//   - Reshape (constant shape), Flatten (axis 1), Concat (any axis but the
//     batch; int64 shape pieces too), Transpose (batch stays first),
//     Squeeze/Unsqueeze (axes as attribute or constant input), Dropout
//     (inference: identity; its mask is not computed), Identity, Constant.
//
// Shape arithmetic (Shape, Gather, Cast, Slice on shapes) is refused: fix
// the input shape and fold it into constants first (optictl optimize
// --shape NAME=1x3xHxW -O1; passes fold-shapes and fold-constants). The
// -O2 passes still fold BatchNormalization into the convolutions for the
// distill command, which is faster to train.
//
// gorgonia pitfalls handled by Build: its broadcasting ops get the
// gradient of an operand broadcast along some axes wrong, so operands are
// expanded to the full shape by products with ones (exact gradients); and
// it runs an elementwise op in place on its first operand, which for a
// Reshape/Transpose view of a parameter would overwrite the parameter, so
// reshaped parameters are copied first.
//
// Invariants:
//   - Every float32 initializer and every float32 Constant node value that
//     a node reads is a trainable parameter (an identity output is the
//     same value), except BatchNormalization's mean and var and Clip's
//     bounds, read as constants; int64 and int32 tensors (Reshape shapes)
//     stay constants.
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
