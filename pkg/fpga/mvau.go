package fpga

import (
	"fmt"
	"io"
	"strings"
)

// MVAU is a matrix–vector–activation unit: MH output channels, each the
// dot product of an MW-element input vector with a row of int8 weights,
// plus a bias, requantized to 8 bits. It consumes a vector in SF = MW/SIMD
// beats of SIMD elements and produces its outputs in NF = MH/PE beats of
// PE elements; the input vector is buffered and re-read for each of the NF
// neuron folds, so one vector takes NF·SF cycles (FINN's formula).
type MVAU struct {
	Name     string
	MH, MW   int
	PE, SIMD int
	// Weights holds MH rows of MW int8 values (row = output channel).
	Weights []int8
	// Bias per output channel, in accumulator units, with the input zero
	// point already folded in (bias - zx·Σw).
	Bias []int64
	// Requant per output channel; nil makes the unit output its raw
	// accumulators (32-bit lanes), as a last layer whose float tail runs
	// on the host does.
	Requant []Requant
	// LUT optionally maps each channel's requantized byte (index: the
	// byte's bit pattern) to the output byte: the exact integer form of a
	// monotone float tail (DequantizeLinear, bias Add, ReLU, Clip,
	// QuantizeLinear) between this layer's QuantizeLinear and the next.
	LUT [][256]int32
	// InSigned: input elements are int8 (else uint8). OutSigned likewise.
	InSigned, OutSigned bool
	// Vectors per frame: output pixels for a convolution (its windows
	// come from a sliding-window generator), 1 for a dense layer.
	Vectors int
}

func (m *MVAU) vectors() int {
	if m.Vectors <= 0 {
		return 1
	}
	return m.Vectors
}

// StageName, ModuleName, lanes and frame sizes implement Stage.
func (m *MVAU) StageName() string  { return m.Name }
func (m *MVAU) ModuleName() string { return m.VerilogName() }
func (m *MVAU) InLanes() int       { return m.SIMD }
func (m *MVAU) OutLanes() int      { return m.PE }
func (m *MVAU) OutIsSigned() bool  { return m.OutSigned || m.Requant == nil }
func (m *MVAU) InIsSigned() bool   { return m.InSigned }
func (m *MVAU) InFrame() int       { return m.vectors() * m.MW }
func (m *MVAU) OutFrame() int      { return m.vectors() * m.MH }

// EstCycles is FINN's MVAU formula: vectors·(MH/PE)·(MW/SIMD).
func (m *MVAU) EstCycles() int { return m.vectors() * m.CyclesPerVector() }

// Fold is a folding choice.
type Fold struct{ PE, SIMD int }

// Divisors lists the divisors of n in increasing order.
func Divisors(n int) []int {
	var d []int
	for i := 1; i <= n; i++ {
		if n%i == 0 {
			d = append(d, i)
		}
	}
	return d
}

// Check validates the MVAU's shape and folding, naming the valid values.
func (m *MVAU) Check() error {
	if m.MH <= 0 || m.MW <= 0 {
		return fmt.Errorf("fpga: %s: matrix %dx%d is empty", m.Name, m.MH, m.MW)
	}
	if m.PE <= 0 || m.MH%m.PE != 0 {
		return fmt.Errorf("fpga: %s: PE %d does not divide MH %d (valid: %v)", m.Name, m.PE, m.MH, Divisors(m.MH))
	}
	if m.SIMD <= 0 || m.MW%m.SIMD != 0 {
		return fmt.Errorf("fpga: %s: SIMD %d does not divide MW %d (valid: %v)", m.Name, m.SIMD, m.MW, Divisors(m.MW))
	}
	if len(m.Weights) != m.MH*m.MW {
		return fmt.Errorf("fpga: %s: %d weights for a %dx%d matrix", m.Name, len(m.Weights), m.MH, m.MW)
	}
	if len(m.Bias) != m.MH || (m.Requant != nil && len(m.Requant) != m.MH) {
		return fmt.Errorf("fpga: %s: %d biases and %d requantizers for %d channels", m.Name, len(m.Bias), len(m.Requant), m.MH)
	}
	if m.LUT != nil && (len(m.LUT) != m.MH || m.Requant == nil) {
		return fmt.Errorf("fpga: %s: %d lookup tables for %d requantized channels", m.Name, len(m.LUT), m.MH)
	}
	return nil
}

// NF is the number of neuron folds, SF of synapse folds.
func (m *MVAU) NF() int { return m.MH / m.PE }

// SF is the number of synapse folds.
func (m *MVAU) SF() int { return m.MW / m.SIMD }

