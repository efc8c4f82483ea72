package interp

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Tests of the com.microsoft.nchwc kernels against references written
// straight from the ONNX op definitions on NCHW data; the blocked tensors
// and filters are made here with plain loops from the layout text.

func ncRoundUp(c, b int) int { return (c + b - 1) / b * b }

func ncRand(r *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = r.Float32()*2 - 1
	}
	return out
}

// ncBlock makes NCHWc [N, Cp, H, W] of NCHW x [N, C, H, W], zero padding.
func ncBlock(x []float32, N, C, HW, b int) []float32 {
	Cp := ncRoundUp(C, b)
	y := make([]float32, N*Cp*HW)
	for n := 0; n < N; n++ {
		for c := 0; c < C; c++ {
			for p := 0; p < HW; p++ {
				y[((n*(Cp/b)+c/b)*HW+p)*b+c%b] = x[(n*C+c)*HW+p]
			}
		}
	}
	return y
}

// ncUnblock returns the first C channels of NCHWc y [N, Cp, HW] as NCHW.
func ncUnblock(y []float32, N, C, Cp, HW, b int) []float32 {
	x := make([]float32, N*C*HW)
	for n := 0; n < N; n++ {
		for c := 0; c < C; c++ {
			for p := 0; p < HW; p++ {
				x[(n*C+c)*HW+p] = y[((n*(Cp/b)+c/b)*HW+p)*b+c%b]
			}
		}
	}
	return x
}

// ncFilterBiBo makes OIHWBiBo [Mp, Ip, KH, KW] of OIHW w [M, I, KH, KW];
// Ip = roundup(I, b).
func ncFilterBiBo(w []float32, M, I, KH, KW, b int) ([]float32, []int64) {
	Mp, Ip := ncRoundUp(M, b), ncRoundUp(I, b)
	out := make([]float32, 0, Mp*Ip*KH*KW)
	for ob := 0; ob < Mp/b; ob++ {
		for ib := 0; ib < Ip/b; ib++ {
			for kh := 0; kh < KH; kh++ {
				for kw := 0; kw < KW; kw++ {
					for bi := 0; bi < b; bi++ {
						for bo := 0; bo < b; bo++ {
							o, i := ob*b+bo, ib*b+bi
							v := float32(0)
							if o < M && i < I {
								v = w[((o*I+i)*KH+kh)*KW+kw]
							}
							out = append(out, v)
						}
					}
				}
			}
		}
	}
	return out, []int64{int64(Mp), int64(Ip), int64(KH), int64(KW)}
}

// ncFilterBo makes OIHWBo [Mp, I, KH, KW] of OIHW w [M, I, KH, KW].
func ncFilterBo(w []float32, M, I, KH, KW, b int) ([]float32, []int64) {
	Mp := ncRoundUp(M, b)
	out := make([]float32, 0, Mp*I*KH*KW)
	for ob := 0; ob < Mp/b; ob++ {
		for i := 0; i < I; i++ {
			for kh := 0; kh < KH; kh++ {
				for kw := 0; kw < KW; kw++ {
					for bo := 0; bo < b; bo++ {
						v := float32(0)
						if o := ob*b + bo; o < M {
							v = w[((o*I+i)*KH+kh)*KW+kw]
						}
						out = append(out, v)
					}
				}
			}
		}
	}
	return out, []int64{int64(Mp), int64(I), int64(KH), int64(KW)}
}

// ncRefConv is ONNX Conv (2-D, explicit pads) on NCHW data, in float64.
func ncRefConv(x []float32, N, C, H, W int, w []float32, M, KH, KW, G int, s, d, pads [4]int) ([]float64, int, int) {
	OH := (H+pads[0]+pads[2]-((KH-1)*d[0]+1))/s[0] + 1
	OW := (W+pads[1]+pads[3]-((KW-1)*d[1]+1))/s[1] + 1
	Cg, Mg := C/G, M/G
	y := make([]float64, N*M*OH*OW)
	for n := 0; n < N; n++ {
		for m := 0; m < M; m++ {
			g := m / Mg
			for oh := 0; oh < OH; oh++ {
				for ow := 0; ow < OW; ow++ {
					var acc float64
					for ci := 0; ci < Cg; ci++ {
						c := g*Cg + ci
						for kh := 0; kh < KH; kh++ {
							ih := oh*s[0] - pads[0] + kh*d[0]
							if ih < 0 || ih >= H {
								continue
							}
							for kw := 0; kw < KW; kw++ {
								iw := ow*s[1] - pads[1] + kw*d[1]
								if iw < 0 || iw >= W {
									continue
								}
								acc += float64(x[((n*C+c)*H+ih)*W+iw]) * float64(w[((m*Cg+ci)*KH+kh)*KW+kw])
							}
						}
					}
					y[((n*M+m)*OH+oh)*OW+ow] = acc
				}
			}
		}
	}
	return y, OH, OW
}

// ncAct is the activation of ORT's nchwc Conv, in float64.
func ncAct(kind string, p []float32, v float64) float64 {
	switch kind {
	case "Relu":
		return max(v, 0)
	case "Sigmoid":
		return 1 / (1 + math.Exp(-v))
	case "Tanh":
		return math.Tanh(v)
	case "LeakyRelu":
		al := 0.01
		if len(p) > 0 {
			al = float64(p[0])
		}
		if v < 0 {
			return v * al
		}
		return v
	case "Clip":
		return min(max(v, float64(p[0])), float64(p[1]))
	case "HardSigmoid":
		al, be := 0.2, 0.5
		if len(p) >= 2 {
			al, be = float64(p[0]), float64(p[1])
		}
		return max(0, min(1, al*v+be))
	}
	return v
}

// ncModel makes a one-node com.microsoft.nchwc model with the given block
// size in its metadata (0: none). ins are (name, tensor, constant).
type ncIn struct {
	t     *runtime.Tensor
	konst bool
}

func ncModel(op string, block int, ins []ncIn, attrs ...*graph.Attr) *graph.Model {
	g := &graph.Graph{Name: op}
	var names []string
	for i, in := range ins {
		if in.t == nil {
			names = append(names, "")
			continue
		}
		name := "in" + strconv.Itoa(i)
		names = append(names, name)
		if in.konst {
			g.Initializers = append(g.Initializers, in.t.ToGraphTensor(name))
		} else {
			g.Inputs = append(g.Inputs, &graph.ValueInfo{Name: name, DType: in.t.DType, HasType: true, HasShape: true, Shape: graph.ShapeOf(in.t.Shape)})
		}
	}
	g.Outputs = []*graph.ValueInfo{{Name: "y", DType: graph.Float, HasType: true}}
	g.Nodes = []*graph.Node{{Name: "n0", OpType: op, Domain: nchwcDomain, Inputs: names, Outputs: []string{"y"}, Attrs: attrs}}
	m := &graph.Model{IRVersion: 8, Graph: g}
	m.SetOpset("", 13)
	m.SetOpset(nchwcDomain, 1)
	if block > 0 {
		m.Metadata = append(m.Metadata, graph.KV{Key: nchwcBlockKey, Value: strconv.Itoa(block)})
	}
	return m
}

