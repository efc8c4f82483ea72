package fpga

import (
	"fmt"
	"strings"
)

// SWG is a sliding-window generator: it takes an H×W image of C channels
// as one pixel (C lanes) per beat, in raster order, inserts the padding
// itself, and emits every K×K window (stride S) with its elements in
// (ky, kx, c) order, SIMD elements per beat. SIMD = K·K·C is the
// parallel-window mode: one whole window per beat, what a first layer
// with few input channels needs to keep up. The windows are taps of a
// shift register of (K-1)·Wp + K pixels (Wp the padded width), so no
// memory is read through a multiplexer.
type SWG struct {
	Name    string
	C, H, W int
	K, S, P int // kernel, stride, padding (all sides)
	SIMD    int
	// Pad is the padding element: the input's zero point.
	Pad    int32
	Signed bool
	// Depthwise: the generator feeds a VVAU, whose beats are PE channels
	// of one tap (SIMD a divisor of C) or all C channels of several taps
	// (SIMD = C·j for j dividing K·K).
	Depthwise bool
}

// validSIMD lists the lane counts the generator may emit.
func (s *SWG) validSIMD() []int {
	valid := Divisors(s.C)
	if s.Depthwise {
		for _, j := range Divisors(s.K * s.K)[1:] {
			valid = append(valid, j*s.C)
		}
		return valid
	}
	if s.Window() != s.C {
		valid = append(valid, s.Window())
	}
	return valid
}

func (s *SWG) hp() int { return s.H + 2*s.P }
func (s *SWG) wp() int { return s.W + 2*s.P }

// OH and OW are the output dims (ONNX floor semantics).
func (s *SWG) OH() int { return (s.hp()-s.K)/s.S + 1 }

// OW is the output width.
func (s *SWG) OW() int { return (s.wp()-s.K)/s.S + 1 }

// Window is the elements per window, K·K·C.
func (s *SWG) Window() int { return s.K * s.K * s.C }

// Beats per window.
func (s *SWG) Beats() int { return s.Window() / s.SIMD }

func (s *SWG) StageName() string  { return s.Name }
func (s *SWG) ModuleName() string { return "swg_" + Ident(s.Name) }
func (s *SWG) InLanes() int       { return s.C }
func (s *SWG) OutLanes() int      { return s.SIMD }
func (s *SWG) OutBits() int       { return 8 }
func (s *SWG) InIsSigned() bool   { return s.Signed }
func (s *SWG) OutIsSigned() bool  { return s.Signed }
func (s *SWG) InFrame() int       { return s.H * s.W * s.C }
func (s *SWG) OutFrame() int      { return s.OH() * s.OW() * s.Window() }

// EstCycles: one padded pixel per cycle, plus the extra beats of each
// window (the register holds still while a window is read out).
func (s *SWG) EstCycles() int { return s.hp()*s.wp() + s.OH()*s.OW()*(s.Beats()-1) }

// Check validates the geometry and the folding.
func (s *SWG) Check() error {
	if s.C <= 0 || s.H <= 0 || s.W <= 0 || s.K <= 0 || s.S <= 0 || s.P < 0 {
		return fmt.Errorf("fpga: %s: bad window geometry C=%d H=%d W=%d K=%d S=%d P=%d", s.Name, s.C, s.H, s.W, s.K, s.S, s.P)
	}
	if s.K > s.hp() || s.K > s.wp() {
		return fmt.Errorf("fpga: %s: %dx%d window larger than the padded %dx%d input", s.Name, s.K, s.K, s.hp(), s.wp())
	}
	ok := false
	for _, v := range s.validSIMD() {
		ok = ok || v == s.SIMD
	}
	if !ok {
		if s.Depthwise {
			return fmt.Errorf("fpga: %s: %d lanes must be PE channels of one tap (PE dividing the %d channels) or all channels of SIMD taps (SIMD dividing K·K = %d) (valid: %v)", s.Name, s.SIMD, s.C, s.K*s.K, s.validSIMD())
		}
		return fmt.Errorf("fpga: %s: SIMD %d must divide the %d input channels or equal the window K·K·C = %d (valid: %v)", s.Name, s.SIMD, s.C, s.Window(), s.validSIMD())
	}
	return nil
}

// Forward emits the windows of one frame.
func (s *SWG) Forward(in []int32) ([]int32, error) {
	if err := checkFrame(s, in); err != nil {
		return nil, err
	}
	out := make([]int32, 0, s.OutFrame())
	for oy := 0; oy < s.OH(); oy++ {
		for ox := 0; ox < s.OW(); ox++ {
			for ky := 0; ky < s.K; ky++ {
				for kx := 0; kx < s.K; kx++ {
					y, x := oy*s.S+ky-s.P, ox*s.S+kx-s.P
					for c := 0; c < s.C; c++ {
						if y < 0 || y >= s.H || x < 0 || x >= s.W {
							out = append(out, s.Pad)
						} else {
							out = append(out, in[(y*s.W+x)*s.C+c])
						}
					}
				}
			}
		}
	}
	return out, nil
}