// CyclesPerVector is FINN's (MH/PE)·(MW/SIMD).
func (m *MVAU) CyclesPerVector() int { return m.NF() * m.SF() }

// PipelineDepth is the cycles from the last input beat of a vector to its
// first output beat being valid (issue, multiply-accumulate, requantize).
const PipelineDepth = 3

// inRange is the range of an input element.
func (m *MVAU) inRange() (lo, hi int64) {
	if m.InSigned {
		return -128, 127
	}
	return 0, 255
}

// AccRange bounds the accumulator of channel c over every input vector.
func (m *MVAU) AccRange(c int) (lo, hi int64) {
	xlo, xhi := m.inRange()
	lo, hi = m.Bias[c], m.Bias[c]
	for _, w := range m.Weights[c*m.MW : (c+1)*m.MW] {
		a, b := int64(w)*xlo, int64(w)*xhi
		if a > b {
			a, b = b, a
		}
		lo += a
		hi += b
	}
	return lo, hi
}

// AccBits is the accumulator width that holds every reachable value.
func (m *MVAU) AccBits() uint {
	var n uint = 2
	for c := 0; c < m.MH; c++ {
		lo, hi := m.AccRange(c)
		if b := bitsOf(lo); b > n {
			n = b
		}
		if b := bitsOf(hi); b > n {
			n = b
		}
	}
	return n
}

// Forward runs vectors of MW elements (values in the input range) through
// the unit, exactly as the hardware does, and returns MH outputs each.
func (m *MVAU) Forward(in []int32) ([]int32, error) {
	if len(in)%m.MW != 0 {
		return nil, fmt.Errorf("fpga: %s: %d inputs is not a whole number of %d-element vectors", m.Name, len(in), m.MW)
	}
	n := len(in) / m.MW
	out := make([]int32, n*m.MH)
	for v := 0; v < n; v++ {
		x := in[v*m.MW : (v+1)*m.MW]
		for c := 0; c < m.MH; c++ {
			acc := m.Bias[c]
			w := m.Weights[c*m.MW : (c+1)*m.MW]
			for i, xi := range x {
				acc += int64(xi) * int64(w[i])
			}
			out[v*m.MH+c] = m.output(c, acc)
		}
	}
	return out, nil
}

// output is the channel's output for an accumulator value.
func (m *MVAU) output(c int, acc int64) int32 {
	return chanOutput(m.Requant, m.LUT, c, acc)
}

// OutBits is the width of an output lane: 8, or 32 for raw accumulators.
func (m *MVAU) OutBits() int {
	if m.Requant == nil {
		return 32
	}
	return 8
}

func clog2(n int) int {
	b := 0
	for (1 << b) < n {
		b++
	}
	if b == 0 {
		b = 1
	}
	return b
}

// VerilogName is the module name (the node name made an identifier).
func (m *MVAU) VerilogName() string { return "mvau_" + Ident(m.Name) }

// Ident makes s a Verilog identifier.
func Ident(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "n"
	}
	return b.String()
}

// Files are the generated files of a design: name -> contents.
type Files map[string]string

