package fpga

import (
	"fmt"
	"math/big"
	"strings"
)

// AvgPool is an average pool in the quantized domain over a pixel stream
// (C lanes per beat, one pixel per cycle): KH×KW windows with stride =
// kernel and no padding (rows and columns past the last whole window are
// dropped, ONNX floor semantics); GlobalAveragePool is the window of the
// whole map (KH = H, KW = W). Each channel sums its window's elements
// into an accumulator (Bias, the input zero point times the window size,
// folded in) and requantizes the sum: ONNX's DequantizeLinear →
// AveragePool → QuantizeLinear is q = rne(Σ(x - zx)·sx / (N·sy)) + zy, so
// the mean's 1/N is part of the requantizer's multiplier and PoolRequant
// proves it exact on every reachable sum. With Requant nil the unit
// outputs the raw sums (32-bit lanes) for the host.
type AvgPool struct {
	Name    string
	C, H, W int
	KH, KW  int
	// Bias per channel in accumulator units: -N·zx.
	Bias []int64
	// Requant per channel (nil: raw sums), and the optional table of a
	// float tail after the first QuantizeLinear, as an MVAU's.
	Requant             []Requant
	LUT                 [][256]int32
	InSigned, OutSigned bool
}

var _ Stage = (*AvgPool)(nil)

// OH and OW are the output dims.
func (p *AvgPool) OH() int { return p.H / p.KH }

// OW is the output width.
func (p *AvgPool) OW() int { return p.W / p.KW }

// N is the elements per window.
func (p *AvgPool) N() int { return p.KH * p.KW }

func (p *AvgPool) StageName() string  { return p.Name }
func (p *AvgPool) ModuleName() string { return "avgpool_" + Ident(p.Name) }
func (p *AvgPool) InLanes() int       { return p.C }
func (p *AvgPool) OutLanes() int      { return p.C }
func (p *AvgPool) InIsSigned() bool   { return p.InSigned }
func (p *AvgPool) OutIsSigned() bool  { return p.OutSigned || p.Requant == nil }
func (p *AvgPool) InFrame() int       { return p.H * p.W * p.C }
func (p *AvgPool) OutFrame() int      { return p.OH() * p.OW() * p.C }

// EstCycles: one pixel per cycle.
func (p *AvgPool) EstCycles() int { return p.H * p.W }

// OutBits is 8, or 32 for raw sums.
func (p *AvgPool) OutBits() int {
	if p.Requant == nil {
		return 32
	}
	return 8
}

// Check validates the geometry and the per-channel parameters.
func (p *AvgPool) Check() error {
	if p.C <= 0 || p.KH <= 0 || p.KW <= 0 || p.OH() <= 0 || p.OW() <= 0 {
		return fmt.Errorf("fpga: %s: bad pool geometry C=%d H=%d W=%d kernel %dx%d", p.Name, p.C, p.H, p.W, p.KH, p.KW)
	}
	if len(p.Bias) != p.C || (p.Requant != nil && len(p.Requant) != p.C) || (p.LUT != nil && (len(p.LUT) != p.C || p.Requant == nil)) {
		return fmt.Errorf("fpga: %s: %d biases, %d requantizers and %d tables for %d channels", p.Name, len(p.Bias), len(p.Requant), len(p.LUT), p.C)
	}
	return nil
}

// AccRange bounds channel c's sum.
func (p *AvgPool) AccRange(c int) (lo, hi int64) {
	xlo, xhi := int64(0), int64(255)
	if p.InSigned {
		xlo, xhi = -128, 127
	}
	n := int64(p.N())
	return p.Bias[c] + n*xlo, p.Bias[c] + n*xhi
}

// AccBits is the sum's width.
func (p *AvgPool) AccBits() uint {
	var n uint = 2
	for c := 0; c < p.C; c++ {
		lo, hi := p.AccRange(c)
		n = max(n, bitsOf(lo), bitsOf(hi))
	}
	return n
}

// Forward is the Go model of the hardware.
func (p *AvgPool) Forward(in []int32) ([]int32, error) {
	if err := checkFrame(p, in); err != nil {
		return nil, err
	}
	out := make([]int32, p.OutFrame())
	for oy := 0; oy < p.OH(); oy++ {
		for ox := 0; ox < p.OW(); ox++ {
			for c := 0; c < p.C; c++ {
				acc := p.Bias[c]
				for ky := 0; ky < p.KH; ky++ {
					for kx := 0; kx < p.KW; kx++ {
						acc += int64(in[((oy*p.KH+ky)*p.W+ox*p.KW+kx)*p.C+c])
					}
				}
				out[(oy*p.OW()+ox)*p.C+c] = chanOutput(p.Requant, p.LUT, c, acc)
			}
		}
	}
	return out, nil
}

