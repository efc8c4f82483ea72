package fpga

import (
	"fmt"
	"math"
	"math/big"
	"strings"
)

// AddRequant adds two quantized values at a common scale and requantizes
// the sum, ONNX's DequantizeLinear(a) + DequantizeLinear(b) →
// QuantizeLinear:
//
//	q = clamp(rne(((a - ZA)·A + (b - ZB)·B) / 2^Shift) + Zero, Lo, Hi)
//
// with A ≈ sa/sy·2^Shift and B ≈ sb/sy·2^Shift. NewAddRequant checks it
// against the exact rational formula on all 65,536 input pairs.
type AddRequant struct {
	A, B   int64
	ZA, ZB int32
	// Out holds the shift, rounding, zero point and bounds (Mult 1).
	Out Requant
	// ASigned, BSigned: int8 inputs (else uint8).
	ASigned, BSigned bool
}

// Apply is the hardware's arithmetic.
func (r AddRequant) Apply(a, b int32) int32 {
	return r.Out.Apply(int64(a-r.ZA)*r.A + int64(b-r.ZB)*r.B)
}

func byteRange(signed bool) (int32, int32) {
	if signed {
		return -128, 127
	}
	return 0, 255
}

// NewAddRequant finds the narrowest shift whose integer multipliers
// reproduce rne((a - za)·sa/sy + (b - zb)·sb/sy) + zy (saturated to
// [lo, hi]) exactly for every input pair, the scales taken as the exact
// rationals of their float32 values. Where no fixed point can (the
// ratios are not dyadic and some pair lands exactly on a half), the
// ratios rounded to float32 are used, as float32 arithmetic does.
func NewAddRequant(sa, sb, sy float32, za, zb, zy, lo, hi int32, aSigned, bSigned bool) (AddRequant, error) {
	if !(sa > 0) || !(sb > 0) || !(sy > 0) || math.IsInf(float64(sa), 0) || math.IsInf(float64(sb), 0) || math.IsInf(float64(sy), 0) {
		return AddRequant{}, fmt.Errorf("fpga: add scales %g, %g -> %g must be positive and finite", sa, sb, sy)
	}
	if lo > hi {
		return AddRequant{}, fmt.Errorf("fpga: add bounds [%d, %d] are empty", lo, hi)
	}
	ka := new(big.Rat).Quo(new(big.Rat).SetFloat64(float64(sa)), new(big.Rat).SetFloat64(float64(sy)))
	kb := new(big.Rat).Quo(new(big.Rat).SetFloat64(float64(sb)), new(big.Rat).SetFloat64(float64(sy)))
	r, err := fitAdd(ka, kb, za, zb, zy, lo, hi, aSigned, bSigned)
	if err == nil {
		return r, nil
	}
	fa, _ := ka.Float64()
	fb, _ := kb.Float64()
	ka32 := new(big.Rat).SetFloat64(float64(float32(fa)))
	kb32 := new(big.Rat).SetFloat64(float64(float32(fb)))
	if r, err2 := fitAdd(ka32, kb32, za, zb, zy, lo, hi, aSigned, bSigned); err2 == nil {
		return r, nil
	}
	return AddRequant{}, err
}

func fitAdd(ka, kb *big.Rat, za, zb, zy, lo, hi int32, aSigned, bSigned bool) (AddRequant, error) {
	alo, ahi := byteRange(aSigned)
	blo, bhi := byteRange(bSigned)
	// the exact reference for every pair: rne((da·NA + db·NB) / D)
	den := new(big.Int).Mul(ka.Denom(), kb.Denom())
	na := new(big.Int).Mul(ka.Num(), kb.Denom())
	nb := new(big.Int).Mul(kb.Num(), ka.Denom())
	nA, nB := int(ahi-alo+1), int(bhi-blo+1)
	ref := make([]int32, nA*nB)
	x, y, q, rem := new(big.Int), new(big.Int), new(big.Int), new(big.Int)
	for i := 0; i < nA; i++ {
		for j := 0; j < nB; j++ {
			x.Mul(big.NewInt(int64(alo+int32(i)-za)), na)
			y.Mul(big.NewInt(int64(blo+int32(j)-zb)), nb)
			x.Add(x, y)
			q.DivMod(x, den, rem) // floor, rem >= 0
			rem.Lsh(rem, 1)
			if c := rem.Cmp(den); c > 0 || (c == 0 && q.Bit(0) == 1) {
				q.Add(q, big.NewInt(1))
			}
			v := q.Int64() + int64(zy)
			ref[i*nB+j] = int32(min(max(v, int64(lo)), int64(hi)))
		}
	}
	fa, _ := ka.Float64()
	fb, _ := kb.Float64()
	var lastErr error
	for shift := uint(8); shift <= 40; shift++ {
		r := AddRequant{
			A: int64(math.Round(math.Ldexp(fa, int(shift)))), B: int64(math.Round(math.Ldexp(fb, int(shift)))),
			ZA: za, ZB: zb, ASigned: aSigned, BSigned: bSigned,
			Out: Requant{Mult: 1, Shift: shift, Zero: zy, Lo: lo, Hi: hi, MultBits: 1},
		}
		if r.A < 1 || r.B < 1 {
			continue
		}
		ok := true
		for i := 0; i < nA && ok; i++ {
			for j := 0; j < nB; j++ {
				if got := r.Apply(alo+int32(i), blo+int32(j)); got != ref[i*nB+j] {
					lastErr = fmt.Errorf("a %d, b %d: fixed point gives %d, exact %d", alo+int32(i), blo+int32(j), got, ref[i*nB+j])
					ok = false
					break
				}
			}
		}
		if ok {
			return r, nil
		}
	}
	return AddRequant{}, fmt.Errorf("fpga: no shift up to 40 bits reproduces the add of scales %s and %s: %w", ka.RatString(), kb.RatString(), lastErr)
}

