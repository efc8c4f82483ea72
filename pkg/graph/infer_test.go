package graph_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
)

type inferCase struct {
	name  string
	build func() *tb
	want  map[string]string // value -> TypeString
}

func runInferCases(t *testing.T, cases []inferCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.build()
			res, err := graph.InferShapes(b.m, graph.InferOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for v, want := range c.want {
				if got := typeOf(b.g, v); got != want {
					t.Errorf("%s: got %s, want %s (problems %v, unknown %v)", v, got, want, res.Problems, res.Unknown)
				}
			}
		})
	}
}

func TestInferConvPool(t *testing.T) {
	F := graph.Float
	runInferCases(t, []inferCase{
		{"conv", func() *tb {
			return newTB(13).input("x", F, "N", 3, 32, 32).weight("w", 8, 3, 3, 3).node("Conv", in("x", "w"), in("y"))
		}, map[string]string{"y": "float32[N,8,30,30]"}},
		{"conv pads strides", func() *tb {
			return newTB(13).input("x", F, "N", 3, 32, 32).weight("w", 8, 3, 3, 3).
				node("Conv", in("x", "w"), in("y"), graph.IntsAttr("pads", 1, 1, 1, 1), graph.IntsAttr("strides", 2, 2))
		}, map[string]string{"y": "float32[N,8,16,16]"}},
		{"conv same_upper", func() *tb {
			return newTB(13).input("x", F, 1, 3, 33, 20).weight("w", 4, 3, 3, 3).
				node("Conv", in("x", "w"), in("y"), graph.StringAttr("auto_pad", "SAME_UPPER"), graph.IntsAttr("strides", 2, 2))
		}, map[string]string{"y": "float32[1,4,17,10]"}},
		{"conv dilation", func() *tb {
			return newTB(13).input("x", F, 1, 3, 32, 32).weight("w", 4, 3, 3, 3).
				node("Conv", in("x", "w"), in("y"), graph.IntsAttr("dilations", 2, 2))
		}, map[string]string{"y": "float32[1,4,28,28]"}},
		{"conv groups 1d", func() *tb {
			return newTB(13).input("x", F, 1, 8, 10).weight("w", 8, 1, 3).
				node("Conv", in("x", "w"), in("y"), graph.IntAttr("group", 8))
		}, map[string]string{"y": "float32[1,8,8]"}},
		{"conv symbolic spatial", func() *tb {
			return newTB(13).input("x", F, "N", 3, "H", "W").weight("w", 8, 3, 1, 1).node("Conv", in("x", "w"), in("y"))
		}, map[string]string{"y": "float32[N,8,?,?]"}},
		{"conv transpose", func() *tb {
			return newTB(13).input("x", F, 1, 4, 5, 5).weight("w", 4, 2, 3, 3).
				node("ConvTranspose", in("x", "w"), in("y"), graph.IntsAttr("strides", 2, 2), graph.IntAttr("group", 2))
		}, map[string]string{"y": "float32[1,4,11,11]"}},
		{"conv transpose output_shape", func() *tb {
			return newTB(13).input("x", F, 1, 4, 5, 5).weight("w", 4, 2, 3, 3).
				node("ConvTranspose", in("x", "w"), in("y"), graph.IntsAttr("strides", 2, 2), graph.IntsAttr("output_shape", 10, 10))
		}, map[string]string{"y": "float32[1,2,10,10]"}},
		{"maxpool floor and ceil", func() *tb {
			return newTB(13).input("x", F, "N", 2, 7, 7).
				node("MaxPool", in("x"), in("a", "ai"), graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2)).
				node("MaxPool", in("x"), in("b"), graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2), graph.IntAttr("ceil_mode", 1))
		}, map[string]string{"a": "float32[N,2,3,3]", "ai": "int64[N,2,3,3]", "b": "float32[N,2,4,4]"}},
		{"pool dilation and pads", func() *tb {
			return newTB(13).input("x", F, 1, 2, 32, 32).
				node("MaxPool", in("x"), in("a"), graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("dilations", 2, 2)).
				node("AveragePool", in("x"), in("b"), graph.IntsAttr("kernel_shape", 3, 3), graph.IntsAttr("pads", 1, 1, 1, 1))
		}, map[string]string{"a": "float32[1,2,30,30]", "b": "float32[1,2,32,32]"}},
		{"global pools", func() *tb {
			return newTB(13).input("x", F, "N", 8, 7, 7).node("GlobalAveragePool", in("x"), in("a")).node("GlobalMaxPool", in("x"), in("b"))
		}, map[string]string{"a": "float32[N,8,1,1]", "b": "float32[N,8,1,1]"}},
	})
}