// Emit writes the pool's Verilog: one running sum per channel and output
// column, requantized by the shared per-channel stage when a window's
// last pixel arrives.
func (p *AvgPool) Emit(files Files) error {
	if err := p.Check(); err != nil {
		return err
	}
	name := p.ModuleName()
	cr, err := newChanRTL(files, name, p.C, 1, p.AccBits(), p.Bias, p.Requant, p.LUT)
	if err != nil {
		return err
	}
	ow, ob := p.OW(), p.OutBits()
	xlane := "$signed({1'b0, in_data[l*8 +: 8]})"
	if p.InSigned {
		xlane = "$signed(in_data[l*8 +: 8])"
	}
	var v strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&v, format, args...) }
	w("// %s: average pool %dx%d stride %dx%d over %dx%dx%d, sums requantized\n", name, p.KH, p.KW, p.KH, p.KW, p.H, p.W, p.C)
	w("module %s (input clk, input rst,\n", name)
	w("  input in_valid, output in_ready, input [%d:0] in_data,\n", p.C*8-1)
	w("  output reg out_valid, input out_ready, output reg [%d:0] out_data);\n", p.C*ob-1)
	cr.decls(w)
	w("  reg [%d:0] acc [0:%d];\n", p.C*cr.acc-1, ow-1)
	w("  reg [%d:0] r; reg [%d:0] c; reg [%d:0] ky; reg [%d:0] kx; reg [%d:0] oc;\n",
		clog2(p.H+1)-1, clog2(p.W+1)-1, clog2(p.KH+1)-1, clog2(p.KW+1)-1, clog2(ow+1)-1)
	w("  assign in_ready = !out_valid || out_ready;\n")
	w("  wire fire = in_valid && in_ready;\n")
	w("  wire in_win = r < %d && c < %d;\n", p.OH()*p.KH, ow*p.KW)
	w("  wire win_first = ky == 0 && kx == 0;\n")
	w("  reg signed [ACC-1:0] sum [0:%d];\n", p.C-1)
	w("  reg [%d:0] sumv; reg [%d:0] qout; integer l, p;\n", p.C*cr.acc-1, p.C*ob-1)
	w("  always @* begin\n")
	w("    for (l = 0; l < %d; l = l + 1) begin\n", p.C)
	w("      sum[l] = (win_first ? $signed(brom[0][l*BW +: ACC]) : $signed(acc[oc][l*ACC +: ACC])) + %s;\n", xlane)
	w("      sumv[l*ACC +: ACC] = sum[l];\n")
	w("    end\n")
	w("    for (p = 0; p < %d; p = p + 1) begin\n", p.C)
	cr.lane(w, "sum[p]", "1'b0")
	w("    end\n")
	w("  end\n")
	w("  always @(posedge clk) begin\n")
	w("    if (rst) begin r <= 0; c <= 0; ky <= 0; kx <= 0; oc <= 0; out_valid <= 0; end\n")
	w("    else begin\n")
	w("      if (out_valid && out_ready) out_valid <= 0;\n")
	w("      if (fire) begin\n")
	w("        if (in_win) begin\n")
	w("          acc[oc] <= sumv;\n")
	w("          if (ky == %d && kx == %d) begin out_valid <= 1; out_data <= qout; end\n", p.KH-1, p.KW-1)
	w("        end\n")
	w("        if (c == %d) begin\n", p.W-1)
	w("          c <= 0; kx <= 0; oc <= 0;\n")
	w("          if (r == %d) begin r <= 0; ky <= 0; end else begin r <= r + 1; ky <= (ky == %d) ? 0 : ky + 1; end\n", p.H-1, p.KH-1)
	w("        end else begin\n")
	w("          c <= c + 1;\n")
	w("          if (kx == %d) begin kx <= 0; oc <= oc + 1; end else kx <= kx + 1;\n", p.KW-1)
	w("        end\n")
	w("      end\n")
	w("    end\n")
	w("  end\n")
	w("endmodule\n")
	files[name+".v"] = v.String()
	return nil
}

// PoolRequant is the requantizer of an average pool from (sx) to (sy,
// zero) over n elements: rne(acc·sx/(n·sy)) with the exact rational
// multiplier, proven on [accLo, accHi]. Where no fixed point reproduces
// that (the multiplier is not dyadic and some reachable sum lands exactly
// on a half, e.g. sx = sy with n = 6), the multiplier rounded to float32
// is used instead, as ONNX Runtime's float32 arithmetic does.
func PoolRequant(sx, sy float32, n int, zero, lo, hi int32, accLo, accHi int64) (Requant, error) {
	m := new(big.Rat).SetFloat64(float64(sx))
	m.Quo(m, new(big.Rat).SetFloat64(float64(sy)))
	m.Quo(m, new(big.Rat).SetInt64(int64(n)))
	if r, err := NewRequantRat(m, zero, lo, hi, accLo, accHi); err == nil {
		return r, nil
	}
	mf, _ := m.Float64()
	return NewRequant(float64(float32(mf)), zero, lo, hi, accLo, accHi)
}