// accRange bounds the sum before the shift.
func (r AddRequant) accRange() (int64, int64) {
	alo, ahi := byteRange(r.ASigned)
	blo, bhi := byteRange(r.BSigned)
	lo := int64(alo-r.ZA)*r.A + int64(blo-r.ZB)*r.B
	hi := int64(ahi-r.ZA)*r.A + int64(bhi-r.ZB)*r.B
	return lo, hi
}

// Residual is a residual block as one stage: the input stream is forked
// into Body (a chain of engines) and a bypass FIFO, and an add engine
// joins the two streams a pixel (C lanes) at a time, requantizing both
// to the output scale (Add). The bypass holds a whole frame of pixels, so
// the body may take any latency up to a frame without a stall.
type Residual struct {
	Name   string
	C      int // channels: lanes of the input, bypass and output
	Body   *Pipeline
	Add    AddRequant
	OutSig bool
	// BodyCycles, when set, is the body's analytical II from its layers
	// (a window generator and its MVAU overlap; per-stage estimates
	// alone miss the generator's padded pixels).
	BodyCycles int
}

var _ Stage = (*Residual)(nil)

func (r *Residual) StageName() string  { return r.Name }
func (r *Residual) ModuleName() string { return "res_" + Ident(r.Name) }
func (r *Residual) InLanes() int       { return r.C }
func (r *Residual) OutLanes() int      { return r.C }
func (r *Residual) OutBits() int       { return 8 }
func (r *Residual) InIsSigned() bool   { return r.Add.ASigned }
func (r *Residual) OutIsSigned() bool  { return r.OutSig }
func (r *Residual) InFrame() int       { return r.Body.Stages[0].InFrame() }
func (r *Residual) OutFrame() int      { return r.InFrame() }

// EstCycles: the body's pace, and a pixel per cycle through the add.
func (r *Residual) EstCycles() int {
	return max(r.BodyCycles, r.Body.EstimatedII(), r.InFrame()/r.C)
}

// Check validates the body and that it maps the frame to one of the same
// size and element type as the bypass.
func (r *Residual) Check() error {
	if r.Body == nil || len(r.Body.Stages) == 0 || r.C <= 0 {
		return fmt.Errorf("fpga: %s: residual block without a body", r.Name)
	}
	if err := r.Body.Check(); err != nil {
		return err
	}
	first, last := r.Body.Stages[0], r.Body.Stages[len(r.Body.Stages)-1]
	if first.InFrame() != last.OutFrame() || first.InFrame()%r.C != 0 {
		return fmt.Errorf("fpga: %s: the body maps %d elements to %d; a residual add needs the same shape", r.Name, first.InFrame(), last.OutFrame())
	}
	if first.InIsSigned() != r.Add.ASigned || last.OutIsSigned() != r.Add.BSigned || last.OutBits() != 8 {
		return fmt.Errorf("fpga: %s: the body's element types do not match the add's inputs", r.Name)
	}
	return nil
}

// Forward adds the body's output to the input, element by element.
func (r *Residual) Forward(in []int32) ([]int32, error) {
	if err := checkFrame(r, in); err != nil {
		return nil, err
	}
	y, err := r.Body.Forward(in)
	if err != nil {
		return nil, err
	}
	out := make([]int32, len(in))
	for i := range in {
		out[i] = r.Add.Apply(in[i], y[i])
	}
	return out, nil
}

