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
// Static (Static) writes QDQ form placed the way ONNX Runtime's CPU
// provider fuses it (placeQDQ): Conv/MatMul/Gemm with constant weights
// get int8 weights (per-channel DequantizeLinear) and int32 biases; Add,
// Mul, GlobalAveragePool, AveragePool, Sigmoid, LeakyRelu and MatMul of
// two activations join the int8 region when their inputs are already int8
// (QLinearAdd, QLinearMul, QLinearGlobalAveragePool, ... in ORT); Relu and
// Clip after a quantized op are folded into its output Q (range from 0:
// ORT drops them); MaxPool/Reshape/Flatten/Transpose/Squeeze/Unsqueeze
// share their input's scale and zero point (ORT runs them on int8);
// Div/Mul by a positive constant is folded into the DQ scale (so
// hard-swish x*Clip(x+3,0,6)/6 becomes QLinearAdd + QLinearMul); MatMul
// and Gemm whose readers are float keep a float output
// (MatMulIntegerToFloat, QGemm), so ORT's float fusions after them (bias
// + Gelu, skip + layer norm) still apply. The activation ranges come from
// calibration: the model is run, with those activations added as extra
// outputs, on the caller's calibration samples, through a runtime backend
// (MinMax, Percentile or Entropy/KL calibrators). The written model holds
// only standard ONNX ops (QuantizeLinear, DequantizeLinear and the float
// ops), so every backend runs it; ORT fuses it into its QLinear kernels.
//
// uint8 activations (Asymmetric) are the fast form on x86: ORT's x86 CPU
// provider fuses QDQ into QLinear ops only for uint8 activations; with
// int8 activations (s8s8, the zero value of StaticOptions) it keeps
// DQ -> float op -> Q and the model runs 2-3x slower than fp32. Search
// with Int8Variants tries uint8 first.
//
// FP16 converts float32 compute and weights to float16, keeping
// DefaultFP32Ops (Softmax, reductions, normalizations, Exp/Log/Pow, ...)
// in float32 with Casts around them, and the graph's inputs and outputs
// float32 when KeepIO is set.
//
// ControlledBy implements accuracy control: quantize, measure the result
// against fp32 with the metric that fits the output (numerics.ChooseMetric:
// top-1 accuracy with labels, top-1 agreement for class vectors, IoU of
// binarized probability maps, cosine; or the one asked for), rank the
// quantized nodes by the SQNR of their outputs against fp32 and put the
// worst back in float, 1, 2, 4, ... then bisected, until the result is
// within the numerics.Budget; every attempt is recorded (Tried), and
// something always stays quantized. Controlled is ControlledBy with the
// default budget and a top-1 drop limit. MeasureSpeed
// compares a float model and its quantized form in interleaved A/B runs
// (median, one thread) and says plainly when the quantized one is not
// faster. Search runs Controlled for several variants (Int8Variants:
// static uint8, dynamic, static uint8 on Conv/MatMul/Gemm only, static
// s8s8), times those within the limit and picks the fastest.
//
// Speed (measured, see BenchmarkInt8Speedup and BenchmarkInt8Search): on
// an AVX2 CPU without VNNI (AMD EPYC, Zen 3) ORT's int8 convolution
// kernels beat its fp32 NCHWc kernels only on wide layers (a 64-channel
// 3x3 conv: about 1.8x); on 16-32 channel convs they tie and on depthwise
// convs they lose (about 0.7x), and QLinearMul is slower than a float Mul.
// So the int8 forms pay off on wide convolutional models (the 64-128
// channel wideCNN of the benchmarks: about 1.7x) but not on this
// project's small test CNN (about 1.0x), the MobileNetV3-like ppocr-cls
// classifier (static int8 about 0.7x; dynamic, which leaves its convs in
// float, about 1.0x) or the one-layer transformer (dynamic about 1.1x:
// the int8 MatMuls are about 1.7x faster kernels but only half the run).
//
// Mixed (the int8-mixed recipe) quantizes only where int8 pays on the
// target: Profile times every Conv/MatMul/Gemm with a constant weight
// alone on ORT (a one-node model of its input shape, weights and
// attributes; float against its int8 QDQ form with a uint8 output Q and
// DQ, and against the boundary QuantizeLinear and DequantizeLinear alone;
// interleaved, one thread, medians; cached per shape in a ProfileCache).
// Plan quantizes a layer when float beats the int8 kernel plus the
// boundary ops it pays (a Q when the layer feeding it, through Relu,
// pools and reshapes, stays float; a DQ when a reader does) by
// MixedMargin, dropping layers until the plan is stable. Mixed then times
// the plan and two whole-region alternatives (every layer whose kernel
// alone is faster; every layer) once each as whole models and keeps the
// fastest, since a whole int8 region can pay where its layers alone do
// not (the test CNN: plan 1.07x, every layer 1.36x). KeepFaster makes the
// written model never slower than fp32: it puts the int8 layers with the
// smallest gain (ByGain) back in float, 1, 2, 4, ... of them. Control,
// SearchOptions, ProfileOptions carry a Deadline (optimize --time-budget:
// the best candidate so far is kept and the result says so) and a
// Progress sink (one line per step).
//
// Measured on the AMD EPYC this project runs on (its CPU flags show
// AVX-512 VNNI; BenchmarkInt8Mixed): ORT's int8 convs are 2-4x faster
// than fp32 on 16-128 channel 3x3 and 1x1 convs, but 0.4-0.65x on
// depthwise convs and on stems with 3 input channels, and a layer under
// about 10us loses its gain to its Q/DQ pair. int8-mixed: wide CNN 3.2x,
// test CNN 1.4x, ppocr-cls 1.04x (every layer int8: 0.72x), DBNet at
// 320x320 1.15x (every layer: 0.97x; its depthwise convs and stem are a
// fifth of the float time and Resize/ConvTranspose/HardSwish another
// fifth, so 1.3x is out of reach here).
//
// Weights use 7 bits by default ("reduce range"): on AVX2 CPUs without
// VNNI, ONNX Runtime's int8 kernels (u8s8 and s8s8 alike) saturate int16
// pair sums with full 8-bit weights; measured on this project's test
// models, interp and ORT then disagree by up to 8% of the output range,
// while with 7 bits they agree to float rounding. FullRange opts out.
//
// Recipes (RegisterRecipe, Recipes, LookupRecipe) are declared values,
// like passes: int8-dynamic, int8-static, int8-auto (a search over
// Int8Variants) and fp16, each with its Doc and what it needs
// (calibration, evaluation data, the op types it quantizes); optictl
// lists and dispatches from the registry. Static's QDQ placement takes a
// Target (RegisterTarget, LookupTarget): ort-cpu (the default, the ORT
// CPU fusion rules above) or fpga (int8 end to end, only ops that map to
// dataflow engines).
//
// Opsets: QuantizeLinear needs opset 10, per-channel DequantizeLinear 13
// and DynamicQuantizeLinear 11. Older models are converted to 13 with the
// version converter (pkg/opset) and the Report's notes say so and which
// operators were adapted; when the converter refuses a node, the note
// names it (and per-channel falls back to per tensor at opset 10-12).
// Report.NothingQuantized turns a rewrite that quantized nothing into an
// error saying why (ErrNothingQuantized).
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
// relative to the output range: interp runs the QDQ graph as written
// (float ops between DQ and Q), ORT runs fused QLinear kernels that
// requantize in their own arithmetic, so an activation may differ by one
// quantization step per layer (measured: at most 0.8% of the output range
// on the test models, usually float rounding only).
package quant