func TestInferGemmMatMul(t *testing.T) {
	F := graph.Float
	runInferCases(t, []inferCase{
		{"gemm", func() *tb {
			return newTB(13).input("x", F, "N", 784).weight("w", 784, 128).weight("v", 10, 128).
				node("Gemm", in("x", "w"), in("h")).node("Gemm", in("h", "v"), in("y"), graph.IntAttr("transB", 1))
		}, map[string]string{"h": "float32[N,128]", "y": "float32[N,10]"}},
		{"gemm mismatch stays unknown", func() *tb {
			return newTB(13).input("x", F, "N", 784).weight("w", 700, 128).node("Gemm", in("x", "w"), in("h"))
		}, map[string]string{"h": "?"}},
		{"matmul broadcast", func() *tb {
			return newTB(13).input("a", F, 2, 1, 4, 5).input("b", F, 3, 5, 6).node("MatMul", in("a", "b"), in("y"))
		}, map[string]string{"y": "float32[2,3,4,6]"}},
		{"matmul 1d", func() *tb {
			return newTB(13).input("a", F, 5).input("b", F, "B", 5, 6).input("c", F, 6).
				node("MatMul", in("a", "b"), in("y")).node("MatMul", in("b", "c"), in("z"))
		}, map[string]string{"y": "float32[B,6]", "z": "float32[B,5]"}},
		{"matmul attention-like", func() *tb {
			return newTB(13).input("q", F, "B", 4, "S", 16).input("k", F, "B", 4, 16, "S").node("MatMul", in("q", "k"), in("s"))
		}, map[string]string{"s": "float32[B,4,S,S]"}},
		{"matmul integer and qlinear", func() *tb {
			b := newTB(13).input("a", graph.Uint8, "N", 8).input("b", graph.Int8, 8, 4)
			b.init(graph.NewRaw("sa", F, nil, make([]byte, 4))).init(graph.NewRaw("za", graph.Uint8, nil, []byte{0}))
			b.init(graph.NewRaw("zb", graph.Int8, nil, []byte{0})).init(graph.NewRaw("zy", graph.Int8, nil, []byte{0}))
			return b.node("MatMulInteger", in("a", "b"), in("y")).
				node("QLinearMatMul", in("a", "sa", "za", "b", "sa", "zb", "sa", "zy"), in("q"))
		}, map[string]string{"y": "int32[N,4]", "q": "int8[N,4]"}},
	})
}