// ncRun opens m on interp and runs it on the model's non-constant inputs.
func ncRun(t *testing.T, m *graph.Model, ins []ncIn) (*runtime.Tensor, error) {
	t.Helper()
	s, err := Open(m, runtime.Options{Threads: 2})
	if err != nil {
		return nil, err
	}
	var feed []*runtime.Tensor
	for _, in := range ins {
		if in.t != nil && !in.konst {
			feed = append(feed, in.t)
		}
	}
	out, err := s.Run(context.Background(), feed)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

func ncClose(got []float32, want []float64, tol float64) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d values, want %d", len(got), len(want))
	}
	for i, w := range want {
		if d := math.Abs(float64(got[i]) - w); !(d <= tol*(1+math.Abs(w))) {
			return fmt.Errorf("[%d] = %v, want %v", i, got[i], w)
		}
	}
	return nil
}

func TestNchwcReorder(t *testing.T) {
	cases := []struct {
		name         string
		b            int
		N, C, H, W   int
		channelsLast bool
	}{
		{"c12_b8", 8, 1, 12, 3, 5, false},
		{"c12_b16", 16, 2, 12, 4, 3, false},
		{"c16_b8", 8, 2, 16, 2, 2, false},
		{"c4_b16_nhwc", 16, 1, 4, 3, 3, true},
		{"c20_b8_nhwc", 8, 2, 20, 2, 3, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			HW := tc.H * tc.W
			nchw := ncRand(r, tc.N*tc.C*HW)
			var xin *runtime.Tensor
			if tc.channelsLast {
				nhwc := make([]float32, len(nchw))
				for n := 0; n < tc.N; n++ {
					for c := 0; c < tc.C; c++ {
						for p := 0; p < HW; p++ {
							nhwc[(n*HW+p)*tc.C+c] = nchw[(n*tc.C+c)*HW+p]
						}
					}
				}
				xin = runtime.FromFloat32([]int64{int64(tc.N), int64(tc.H), int64(tc.W), int64(tc.C)}, nhwc)
			} else {
				xin = runtime.FromFloat32([]int64{int64(tc.N), int64(tc.C), int64(tc.H), int64(tc.W)}, nchw)
			}
			cl := int64(0)
			if tc.channelsLast {
				cl = 1
			}
			ins := []ncIn{{t: xin}}
			y, err := ncRun(t, ncModel("ReorderInput", tc.b, ins, graph.IntAttr("channels_last", cl)), ins)
			if err != nil {
				t.Fatal(err)
			}
			Cp := ncRoundUp(tc.C, tc.b)
			if want := []int64{int64(tc.N), int64(Cp), int64(tc.H), int64(tc.W)}; !nnSameShape(y.Shape, want) {
				t.Fatalf("ReorderInput shape %v, want %v", y.Shape, want)
			}
			want := ncBlock(nchw, tc.N, tc.C, HW, tc.b)
			for i, v := range y.Float32s() {
				if v != want[i] {
					t.Fatalf("ReorderInput [%d] = %v, want %v", i, v, want[i])
				}
			}
			// and back
			ins2 := []ncIn{{t: y}}
			back, err := ncRun(t, ncModel("ReorderOutput", tc.b, ins2, graph.IntAttr("channels", int64(tc.C)), graph.IntAttr("channels_last", cl)), ins2)
			if err != nil {
				t.Fatal(err)
			}
			if !nnSameShape(back.Shape, xin.Shape) {
				t.Fatalf("ReorderOutput shape %v, want %v", back.Shape, xin.Shape)
			}
			for i, v := range back.Float32s() {
				if v != xin.Float32s()[i] {
					t.Fatalf("round trip [%d] = %v, want %v", i, v, xin.Float32s()[i])
				}
			}
		})
	}
}

// ncConvCase is one nchwc Conv test: a plain ONNX Conv (C in, M out) run
// in one of the three NCHWc forms.
type ncConvCase struct {
	name       string
	b          int
	form       int // 1 blocked, 2 depthwise, 3 plain input
	N, C, H, W int
	M, KH, KW  int
	group      int
	strides    [2]int
	pads       [4]int // top, left, bottom, right
	dils       [2]int
	autoPad    string
	act        string
	params     []float32
	bias, sum  bool
	constW     bool
}

