package interp

import (
	"context"
	"math"
	"math/rand"
	goruntime "runtime"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

func TestSeqTanhApprox(t *testing.T) {
	var worst float64
	for x := -12.0; x <= 12; x += 0.001 {
		d := math.Abs(float64(seqTanh(float32(x))) - math.Tanh(x))
		worst = max(worst, d)
		s := 1 / (1 + math.Exp(-x))
		worst = max(worst, math.Abs(float64(seqSigmoid(float32(x)))-s))
	}
	if worst > 2e-6 {
		t.Fatalf("tanh/sigmoid approximation error %g, want <= 2e-6", worst)
	}
}

type refAct struct {
	name        string
	alpha, beta float64
}

func (a refAct) f(x float64) float64 {
	switch a.name {
	case "Sigmoid":
		return 1 / (1 + math.Exp(-x))
	case "Tanh":
		return math.Tanh(x)
	case "Relu":
		return math.Max(x, 0)
	case "HardSigmoid":
		return math.Min(1, math.Max(0, a.alpha*x+a.beta))
	case "LeakyRelu":
		if x < 0 {
			return a.alpha * x
		}
		return x
	case "ScaledTanh":
		return a.alpha * math.Tanh(a.beta*x)
	case "Affine":
		return a.alpha*x + a.beta
	}
	panic(a.name)
}

type rnnCase struct {
	name                    string
	op                      string
	dir                     string
	layout                  int
	seq, batch, in, hid     int
	bias, lens, h0, c0, pep bool
	lbr, inputForget        bool
	clip                    float64
	acts                    []refAct // per direction list (repeated for both)
}

// rnnRef computes Y and Y_h (and Y_c) straight from the ONNX formulas, in
// float64, with layout-0 arrays indexed [t][dir][b][h].
func rnnRef(tc rnnCase, x, w, r, b []float64, lens []int, h0, c0, p []float64) (y, yh, yc []float64) {
	dirs := 1
	if tc.dir == "bidirectional" {
		dirs = 2
	}
	G := map[string]int{"LSTM": 4, "GRU": 3, "RNN": 1}[tc.op]
	S, B, I, H := tc.seq, tc.batch, tc.in, tc.hid
	y = make([]float64, S*dirs*B*H)
	yh = make([]float64, dirs*B*H)
	yc = make([]float64, dirs*B*H)
	clip := func(v float64) float64 {
		if tc.clip > 0 {
			return math.Max(-tc.clip, math.Min(tc.clip, v))
		}
		return v
	}
	for d := 0; d < dirs; d++ {
		acts := tc.acts
		wd := func(g, h, i int) float64 { return w[((d*G+g)*H+h)*I+i] }
		rd := func(g, h, k int) float64 { return r[((d*G+g)*H+h)*H+k] }
		wb := func(g, h int) float64 {
			if b == nil {
				return 0
			}
			return b[d*2*G*H+g*H+h]
		}
		rb := func(g, h int) float64 {
			if b == nil {
				return 0
			}
			return b[d*2*G*H+G*H+g*H+h]
		}
		for bb := 0; bb < B; bb++ {
			L := S
			if lens != nil {
				L = lens[bb]
			}
			hp := make([]float64, H)
			cp := make([]float64, H)
			if h0 != nil {
				copy(hp, h0[(d*B+bb)*H:])
			}
			if c0 != nil {
				copy(cp, c0[(d*B+bb)*H:])
			}
			for step := 0; step < L; step++ {
				t := step
				if tc.dir == "reverse" || d == 1 {
					t = L - 1 - step
				}
				xt := x[(t*B+bb)*I:]
				pre := func(g, h int, hv []float64) float64 {
					s := wb(g, h) + rb(g, h)
					for i := 0; i < I; i++ {
						s += xt[i] * wd(g, h, i)
					}
					for k := 0; k < H; k++ {
						s += hv[k] * rd(g, h, k)
					}
					return s
				}
				hn := make([]float64, H)
				cn := make([]float64, H)
				switch tc.op {
				case "RNN":
					for h := 0; h < H; h++ {
						hn[h] = acts[0].f(clip(pre(0, h, hp)))
					}
				case "GRU":
					z := make([]float64, H)
					rr := make([]float64, H)
					for h := 0; h < H; h++ {
						z[h] = acts[0].f(clip(pre(0, h, hp)))
						rr[h] = acts[0].f(clip(pre(1, h, hp)))
					}
					for h := 0; h < H; h++ {
						s := wb(2, h)
						for i := 0; i < I; i++ {
							s += xt[i] * wd(2, h, i)
						}
						if tc.lbr {
							q := rb(2, h)
							for k := 0; k < H; k++ {
								q += hp[k] * rd(2, h, k)
							}
							s += rr[h] * q
						} else {
							s += rb(2, h)
							for k := 0; k < H; k++ {
								s += rr[k] * hp[k] * rd(2, h, k)
							}
						}
						hh := acts[1].f(clip(s))
						hn[h] = (1-z[h])*hh + z[h]*hp[h]
					}
				case "LSTM":
					for h := 0; h < H; h++ {
						var pi, po, pf float64
						if p != nil {
							pi, po, pf = p[d*3*H+h], p[d*3*H+H+h], p[d*3*H+2*H+h]
						}
						i := acts[0].f(clip(pre(0, h, hp) + pi*cp[h]))
						f := acts[0].f(clip(pre(2, h, hp) + pf*cp[h]))
						if tc.inputForget {
							f = 1 - i
						}
						c := acts[1].f(clip(pre(3, h, hp)))
						cn[h] = f*cp[h] + i*c
						o := acts[0].f(clip(pre(1, h, hp) + po*cn[h]))
						hn[h] = o * acts[2].f(cn[h])
					}
				}
				hp, cp = hn, cn
				copy(y[((t*dirs+d)*B+bb)*H:], hp)
			}
			copy(yh[(d*B+bb)*H:], hp)
			copy(yc[(d*B+bb)*H:], cp)
		}
	}
	return
}

func TestSeqRNNReference(t *testing.T) {
	lstm := []refAct{{"Sigmoid", 0, 0}, {"Tanh", 0, 0}, {"Tanh", 0, 0}}
	gru := []refAct{{"Sigmoid", 0, 0}, {"Tanh", 0, 0}}
	cases := []rnnCase{
		{name: "lstm_fwd_all", op: "LSTM", dir: "forward", seq: 4, batch: 3, in: 5, hid: 6, bias: true, h0: true, c0: true, pep: true, acts: lstm},
		{name: "lstm_reverse_lens", op: "LSTM", dir: "reverse", seq: 5, batch: 3, in: 2, hid: 3, bias: true, lens: true, h0: true, acts: lstm},
		{name: "lstm_bidir_layout1", op: "LSTM", dir: "bidirectional", layout: 1, seq: 3, batch: 2, in: 4, hid: 5, bias: true, h0: true, c0: true, lens: true, acts: lstm},
		{name: "lstm_clip_forget_acts", op: "LSTM", dir: "forward", seq: 3, batch: 2, in: 3, hid: 4, bias: true, clip: 0.5, inputForget: true,
			acts: []refAct{{"HardSigmoid", 0.3, 0.4}, {"LeakyRelu", 0.2, 0}, {"ScaledTanh", 1.5, 0.7}}},
		{name: "gru_lbr_bidir", op: "GRU", dir: "bidirectional", seq: 4, batch: 2, in: 3, hid: 4, bias: true, h0: true, lbr: true, acts: gru},
		{name: "gru_reverse_lens_layout1", op: "GRU", dir: "reverse", layout: 1, seq: 4, batch: 3, in: 2, hid: 3, bias: true, lens: true, acts: gru},
		{name: "gru_clip_affine", op: "GRU", dir: "forward", seq: 3, batch: 1, in: 2, hid: 3, clip: 0.8, acts: []refAct{{"Sigmoid", 0, 0}, {"Affine", 0.5, 0.1}}},
		{name: "rnn_bidir_relu", op: "RNN", dir: "bidirectional", seq: 3, batch: 2, in: 3, hid: 4, bias: true, h0: true, lens: true, acts: []refAct{{"Relu", 0, 0}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(1))
			dirs := 1
			if tc.dir == "bidirectional" {
				dirs = 2
			}
			G := map[string]int{"LSTM": 4, "GRU": 3, "RNN": 1}[tc.op]
			S, B, I, H := tc.seq, tc.batch, tc.in, tc.hid
			rnd := func(n int) []float64 {
				v := make([]float64, n)
				for i := range v {
					v[i] = float64(float32(rng.Float64()*2 - 1))
				}
				return v
			}
			x, w, r := rnd(S*B*I), rnd(dirs*G*H*I), rnd(dirs*G*H*H)
			var b, h0, c0, p []float64
			var lens []int
			if tc.bias {
				b = rnd(dirs * 2 * G * H)
			}
			if tc.h0 {
				h0 = rnd(dirs * B * H)
			}
			if tc.c0 {
				c0 = rnd(dirs * B * H)
			}
			if tc.pep {
				p = rnd(dirs * 3 * H)
			}
			if tc.lens {
				for i := 0; i < B; i++ {
					lens = append(lens, S-i%S)
				}
			}
			wantY, wantH, wantC := rnnRef(tc, x, w, r, b, lens, h0, c0, p)

			// Build the one-node model (layout 1 transposes X, Y, states).
			f32 := func(shape []int64, v []float64) *runtime.Tensor {
				t := runtime.NewTensor(graph.Float, shape)
				d := t.Float32s()
				for i := range d {
					d[i] = float32(v[i])
				}
				return t
			}
			// perm3 moves [A][B][C] to [B][A][C].
			perm := func(v []float64, a, bb, c int) []float64 {
				out := make([]float64, len(v))
				for i := 0; i < a; i++ {
					for j := 0; j < bb; j++ {
						copy(out[(j*a+i)*c:(j*a+i+1)*c], v[(i*bb+j)*c:(i*bb+j+1)*c])
					}
				}
				return out
			}
			xs := []int64{int64(S), int64(B), int64(I)}
			hs := []int64{int64(dirs), int64(B), int64(H)}
			xv, h0v, c0v := x, h0, c0
			if tc.layout == 1 {
				xs = []int64{int64(B), int64(S), int64(I)}
				hs = []int64{int64(B), int64(dirs), int64(H)}
				xv = perm(x, S, B, I)
				if h0 != nil {
					h0v = perm(h0, dirs, B, H)
				}
				if c0 != nil {
					c0v = perm(c0, dirs, B, H)
				}
			}
			inputs := []*runtime.Tensor{f32(xs, xv), f32([]int64{int64(dirs), int64(G * H), int64(I)}, w), f32([]int64{int64(dirs), int64(G * H), int64(H)}, r)}
			names := []string{"X", "W", "R", "", "", "", "", ""}
			add := func(k int, t *runtime.Tensor) {
				names[k] = []string{"X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"}[k]
				inputs = append(inputs, t)
			}
			if b != nil {
				add(3, f32([]int64{int64(dirs), int64(2 * G * H)}, b))
			}
			if lens != nil {
				l := make([]int32, B)
				for i, v := range lens {
					l[i] = int32(v)
				}
				add(4, runtime.FromInt32([]int64{int64(B)}, l))
			}
			if h0 != nil {
				add(5, f32(hs, h0v))
			}
			if c0 != nil {
				add(6, f32(hs, c0v))
			}
			if p != nil {
				add(7, f32([]int64{int64(dirs), int64(3 * H)}, p))
			}
			last := 0
			for i, n := range names {
				if n != "" {
					last = i
				}
			}
			node := &graph.Node{OpType: tc.op, Inputs: names[:last+1], Outputs: []string{"Y", "Y_h"}}
			if tc.op == "LSTM" {
				node.Outputs = append(node.Outputs, "Y_c")
			}
			node.SetAttr(graph.StringAttr("direction", tc.dir))
			node.SetAttr(graph.IntAttr("hidden_size", int64(H)))
			node.SetAttr(graph.IntAttr("layout", int64(tc.layout)))
			if tc.clip > 0 {
				node.SetAttr(graph.FloatAttr("clip", float32(tc.clip)))
			}
			if tc.lbr {
				node.SetAttr(graph.IntAttr("linear_before_reset", 1))
			}
			if tc.inputForget {
				node.SetAttr(graph.IntAttr("input_forget", 1))
			}
			var an [][]byte
			var al, be []float32
			for k := 0; k < dirs; k++ {
				for _, a := range tc.acts {
					an = append(an, []byte(a.name))
					switch a.name {
					case "HardSigmoid", "ScaledTanh", "Affine":
						al, be = append(al, float32(a.alpha)), append(be, float32(a.beta))
					case "LeakyRelu":
						al = append(al, float32(a.alpha))
					}
				}
			}
			node.SetAttr(&graph.Attr{Name: "activations", Type: graph.AttrStrings, Strings: an})
			if al != nil {
				node.SetAttr(graph.FloatsAttr("activation_alpha", al...))
			}
			if be != nil {
				node.SetAttr(graph.FloatsAttr("activation_beta", be...))
			}
			g := &graph.Graph{Name: tc.name, Nodes: []*graph.Node{node}}
			for i, n := range names[:last+1] {
				if n == "" {
					continue
				}
				_ = i
				g.Inputs = append(g.Inputs, &graph.ValueInfo{Name: n})
			}
			for _, o := range node.Outputs {
				g.Outputs = append(g.Outputs, &graph.ValueInfo{Name: o})
			}
			m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Domain: "", Version: 22}}, Graph: g}
			s, err := Open(m, runtime.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			for run := 0; run < 2; run++ { // the second run reuses buffers
				res, err := s.Run(context.Background(), inputs)
				if err != nil {
					t.Fatal(err)
				}
				gy, gh := res[0].Float32s(), res[1].Float32s()
				wy, wh := wantY, wantH
				if tc.layout == 1 {
					// [S][dirs][B][H] -> [B][S][dirs][H]
					wy = make([]float64, len(wantY))
					for ti := 0; ti < S; ti++ {
						for d := 0; d < dirs; d++ {
							for bi := 0; bi < B; bi++ {
								copy(wy[((bi*S+ti)*dirs+d)*H:], wantY[((ti*dirs+d)*B+bi)*H:((ti*dirs+d)*B+bi+1)*H])
							}
						}
					}
					wh = perm(wantH, dirs, B, H)
				}
				check := func(what string, got []float32, want []float64) {
					if len(got) != len(want) {
						t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
					}
					for i := range got {
						if math.Abs(float64(got[i])-want[i]) > 1e-5+1e-4*math.Abs(want[i]) {
							t.Fatalf("%s[%d] = %g, want %g", what, i, got[i], want[i])
						}
					}
				}
				check("Y", gy, wy)
				check("Y_h", gh, wh)
				if tc.op == "LSTM" {
					wc := wantC
					if tc.layout == 1 {
						wc = perm(wantC, dirs, B, H)
					}
					check("Y_c", res[2].Float32s(), wc)
				}
			}
		})
	}
}