func TestInferShapeOps(t *testing.T) {
	F := graph.Float
	I := graph.Int64
	runInferCases(t, []inferCase{
		{"reshape 0 and -1", func() *tb {
			return newTB(13).input("x", F, "N", 3, 4).ints("s", 0, -1).node("Reshape", in("x", "s"), in("y"))
		}, map[string]string{"y": "float32[N,12]"}},
		{"reshape static -1", func() *tb {
			return newTB(13).input("x", F, 2, 3, 4).ints("s", -1, 6).node("Reshape", in("x", "s"), in("y"))
		}, map[string]string{"y": "float32[4,6]"}},
		{"reshape via shape subgraph", func() *tb {
			return newTB(13).input("x", F, "N", 8, 4, 4).
				init(graph.NewInt64("zero", nil, []int64{0})).ints("ax", 0).ints("m1", -1).
				node("Shape", in("x"), in("sh")).
				node("Gather", in("sh", "zero"), in("n"), graph.IntAttr("axis", 0)).
				node("Unsqueeze", in("n", "ax"), in("n1")).
				node("Concat", in("n1", "m1"), in("target"), graph.IntAttr("axis", 0)).
				node("Reshape", in("x", "target"), in("y"))
		}, map[string]string{"sh": "int64[4]", "n": "int64[]", "n1": "int64[1]", "target": "int64[2]", "y": "float32[N,128]"}},
		{"reshape from computed sizes", func() *tb {
			// Shape -> Slice -> ReduceProd -> Concat: flatten the tail.
			return newTB(13).input("x", F, 2, 3, 5).ints("st", 1).ints("en", 3).ints("two", 2).
				node("Shape", in("x"), in("sh")).
				node("Slice", in("sh", "st", "en"), in("tail")).
				node("ReduceProd", in("tail"), in("p"), graph.IntAttr("keepdims", 1)).
				node("Slice", in("sh", "st", "st"), in("empty")).
				node("Mul", in("p", "two"), in("p2")).
				node("Concat", in("p2", "empty"), in("tgt"), graph.IntAttr("axis", 0)).
				node("Reshape", in("x", "tgt"), in("y"))
		}, map[string]string{"tail": "int64[2]", "p": "int64[1]", "y": "float32[30]"}},
		{"transpose", func() *tb {
			return newTB(13).input("x", F, "N", 3, 4, 5).node("Transpose", in("x"), in("y"), graph.IntsAttr("perm", 0, 2, 3, 1)).
				node("Transpose", in("x"), in("z"))
		}, map[string]string{"y": "float32[N,4,5,3]", "z": "float32[5,4,3,N]"}},
		{"concat", func() *tb {
			return newTB(13).input("a", F, "N", 3, 4).input("b", F, "N", 5, 4).node("Concat", in("a", "b"), in("y"), graph.IntAttr("axis", -2))
		}, map[string]string{"y": "float32[N,8,4]"}},
		{"slice", func() *tb {
			return newTB(13).input("x", F, "N", 10, 20).ints("s", 2).ints("e", -1).ints("a", 2).ints("st", 2).
				ints("s2", -1).ints("e2", -1000).ints("a2", 1).ints("st2", -1).
				node("Slice", in("x", "s", "e", "a", "st"), in("y")).
				node("Slice", in("x", "s2", "e2", "a2", "st2"), in("z"))
		}, map[string]string{"y": "float32[N,10,9]", "z": "float32[N,10,20]"}},
		{"slice opset 9 attrs", func() *tb {
			return newTB(9).input("x", F, 4, 10).
				node("Slice", in("x"), in("y"), graph.IntsAttr("starts", 1, 0), graph.IntsAttr("ends", 3, 1000), graph.IntsAttr("axes", 0, 1))
		}, map[string]string{"y": "float32[2,10]"}},
		{"gather", func() *tb {
			return newTB(13).input("x", F, "N", 10, 20).input("i", I, 3, 4).init(graph.NewInt64("k", nil, []int64{1})).
				node("Gather", in("x", "i"), in("y"), graph.IntAttr("axis", 1)).
				node("Gather", in("x", "k"), in("z"), graph.IntAttr("axis", -1))
		}, map[string]string{"y": "float32[N,3,4,20]", "z": "float32[N,10]"}},
		{"squeeze unsqueeze by opset", func() *tb {
			return newTB(13).input("x", F, "N", 1, 5, 1).ints("a", 1).ints("u", 0, -1).
				node("Squeeze", in("x", "a"), in("s")).
				node("Squeeze", in("x"), in("s2")).
				node("Unsqueeze", in("s", "u"), in("u2"))
		}, map[string]string{"s": "float32[N,5,1]", "s2": "float32[...]", "u2": "float32[1,N,5,1,1]"}},
		{"squeeze unsqueeze attr form", func() *tb {
			return newTB(11).input("x", F, 2, 1, 5).
				node("Squeeze", in("x"), in("s"), graph.IntsAttr("axes", 1)).
				node("Unsqueeze", in("s"), in("u"), graph.IntsAttr("axes", 1, 3)).
				node("Squeeze", in("x"), in("all"))
		}, map[string]string{"s": "float32[2,5]", "u": "float32[2,1,5,1]", "all": "float32[2,5]"}},
		{"flatten", func() *tb {
			return newTB(13).input("x", F, "N", 3, 4, 5).node("Flatten", in("x"), in("y")).
				node("Flatten", in("x"), in("z"), graph.IntAttr("axis", 2)).node("Flatten", in("x"), in("w"), graph.IntAttr("axis", 0))
		}, map[string]string{"y": "float32[N,60]", "z": "float32[?,20]", "w": "float32[1,?]"}},
		{"expand tile pad", func() *tb {
			return newTB(13).input("x", F, 3, 1).input("v", F, "N", 3).ints("s", 2, 1, 4).ints("r", 2, 2).ints("p", 0, 1, 0, 2).
				node("Expand", in("x", "s"), in("e")).
				node("Tile", in("v", "r"), in("t")).
				node("Pad", in("v", "p"), in("p2"))
		}, map[string]string{"e": "float32[2,3,4]", "t": "float32[?,6]", "p2": "float32[N,6]"}},
		{"split", func() *tb {
			return newTB(13).input("x", F, "N", 10).ints("sz", 3, 7).
				node("Split", in("x", "sz"), in("a", "b"), graph.IntAttr("axis", 1)).
				node("Split", in("x"), in("c", "d"), graph.IntAttr("axis", 1))
		}, map[string]string{"a": "float32[N,3]", "b": "float32[N,7]", "c": "float32[N,5]", "d": "float32[N,5]"}},
		{"split opset 18 num_outputs", func() *tb {
			return newTB(18).input("x", F, 10).node("Split", in("x"), in("a", "b", "c"), graph.IntAttr("num_outputs", 3))
		}, map[string]string{"a": "float32[4]", "c": "float32[2]"}},
		{"constant constantofshape range", func() *tb {
			c := &graph.Attr{Name: "value", Type: graph.AttrTensor, T: graph.NewInt64("v", []int64{2}, []int64{2, 3})}
			fill := &graph.Attr{Name: "value", Type: graph.AttrTensor, T: graph.NewInt64("f", []int64{1}, []int64{7})}
			return newTB(13).init(graph.NewInt64("a", nil, []int64{0})).init(graph.NewInt64("l", nil, []int64{10})).init(graph.NewInt64("d", nil, []int64{3})).
				node("Constant", nil, in("c"), c).
				node("ConstantOfShape", in("c"), in("z")).
				node("ConstantOfShape", in("c"), in("zi"), fill).
				node("Range", in("a", "l", "d"), in("r"))
		}, map[string]string{"c": "int64[2]", "z": "float32[2,3]", "zi": "int64[2,3]", "r": "int64[4]"}},
		{"shape size nonzero", func() *tb {
			return newTB(15).input("x", F, "N", 3, 4).
				node("Shape", in("x"), in("s")).node("Shape", in("x"), in("s1"), graph.IntAttr("start", 1)).
				node("Size", in("x"), in("n")).node("NonZero", in("x"), in("nz"))
		}, map[string]string{"s": "int64[3]", "s1": "int64[2]", "n": "int64[]", "nz": "int64[3,?]"}},
	})
}