func TestNchwcConv(t *testing.T) {
	one, s2 := [2]int{1, 1}, [2]int{2, 2}
	cases := []ncConvCase{
		{name: "f1_b8_c12_m10_relu", b: 8, form: 1, N: 1, C: 12, H: 7, W: 6, M: 10, KH: 3, KW: 3, group: 1, strides: one, pads: [4]int{1, 1, 1, 1}, dils: one, act: "Relu", bias: true, constW: true},
		{name: "f1_b16_c12_m20_sum_sigmoid", b: 16, form: 1, N: 2, C: 12, H: 5, W: 5, M: 20, KH: 3, KW: 2, group: 1, strides: one, pads: [4]int{1, 0, 1, 1}, dils: one, act: "Sigmoid", bias: true, sum: true, constW: true},
		{name: "f1_b8_stride2_dil2_tanh", b: 8, form: 1, N: 1, C: 16, H: 9, W: 8, M: 8, KH: 3, KW: 3, group: 1, strides: s2, pads: [4]int{2, 1, 0, 2}, dils: [2]int{2, 2}, act: "Tanh", bias: true, constW: true},
		{name: "f1_b8_group2_leaky", b: 8, form: 1, N: 1, C: 16, H: 6, W: 6, M: 16, KH: 3, KW: 3, group: 2, strides: one, pads: [4]int{1, 1, 1, 1}, dils: one, act: "LeakyRelu", params: []float32{0.2}, bias: true, constW: true},
		{name: "f1_b16_group2_noact_sum", b: 16, form: 1, N: 1, C: 32, H: 4, W: 5, M: 32, KH: 1, KW: 1, group: 2, strides: one, dils: one, sum: true, constW: true},
		{name: "f1_b8_leaky_default", b: 8, form: 1, N: 1, C: 8, H: 4, W: 4, M: 8, KH: 2, KW: 2, group: 1, strides: one, dils: one, act: "LeakyRelu", constW: true},
		{name: "f1_b8_clip_varW", b: 8, form: 1, N: 1, C: 12, H: 5, W: 4, M: 12, KH: 3, KW: 3, group: 1, strides: [2]int{1, 2}, pads: [4]int{1, 1, 1, 1}, dils: one, act: "Clip", params: []float32{-0.3, 0.4}, bias: true, sum: true},
		{name: "f1_b16_hardsigmoid_sameupper", b: 16, form: 1, N: 1, C: 16, H: 7, W: 7, M: 16, KH: 3, KW: 3, group: 1, strides: s2, dils: one, autoPad: "SAME_UPPER", act: "HardSigmoid", params: []float32{0.3, 0.4}, bias: true, constW: true},
		{name: "f1_b8_hardsigmoid_default", b: 8, form: 1, N: 1, C: 8, H: 3, W: 3, M: 4, KH: 1, KW: 1, group: 1, strides: one, dils: one, act: "HardSigmoid", bias: true, sum: true, constW: true},
		{name: "f2_b8_dw_c12_relu", b: 8, form: 2, N: 1, C: 12, H: 6, W: 7, M: 12, KH: 3, KW: 3, group: 12, strides: one, pads: [4]int{1, 1, 1, 1}, dils: one, act: "Relu", bias: true, constW: true},
		{name: "f2_b16_dw_stride2_sum_clip", b: 16, form: 2, N: 2, C: 16, H: 8, W: 8, M: 16, KH: 3, KW: 3, group: 16, strides: s2, pads: [4]int{1, 1, 0, 0}, dils: one, act: "Clip", params: []float32{0, 6}, bias: true, sum: true, constW: true},
		{name: "f2_b8_dw_dil2_varW", b: 8, form: 2, N: 1, C: 8, H: 7, W: 7, M: 8, KH: 3, KW: 3, group: 8, strides: one, pads: [4]int{2, 2, 2, 2}, dils: [2]int{2, 2}, act: "Tanh"},
		{name: "f3_b8_c3_m16_relu", b: 8, form: 3, N: 1, C: 3, H: 8, W: 8, M: 16, KH: 3, KW: 3, group: 1, strides: one, pads: [4]int{1, 1, 1, 1}, dils: one, act: "Relu", bias: true, constW: true},
		{name: "f3_b16_c3_m12_stride2_sum", b: 16, form: 3, N: 2, C: 3, H: 9, W: 7, M: 12, KH: 3, KW: 3, group: 1, strides: s2, pads: [4]int{1, 1, 1, 1}, dils: one, act: "Sigmoid", bias: true, sum: true, constW: true},
		{name: "f3_b8_c1_varW_nobias", b: 8, form: 3, N: 1, C: 1, H: 5, W: 5, M: 6, KH: 2, KW: 3, group: 1, strides: one, dils: [2]int{1, 2}, pads: [4]int{0, 2, 1, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { ncCheckConv(t, tc) })
	}
}

func ncCheckConv(t *testing.T, tc ncConvCase) {
	r := rand.New(rand.NewPCG(uint64(len(tc.name)), 7))
	b := tc.b
	HW := tc.H * tc.W
	x := ncRand(r, tc.N*tc.C*HW)
	Cg := tc.C / tc.group
	w := ncRand(r, tc.M*Cg*tc.KH*tc.KW)
	bias := ncRand(r, tc.M)
	Mp := ncRoundUp(tc.M, b)
	// padding for the reference
	pads := tc.pads
	if tc.autoPad == "SAME_UPPER" {
		for i, in := range []int{tc.H, tc.W} {
			k := []int{tc.KH, tc.KW}[i]
			s := tc.strides[i]
			out := (in + s - 1) / s
			total := max(0, (out-1)*s+(k-1)*tc.dils[i]+1-in)
			pads[i], pads[i+2] = total/2, total-total/2
		}
	}
	ref, OH, OW := ncRefConv(x, tc.N, tc.C, tc.H, tc.W, w, tc.M, tc.KH, tc.KW, tc.group,
		[4]int{tc.strides[0], tc.strides[1]}, [4]int{tc.dils[0], tc.dils[1]}, pads)

	// blocked inputs
	var xt *runtime.Tensor
	group := tc.group
	switch tc.form {
	case 3:
		xt = runtime.FromFloat32([]int64{int64(tc.N), int64(tc.C), int64(tc.H), int64(tc.W)}, x)
	default:
		Cp := ncRoundUp(tc.C, b)
		xt = runtime.FromFloat32([]int64{int64(tc.N), int64(Cp), int64(tc.H), int64(tc.W)}, ncBlock(x, tc.N, tc.C, HW, b))
		if tc.form == 2 {
			group = Cp
		}
	}
	var wb []float32
	var wshape []int64
	switch tc.form {
	case 1:
		wb, wshape = ncFilterBiBo(w, tc.M, Cg, tc.KH, tc.KW, b)
		if tc.group > 1 {
			// grouped: Ip is the per-group input count itself (a multiple of b here)
			if Cg%b != 0 {
				t.Fatalf("bad test: grouped form 1 needs C/group %% b == 0")
			}
		}
	default:
		wb, wshape = ncFilterBo(w, tc.M, Cg, tc.KH, tc.KW, b)
	}
	bp := make([]float32, Mp)
	copy(bp, bias)
	ins := []ncIn{{t: xt}, {t: runtime.FromFloat32(wshape, wb), konst: tc.constW}, {}}
	if tc.bias {
		ins[2] = ncIn{t: runtime.FromFloat32([]int64{int64(Mp)}, bp), konst: tc.constW}
	}
	var sum []float32
	if tc.sum {
		sum = ncRand(r, tc.N*Mp*OH*OW)
		ins = append(ins, ncIn{t: runtime.FromFloat32([]int64{int64(tc.N), int64(Mp), int64(OH), int64(OW)}, sum)})
	}
	attrs := []*graph.Attr{
		graph.IntsAttr("kernel_shape", int64(tc.KH), int64(tc.KW)),
		graph.IntsAttr("strides", int64(tc.strides[0]), int64(tc.strides[1])),
		graph.IntsAttr("dilations", int64(tc.dils[0]), int64(tc.dils[1])),
		graph.IntAttr("group", int64(group)),
	}
	if tc.autoPad != "" {
		attrs = append(attrs, graph.StringAttr("auto_pad", tc.autoPad))
	} else {
		attrs = append(attrs, graph.IntsAttr("pads", int64(tc.pads[0]), int64(tc.pads[1]), int64(tc.pads[2]), int64(tc.pads[3])))
	}
	if tc.act != "" {
		attrs = append(attrs, graph.StringAttr("activation", tc.act))
	}
	if tc.params != nil {
		attrs = append(attrs, graph.FloatsAttr("activation_params", tc.params...))
	}
	y, err := ncRun(t, ncModel("Conv", b, ins, attrs...), ins)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{int64(tc.N), int64(Mp), int64(OH), int64(OW)}; !nnSameShape(y.Shape, want) {
		t.Fatalf("Y shape %v, want %v", y.Shape, want)
	}
	// expected, in NCHW over all Mp channels: act(conv + bias + sum), the
	// padding channels act(0 + 0 + sum).
	OHW := OH * OW
	want := make([]float64, tc.N*Mp*OHW)
	for n := 0; n < tc.N; n++ {
		for m := 0; m < Mp; m++ {
			for p := 0; p < OHW; p++ {
				var v float64
				if m < tc.M {
					v = ref[(n*tc.M+m)*OHW+p]
					if tc.bias {
						v += float64(bias[m])
					}
				}
				if tc.sum {
					v += float64(sum[((n*(Mp/b)+m/b)*OHW+p)*b+m%b])
				}
				want[(n*Mp+m)*OHW+p] = ncAct(tc.act, tc.params, v)
			}
		}
	}
	got := ncUnblock(y.Float32s(), tc.N, Mp, Mp, OHW, b)
	if err := ncClose(got, want, 1e-5); err != nil {
		t.Fatalf("Y (NCHW order): %v", err)
	}
}

// ncRefPool is ONNX MaxPool / AveragePool on one H×W plane, in float64,
// with MLAS's count_include_pad divisor (see below).
func ncRefPool(x []float32, H, W int, maxPool bool, k, s, d [2]int, pads [4]int, ceil, includePad bool) ([]float64, int, int) {
	outDim := func(in, k, s, d, pb, pe int) int {
		ek := (k-1)*d + 1
		span := in + pb + pe - ek
		if !ceil {
			return span/s + 1
		}
		o := (span+s-1)/s + 1
		if (o-1)*s >= in+pb {
			o--
		}
		return o
	}
	OH := outDim(H, k[0], s[0], d[0], pads[0], pads[2])
	OW := outDim(W, k[1], s[1], d[1], pads[1], pads[3])
	y := make([]float64, OH*OW)
	for oh := 0; oh < OH; oh++ {
		for ow := 0; ow < OW; ow++ {
			best, acc, cnt := math.Inf(-1), 0.0, 0
			for kh := 0; kh < k[0]; kh++ {
				ih := oh*s[0] - pads[0] + kh*d[0]
				for kw := 0; kw < k[1]; kw++ {
					iw := ow*s[1] - pads[1] + kw*d[1]
					if ih < 0 || ih >= H || iw < 0 || iw >= W {
						continue
					}
					v := float64(x[ih*W+iw])
					best = max(best, v)
					acc += v
					cnt++
				}
			}
			switch {
			case maxPool:
				y[oh*OW+ow] = best
			case includePad:
				// ORT's NCHWc AveragePool (MLAS) divides by the whole
				// kernel size; ONNX's definition divides by the taps inside
				// the padded input, which differs only for a ceil_mode
				// window hanging over the end (this case's last window).
				y[oh*OW+ow] = acc / float64(k[0]*k[1])
			default:
				y[oh*OW+ow] = acc / float64(cnt)
			}
		}
	}
	return y, OH, OW
}

func TestNchwcPool(t *testing.T) {
	cases := []struct {
		name       string
		op         string
		b          int
		N, C, H, W int
		k, s, d    [2]int
		pads       [4]int
		ceil       bool
		includePad bool
	}{
		{"max_2x2_s2_b8", "MaxPool", 8, 1, 16, 8, 8, [2]int{2, 2}, [2]int{2, 2}, [2]int{1, 1}, [4]int{}, false, false},
		{"max_3x3_pad_ceil_b16", "MaxPool", 16, 2, 16, 7, 6, [2]int{3, 3}, [2]int{2, 2}, [2]int{1, 1}, [4]int{1, 1, 1, 1}, true, false},
		{"max_dil2_b8", "MaxPool", 8, 1, 8, 9, 9, [2]int{3, 2}, [2]int{1, 2}, [2]int{2, 2}, [4]int{0, 1, 1, 0}, false, false},
		{"avg_3x3_pad_b8", "AveragePool", 8, 1, 24, 6, 7, [2]int{3, 3}, [2]int{1, 1}, [2]int{1, 1}, [4]int{1, 1, 1, 1}, false, false},
		{"avg_includepad_ceil_b16", "AveragePool", 16, 1, 16, 7, 7, [2]int{3, 3}, [2]int{2, 2}, [2]int{1, 1}, [4]int{1, 1, 0, 0}, true, true},
		{"max_big_parallel_b8", "MaxPool", 8, 1, 32, 24, 24, [2]int{3, 3}, [2]int{1, 1}, [2]int{1, 1}, [4]int{1, 1, 1, 1}, false, false},
		{"avg_big_parallel_b16", "AveragePool", 16, 2, 16, 20, 20, [2]int{3, 3}, [2]int{1, 1}, [2]int{1, 1}, [4]int{1, 1, 1, 1}, false, true},
		{"avg_dil2_b8", "AveragePool", 8, 1, 8, 8, 9, [2]int{2, 3}, [2]int{1, 1}, [2]int{2, 2}, [4]int{1, 1, 1, 1}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, uint64(tc.C)))
			HW := tc.H * tc.W
			xb := ncRand(r, tc.N*tc.C*HW) // C is a multiple of b: the data is the blocked tensor
			x := ncUnblock(xb, tc.N, tc.C, tc.C, HW, tc.b)
			attrs := []*graph.Attr{
				graph.IntsAttr("kernel_shape", int64(tc.k[0]), int64(tc.k[1])),
				graph.IntsAttr("strides", int64(tc.s[0]), int64(tc.s[1])),
				graph.IntsAttr("pads", int64(tc.pads[0]), int64(tc.pads[1]), int64(tc.pads[2]), int64(tc.pads[3])),
			}
			if tc.ceil {
				attrs = append(attrs, graph.IntAttr("ceil_mode", 1))
			}
			attrs = append(attrs, graph.IntsAttr("dilations", int64(tc.d[0]), int64(tc.d[1])))
			if tc.includePad {
				attrs = append(attrs, graph.IntAttr("count_include_pad", 1))
			}
			ins := []ncIn{{t: runtime.FromFloat32([]int64{int64(tc.N), int64(tc.C), int64(tc.H), int64(tc.W)}, xb)}}
			y, err := ncRun(t, ncModel(tc.op, tc.b, ins, attrs...), ins)
			if err != nil {
				t.Fatal(err)
			}
			var want []float64
			var OH, OW int
			for p := 0; p < tc.N*tc.C; p++ {
				var pl []float64
				pl, OH, OW = ncRefPool(x[p*HW:(p+1)*HW], tc.H, tc.W, tc.op == "MaxPool", tc.k, tc.s, tc.d, tc.pads, tc.ceil, tc.includePad)
				want = append(want, pl...)
			}
			if ws := []int64{int64(tc.N), int64(tc.C), int64(OH), int64(OW)}; !nnSameShape(y.Shape, ws) {
				t.Fatalf("Y shape %v, want %v", y.Shape, ws)
			}
			if err := ncClose(ncUnblock(y.Float32s(), tc.N, tc.C, tc.C, OH*OW, tc.b), want, 1e-6); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNchwcGlobalPool(t *testing.T) {
	cases := []struct {
		op         string
		b          int
		N, C, H, W int
	}{
		{"GlobalAveragePool", 8, 2, 16, 5, 3},
		{"GlobalAveragePool", 16, 1, 32, 4, 4},
		{"GlobalMaxPool", 8, 1, 8, 7, 2},
		{"GlobalMaxPool", 16, 2, 16, 1, 1},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s_b%d", tc.op, tc.b), func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, 6))
			HW := tc.H * tc.W
			xb := ncRand(r, tc.N*tc.C*HW)
			x := ncUnblock(xb, tc.N, tc.C, tc.C, HW, tc.b)
			ins := []ncIn{{t: runtime.FromFloat32([]int64{int64(tc.N), int64(tc.C), int64(tc.H), int64(tc.W)}, xb)}}
			y, err := ncRun(t, ncModel(tc.op, tc.b, ins), ins)
			if err != nil {
				t.Fatal(err)
			}
			if ws := []int64{int64(tc.N), int64(tc.C), 1, 1}; !nnSameShape(y.Shape, ws) {
				t.Fatalf("Y shape %v, want %v", y.Shape, ws)
			}
			want := make([]float64, tc.N*tc.C)
			for p := range want {
				best, acc := math.Inf(-1), 0.0
				for _, v := range x[p*HW : (p+1)*HW] {
					best = max(best, float64(v))
					acc += float64(v)
				}
				if tc.op == "GlobalMaxPool" {
					want[p] = best
				} else {
					want[p] = acc / float64(HW)
				}
			}
			// [N, C, 1, 1] blocked is [N, C] in order
			if err := ncClose(y.Float32s(), want, 1e-6); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNchwcUpsample(t *testing.T) {
	cases := []struct {
		name, mode, ctm string
		b, H, W, sh, sw int
	}{
		{"nearest_2x3_b8", "nearest", "", 8, 3, 4, 2, 3},
		{"nearest_ignores_ctm_b16", "nearest", "half_pixel", 16, 2, 3, 3, 1},
		{"linear_asym_b8", "linear", "", 8, 4, 3, 2, 2},
		{"linear_align_b16", "linear", "align_corners", 16, 3, 5, 3, 2},
		{"linear_halfpixel_b8", "linear", "half_pixel", 8, 5, 4, 2, 4},
		{"linear_halfpixel_unit_w", "linear", "half_pixel", 8, 3, 3, 2, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(8, 9))
			N, C := 1, 2*tc.b
			HW := tc.H * tc.W
			xb := ncRand(r, N*C*HW)
			x := ncUnblock(xb, N, C, C, HW, tc.b)
			attrs := []*graph.Attr{graph.IntsAttr("scales", 1, 1, int64(tc.sh), int64(tc.sw)), graph.StringAttr("mode", tc.mode)}
			if tc.ctm != "" {
				attrs = append(attrs, graph.StringAttr("coordinate_transformation_mode", tc.ctm))
			}
			ins := []ncIn{{t: runtime.FromFloat32([]int64{int64(N), int64(C), int64(tc.H), int64(tc.W)}, xb)}}
			y, err := ncRun(t, ncModel("Upsample", tc.b, ins, attrs...), ins)
			if err != nil {
				t.Fatal(err)
			}
			OH, OW := tc.H*tc.sh, tc.W*tc.sw
			if ws := []int64{int64(N), int64(C), int64(OH), int64(OW)}; !nnSameShape(y.Shape, ws) {
				t.Fatalf("Y shape %v, want %v", y.Shape, ws)
			}
			coord := func(o, in, out, s int) float64 {
				switch {
				case s == 1:
					return float64(o)
				case tc.ctm == "align_corners":
					return float64(o) * float64(in-1) / float64(out-1)
				case tc.ctm == "half_pixel":
					return max(0, (float64(o)+0.5)/float64(s)-0.5)
				}
				return float64(o) / float64(s)
			}
			want := make([]float64, N*C*OH*OW)
			for p := 0; p < N*C; p++ {
				pl := x[p*HW : (p+1)*HW]
				for i := 0; i < OH; i++ {
					for j := 0; j < OW; j++ {
						var v float64
						if tc.mode == "nearest" {
							v = float64(pl[(i/tc.sh)*tc.W+j/tc.sw])
						} else {
							fh, fw := coord(i, tc.H, OH, tc.sh), coord(j, tc.W, OW, tc.sw)
							h0, w0 := int(fh), int(fw)
							h1, w1 := min(h0+1, tc.H-1), min(w0+1, tc.W-1)
							lh, lw := fh-float64(h0), fw-float64(w0)
							v = (1-lh)*(1-lw)*float64(pl[h0*tc.W+w0]) + (1-lh)*lw*float64(pl[h0*tc.W+w1]) +
								lh*(1-lw)*float64(pl[h1*tc.W+w0]) + lh*lw*float64(pl[h1*tc.W+w1])
						}
						want[(p*OH+i)*OW+j] = v
					}
				}
			}
			if err := ncClose(ncUnblock(y.Float32s(), N, C, C, OH*OW, tc.b), want, 1e-5); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestNchwcErrors checks that bad models and inputs are refused with an
// error naming the problem, at Open or at Run, never with a panic.
func TestNchwcErrors(t *testing.T) {
	f := func(shape ...int64) *runtime.Tensor {
		n := 1
		for _, d := range shape {
			n *= int(d)
		}
		return runtime.FromFloat32(shape, make([]float32, n))
	}
	convAttrs := []*graph.Attr{graph.IntsAttr("kernel_shape", 3, 3), graph.IntsAttr("pads", 1, 1, 1, 1)}
	cases := []struct {
		name  string
		m     *graph.Model
		ins   []ncIn
		block string // metadata value override ("" = keep)
		want  string
	}{
		{name: "reorder_input_rank3", m: ncModel("ReorderInput", 8, []ncIn{{t: f(1, 8, 4)}}), ins: []ncIn{{t: f(1, 8, 4)}}, want: "rank 4"},
		{name: "reorder_input_c6", m: ncModel("ReorderInput", 8, []ncIn{{t: f(1, 6, 2, 2)}}), ins: []ncIn{{t: f(1, 6, 2, 2)}}, want: "multiple of 4"},
		{name: "reorder_output_no_channels", m: ncModel("ReorderOutput", 8, []ncIn{{t: f(1, 8, 2, 2)}}), ins: []ncIn{{t: f(1, 8, 2, 2)}}, want: "channels"},
		{name: "reorder_output_too_many", m: ncModel("ReorderOutput", 8, []ncIn{{t: f(1, 8, 2, 2)}}, graph.IntAttr("channels", 12)), ins: []ncIn{{t: f(1, 8, 2, 2)}}, want: "block-aligned"},
		{name: "reorder_output_not_blocked", m: ncModel("ReorderOutput", 8, []ncIn{{t: f(1, 12, 2, 2)}}, graph.IntAttr("channels", 12)), ins: []ncIn{{t: f(1, 12, 2, 2)}}, want: "multiple of the NCHWc block size"},
		{name: "conv_x_rank3", m: ncModel("Conv", 8, []ncIn{{t: f(1, 8, 5)}, {t: f(8, 8, 3, 3), konst: true}}, convAttrs...),
			ins: []ncIn{{t: f(1, 8, 5)}}, want: "rank 4"},
		{name: "conv_channel_mismatch", m: ncModel("Conv", 8, []ncIn{{t: f(1, 16, 5, 5)}, {t: f(8, 8, 3, 3), konst: true}}, convAttrs...),
			ins: []ncIn{{t: f(1, 16, 5, 5)}}, want: "does not match W"},
		{name: "conv_plain_in_mismatch", m: ncModel("Conv", 8, []ncIn{{t: f(1, 4, 5, 5)}, {t: f(8, 3, 3, 3), konst: true}}, convAttrs...),
			ins: []ncIn{{t: f(1, 4, 5, 5)}}, want: "want 3 channels"},
		{name: "conv_w_not_blocked", m: ncModel("Conv", 8, []ncIn{{t: f(1, 8, 5, 5)}, {t: f(6, 8, 3, 3), konst: true}}, convAttrs...),
			ins: []ncIn{{t: f(1, 8, 5, 5)}}, want: "not a multiple of the NCHWc block size"},
		{name: "conv_w_no_form", m: ncModel("Conv", 8, []ncIn{{t: f(1, 12, 5, 5)}, {t: f(8, 12, 3, 3), konst: true}}, convAttrs...),
			ins: []ncIn{{t: f(1, 12, 5, 5)}}, want: "matches no NCHWc Conv form"},
		{name: "conv_bias_len", m: ncModel("Conv", 8, []ncIn{{t: f(1, 8, 5, 5)}, {t: f(8, 8, 3, 3), konst: true}, {t: f(4), konst: true}}, convAttrs...),
			ins: []ncIn{{t: f(1, 8, 5, 5)}}, want: "B[4]"},
		{name: "conv_var_w_mismatch", m: ncModel("Conv", 8, []ncIn{{t: f(1, 16, 5, 5)}, {t: f(8, 8, 3, 3)}}, convAttrs...),
			ins: []ncIn{{t: f(1, 16, 5, 5)}, {t: f(8, 8, 3, 3)}}, want: "does not match W"},
		{name: "conv_sum_shape", m: ncModel("Conv", 8, []ncIn{{t: f(1, 8, 5, 5)}, {t: f(8, 8, 3, 3), konst: true}, {}, {t: f(1, 8, 4, 4)}}, convAttrs...),
			ins: []ncIn{{t: f(1, 8, 5, 5)}, {t: f(1, 8, 4, 4)}}, want: "Sum"},
		{name: "conv_bad_act", m: ncModel("Conv", 8, []ncIn{{t: f(1, 8, 5, 5)}, {t: f(8, 8, 3, 3), konst: true}}, append(convAttrs, graph.StringAttr("activation", "Gelu"))...),
			ins: []ncIn{{t: f(1, 8, 5, 5)}}, want: "Gelu"},
		{name: "conv_kernel_too_big", m: ncModel("Conv", 8, []ncIn{{t: f(1, 8, 2, 2)}, {t: f(8, 8, 3, 3), konst: true}}, graph.IntsAttr("kernel_shape", 3, 3)),
			ins: []ncIn{{t: f(1, 8, 2, 2)}}, want: "larger than"},
		{name: "pool_channels", m: ncModel("MaxPool", 8, []ncIn{{t: f(1, 12, 4, 4)}}, graph.IntsAttr("kernel_shape", 2, 2)),
			ins: []ncIn{{t: f(1, 12, 4, 4)}}, want: "multiple of the NCHWc block size"},
		{name: "pool_rank", m: ncModel("AveragePool", 8, []ncIn{{t: f(1, 8, 4)}}, graph.IntsAttr("kernel_shape", 2, 2)),
			ins: []ncIn{{t: f(1, 8, 4)}}, want: "rank 4"},
		{name: "pool_kernel_1d", m: ncModel("MaxPool", 8, []ncIn{{t: f(1, 8, 4, 4)}}, graph.IntsAttr("kernel_shape", 2)),
			ins: []ncIn{{t: f(1, 8, 4, 4)}}, want: "2 entries"},
		{name: "global_pool_rank", m: ncModel("GlobalAveragePool", 16, []ncIn{{t: f(1, 16)}}), ins: []ncIn{{t: f(1, 16)}}, want: "rank 4"},
		{name: "upsample_scales", m: ncModel("Upsample", 8, []ncIn{{t: f(1, 8, 2, 2)}}, graph.IntsAttr("scales", 1, 2, 2, 2)),
			ins: []ncIn{{t: f(1, 8, 2, 2)}}, want: "scales"},
		{name: "upsample_mode", m: ncModel("Upsample", 8, []ncIn{{t: f(1, 8, 2, 2)}}, graph.IntsAttr("scales", 1, 1, 2, 2), graph.StringAttr("mode", "cubic")),
			ins: []ncIn{{t: f(1, 8, 2, 2)}}, want: "cubic"},
		{name: "upsample_ctm", m: ncModel("Upsample", 8, []ncIn{{t: f(1, 8, 2, 2)}}, graph.IntsAttr("scales", 1, 1, 2, 2), graph.StringAttr("mode", "linear"),
			graph.StringAttr("coordinate_transformation_mode", "tf_crop_and_resize")), ins: []ncIn{{t: f(1, 8, 2, 2)}}, want: "tf_crop_and_resize"},
		{name: "upsample_huge", m: ncModel("Upsample", 8, []ncIn{{t: f(1, 8, 2, 2)}}, graph.IntsAttr("scales", 1, 1, 65536, 65536)),
			ins: []ncIn{{t: f(1, 8, 2, 2)}}, want: "too large"},
		{name: "bad_block_metadata", m: ncModel("GlobalMaxPool", 8, []ncIn{{t: f(1, 8, 2, 2)}}), block: "7",
			ins: []ncIn{{t: f(1, 8, 2, 2)}}, want: nchwcBlockKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.block != "" {
				tc.m.Metadata = []graph.KV{{Key: nchwcBlockKey, Value: tc.block}}
			}
			_, err := ncRun(t, tc.m, tc.ins)
			if err == nil {
				t.Fatalf("no error, want one mentioning %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			t.Logf("%v", err)
			if strings.Contains(err.Error(), "internal error") {
				t.Fatalf("kernel panicked: %v", err)
			}
		})
	}
}

// TestNchwcBlockSize checks where the block size comes from: the model's
// metadata first, else the CPU, else an error.
func TestNchwcBlockSize(t *testing.T) {
	saved := nchwcCPUBlock
	defer func() { nchwcCPUBlock = saved }()
	cases := []struct {
		name string
		meta string // "" = absent
		cpu  int    // 0 = unknown CPU
		want int
		err  string
	}{
		{"meta8", "8", 16, 8, ""},
		{"meta16", "16", 0, 16, ""},
		{"cpu16", "", 16, 16, ""},
		{"cpu8", "", 8, 8, ""},
		{"unknown_cpu", "", 0, 0, "block size is unknown on this CPU"},
		{"bad_meta", "32", 8, 0, nchwcBlockKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nchwcCPUBlock = func() (int, error) {
				if tc.cpu == 0 {
					return 0, errNchwcNoBlock
				}
				return tc.cpu, nil
			}
			x := runtime.FromFloat32([]int64{1, 4, 1, 1}, []float32{1, 2, 3, 4})
			ins := []ncIn{{t: x}}
			m := ncModel("ReorderInput", 0, ins)
			if tc.meta != "" {
				m.Metadata = []graph.KV{{Key: nchwcBlockKey, Value: tc.meta}}
			}
			y, err := ncRun(t, m, ins)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if y.Shape[1] != int64(tc.want) {
				t.Fatalf("Y%v: block size %d, want %d", y.Shape, y.Shape[1], tc.want)
			}
		})
	}
}

// TestNchwcChain runs ReorderInput -> Conv(form 1, Relu) -> MaxPool ->
// Conv(depthwise) -> GlobalAveragePool -> ReorderOutput, twice on one
// session (scratch reuse), against the same computation in plain ONNX ops.
func TestNchwcChain(t *testing.T) {
	for _, b := range []int{8, 16} {
		t.Run("b"+strconv.Itoa(b), func(t *testing.T) {
			blocked, plain := ncChainModels(b, 12, 20)
			sb, err := Open(blocked, runtime.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			sp, err := Open(plain, runtime.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(4, 4))
			for run := 0; run < 2; run++ {
				x := runtime.FromFloat32([]int64{2, 12, 9, 9}, ncRand(r, 2*12*81))
				ob, err := sb.Run(context.Background(), []*runtime.Tensor{x})
				if err != nil {
					t.Fatal(err)
				}
				op, err := sp.Run(context.Background(), []*runtime.Tensor{x})
				if err != nil {
					t.Fatal(err)
				}
				if err := nnCompare(ob[0], op[0], 1e-5, 1e-5); err != nil {
					t.Fatalf("run %d: %v", run, err)
				}
			}
			// Scratch and one-node programs are reused: a warm run
			// allocates no more than the plain model's run does.
			x := []*runtime.Tensor{runtime.FromFloat32([]int64{2, 12, 9, 9}, ncRand(r, 2*12*81))}
			ab := testing.AllocsPerRun(5, func() { _, _ = sb.Run(context.Background(), x) })
			ap := testing.AllocsPerRun(5, func() { _, _ = sp.Run(context.Background(), x) })
			if ab > ap {
				t.Fatalf("a run of the NCHWc model allocates %v times, the plain model's %v", ab, ap)
			}
		})
	}
}

// ncChainModels returns the NCHWc chain model (block b, C input channels,
// M channels after the first conv) and its plain ONNX twin.
func ncChainModels(b, C, M int) (*graph.Model, *graph.Model) {
	r := rand.New(rand.NewPCG(10, uint64(b)))
	w1 := ncRand(r, M*C*9)
	b1 := ncRand(r, M)
	w2 := ncRand(r, M*9)
	b2 := ncRand(r, M)
	Mp := ncRoundUp(M, b)
	pad := func(v []float32, n int) []float32 { out := make([]float32, n); copy(out, v); return out }
	w1b, w1s := ncFilterBiBo(w1, M, C, 3, 3, b)
	w2b, w2s := ncFilterBo(w2, M, 1, 3, 3, b)
	in := &graph.ValueInfo{Name: "x", DType: graph.Float, HasType: true, HasShape: true, Shape: graph.DimsOf(2, int64(C), 9, 9)}
	out := &graph.ValueInfo{Name: "y", DType: graph.Float, HasType: true}
	convAttrs := func(group int64, act bool) []*graph.Attr {
		a := []*graph.Attr{graph.IntsAttr("kernel_shape", 3, 3), graph.IntsAttr("pads", 1, 1, 1, 1), graph.IntAttr("group", group)}
		if act {
			a = append(a, graph.StringAttr("activation", "Relu"))
		}
		return a
	}
	pool := []*graph.Attr{graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2), graph.IntAttr("ceil_mode", 1)}
	gb := &graph.Graph{Name: "nchwc", Inputs: []*graph.ValueInfo{in}, Outputs: []*graph.ValueInfo{out},
		Initializers: []*graph.Tensor{
			graph.NewFloat32("w1", w1s, w1b), graph.NewFloat32("b1", []int64{int64(Mp)}, pad(b1, Mp)),
			graph.NewFloat32("w2", w2s, w2b), graph.NewFloat32("b2", []int64{int64(Mp)}, pad(b2, Mp)),
		},
		Nodes: []*graph.Node{
			{Name: "ri", OpType: "ReorderInput", Domain: nchwcDomain, Inputs: []string{"x"}, Outputs: []string{"xb"}},
			{Name: "c1", OpType: "Conv", Domain: nchwcDomain, Inputs: []string{"xb", "w1", "b1"}, Outputs: []string{"c1"}, Attrs: convAttrs(1, true)},
			{Name: "mp", OpType: "MaxPool", Domain: nchwcDomain, Inputs: []string{"c1"}, Outputs: []string{"p1"}, Attrs: pool},
			{Name: "c2", OpType: "Conv", Domain: nchwcDomain, Inputs: []string{"p1", "w2", "b2"}, Outputs: []string{"c2"}, Attrs: convAttrs(int64(Mp), false)},
			{Name: "gap", OpType: "GlobalAveragePool", Domain: nchwcDomain, Inputs: []string{"c2"}, Outputs: []string{"g"}},
			{Name: "ro", OpType: "ReorderOutput", Domain: nchwcDomain, Inputs: []string{"g"}, Outputs: []string{"y"}, Attrs: []*graph.Attr{graph.IntAttr("channels", int64(M))}},
		}}
	mb := &graph.Model{IRVersion: 8, Graph: gb, Metadata: []graph.KV{{Key: nchwcBlockKey, Value: strconv.Itoa(b)}}}
	mb.SetOpset("", 13)
	mb.SetOpset(nchwcDomain, 1)

	gp := &graph.Graph{Name: "plain", Inputs: []*graph.ValueInfo{in.Clone()}, Outputs: []*graph.ValueInfo{out.Clone()},
		Initializers: []*graph.Tensor{
			graph.NewFloat32("w1", []int64{int64(M), int64(C), 3, 3}, w1), graph.NewFloat32("b1", []int64{int64(M)}, b1),
			graph.NewFloat32("w2", []int64{int64(M), 1, 3, 3}, w2), graph.NewFloat32("b2", []int64{int64(M)}, b2),
		},
		Nodes: []*graph.Node{
			{Name: "c1", OpType: "Conv", Inputs: []string{"x", "w1", "b1"}, Outputs: []string{"c1"}, Attrs: convAttrs(1, false)[:3]},
			{Name: "r1", OpType: "Relu", Inputs: []string{"c1"}, Outputs: []string{"r1"}},
			{Name: "mp", OpType: "MaxPool", Inputs: []string{"r1"}, Outputs: []string{"p1"}, Attrs: pool},
			{Name: "c2", OpType: "Conv", Inputs: []string{"p1", "w2", "b2"}, Outputs: []string{"c2"}, Attrs: convAttrs(int64(M), false)},
			{Name: "gap", OpType: "GlobalAveragePool", Inputs: []string{"c2"}, Outputs: []string{"y"}},
		}}
	mp := &graph.Model{IRVersion: 8, Graph: gp}
	mp.SetOpset("", 13)
	return mb, mp
}

// TestNchwcNoPanic feeds the nchwc ops odd inputs (empty tensors, zero
// dims, wrong dtypes, absurd attributes): each run must succeed or fail
// with a validation error, never with a recovered panic.
func TestNchwcNoPanic(t *testing.T) {
	f := func(shape ...int64) *runtime.Tensor { return runtime.NewTensor(graph.Float, shape) }
	i64 := func(shape ...int64) *runtime.Tensor { return runtime.NewTensor(graph.Int64, shape) }
	ks := graph.IntsAttr("kernel_shape", 2, 2)
	cases := []struct {
		op    string
		ins   []ncIn
		attrs []*graph.Attr
	}{
		{"ReorderInput", []ncIn{{t: f(0, 8, 3, 3)}}, nil},
		{"ReorderInput", []ncIn{{t: f(1, 0, 3, 3)}}, nil},
		{"ReorderInput", []ncIn{{t: f(1, 8, 0, 3)}}, []*graph.Attr{graph.IntAttr("channels_last", 1)}},
		{"ReorderInput", []ncIn{{t: i64(1, 8, 2, 2)}}, nil},
		{"ReorderOutput", []ncIn{{t: f(0, 8, 2, 2)}}, []*graph.Attr{graph.IntAttr("channels", 8)}},
		{"ReorderOutput", []ncIn{{t: f(1, 0, 2, 2)}}, []*graph.Attr{graph.IntAttr("channels", 1)}},
		{"ReorderOutput", []ncIn{{t: i64(1, 8, 2, 2)}}, []*graph.Attr{graph.IntAttr("channels", 8)}},
		{"ReorderOutput", []ncIn{{t: f(1, 8, 2, 2)}}, []*graph.Attr{graph.IntAttr("channels", -3)}},
		{"Conv", []ncIn{{t: f(0, 8, 4, 4)}, {t: f(8, 8, 3, 3), konst: true}}, nil},
		{"Conv", []ncIn{{t: f(1, 8, 0, 4)}, {t: f(8, 8, 1, 1), konst: true}}, nil},
		{"Conv", []ncIn{{t: f(1, 8, 4, 4)}, {t: f(8, 8, 0, 3), konst: true}}, nil},
		{"Conv", []ncIn{{t: f(1, 8, 4, 4)}, {t: f(8, 8, 3, 3)}, {t: i64(8)}}, nil},
		{"Conv", []ncIn{{t: f(1, 8, 4, 4)}, {t: f(8, 8, 3, 3)}, {}, {t: i64(1, 8, 2, 2)}}, nil},
		{"Conv", []ncIn{{t: f(1, 8, 4, 4)}, {t: i64(8, 8, 3, 3)}}, nil},
		{"Conv", []ncIn{{t: f(1, 8, 4, 4)}, {t: f(8, 8, 3)}}, nil},
		{"Conv", []ncIn{{t: f(1, 8, 4, 4)}, {t: f(8, 8, 3, 3), konst: true}}, []*graph.Attr{graph.IntAttr("group", 1<<40)}},
		{"Conv", []ncIn{{t: f(1, 8, 4, 4)}, {t: f(8, 1, 3, 3), konst: true}}, []*graph.Attr{graph.IntAttr("group", 8), graph.IntsAttr("strides", 1<<40, 1)}},
		{"Conv", []ncIn{{t: f(1, 8, 4, 4)}, {t: f(8, 8, 3, 3), konst: true}}, []*graph.Attr{graph.IntsAttr("pads", 1<<40, 0, 0, 0)}},
		{"Conv", []ncIn{{t: f(1, 8, 4, 4)}, {t: f(8, 8, 3, 3), konst: true}}, []*graph.Attr{graph.IntsAttr("dilations", 1<<40, 1)}},
		{"Conv", []ncIn{{t: f(1, 3, 4, 4)}, {t: f(8, 3, 3, 3), konst: true}}, []*graph.Attr{graph.StringAttr("activation", "Clip"), graph.FloatsAttr("activation_params", 1)}},
		{"MaxPool", []ncIn{{t: f(1, 8, 1, 1)}}, []*graph.Attr{ks}},
		{"MaxPool", []ncIn{{t: f(0, 8, 4, 4)}}, []*graph.Attr{ks}},
		{"MaxPool", []ncIn{{t: f(1, 8, 4, 4)}}, []*graph.Attr{ks, graph.IntsAttr("pads", 5, 5, 5, 5)}},
		{"AveragePool", []ncIn{{t: f(1, 8, 4, 4)}}, []*graph.Attr{ks, graph.IntsAttr("strides", 1<<40, 1)}},
		{"AveragePool", []ncIn{{t: i64(1, 8, 4, 4)}}, []*graph.Attr{ks}},
		// a huge window must not loop over its taps outside the input
		{"AveragePool", []ncIn{{t: f(1, 8, 4, 4)}}, []*graph.Attr{graph.IntsAttr("kernel_shape", 1<<30, 1<<30),
			graph.IntsAttr("pads", 1<<30, 1<<30, 1<<30, 1<<30), graph.IntsAttr("strides", 1<<40, 1<<40), graph.IntAttr("count_include_pad", 1)}},
		{"MaxPool", []ncIn{{t: f(1, 8, 4, 4)}}, []*graph.Attr{graph.IntsAttr("kernel_shape", 1<<30, 3), graph.IntsAttr("dilations", 1, 1<<20),
			graph.IntsAttr("pads", 1<<30, 1<<21, 1<<30, 1<<21), graph.IntsAttr("strides", 1<<40, 1<<40)}},
		{"AveragePool", []ncIn{{t: f(1, 8, 4, 4)}}, nil},
		{"GlobalAveragePool", []ncIn{{t: f(1, 8, 0, 0)}}, nil},
		{"GlobalMaxPool", []ncIn{{t: f(0, 8, 3, 3)}}, nil},
		{"Upsample", []ncIn{{t: f(1, 8, 0, 3)}}, []*graph.Attr{graph.IntsAttr("scales", 1, 1, 2, 2), graph.StringAttr("mode", "linear")}},
		{"Upsample", []ncIn{{t: f(1, 8, 1, 1)}}, []*graph.Attr{graph.IntsAttr("scales", 1, 1, 3, 3), graph.StringAttr("mode", "linear"), graph.StringAttr("coordinate_transformation_mode", "align_corners")}},
		{"Upsample", []ncIn{{t: f(1, 8, 2, 2)}}, nil},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%d_%s", i, tc.op), func(t *testing.T) {
			_, err := ncRun(t, ncModel(tc.op, 8, tc.ins, tc.attrs...), tc.ins)
			if err != nil && strings.Contains(err.Error(), "internal error") {
				t.Fatalf("kernel panicked: %v", err)
			}
		})
	}
}
