package fpga

import (
	"fmt"
	"strings"
)

// VVAU is a vector–vector–activation unit, the engine of a depthwise
// convolution (group = input channels = output channels): each of the MH
// channels is the dot product of its own K·K window taps (MW = K·K) with
// its own K·K int8 weights, plus a bias, requantized like an MVAU's
// outputs. It reads the windows of a sliding-window generator, whose
// element order is (ky, kx, c), as beats of PE·SIMD elements: SIMD taps
// of PE consecutive channels (lane s·PE + p is tap s, channel p). Since
// a tap's channels are adjacent in that order, SIMD > 1 needs PE = MH
// (every channel of SIMD taps per beat; SIMD = K·K is the whole window).
// The unit accumulates in input order, one partial sum per channel, so a
// window takes (MH/PE)·(MW/SIMD) cycles, FINN's VVAU formula, and the
// outputs of channel fold f leave as one beat of PE lanes when its last
// taps arrive.
//
// The embedded MVAU holds the arithmetic description (MH channels, rows
// of MW weights: Weights[c·MW + t] for tap t = ky·K + kx; Bias,
// Requant, LUT, folding) so that lowering and the requantizer proof
// treat both engines alike; the stream interface, the Go model and the
// Verilog are the VVAU's own.
type VVAU struct {
	MVAU
}

var _ Stage = (*VVAU)(nil)

// ModuleName is the Verilog module name.
func (v *VVAU) ModuleName() string { return v.VerilogName() }

// VerilogName is the module name (the node name made an identifier).
func (v *VVAU) VerilogName() string { return "vvau_" + Ident(v.Name) }

// InLanes is PE·SIMD: SIMD taps of PE channels.
func (v *VVAU) InLanes() int { return v.PE * v.SIMD }

// InFrame is the windows' elements: vectors·K·K·C.
func (v *VVAU) InFrame() int { return v.vectors() * v.MW * v.MH }

// ValidSIMD lists the SIMD values allowed with the unit's PE.
func (v *VVAU) ValidSIMD() []int {
	if v.PE == v.MH {
		return Divisors(v.MW)
	}
	return []int{1}
}

// Check validates the shape and folding (PE divides the channels; SIMD
// divides K·K, and is 1 unless PE is every channel).
func (v *VVAU) Check() error {
	if err := v.MVAU.Check(); err != nil {
		return err
	}
	if v.SIMD > 1 && v.PE != v.MH {
		return fmt.Errorf("fpga: %s: SIMD %d needs PE = %d (all channels: the window stream keeps a tap's channels together); with PE %d valid SIMD: [1]", v.Name, v.SIMD, v.MH, v.PE)
	}
	return nil
}

// Forward maps windows in (tap, channel) order to MH outputs each.
func (v *VVAU) Forward(in []int32) ([]int32, error) {
	win := v.MW * v.MH
	if len(in)%win != 0 {
		return nil, fmt.Errorf("fpga: %s: %d inputs is not a whole number of %d-element windows", v.Name, len(in), win)
	}
	n := len(in) / win
	out := make([]int32, n*v.MH)
	for k := 0; k < n; k++ {
		x := in[k*win : (k+1)*win]
		for c := 0; c < v.MH; c++ {
			acc := v.Bias[c]
			w := v.Weights[c*v.MW : (c+1)*v.MW]
			for t, wt := range w {
				acc += int64(x[t*v.MH+c]) * int64(wt)
			}
			out[k*v.MH+c] = chanOutput(v.Requant, v.LUT, c, acc)
		}
	}
	return out, nil
}