func TestInferElementwise(t *testing.T) {
	F := graph.Float
	runInferCases(t, []inferCase{
		{"broadcast", func() *tb {
			return newTB(13).input("a", F, "N", 1, 4).input("b", F, 3, 1).
				node("Add", in("a", "b"), in("y")).node("Equal", in("a", "b"), in("e")).node("Relu", in("y"), in("r"))
		}, map[string]string{"y": "float32[N,3,4]", "e": "bool[N,3,4]", "r": "float32[N,3,4]"}},
		{"where sum max", func() *tb {
			return newTB(13).input("c", graph.Bool, "N", 1).input("x", F, 1, 5).input("y", F, "N", 5).
				node("Where", in("c", "x", "y"), in("w")).
				node("Sum", in("x", "y", "w"), in("s")).
				node("Max", in("x", "y"), in("m"))
		}, map[string]string{"w": "float32[N,5]", "s": "float32[N,5]", "m": "float32[N,5]"}},
		{"incompatible broadcast", func() *tb {
			return newTB(13).input("a", F, 3).input("b", F, 4).node("Mul", in("a", "b"), in("y"))
		}, map[string]string{"y": "?"}},
		{"cast and logic", func() *tb {
			return newTB(13).input("a", F, "N", 2).input("b", graph.Bool, "N", 2).
				node("Cast", in("a"), in("c"), graph.IntAttr("to", int64(graph.Int64))).
				node("Not", in("b"), in("n")).node("And", in("b", "n"), in("an")).
				node("IsNaN", in("a"), in("nan")).node("Pow", in("a", "a"), in("p"))
		}, map[string]string{"c": "int64[N,2]", "n": "bool[N,2]", "an": "bool[N,2]", "nan": "bool[N,2]", "p": "float32[N,2]"}},
		{"activations and clip", func() *tb {
			return newTB(13).input("a", F, "N", 7).
				node("Sigmoid", in("a"), in("s")).node("LeakyRelu", in("s"), in("l")).node("HardSwish", in("l"), in("h")).
				node("Clip", in("h"), in("c")).node("Softmax", in("c"), in("sm")).node("LogSoftmax", in("sm"), in("lsm"))
		}, map[string]string{"lsm": "float32[N,7]"}},
	})
}

