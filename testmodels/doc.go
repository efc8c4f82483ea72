// Package testmodels holds small ONNX models that optictl generates itself,
// reproducibly, for tests, examples and benchmarks. Each model is available
// in memory (MLP(), CNN(), ... or All()) and as a file <name>.onnx in this
// folder, written by
//
//	go generate ./testmodels
//
// which runs ./gen. Weights are drawn from math/rand with a fixed seed per
// model at realistic scales (He or Glorot normal for layers feeding Relu or
// not, PyTorch's uniform range for recurrent weights), so the files are
// identical on every run; a test checks that the files match the
// constructors. Every model has a symbolic batch dimension "N", uses the
// default ONNX domain only, passes graph.Verify and round-trips through
// Save/Load unchanged.
//
// The models (name: constructor, opset, input -> outputs):
//
//   - mlp: MLP, opset 13, input[N,784] -> logits[N,10]. Three layers of
//     784-64-32-10: Gemm(transB=1)+Relu, MatMul+Add+Relu, Gemm. The Gemm and
//     the MatMul+Add forms are both present for fusion passes.
//   - cnn: CNN, opset 13, input[N,3,32,32] -> logits[N,10]. Conv(3->16,
//     with bias)+BatchNormalization+Relu stem; a residual block of two
//     Conv+BN (16->16, no bias) whose output is added to the stem's and then
//     Relu'd; MaxPool 2x2; Conv(16->32)+BN+Relu; GlobalAveragePool; Flatten;
//     Gemm head. BatchNorm statistics are non-trivial (mean N(0,0.1²),
//     variance U(0.5,1.5), scale U(0.8,1.2), shift N(0,0.1²)).
//   - dwsep: DepthwiseSeparable, opset 13, input[N,16,32,32] ->
//     output[N,32,32,32]. A MobileNet block: depthwise 3x3 Conv (group=16)
//     +BN+Relu, pointwise 1x1 Conv (16->32)+BN+Relu.
//   - transformer: TransformerEncoder, opset 13, input[N,16,64] ->
//     output[N,16,64]. One post-norm encoder layer, d_model 64, 4 heads,
//     feed-forward 256, all in plain ops: Q/K/V as MatMul+Add, heads split
//     by Reshape([0,0,4,16]) and Transpose, MatMul, Div by √16, Softmax,
//     MatMul, Transpose/Reshape back, output projection, residual Add;
//     LayerNormalization written out as ReduceMean, Sub, Pow, ReduceMean,
//     Add(eps), Sqrt, Div, Mul, Add; GELU written out as
//     Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5); second residual and norm.
//   - transformer_ln17: TransformerEncoderLN17, opset 17, same as
//     transformer (same weights) but both norms are the LayerNormalization
//     op; GELU is still written out.
//   - gru: GRU, opset 13, input[8,N,16] -> sequence[8,1,N,32], logits[N,4].
//     One GRU layer (hidden 32, linear_before_reset=1 as PyTorch exports it),
//     Squeeze of Y_h, Gemm head.
//   - lstm: LSTM, opset 13, input[8,N,16] -> hidden[1,N,32], cell[1,N,32],
//     score[N,1]. One LSTM layer (hidden 32, forget-gate bias 1, Y
//     omitted), Squeeze of Y_h, MatMul+Add head.
//   - dbnet: DBNet, opset 11, x[N,3,H,W] -> sigmoid_0.tmp_0[N,1,H,W]
//     (H and W dynamic, named p2o.DynamicDimension.*, multiples of 32). A
//     DB text detector as Paddle2ONNX exports PaddleOCR's: weights in
//     Constant nodes, Conv+BN+HardSwish (written x*Clip(x+3,0,6)/6)
//     backbone to stride 32 with depthwise convs, residual Adds and an SE
//     block, an FPN of opset-11 Resizes (nearest and linear) with Adds and
//     a Concat, a ConvTranspose head and a Sigmoid. InputShapes and
//     SampleDim give realistic sizes for its dynamic dims (64x96).
//   - mnist_mlp: MNISTMLP, opset 13, Input3[N,1,28,28] -> Plus214_Output_0[N,10].
//     A 784-64-10 student for the shared MNIST CNN (models/mnist/model.onnx,
//     same input and output names, pixel values 0-255): Flatten,
//     Gemm(alpha=1/255, transB=1)+Relu, Gemm; He weights, zero biases; only
//     ops that optictl distill trains.
//
// Model outputs are produced by a final Identity so that their names stay
// stable while passes rewrite the nodes before them, except dbnet's, which
// its Sigmoid writes as Paddle2ONNX does.
package testmodels

//go:generate go run ./gen