// Emit writes the body, the bypass FIFO and the add join.
func (r *Residual) Emit(files Files) error {
	if err := r.Check(); err != nil {
		return err
	}
	name := r.ModuleName()
	body := name + "_body"
	if err := r.Body.emitModule(files, body); err != nil {
		return err
	}
	lo, hi := r.Add.accRange()
	acc := max(bitsOf(lo), bitsOf(hi))
	rq := make([]Requant, r.C)
	for i := range rq {
		rq[i] = r.Add.Out
	}
	cr, err := newChanRTL(files, name, r.C, 1, acc, make([]int64, r.C), rq, nil)
	if err != nil {
		return err
	}
	first, last := r.Body.Stages[0], r.Body.Stages[len(r.Body.Stages)-1]
	pixels := r.InFrame() / r.C
	depth := 2
	for depth < pixels {
		depth *= 2
	}
	fifo := EmitFIFO(files, r.C*8, depth)
	lane := func(sig string, signed bool) string {
		if signed {
			return fmt.Sprintf("$signed(%s[l*8 +: 8])", sig)
		}
		return fmt.Sprintf("$signed({1'b0, %s[l*8 +: 8]})", sig)
	}
	var v strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&v, format, args...) }
	w("// %s: residual block %s: body, a %d-pixel bypass FIFO, add of (a-%d)*%d + (b-%d)*%d >> %d\n", name, r.Name, depth, r.Add.ZA, r.Add.A, r.Add.ZB, r.Add.B, r.Add.Out.Shift)
	w("module %s (input clk, input rst,\n", name)
	w("  input in_valid, output in_ready, input [%d:0] in_data,\n", r.C*8-1)
	w("  output reg out_valid, input out_ready, output reg [%d:0] out_data);\n", r.C*8-1)
	cr.decls(w)
	w("  // fork: the body and the bypass take each input beat together\n")
	w("  wire bi_ready, pi_ready;\n")
	w("  assign in_ready = bi_ready && pi_ready;\n")
	w("  wire bi_valid = in_valid && pi_ready, pi_valid = in_valid && bi_ready;\n")
	w("  wire a_valid, a_ready; wire [%d:0] a_data;\n", r.C*8-1)
	w("  %s bypass (.clk(clk), .rst(rst), .in_valid(pi_valid), .in_ready(pi_ready), .in_data(in_data),\n", fifo)
	w("    .out_valid(a_valid), .out_ready(a_ready), .out_data(a_data));\n")
	w("  wire bs_valid, bs_ready; wire [%d:0] bs_data;\n", first.InLanes()*8-1)
	if first.InLanes() == r.C {
		w("  assign bs_valid = bi_valid; assign bi_ready = bs_ready; assign bs_data = in_data;\n")
	} else {
		d := EmitDWC(files, r.C, first.InLanes())
		w("  %s jin (.clk(clk), .rst(rst), .in_valid(bi_valid), .in_ready(bi_ready), .in_data(in_data),\n", d)
		w("    .out_valid(bs_valid), .out_ready(bs_ready), .out_data(bs_data));\n")
	}
	w("  wire bt_valid, bt_ready; wire [%d:0] bt_data;\n", last.OutLanes()*8-1)
	w("  %s body (.clk(clk), .rst(rst), .in_valid(bs_valid), .in_ready(bs_ready), .in_data(bs_data),\n", body)
	w("    .out_valid(bt_valid), .out_ready(bt_ready), .out_data(bt_data));\n")
	w("  wire b_valid, b_ready; wire [%d:0] b_data;\n", r.C*8-1)
	if last.OutLanes() == r.C {
		w("  assign b_valid = bt_valid; assign bt_ready = b_ready; assign b_data = bt_data;\n")
	} else {
		d := EmitDWC(files, last.OutLanes(), r.C)
		w("  %s jout (.clk(clk), .rst(rst), .in_valid(bt_valid), .in_ready(bt_ready), .in_data(bt_data),\n", d)
		w("    .out_valid(b_valid), .out_ready(b_ready), .out_data(b_data));\n")
	}
	w("  // join: one pixel of each, added at the common scale, requantized\n")
	w("  wire en = !out_valid || out_ready;\n")
	w("  wire fire = en && a_valid && b_valid;\n")
	w("  assign a_ready = en && b_valid; assign b_ready = en && a_valid;\n")
	w("  reg signed [ACC-1:0] sum [0:%d]; reg [%d:0] qout; integer l, p;\n", r.C-1, r.C*8-1)
	w("  always @* begin\n")
	w("    for (l = 0; l < %d; l = l + 1)\n", r.C)
	// sized signed constants: the multipliers may be wider than 32 bits
	k := func(x int64) string {
		if x < 0 {
			return fmt.Sprintf("-%d'sd%d", acc+1, -x)
		}
		return fmt.Sprintf("%d'sd%d", acc+1, x)
	}
	w("      sum[l] = (%s - %s) * %s + (%s - %s) * %s;\n", lane("a_data", r.Add.ASigned), k(int64(r.Add.ZA)), k(r.Add.A), lane("b_data", r.Add.BSigned), k(int64(r.Add.ZB)), k(r.Add.B))
	w("    for (p = 0; p < %d; p = p + 1) begin\n", r.C)
	cr.lane(w, "sum[p]", "1'b0")
	w("    end\n")
	w("  end\n")
	w("  always @(posedge clk) begin\n")
	w("    if (rst) out_valid <= 0;\n")
	w("    else if (en) begin out_valid <= fire; if (fire) out_data <= qout; end\n")
	w("  end\n")
	w("endmodule\n")
	files[name+".v"] = v.String()
	return nil
}