// Emit writes the unit's Verilog module and its ROM init files.
func (m *MVAU) Emit(files Files) error {
	if err := m.Check(); err != nil {
		return err
	}
	name := m.VerilogName()
	nf, sf := m.NF(), m.SF()
	depth := nf * sf
	ob := m.OutBits()

	// Weight ROM: word a = nf*SF + sf holds, for PE p and lane s, the
	// weight of channel nf*PE+p, input sf*SIMD+s at bits
	// [(p*SIMD+s)*8 +: 8].
	var wmem strings.Builder
	word := make([]byte, m.PE*m.SIMD)
	for f := 0; f < nf; f++ {
		for s := 0; s < sf; s++ {
			for p := 0; p < m.PE; p++ {
				c := f*m.PE + p
				for l := 0; l < m.SIMD; l++ {
					word[p*m.SIMD+l] = byte(m.Weights[c*m.MW+s*m.SIMD+l])
				}
			}
			writeHexBytes(&wmem, word)
		}
	}
	files[name+"_w.mem"] = wmem.String()
	// per-channel parameters and the requantizer, shared with the VVAU
	cr, err := newChanRTL(files, name, m.PE, nf, m.AccBits(), m.Bias, m.Requant, m.LUT)
	if err != nil {
		return err
	}
	xlane := "$signed({1'b0, xA[i*8 +: 8]})"
	if m.InSigned {
		xlane = "$signed(xA[i*8 +: 8])"
	}
	nfw := clog2(nf + 1)
	var v strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&v, format, args...) }
	w("// %s: MVAU %s, MH=%d MW=%d PE=%d SIMD=%d (NF=%d, SF=%d: %d cycles per vector)\n", name, m.Name, m.MH, m.MW, m.PE, m.SIMD, nf, sf, depth)
	w("module %s (\n", name)
	w("  input clk, input rst,\n")
	w("  input in_valid, output in_ready, input [%d:0] in_data,\n", m.SIMD*8-1)
	w("  output reg out_valid, input out_ready, output reg [%d:0] out_data\n);\n", m.PE*ob-1)
	w("  localparam NF = %d, SF = %d, DEPTH = %d;\n", nf, sf, depth)
	w("  reg [%d:0] wrom [0:DEPTH-1];\n", m.PE*m.SIMD*8-1)
	w("  initial $readmemh(\"%s_w.mem\", wrom);\n", name)
	cr.decls(w)
	w("  reg [%d:0] ibuf [0:SF-1];\n", m.SIMD*8-1)
	w("  reg [%d:0] nf; reg [%d:0] sf; reg [%d:0] addr;\n", nfw-1, clog2(sf+1)-1, clog2(depth+1)-1)
	w("  wire en = !out_valid || out_ready;\n")
	w("  wire src = (nf == 0) ? in_valid : 1'b1;\n")
	w("  assign in_ready = en && (nf == 0);\n")
	w("  wire issue = en && src;\n")
	w("  wire [%d:0] xsel = (nf == 0) ? in_data : ibuf[sf];\n", m.SIMD*8-1)
	w("  // stage A: weights and inputs\n")
	w("  reg vA, firstA, lastA; reg [%d:0] nfA; reg [%d:0] xA; reg [%d:0] wA;\n", nfw-1, m.SIMD*8-1, m.PE*m.SIMD*8-1)
	w("  always @(posedge clk) if (issue) wA <= wrom[addr];\n")
	w("  always @(posedge clk) if (issue && nf == 0) ibuf[sf] <= in_data;\n")
	w("  // stage B: accumulate; stage C: requantize\n")
	w("  reg vB; reg [%d:0] nfB;\n", nfw-1)
	w("  reg signed [ACC-1:0] acc [0:%d];\n", m.PE-1)
	w("  reg signed [ACC-1:0] dot [0:%d];\n", m.PE-1)
	w("  reg [%d:0] qout;\n", m.PE*ob-1)
	w("  integer p, i;\n")
	w("  always @* begin\n")
	w("    for (p = 0; p < %d; p = p + 1) begin\n", m.PE)
	w("      dot[p] = firstA ? $signed(brom[nfA][p*BW +: ACC]) : acc[p];\n")
	w("      for (i = 0; i < %d; i = i + 1)\n", m.SIMD)
	w("        dot[p] = dot[p] + %s * $signed(wA[(p*%d+i)*8 +: 8]);\n", xlane, m.SIMD)
	w("    end\n")
	w("    for (p = 0; p < %d; p = p + 1) begin\n", m.PE)
	cr.lane(w, "acc[p]", "nfB")
	w("    end\n")
	w("  end\n")
	w("  always @(posedge clk) begin\n")
	w("    if (rst) begin\n")
	w("      nf <= 0; sf <= 0; addr <= 0; vA <= 0; vB <= 0; out_valid <= 0;\n")
	w("    end else if (en) begin\n")
	w("      vA <= issue;\n")
	w("      if (issue) begin\n")
	w("        xA <= xsel; firstA <= (sf == 0); lastA <= (sf == SF - 1); nfA <= nf;\n")
	w("        if (addr == DEPTH - 1) addr <= 0; else addr <= addr + 1;\n")
	w("        if (sf == SF - 1) begin\n")
	w("          sf <= 0;\n")
	w("          if (nf == NF - 1) nf <= 0; else nf <= nf + 1;\n")
	w("        end else sf <= sf + 1;\n")
	w("      end\n")
	w("      if (vA) for (p = 0; p < %d; p = p + 1) acc[p] <= dot[p];\n", m.PE)
	w("      vB <= vA && lastA; nfB <= nfA;\n")
	w("      out_valid <= vB;\n")
	w("      if (vB) out_data <= qout;\n")
	w("    end\n")
	w("  end\n")
	w("endmodule\n")
	files[name+".v"] = v.String()
	return nil
}

func roundUp4(n int) int { return (n + 3) / 4 * 4 }

// writeHexBytes writes one line of hex per beat, most significant first.
func writeHexBytes(w io.Writer, beat []byte) {
	for i := len(beat) - 1; i >= 0; i-- {
		fmt.Fprintf(w, "%02x", beat[i])
	}
	fmt.Fprintln(w)
}