func TestInferNormQuantRNN(t *testing.T) {
	F := graph.Float
	runInferCases(t, []inferCase{
		{"norms and dropout", func() *tb {
			return newTB(13).input("x", F, "N", 4, 6).weight("s", 4).weight("b", 4).weight("g", 6).
				node("BatchNormalization", in("x", "s", "b", "s", "s"), in("bn")).
				node("InstanceNormalization", in("x", "s", "b"), in("in")).
				node("Dropout", in("x"), in("d", "mask"))
		}, map[string]string{"bn": "float32[N,4,6]", "in": "float32[N,4,6]", "d": "float32[N,4,6]", "mask": "bool[N,4,6]"}},
		{"layernorm", func() *tb {
			return newTB(17).input("x", F, "B", "S", 6).weight("g", 6).
				node("LayerNormalization", in("x", "g"), in("y", "mean", "inv"))
		}, map[string]string{"y": "float32[B,S,6]", "mean": "float32[B,S,1]", "inv": "float32[B,S,1]"}},
		{"quantize", func() *tb {
			b := newTB(13).input("x", F, "N", 8).weight("w", 4, 8, 3)
			b.init(graph.NewRaw("sc", F, nil, make([]byte, 4))).init(graph.NewRaw("zp", graph.Int8, nil, []byte{0}))
			b.init(graph.NewRaw("zu", graph.Uint8, nil, []byte{0}))
			return b.node("QuantizeLinear", in("x", "sc", "zp"), in("q")).
				node("QuantizeLinear", in("x", "sc"), in("qu")).
				node("DequantizeLinear", in("q", "sc", "zp"), in("dq")).
				node("DynamicQuantizeLinear", in("x"), in("y", "ys", "yz"))
		}, map[string]string{"q": "int8[N,8]", "qu": "uint8[N,8]", "dq": "float32[N,8]", "y": "uint8[N,8]", "ys": "float32[]", "yz": "uint8[]"}},
		{"qlinearconv", func() *tb {
			b := newTB(13).input("x", graph.Uint8, 1, 3, 8, 8).input("w", graph.Int8, 4, 3, 3, 3)
			b.init(graph.NewRaw("sc", F, nil, make([]byte, 4))).init(graph.NewRaw("zu", graph.Uint8, nil, []byte{0}))
			b.init(graph.NewRaw("zi", graph.Int8, nil, []byte{0}))
			return b.node("QLinearConv", in("x", "sc", "zu", "w", "sc", "zi", "sc", "zu"), in("y")).
				node("ConvInteger", in("x", "w"), in("ci"))
		}, map[string]string{"y": "uint8[1,4,6,6]", "ci": "int32[1,4,6,6]"}},
		{"lstm bidirectional", func() *tb {
			return newTB(13).input("x", F, "T", "N", 16).weight("w", 2, 128, 16).weight("r", 2, 128, 32).
				node("LSTM", in("x", "w", "r"), in("y", "yh", "yc"), graph.IntAttr("hidden_size", 32), graph.StringAttr("direction", "bidirectional"))
		}, map[string]string{"y": "float32[T,2,N,32]", "yh": "float32[2,N,32]", "yc": "float32[2,N,32]"}},
		{"gru layout 1 and rnn", func() *tb {
			return newTB(14).input("x", F, "N", "T", 8).weight("w", 1, 12, 8).weight("r", 1, 12, 4).weight("rw", 1, 5, 8).weight("rr", 1, 5, 5).
				node("GRU", in("x", "w", "r"), in("y", "yh"), graph.IntAttr("hidden_size", 4), graph.IntAttr("layout", 1)).
				node("RNN", in("x", "rw", "rr"), in("", "rh"), graph.IntAttr("layout", 1))
		}, map[string]string{"y": "float32[N,T,1,4]", "yh": "float32[N,1,4]", "rh": "float32[N,1,5]"}},
	})
}

func TestInferResizeReduce(t *testing.T) {
	F := graph.Float
	runInferCases(t, []inferCase{
		{"resize scales and sizes", func() *tb {
			return newTB(13).input("x", F, "N", 3, 8, 8).floats("sc", 1, 1, 2, 2).ints("sz", 1, 3, 5, 5).
				node("Resize", in("x", "", "sc"), in("a")).node("Resize", in("x", "", "", "sz"), in("b"))
		}, map[string]string{"a": "float32[N,3,16,16]", "b": "float32[1,3,5,5]"}},
		{"upsample opset 9 and resize opset 10", func() *tb {
			return newTB(10).input("x", F, 1, 3, 4, 4).floats("sc", 1, 1, 1.5, 2).
				node("Resize", in("x", "sc"), in("a"))
		}, map[string]string{"a": "float32[1,3,6,8]"}},
		{"reduce attr and input forms", func() *tb {
			return newTB(13).input("x", F, "N", "C", 4, 4).ints("ax", 1).
				node("ReduceMean", in("x"), in("m"), graph.IntsAttr("axes", 2, 3)).
				node("ReduceSum", in("x", "ax"), in("s"), graph.IntAttr("keepdims", 0)).
				node("ReduceMax", in("x"), in("all"), graph.IntAttr("keepdims", 0))
		}, map[string]string{"m": "float32[N,C,1,1]", "s": "float32[N,4,4]", "all": "float32[]"}},
		{"reduce opset 18 input axes", func() *tb {
			return newTB(18).input("x", F, "N", 5, 6).ints("ax", -1).node("ReduceMean", in("x", "ax"), in("m"))
		}, map[string]string{"m": "float32[N,5,1]"}},
		{"argmax topk", func() *tb {
			return newTB(13).input("x", F, "N", 10).ints("k", 3).
				node("ArgMax", in("x"), in("am"), graph.IntAttr("axis", 1), graph.IntAttr("keepdims", 0)).
				node("ArgMin", in("x"), in("an"), graph.IntAttr("axis", -1)).
				node("TopK", in("x", "k"), in("v", "i"))
		}, map[string]string{"am": "int64[N]", "an": "int64[N,1]", "v": "float32[N,3]", "i": "int64[N,3]"}},
	})
}