func TestSeqRNNBadInputs(t *testing.T) {
	mk := func(op string, attrs ...*graph.Attr) *Session {
		n := &graph.Node{OpType: op, Inputs: []string{"X", "W", "R"}, Outputs: []string{"Y"}, Attrs: attrs}
		g := &graph.Graph{Nodes: []*graph.Node{n}, Inputs: []*graph.ValueInfo{{Name: "X"}, {Name: "W"}, {Name: "R"}}, Outputs: []*graph.ValueInfo{{Name: "Y"}}}
		s, err := Open(&graph.Model{Opsets: []graph.OpsetImport{{Version: 14}}, Graph: g}, runtime.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := mk("LSTM", graph.IntAttr("hidden_size", 2))
	x := runtime.NewTensor(graph.Float, []int64{1, 1, 3})
	w := runtime.NewTensor(graph.Float, []int64{1, 8, 3})
	cases := []struct {
		name string
		in   []*runtime.Tensor
	}{
		{"bad R shape", []*runtime.Tensor{x, w, runtime.NewTensor(graph.Float, []int64{1, 8, 3})}},
		{"rank 2 X", []*runtime.Tensor{runtime.NewTensor(graph.Float, []int64{1, 3}), w, runtime.NewTensor(graph.Float, []int64{1, 8, 2})}},
		{"int64 W", []*runtime.Tensor{x, runtime.NewTensor(graph.Int64, []int64{1, 8, 3}), runtime.NewTensor(graph.Float, []int64{1, 8, 2})}},
		{"W gates", []*runtime.Tensor{x, runtime.NewTensor(graph.Float, []int64{1, 6, 3}), runtime.NewTensor(graph.Float, []int64{1, 8, 2})}},
	}
	for _, tc := range cases {
		if _, err := s.Run(context.Background(), tc.in); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	for _, a := range []*graph.Attr{graph.StringAttr("direction", "sideways"), graph.IntAttr("layout", 3), graph.FloatAttr("clip", -1)} {
		n := &graph.Node{OpType: "GRU", Inputs: []string{"X", "W", "R"}, Outputs: []string{"Y"}, Attrs: []*graph.Attr{a}}
		g := &graph.Graph{Nodes: []*graph.Node{n}, Inputs: []*graph.ValueInfo{{Name: "X"}, {Name: "W"}, {Name: "R"}}, Outputs: []*graph.ValueInfo{{Name: "Y"}}}
		if _, err := Open(&graph.Model{Graph: g}, runtime.Options{}); err == nil {
			t.Errorf("attribute %s: Open accepted it", a.Name)
		}
	}
}

// BenchmarkSeqLSTMSilero is one step of Silero VAD's LSTM (input 128,
// hidden 128, batch 1) with constant weights, at 1 thread:
//
//	go test ./pkg/runtime/interp -run '^$' -bench SeqLSTM -benchmem
func BenchmarkSeqLSTMSilero(b *testing.B) {
	const in, hid = 128, 128
	rng := rand.New(rand.NewSource(1))
	rnd := func(shape ...int64) *graph.Tensor {
		n := 1
		for _, d := range shape {
			n *= int(d)
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.1)
		}
		return graph.NewFloat32("", shape, v)
	}
	w, r, bias := rnd(1, 4*hid, in), rnd(1, 4*hid, hid), rnd(1, 8*hid)
	w.Name, r.Name, bias.Name = "W", "R", "B"
	node := &graph.Node{OpType: "LSTM", Inputs: []string{"X", "W", "R", "B", "", "h0", "c0"}, Outputs: []string{"Y", "Y_h", "Y_c"}}
	node.SetAttr(graph.IntAttr("hidden_size", hid))
	g := &graph.Graph{Nodes: []*graph.Node{node}, Initializers: []*graph.Tensor{w, r, bias},
		Inputs:  []*graph.ValueInfo{{Name: "X"}, {Name: "h0"}, {Name: "c0"}},
		Outputs: []*graph.ValueInfo{{Name: "Y"}, {Name: "Y_h"}, {Name: "Y_c"}}}
	s, err := Open(&graph.Model{Opsets: []graph.OpsetImport{{Version: 14}}, Graph: g}, runtime.Options{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	x := runtime.FromGraphTensor(rnd(1, 1, in))
	h0 := runtime.FromGraphTensor(rnd(1, 1, hid))
	c0 := runtime.FromGraphTensor(rnd(1, 1, hid))
	ctx := context.Background()
	in3 := []*runtime.Tensor{x, h0, c0}
	if _, err := s.Run(ctx, in3); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	b.ResetTimer()
	cpu0 := seqThreadCPU()
	for i := 0; i < b.N; i++ {
		if _, err := s.Run(ctx, in3); err != nil {
			b.Fatal(err)
		}
	}
	seqReportCPU(b, cpu0)
}

func TestSeqMatVec(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, k := range []int{1, 7, 8, 9, 16, 31, 128} {
		for _, rows := range []int{1, 3, 4, 5, 12} {
			m := make([]float32, rows*k)
			x := make([]float32, k)
			for i := range m {
				m[i] = float32(rng.NormFloat64())
			}
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			got := make([]float32, rows)
			for i := range got {
				got[i] = 1
			}
			seqMatVecAdd(got, m, x, k, 0, rows)
			for r := 0; r < rows; r++ {
				want := 1.0
				for j := 0; j < k; j++ {
					want += float64(m[r*k+j]) * float64(x[j])
				}
				if math.Abs(float64(got[r])-want) > 1e-4*(1+math.Abs(want)) {
					t.Fatalf("k %d rows %d: y[%d] = %v, want %v", k, rows, r, got[r], want)
				}
			}
		}
	}
}

func TestSeqTanhSlice(t *testing.T) {
	for _, n := range []int{1, 7, 8, 9, 33, 1000} {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(i%97)/4 - 12 // [-12, 12]
		}
		w := append([]float32{}, v...)
		seqTanhSlice(v, 1, 1, 0)
		seqTanhSlice(w, 0.5, 0.5, 0.5) // sigmoid
		for i := range v {
			x := float64(i%97)/4 - 12
			if d := math.Abs(float64(v[i]) - math.Tanh(x)); d > 2e-6 {
				t.Fatalf("n %d: tanh(%v) = %v, want %v", n, x, v[i], math.Tanh(x))
			}
			if d := math.Abs(float64(w[i]) - 1/(1+math.Exp(-x))); d > 2e-6 {
				t.Fatalf("n %d: sigmoid(%v) = %v", n, x, w[i])
			}
		}
	}
}