// Emit writes the generator's Verilog.
func (s *SWG) Emit(files Files) error {
	if err := s.Check(); err != nil {
		return err
	}
	hp, wp := s.hp(), s.wp()
	L := (s.K-1)*wp + s.K
	pw := s.C * 8
	nb := s.Beats()
	var v strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&v, format, args...) }
	w("// %s: sliding window %dx%d stride %d pad %d over %dx%dx%d, %d lanes out (%d beats per window)\n",
		s.ModuleName(), s.K, s.K, s.S, s.P, s.H, s.W, s.C, s.SIMD, nb)
	w("module %s (input clk, input rst,\n", s.ModuleName())
	w("  input in_valid, output in_ready, input [%d:0] in_data,\n", pw-1)
	w("  output out_valid, input out_ready, output [%d:0] out_data);\n", s.SIMD*8-1)
	w("  reg [%d:0] sr; // %d pixels, newest at the low end\n", L*pw-1, L)
	w("  reg [%d:0] pr; reg [%d:0] pc; // padded position of the next pixel\n", clog2(hp+1)-1, clog2(wp+1)-1)
	w("  reg [%d:0] ry; reg [%d:0] rx; // phase within the stride\n", clog2(s.S+1), clog2(s.S+1))
	w("  reg wv; reg [%d:0] b;\n", clog2(nb+1)-1)
	w("  wire real_px = pr >= %d && pr < %d && pc >= %d && pc < %d;\n", s.P, s.P+s.H, s.P, s.P+s.W)
	w("  wire last_beat = out_ready && b == %d;\n", nb-1)
	w("  wire can = !wv || last_beat;\n")
	w("  wire adv = can && (!real_px || in_valid);\n")
	w("  assign in_ready = can && real_px;\n")
	// Pad pixel: the zero point in every lane.
	w("  wire [%d:0] px = real_px ? in_data : {%d{8'd%d}};\n", pw-1, s.C, byte(s.Pad))
	w("  // the pixel at padded (pr, pc) completes a window when both are\n")
	w("  // past the kernel and on the stride grid\n")
	w("  wire wnd = pr >= %d && pc >= %d && ry == 0 && rx == 0;\n", s.K-1, s.K-1)
	if L > 1 {
		w("  always @(posedge clk) if (adv) sr <= {sr[%d:0], px};\n", (L-1)*pw-1)
	} else {
		w("  always @(posedge clk) if (adv) sr <= px;\n")
	}
	w("  always @(posedge clk) begin\n")
	w("    if (rst) begin pr <= 0; pc <= 0; ry <= 0; rx <= 0; wv <= 0; b <= 0; end\n")
	w("    else begin\n")
	w("      if (wv && out_ready) begin\n")
	w("        if (b == %d) begin b <= 0; wv <= 0; end else b <= b + 1;\n", nb-1)
	w("      end\n")
	w("      if (adv) begin\n")
	w("        if (wnd) wv <= 1;\n")
	w("        if (pc == %d) begin\n", wp-1)
	w("          pc <= 0; rx <= 0;\n")
	w("          if (pr == %d) begin pr <= 0; ry <= 0; end\n", hp-1)
	w("          else begin pr <= pr + 1; if (pr >= %d) ry <= (ry == %d) ? 0 : ry + 1; end\n", s.K-1, s.S-1)
	w("        end else begin\n")
	w("          pc <= pc + 1; if (pc >= %d) rx <= (rx == %d) ? 0 : rx + 1;\n", s.K-1, s.S-1)
	w("        end\n")
	w("      end\n")
	w("    end\n")
	w("  end\n")
	// Window in (ky, kx, c) order, element 0 at the low end: tap of
	// (ky, kx) is the pixel shifted in (K-1-ky)·Wp + (K-1-kx) beats ago.
	var taps []string
	for ky := s.K - 1; ky >= 0; ky-- {
		for kx := s.K - 1; kx >= 0; kx-- {
			taps = append(taps, fmt.Sprintf("sr[%d +: %d]", ((s.K-1-ky)*wp+(s.K-1-kx))*pw, pw))
		}
	}
	w("  wire [%d:0] win = {%s};\n", s.Window()*8-1, strings.Join(taps, ", "))
	w("  assign out_valid = wv;\n")
	if nb == 1 {
		w("  assign out_data = win;\n")
	} else {
		w("  assign out_data = win[b*%d +: %d];\n", s.SIMD*8, s.SIMD*8)
	}
	w("endmodule\n")
	files[s.ModuleName()+".v"] = v.String()
	return nil
}

// MaxPool is a K×K max pool with stride K and no padding over a pixel
// stream (C lanes per beat); rows and columns past the last whole window
// are dropped (ONNX floor semantics). One pixel per cycle.
type MaxPool struct {
	Name    string
	C, H, W int
	K       int
	Signed  bool
}

func (p *MaxPool) OH() int { return p.H / p.K }
func (p *MaxPool) OW() int { return p.W / p.K }

