// Package quant rewrites float32 ONNX models into int8 and float16 forms
// that ONNX Runtime's CPU provider runs fast, and that optictl's interp
// backend runs too.
//
// Dynamic (Dynamic) rewrites MatMul and Gemm with constant float weights
// into DynamicQuantizeLinear + MatMulInteger + Cast + Mul (+ Add for a
// bias): weights are stored int8, symmetric, one scale per output column;
// activations are quantized to uint8 at run time. This is the pattern ORT
// fuses into its DynamicQuantizeMatMul kernel. Conv is left in float:
// ORT's ConvInteger CPU kernel is not faster than its float Conv.
//
// Static (Static) writes QDQ form: QuantizeLinear/DequantizeLinear pairs on
// every activation read or written by a quantized Conv/MatMul/Gemm, int8
// weights with a (per-channel) DequantizeLinear, and int32 biases. The
// activation ranges come from calibration: the model is run, with those
// activations added as extra outputs, on the caller's calibration samples,
// through a runtime backend (MinMax, Percentile or Entropy/KL calibrators).
//
// FP16 converts float32 compute and weights to float16, keeping
// DefaultFP32Ops (Softmax, reductions, normalizations, Exp/Log/Pow, ...)
// in float32 with Casts around them, and the graph's inputs and outputs
// float32 when KeepIO is set.
//
// Controlled implements accuracy control: quantize, measure the drop
// (top-1 accuracy with labels, else top-1 agreement with fp32), rank the
// quantized nodes by the SQNR of their outputs against fp32 and put the
// worst back in float until the drop is within the limit. MeasureSpeed
// compares a float model and its quantized form in interleaved A/B runs
// (median, one thread) and says plainly when the quantized one is not
// faster.
//
// Weights use 7 bits by default ("reduce range"): on AVX2 CPUs without
// VNNI, ONNX Runtime's int8 kernels (u8s8 and s8s8 alike) saturate int16
// pair sums with full 8-bit weights; measured on this project's test
// models, interp and ORT then disagree by up to 8% of the output range,
// while with 7 bits they agree to float rounding. FullRange opts out.
//
// Invariants: the input model is never modified (both functions work on a
// clone); only the main graph is rewritten (nodes holding If/Loop/Scan
// subgraphs and everything inside them stay in float, and the Report says
// so); nodes that are already quantized (QuantizeLinear, DequantizeLinear,
// QLinear*, *Integer) and weights that are not float constants are left
// alone. A node that cannot be rewritten is listed in Report.Skipped with
// the reason, never silently dropped.
//
// Tolerance: int8 results are not bit-exact. The package's tests require,
// on seeded inputs, cosine similarity > 0.99 against fp32 and top-1
// agreement >= 0.95 on the test models, and agreement between the interp
// and ort backends on the same quantized model within DefaultBackendATol
// relative to the output range (the two round activations identically;
// they differ only in float summation order).
package quant