// Emit writes the unit's Verilog module and its ROM init files.
func (v *VVAU) Emit(files Files) error {
	if err := v.Check(); err != nil {
		return err
	}
	name := v.VerilogName()
	nf, sf := v.NF(), v.SF()
	depth := nf * sf
	ob := v.OutBits()
	lanes := v.PE * v.SIMD
	// Weight ROM in input order: word sf·NF + nf holds, at lane s·PE + p,
	// the weight of channel nf·PE + p, tap sf·SIMD + s.
	var wmem strings.Builder
	word := make([]byte, lanes)
	for s := 0; s < sf; s++ {
		for f := 0; f < nf; f++ {
			for l := 0; l < v.SIMD; l++ {
				for p := 0; p < v.PE; p++ {
					word[l*v.PE+p] = byte(v.Weights[(f*v.PE+p)*v.MW+s*v.SIMD+l])
				}
			}
			writeHexBytes(&wmem, word)
		}
	}
	files[name+"_w.mem"] = wmem.String()
	cr, err := newChanRTL(files, name, v.PE, nf, v.AccBits(), v.Bias, v.Requant, v.LUT)
	if err != nil {
		return err
	}
	xlane := fmt.Sprintf("$signed({1'b0, xA[(i*%d+p)*8 +: 8]})", v.PE)
	if v.InSigned {
		xlane = fmt.Sprintf("$signed(xA[(i*%d+p)*8 +: 8])", v.PE)
	}
	nfw := clog2(nf + 1)
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("// %s: VVAU %s, %d channels, %d taps, PE=%d SIMD=%d (%d cycles per window)\n", name, v.Name, v.MH, v.MW, v.PE, v.SIMD, depth)
	w("module %s (\n", name)
	w("  input clk, input rst,\n")
	w("  input in_valid, output in_ready, input [%d:0] in_data,\n", lanes*8-1)
	w("  output reg out_valid, input out_ready, output reg [%d:0] out_data\n);\n", v.PE*ob-1)
	w("  localparam NF = %d, SF = %d, DEPTH = %d;\n", nf, sf, depth)
	w("  reg [%d:0] wrom [0:DEPTH-1];\n", lanes*8-1)
	w("  initial $readmemh(\"%s_w.mem\", wrom);\n", name)
	cr.decls(w)
	w("  reg [%d:0] nf; reg [%d:0] sf; reg [%d:0] addr;\n", nfw-1, clog2(sf+1)-1, clog2(depth+1)-1)
	w("  wire en = !out_valid || out_ready;\n")
	w("  assign in_ready = en;\n")
	w("  wire issue = en && in_valid;\n")
	w("  // stage A: taps and weights\n")
	w("  reg vA, firstA, lastA; reg [%d:0] nfA; reg [%d:0] xA; reg [%d:0] wA;\n", nfw-1, lanes*8-1, lanes*8-1)
	w("  always @(posedge clk) if (issue) begin wA <= wrom[addr]; xA <= in_data; end\n")
	w("  // stage B: one partial sum per channel; stage C: requantize\n")
	w("  reg vB; reg [%d:0] nfB;\n", nfw-1)
	w("  reg signed [ACC-1:0] part [0:%d];\n", v.MH-1)
	w("  reg signed [ACC-1:0] accB [0:%d];\n", v.PE-1)
	w("  reg signed [ACC-1:0] dot [0:%d];\n", v.PE-1)
	w("  reg [%d:0] qout;\n", v.PE*ob-1)
	w("  integer p, i;\n")
	w("  always @* begin\n")
	w("    for (p = 0; p < %d; p = p + 1) begin\n", v.PE)
	w("      dot[p] = firstA ? $signed(brom[nfA][p*BW +: ACC]) : part[nfA*%d+p];\n", v.PE)
	w("      for (i = 0; i < %d; i = i + 1)\n", v.SIMD)
	w("        dot[p] = dot[p] + %s * $signed(wA[(i*%d+p)*8 +: 8]);\n", xlane, v.PE)
	w("    end\n")
	w("    for (p = 0; p < %d; p = p + 1) begin\n", v.PE)
	cr.lane(w, "accB[p]", "nfB")
	w("    end\n")
	w("  end\n")
	w("  always @(posedge clk) begin\n")
	w("    if (rst) begin\n")
	w("      nf <= 0; sf <= 0; addr <= 0; vA <= 0; vB <= 0; out_valid <= 0;\n")
	w("    end else if (en) begin\n")
	w("      vA <= issue;\n")
	w("      if (issue) begin\n")
	w("        firstA <= (sf == 0); lastA <= (sf == SF - 1); nfA <= nf;\n")
	w("        if (addr == DEPTH - 1) addr <= 0; else addr <= addr + 1;\n")
	w("        if (nf == NF - 1) begin\n")
	w("          nf <= 0;\n")
	w("          if (sf == SF - 1) sf <= 0; else sf <= sf + 1;\n")
	w("        end else nf <= nf + 1;\n")
	w("      end\n")
	w("      if (vA) for (p = 0; p < %d; p = p + 1) begin\n", v.PE)
	w("        if (lastA) accB[p] <= dot[p]; else part[nfA*%d+p] <= dot[p];\n", v.PE)
	w("      end\n")
	w("      vB <= vA && lastA; nfB <= nfA;\n")
	w("      out_valid <= vB;\n")
	w("      if (vB) out_data <= qout;\n")
	w("    end\n")
	w("  end\n")
	w("endmodule\n")
	files[name+".v"] = b.String()
	return nil
}