func (p *MaxPool) StageName() string  { return p.Name }
func (p *MaxPool) ModuleName() string { return "maxpool_" + Ident(p.Name) }
func (p *MaxPool) InLanes() int       { return p.C }
func (p *MaxPool) OutLanes() int      { return p.C }
func (p *MaxPool) OutBits() int       { return 8 }
func (p *MaxPool) InIsSigned() bool   { return p.Signed }
func (p *MaxPool) OutIsSigned() bool  { return p.Signed }
func (p *MaxPool) InFrame() int       { return p.H * p.W * p.C }
func (p *MaxPool) OutFrame() int      { return p.OH() * p.OW() * p.C }
func (p *MaxPool) EstCycles() int     { return p.H * p.W }

func (p *MaxPool) Check() error {
	if p.C <= 0 || p.K <= 0 || p.OH() <= 0 || p.OW() <= 0 {
		return fmt.Errorf("fpga: %s: bad pool geometry C=%d H=%d W=%d K=%d", p.Name, p.C, p.H, p.W, p.K)
	}
	return nil
}

func (p *MaxPool) Forward(in []int32) ([]int32, error) {
	if err := checkFrame(p, in); err != nil {
		return nil, err
	}
	out := make([]int32, p.OutFrame())
	for oy := 0; oy < p.OH(); oy++ {
		for ox := 0; ox < p.OW(); ox++ {
			for c := 0; c < p.C; c++ {
				m := in[((oy*p.K)*p.W+ox*p.K)*p.C+c]
				for ky := 0; ky < p.K; ky++ {
					for kx := 0; kx < p.K; kx++ {
						if v := in[((oy*p.K+ky)*p.W+ox*p.K+kx)*p.C+c]; v > m {
							m = v
						}
					}
				}
				out[(oy*p.OW()+ox)*p.C+c] = m
			}
		}
	}
	return out, nil
}

func (p *MaxPool) Emit(files Files) error {
	if err := p.Check(); err != nil {
		return err
	}
	ow := p.OW()
	cmp := "$unsigned"
	if p.Signed {
		cmp = "$signed"
	}
	var v strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&v, format, args...) }
	w("// %s: max pool %dx%d stride %d over %dx%dx%d\n", p.ModuleName(), p.K, p.K, p.K, p.H, p.W, p.C)
	w("module %s (input clk, input rst,\n", p.ModuleName())
	w("  input in_valid, output in_ready, input [%d:0] in_data,\n", p.C*8-1)
	w("  output reg out_valid, input out_ready, output reg [%d:0] out_data);\n", p.C*8-1)
	w("  reg [%d:0] acc [0:%d];\n", p.C*8-1, ow-1)
	w("  reg [%d:0] r; reg [%d:0] c; reg [%d:0] ky; reg [%d:0] kx; reg [%d:0] oc;\n",
		clog2(p.H+1)-1, clog2(p.W+1)-1, clog2(p.K+1)-1, clog2(p.K+1)-1, clog2(ow+1)-1)
	w("  assign in_ready = !out_valid || out_ready;\n")
	w("  wire fire = in_valid && in_ready;\n")
	w("  wire in_win = r < %d && c < %d;\n", p.OH()*p.K, ow*p.K)
	w("  wire win_first = ky == 0 && kx == 0;\n")
	w("  reg [%d:0] m; integer l;\n", p.C*8-1)
	w("  always @* begin\n")
	w("    for (l = 0; l < %d; l = l + 1)\n", p.C)
	w("      m[l*8 +: 8] = (win_first || %s(in_data[l*8 +: 8]) > %s(acc[oc][l*8 +: 8])) ? in_data[l*8 +: 8] : acc[oc][l*8 +: 8];\n", cmp, cmp)
	w("  end\n")
	w("  always @(posedge clk) begin\n")
	w("    if (rst) begin r <= 0; c <= 0; ky <= 0; kx <= 0; oc <= 0; out_valid <= 0; end\n")
	w("    else begin\n")
	w("      if (out_valid && out_ready) out_valid <= 0;\n")
	w("      if (fire) begin\n")
	w("        if (in_win) begin\n")
	w("          acc[oc] <= m;\n")
	w("          if (ky == %d && kx == %d) begin out_valid <= 1; out_data <= m; end\n", p.K-1, p.K-1)
	w("        end\n")
	w("        if (c == %d) begin\n", p.W-1)
	w("          c <= 0; kx <= 0; oc <= 0;\n")
	w("          if (r == %d) begin r <= 0; ky <= 0; end else begin r <= r + 1; ky <= (ky == %d) ? 0 : ky + 1; end\n", p.H-1, p.K-1)
	w("        end else begin\n")
	w("          c <= c + 1;\n")
	w("          if (kx == %d) begin kx <= 0; oc <= oc + 1; end else kx <= kx + 1;\n", p.K-1)
	w("        end\n")
	w("      end\n")
	w("    end\n")
	w("  end\n")
	w("endmodule\n")
	files[p.ModuleName()+".v"] = v.String()
	return nil
}