func TestInferControlFlow(t *testing.T) {
	F := graph.Float
	branch := func(name, op string, outName string, extra ...*graph.Attr) *graph.Graph {
		return &graph.Graph{Name: name,
			Nodes:   []*graph.Node{{OpType: op, Inputs: []string{"x"}, Outputs: []string{outName}, Attrs: extra}},
			Outputs: []*graph.ValueInfo{{Name: outName}}}
	}
	runInferCases(t, []inferCase{
		{"if merges branches", func() *tb {
			return newTB(13).input("c", graph.Bool).input("x", F, "N", 4).
				node("If", in("c"), in("y"), graph.GraphAttr("then_branch", branch("t", "Relu", "ty")), graph.GraphAttr("else_branch", branch("e", "Sigmoid", "ey")))
		}, map[string]string{"y": "float32[N,4]"}},
		{"if with constant condition picks a branch", func() *tb {
			b := newTB(13).input("x", F, "N", 4).init(graph.NewRaw("c", graph.Bool, nil, []byte{0}))
			return b.node("If", in("c"), in("y"), graph.GraphAttr("then_branch", branch("t", "Relu", "ty")),
				graph.GraphAttr("else_branch", branch("e", "Flatten", "ey", graph.IntAttr("axis", 0))))
		}, map[string]string{"y": "float32[1,?]"}},
		{"loop carried state and scan output", func() *tb {
			body := &graph.Graph{Name: "body",
				Inputs: []*graph.ValueInfo{{Name: "i"}, {Name: "cin"}, {Name: "s"}},
				Nodes: []*graph.Node{
					{OpType: "Identity", Inputs: []string{"cin"}, Outputs: []string{"cout"}},
					{OpType: "Add", Inputs: []string{"s", "x"}, Outputs: []string{"s2"}},
					{OpType: "Relu", Inputs: []string{"s2"}, Outputs: []string{"scan"}},
				},
				Outputs: []*graph.ValueInfo{{Name: "cout"}, {Name: "s2"}, {Name: "scan"}}}
			return newTB(13).input("x", F, 2, 3).init(graph.NewInt64("m", nil, []int64{5})).
				node("Loop", in("m", "", "x"), in("final", "scans"), graph.GraphAttr("body", body))
		}, map[string]string{"final": "float32[2,3]", "scans": "float32[5,2,3]"}},
		{"unknown op leaves outputs unknown", func() *tb {
			return newTB(13).input("x", F, "N", 4).domainNode("com.example", "Mystery", in("x"), in("y")).
				node("Relu", in("y"), in("z")).node("Relu", in("x"), in("w"))
		}, map[string]string{"y": "?", "z": "?", "w": "float32[N,4]"}},
	})
}

// TestInferSymbolicNet checks that a batch dim named "N" survives a CNN
// that flattens with the exporter's Shape/Gather/Unsqueeze/Concat/Reshape
// pattern, and that --shape fixes it.
func TestInferSymbolicNet(t *testing.T) {
	build := func() *tb {
		return newTB(13).input("x", graph.Float, "N", 3, 32, 32).weight("w", 8, 3, 3, 3).weight("fc", 8*15*15, 10).weight("bias", 10).
			init(graph.NewInt64("zero", nil, []int64{0})).ints("ax", 0).ints("m1", -1).
			node("Conv", in("x", "w"), in("c")).
			node("Relu", in("c"), in("r")).
			node("MaxPool", in("r"), in("p"), graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2)).
			node("Shape", in("p"), in("sh")).
			node("Gather", in("sh", "zero"), in("n")).
			node("Unsqueeze", in("n", "ax"), in("n1")).
			node("Concat", in("n1", "m1"), in("tgt"), graph.IntAttr("axis", 0)).
			node("Reshape", in("p", "tgt"), in("flat")).
			node("Gemm", in("flat", "fc", "bias"), in("logits")).
			output("logits")
	}
	b := build()
	res, err := graph.InferShapes(b.m, graph.InferOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Unknown) != 0 || len(res.Problems) != 0 {
		t.Fatalf("unknown %v problems %v", res.Unknown, res.Problems)
	}
	for v, want := range map[string]string{"c": "float32[N,8,30,30]", "p": "float32[N,8,15,15]", "flat": "float32[N,1800]", "logits": "float32[N,10]"} {
		if got := typeOf(b.g, v); got != want {
			t.Errorf("%s: %s, want %s", v, got, want)
		}
	}
	if got := b.g.Outputs[0].TypeString(); got != "float32[N,10]" {
		t.Errorf("declared output refined to %s", got)
	}
	if len(b.g.ValueInfo) != 8 { // every intermediate value (the output is declared)
		t.Errorf("value_info has %d entries, want 8", len(b.g.ValueInfo))
	}

	// A second run changes nothing.
	before := b.g.Format()
	if _, err := graph.InferShapes(b.m, graph.InferOptions{}); err != nil {
		t.Fatal(err)
	}
	if after := b.g.Format(); after != before {
		t.Errorf("second inference changed the graph:\n%s\nvs\n%s", before, after)
	}

	b = build()
	if _, err := graph.InferShapes(b.m, graph.InferOptions{Fixed: map[string][]int64{"x": {4, 3, 32, 32}}}); err != nil {
		t.Fatal(err)
	}
	if got := b.g.Outputs[0].TypeString(); got != "float32[4,10]" {
		t.Errorf("with --shape: output %s, want float32[4,10]", got)
	}
}

func TestInferFixedErrors(t *testing.T) {
	cases := []struct {
		name  string
		fixed map[string][]int64
		want  string
	}{
		{"unknown input", map[string][]int64{"nope": {1}}, `"nope"`},
		{"rank", map[string][]int64{"x": {1, 3}}, "rank 2"},
		{"static dim", map[string][]int64{"x": {1, 4, 8, 8}}, "fixes it at 3"},
		{"negative", map[string][]int64{"x": {1, 3, -8, 8}}, "negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newTB(13).input("x", graph.Float, "N", 3, "H", "W")
			_, err := graph.InferShapes(b.m, graph.InferOptions{Fixed: c.fixed})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "graph: ") {
				t.Fatalf("err %v, want one mentioning %s", err, c.want)
			}
		})
	}
}

// TestInferHostile feeds models built to hurt: huge shape values, cycles,
// nonsense attributes. Inference must finish without panicking or
// allocating for the claimed sizes.
func TestInferHostile(t *testing.T) {
	F := graph.Float
	huge := int64(1) << 40
	cases := []struct {
		name  string
		build func() *tb
		check func(t *testing.T, b *tb, res *graph.InferResult)
	}{
		{"huge tile", func() *tb {
			return newTB(13).input("x", F, 1000, 1000).ints("r", huge, huge).node("Tile", in("x", "r"), in("y"))
		}, func(t *testing.T, b *tb, _ *graph.InferResult) {
			if got := typeOf(b.g, "y"); got != "float32[?,?]" {
				t.Errorf("y %s", got)
			}
		}},
		{"huge constantofshape and expand", func() *tb {
			return newTB(13).input("x", F, 1).ints("s", huge, huge, huge).
				node("ConstantOfShape", in("s"), in("z")).
				node("Expand", in("x", "s"), in("e")).
				node("Shape", in("z"), in("zs")).
				node("ConstantOfShape", in("zs"), in("z2"))
		}, func(t *testing.T, b *tb, _ *graph.InferResult) {
			if got := typeOf(b.g, "z"); !strings.HasPrefix(got, "float32[") {
				t.Errorf("z %s", got)
			}
		}},
		{"huge range", func() *tb {
			return newTB(13).init(graph.NewInt64("a", nil, []int64{0})).init(graph.NewInt64("l", nil, []int64{1 << 62})).init(graph.NewInt64("d", nil, []int64{1})).
				node("Range", in("a", "l", "d"), in("r")).node("Shape", in("r"), in("rs"))
		}, func(t *testing.T, b *tb, res *graph.InferResult) {
			if len(res.Problems) == 0 {
				t.Errorf("no problem reported for a 2^62-element range")
			}
		}},
		{"absurd dims", func() *tb {
			return newTB(13).input("x", F, int64(1)<<62, 3, int64(1)<<62, 5).weight("w", 2, 3, 3, 3).
				node("Conv", in("x", "w"), in("c")).node("Flatten", in("x"), in("f")).
				node("Pad", in("x", "p"), in("pd")).ints("p", 0, 0, huge, 0, 0, 0, huge, 0).
				node("Reshape", in("x", "s"), in("rs")).ints("s", -1, 15)
		}, func(t *testing.T, b *tb, _ *graph.InferResult) {}},
		{"cycle", func() *tb {
			return newTB(13).input("x", F, 2).node("Add", in("x", "b"), in("a")).node("Relu", in("a"), in("b")).node("Relu", in("x"), in("ok"))
		}, func(t *testing.T, b *tb, res *graph.InferResult) {
			if got := typeOf(b.g, "ok"); got != "float32[2]" {
				t.Errorf("ok %s", got)
			}
			found := false
			for _, p := range res.Problems {
				found = found || strings.Contains(p, "cycle")
			}
			if !found {
				t.Errorf("cycle not reported: %v", res.Problems)
			}
		}},
		{"bad attributes", func() *tb {
			return newTB(13).input("x", F, 1, 3, 8, 8).weight("w", 2, 3, 3, 3).
				node("Conv", in("x", "w"), in("a"), graph.IntsAttr("strides", 0, -1)).
				node("MaxPool", in("x"), in("b"), graph.IntsAttr("kernel_shape", -5, 1<<62)).
				node("Transpose", in("x"), in("c"), graph.IntsAttr("perm", 9, 9, 9, 9)).
				node("Gather", in("x", "x"), in("d"), graph.IntAttr("axis", 99)).
				node("Split", in("x"), in("e", "f"), graph.IntAttr("axis", 2)).
				node("Cast", in("x"), in("g"), graph.IntAttr("to", 999)).
				node("DepthToSpace", in("x"), in("h"), graph.IntAttr("blocksize", 0)).
				node("Concat", in("x", "w"), in("i"), graph.IntAttr("axis", 1)).
				node("Constant", nil, in("j"))
		}, func(t *testing.T, b *tb, res *graph.InferResult) {
			if len(res.Problems) < 5 {
				t.Errorf("expected problems for bad attributes, got %v", res.Problems)
			}
		}},
		{"malformed initializer", func() *tb {
			return newTB(13).input("x", F, 4, 4).init(&graph.Tensor{Name: "s", DType: graph.Int64, Dims: []int64{2}, Raw: []byte{1}}).
				node("Reshape", in("x", "s"), in("y"))
		}, func(t *testing.T, b *tb, _ *graph.InferResult) {
			if got := typeOf(b.g, "y"); got != "float32[?,?]" {
				t.Errorf("y %s", got)
			}
		}},
		{"deeply nested ifs", func() *tb {
			// A chain (as a file can hold): each then-branch nests the next If.
			leaf := func() *graph.Graph { return &graph.Graph{Name: "leaf", Outputs: []*graph.ValueInfo{{Name: "x"}}} }
			g := leaf()
			for i := 0; i < 200; i++ {
				o := fmt.Sprintf("o%d", i)
				g = &graph.Graph{Name: "lvl", Nodes: []*graph.Node{{OpType: "If", Inputs: []string{"c"}, Outputs: []string{o},
					Attrs: []*graph.Attr{graph.GraphAttr("then_branch", g), graph.GraphAttr("else_branch", leaf())}}}, Outputs: []*graph.ValueInfo{{Name: o}}}
			}
			b := newTB(13).input("x", F, 2).input("c", graph.Bool)
			b.g.Nodes = g.Nodes
			return b
		}, func(t *testing.T, b *tb, _ *graph.InferResult) {}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.build()
			res, err := graph.InferShapes(b.m, graph.InferOptions{})
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, b, res)
			for _, p := range res.Problems {
				if strings.Contains(p, "inference failed") {
					t.Errorf("a rule panicked: %s", p)
				}
			}
			if _, err := graph.Cost(b.m); err != nil {
				t.Fatalf("cost: %v", err)
			}
		})
	}
}

// TestInferNCHWc covers ONNX Runtime's blocked-layout ops as optimize
// --nchwc writes them: channels padded to the recorded block size, convs
// and pools on the padded tensors, the logical channels restored.
func TestInferNCHWc(t *testing.T) {
	F := graph.Float
	nc := func(b *tb, op string, ins, outs []string, attrs ...*graph.Attr) *tb {
		b.domainNode(graph.NCHWcDomain, op, ins, outs)
		n := b.g.Nodes[len(b.g.Nodes)-1]
		for _, a := range attrs {
			n.SetAttr(a)
		}
		return b
	}
	build := func(block string) func() *tb {
		return func() *tb {
			b := newTB(13).input("x", F, "N", 12, 8, 8).weight("w", 16, 16, 3, 3).weight("w1", 16, 4, 1, 1).input("y", F, "N", 4, 8, 8)
			if block != "" {
				b.m.Metadata = append(b.m.Metadata, graph.KV{Key: graph.NCHWcMetadataKey, Value: block})
			}
			nc(b, "ReorderInput", in("x"), in("xc"))
			nc(b, "Conv", in("xc", "w"), in("c"), graph.IntsAttr("pads", 1, 1, 1, 1), graph.IntsAttr("strides", 2, 2))
			nc(b, "Conv", in("y", "w1"), in("c1")) // plain NCHW input, OIHWBo filter
			nc(b, "MaxPool", in("c"), in("p"), graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2))
			nc(b, "GlobalAveragePool", in("p"), in("g"))
			nc(b, "ReorderOutput", in("p"), in("o"), graph.IntAttr("channels", 12))
			nc(b, "ReorderOutput", in("g"), in("ol"), graph.IntAttr("channels", 12), graph.IntAttr("channels_last", 1))
			return b
		}
	}
	runInferCases(t, []inferCase{
		{"block 8", build("8"), map[string]string{"xc": "float32[N,16,8,8]", "c": "float32[N,16,4,4]", "c1": "float32[N,16,8,8]",
			"p": "float32[N,16,2,2]", "g": "float32[N,16,1,1]", "o": "float32[N,12,2,2]", "ol": "float32[N,1,1,12]"}},
		{"no block recorded", build(""), map[string]string{"xc": "float32[N,?,8,8]", "c": "float32[N,16,4,4]", "o": "float32[N,12,2,2]"}},
	})
}
