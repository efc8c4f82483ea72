package fpga

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Pipeline is a linear dataflow of engines: each stage's output frame is
// the next stage's input frame. Stream width converters join stages whose
// lanes differ.
type Pipeline struct {
	Stages []Stage
	// FIFOs[i] is the depth, in beats, of a FIFO after stage i (0: none).
	// Lowering puts one between layers, deep enough for a whole frame of
	// the producer (capped), so that each layer runs at its own pace.
	FIFOs map[int]int
}

// EmitFIFO writes a ready/valid FIFO of depth beats of width bits.
func EmitFIFO(files Files, width, depth int) string {
	name := fmt.Sprintf("fifo_%d_%d", width, depth)
	if _, ok := files[name+".v"]; ok {
		return name
	}
	ab := clog2(depth)
	var v strings.Builder
	fmt.Fprintf(&v, "// %s: FIFO of %d beats of %d bits\n", name, depth, width)
	fmt.Fprintf(&v, "module %s (input clk, input rst,\n", name)
	fmt.Fprintf(&v, "  input in_valid, output in_ready, input [%d:0] in_data,\n", width-1)
	fmt.Fprintf(&v, "  output out_valid, input out_ready, output [%d:0] out_data);\n", width-1)
	fmt.Fprintf(&v, "  reg [%d:0] mem [0:%d];\n", width-1, depth-1)
	fmt.Fprintf(&v, "  reg [%d:0] wp, rp; reg [%d:0] n;\n", ab-1, ab)
	fmt.Fprintf(&v, "  assign in_ready = n != %d;\n", depth)
	fmt.Fprintf(&v, "  assign out_valid = n != 0;\n")
	fmt.Fprintf(&v, "  assign out_data = mem[rp];\n")
	fmt.Fprintf(&v, "  wire wr = in_valid && in_ready, rd = out_valid && out_ready;\n")
	fmt.Fprintf(&v, "  always @(posedge clk) if (wr) mem[wp] <= in_data;\n")
	fmt.Fprintf(&v, "  always @(posedge clk) begin\n")
	fmt.Fprintf(&v, "    if (rst) begin wp <= 0; rp <= 0; n <= 0; end\n")
	fmt.Fprintf(&v, "    else begin\n")
	fmt.Fprintf(&v, "      if (wr) wp <= (wp == %d) ? 0 : wp + 1;\n", depth-1)
	fmt.Fprintf(&v, "      if (rd) rp <= (rp == %d) ? 0 : rp + 1;\n", depth-1)
	fmt.Fprintf(&v, "      n <= n + wr - rd;\n")
	fmt.Fprintf(&v, "    end\n  end\nendmodule\n")
	files[name+".v"] = v.String()
	return name
}

// Check validates every stage and the joins.
func (c *Pipeline) Check() error {
	if len(c.Stages) == 0 {
		return fmt.Errorf("fpga: empty pipeline")
	}
	for i, l := range c.Stages {
		if err := l.Check(); err != nil {
			return err
		}
		if i > 0 {
			p := c.Stages[i-1]
			if p.OutFrame() != l.InFrame() {
				return fmt.Errorf("fpga: %s outputs %d values per frame but %s takes %d", p.StageName(), p.OutFrame(), l.StageName(), l.InFrame())
			}
			if p.OutIsSigned() != l.InIsSigned() || p.OutBits() != 8 {
				return fmt.Errorf("fpga: %s and %s disagree on their stream's element type", p.StageName(), l.StageName())
			}
		}
	}
	return nil
}

// Forward is the Go model of the whole pipeline on one frame.
func (c *Pipeline) Forward(in []int32) ([]int32, error) {
	x := in
	for _, l := range c.Stages {
		y, err := l.Forward(x)
		if err != nil {
			return nil, err
		}
		x = y
	}
	return x, nil
}

// EstimatedII is the pipeline's initiation interval in cycles: its
// slowest engine (FINN's analytical model).
func (c *Pipeline) EstimatedII() int {
	ii := 0
	for _, l := range c.Stages {
		if n := l.EstCycles(); n > ii {
			ii = n
		}
	}
	return ii
}

// EmitDWC writes a stream width converter from in to out byte lanes that
// can accept and emit in the same cycle (buffer of in+out lanes).
func EmitDWC(files Files, in, out int) string {
	name := fmt.Sprintf("dwc_%d_%d", in, out)
	if _, ok := files[name+".v"]; ok {
		return name
	}
	c := in + out
	cb := clog2(c + 1)
	var v strings.Builder
	fmt.Fprintf(&v, "// %s: stream width converter, %d to %d byte lanes\n", name, in, out)
	fmt.Fprintf(&v, "module %s (input clk, input rst,\n", name)
	fmt.Fprintf(&v, "  input in_valid, output in_ready, input [%d:0] in_data,\n", in*8-1)
	fmt.Fprintf(&v, "  output out_valid, input out_ready, output [%d:0] out_data);\n", out*8-1)
	fmt.Fprintf(&v, "  reg [%d:0] buf_q; reg [%d:0] cnt;\n", c*8-1, cb-1)
	fmt.Fprintf(&v, "  assign out_valid = cnt >= %d;\n", out)
	fmt.Fprintf(&v, "  assign out_data = buf_q[%d:0];\n", out*8-1)
	fmt.Fprintf(&v, "  wire do_out = out_valid && out_ready;\n")
	fmt.Fprintf(&v, "  wire [%d:0] left = do_out ? cnt - %d : cnt;\n", cb-1, out)
	fmt.Fprintf(&v, "  assign in_ready = left + %d <= %d;\n", in, c)
	fmt.Fprintf(&v, "  wire do_in = in_valid && in_ready;\n")
	fmt.Fprintf(&v, "  wire [%d:0] shifted = do_out ? (buf_q >> %d) : buf_q;\n", c*8-1, out*8)
	fmt.Fprintf(&v, "  wire [%d:0] widened = {{%d{1'b0}}, in_data};\n", c*8-1, (c-in)*8)
	fmt.Fprintf(&v, "  always @(posedge clk) begin\n")
	fmt.Fprintf(&v, "    if (rst) begin buf_q <= 0; cnt <= 0; end\n")
	fmt.Fprintf(&v, "    else begin\n")
	fmt.Fprintf(&v, "      buf_q <= do_in ? (shifted | (widened << (left * 8))) : shifted;\n")
	fmt.Fprintf(&v, "      cnt <= left + (do_in ? %d : 0);\n", in)
	fmt.Fprintf(&v, "    end\n  end\nendmodule\n")
	files[name+".v"] = v.String()
	return name
}

// Emit writes every module of the chain and a top module "top" with one
// input stream (first layer's SIMD lanes) and one output stream (last
// layer's PE lanes).
func (c *Pipeline) Emit(files Files) error { return c.emitModule(files, "top") }

// emitModule writes the stages' modules and a module name chaining them
// (the top, or the body of a residual block).
func (c *Pipeline) emitModule(files Files, name string) error {
	if err := c.Check(); err != nil {
		return err
	}
	var v strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&v, format, args...) }
	first, last := c.Stages[0], c.Stages[len(c.Stages)-1]
	w("// %s: %d-stage dataflow\n", name, len(c.Stages))
	w("module %s (input clk, input rst,\n", name)
	w("  input in_valid, output in_ready, input [%d:0] in_data,\n", first.InLanes()*8-1)
	w("  output out_valid, input out_ready, output [%d:0] out_data);\n", last.OutLanes()*last.OutBits()-1)
	// stream s_i feeds stage i; t_i leaves it.
	for i, l := range c.Stages {
		if err := l.Emit(files); err != nil {
			return err
		}
		w("  wire s%d_valid, s%d_ready; wire [%d:0] s%d_data;\n", i, i, l.InLanes()*8-1, i)
		w("  wire t%d_valid, t%d_ready; wire [%d:0] t%d_data;\n", i, i, l.OutLanes()*l.OutBits()-1, i)
	}
	w("  assign s0_valid = in_valid; assign in_ready = s0_ready; assign s0_data = in_data;\n")
	for i, l := range c.Stages {
		w("  %s u%d (.clk(clk), .rst(rst), .in_valid(s%d_valid), .in_ready(s%d_ready), .in_data(s%d_data),\n", l.ModuleName(), i, i, i, i)
		w("    .out_valid(t%d_valid), .out_ready(t%d_ready), .out_data(t%d_data));\n", i, i, i)
		src := fmt.Sprintf("t%d", i)
		if d := c.FIFOs[i]; d > 0 && i+1 < len(c.Stages) {
			ow := l.OutLanes() * l.OutBits()
			f := EmitFIFO(files, ow, d)
			w("  wire f%d_valid, f%d_ready; wire [%d:0] f%d_data;\n", i, i, ow-1, i)
			w("  %s q%d (.clk(clk), .rst(rst), .in_valid(t%d_valid), .in_ready(t%d_ready), .in_data(t%d_data),\n", f, i, i, i, i)
			w("    .out_valid(f%d_valid), .out_ready(f%d_ready), .out_data(f%d_data));\n", i, i, i)
			src = fmt.Sprintf("f%d", i) // downstream reads the FIFO
		}
		if i+1 < len(c.Stages) {
			n := c.Stages[i+1]
			if l.OutLanes() == n.InLanes() {
				w("  assign s%d_valid = %s_valid; assign %s_ready = s%d_ready; assign s%d_data = %s_data;\n", i+1, src, src, i+1, i+1, src)
			} else {
				d := EmitDWC(files, l.OutLanes(), n.InLanes())
				w("  %s j%d (.clk(clk), .rst(rst), .in_valid(%s_valid), .in_ready(%s_ready), .in_data(%s_data),\n", d, i, src, src, src)
				w("    .out_valid(s%d_valid), .out_ready(s%d_ready), .out_data(s%d_data));\n", i+1, i+1, i+1)
			}
		}
	}
	n := len(c.Stages) - 1
	w("  assign out_valid = t%d_valid; assign t%d_ready = out_ready; assign out_data = t%d_data;\n", n, n, n)
	w("endmodule\n")
	files[name+".v"] = v.String()
	return nil
}

// SimResult is what a Verilator run measured.
type SimResult struct {
	Outputs []int32 // every output element, in stream order
	// Cycles counts clock cycles from reset release to the last output.
	Cycles int
	// FirstIn and LastOut: cycle of each frame's first input beat accepted
	// and last output beat delivered.
	FirstIn, LastOut []int
	// II is the steady-state initiation interval (cycles between frames'
	// last outputs, median), Latency the first frame's last output cycle
	// minus its first input cycle.
	II, Latency int
}

// Simulate builds the pipeline's RTL with Verilator in dir and streams
// frames (each InFrame elements of the first stage) through it.
func (c *Pipeline) Simulate(ctx context.Context, dir string, frames [][]int32) (*SimResult, error) {
	if err := c.BuildSim(ctx, dir); err != nil {
		return nil, err
	}
	return c.RunSim(ctx, dir, frames)
}

// BuildSim writes the RTL and the testbench to dir and builds the
// simulator (dir/obj/sim) with Verilator. A dir whose simulator is built
// from the same sources is reused as is.
func (c *Pipeline) BuildSim(ctx context.Context, dir string) error {
	files := Files{}
	if err := c.Emit(files); err != nil {
		return err
	}
	first, last := c.Stages[0], c.Stages[len(c.Stages)-1]
	files["tb.cpp"] = testbench(first.InLanes(), last.OutLanes()*last.OutBits()/8)
	if same(dir, files) {
		if _, err := os.Stat(filepath.Join(dir, "obj", "sim")); err == nil {
			return nil
		}
	}
	if err := WriteFiles(dir, files); err != nil {
		return err
	}
	if _, err := exec.LookPath("verilator"); err != nil {
		return fmt.Errorf("fpga: RTL simulation needs verilator (Debian package verilator): %w", err)
	}
	args := []string{"--cc", "--exe", "--build", "-O2", "+1364-2005ext+v", "-Wno-fatal", "-Wno-lint", "-Wno-style",
		"--top-module", "top", "-Mdir", "obj", "-o", "sim", "-CFLAGS", "-O1"}
	args = append(args, verilogFiles(files)...)
	args = append(args, "tb.cpp")
	cmd := exec.CommandContext(ctx, "verilator", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("fpga: verilator build failed: %w\n%s", err, tail(string(out), 3000))
	}
	return nil
}

// same reports whether dir already holds exactly these files.
func same(dir string, files Files) bool {
	for name, body := range files {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(b) != body {
			return false
		}
	}
	return true
}

// RunSim streams frames through a simulator built by BuildSim.
func (c *Pipeline) RunSim(ctx context.Context, dir string, frames [][]int32) (*SimResult, error) {
	first, last := c.Stages[0], c.Stages[len(c.Stages)-1]
	// Input beats: InFrame/InLanes beats per frame.
	var in strings.Builder
	lanes := first.InLanes()
	beat := make([]byte, lanes)
	for fi, f := range frames {
		if len(f) != first.InFrame() {
			return nil, fmt.Errorf("fpga: frame %d has %d elements, the first stage takes %d", fi, len(f), first.InFrame())
		}
		for s := 0; s < len(f)/lanes; s++ {
			for l := range beat {
				beat[l] = byte(f[s*lanes+l])
			}
			writeHexBytes(&in, beat)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "in.hex"), []byte(in.String()), 0o644); err != nil {
		return nil, fmt.Errorf("fpga: %w", err)
	}
	outBeats := len(frames) * last.OutFrame() / last.OutLanes()
	maxCycles := (len(frames) + 4) * (c.EstimatedII()*4 + 64*len(c.Stages))
	run := exec.CommandContext(ctx, filepath.Join(dir, "obj", "sim"), strconv.Itoa(outBeats), strconv.Itoa(maxCycles))
	run.Dir = dir
	if out, err := run.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("fpga: simulation failed: %w\n%s", err, tail(string(out), 3000))
	}
	return readSim(dir, last, first, len(frames))
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func readSim(dir string, last, first Stage, nframes int) (*SimResult, error) {
	f, err := os.Open(filepath.Join(dir, "out.txt"))
	if err != nil {
		return nil, fmt.Errorf("fpga: simulation wrote no output: %w", err)
	}
	defer f.Close()
	res := &SimResult{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	var inCycles []int
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		cyc, err := strconv.Atoi(fields[1])
		if err != nil {
			return nil, fmt.Errorf("fpga: bad simulation line %q", sc.Text())
		}
		switch fields[0] {
		case "I":
			inCycles = append(inCycles, cyc)
		case "O":
			if len(fields) != 3 {
				return nil, fmt.Errorf("fpga: bad simulation line %q", sc.Text())
			}
			h := fields[2]
			digits := last.OutBits() / 4
			if len(h) != digits*last.OutLanes() {
				return nil, fmt.Errorf("fpga: bad simulation line %q", sc.Text())
			}
			for l := 0; l < last.OutLanes(); l++ { // lane l is the l-th from the right
				end := len(h) - digits*l
				b, err := strconv.ParseUint(h[end-digits:end], 16, last.OutBits())
				if err != nil {
					return nil, fmt.Errorf("fpga: bad simulation line %q", sc.Text())
				}
				v := int32(b)
				switch {
				case last.OutBits() == 32:
					v = int32(uint32(b))
				case last.OutIsSigned():
					v = int32(int8(b))
				}
				res.Outputs = append(res.Outputs, v)
			}
			res.Cycles = cyc
			if len(res.Outputs)%last.OutFrame() == 0 {
				res.LastOut = append(res.LastOut, cyc)
			}
		case "T":
			return nil, fmt.Errorf("fpga: simulation timed out after %d cycles with %d of %d frames out", cyc, len(res.LastOut), nframes)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("fpga: %w", err)
	}
	for k := 0; k < len(inCycles); k += first.InFrame() / first.InLanes() {
		res.FirstIn = append(res.FirstIn, inCycles[k])
	}
	if len(res.LastOut) != nframes || len(res.FirstIn) != nframes {
		return nil, fmt.Errorf("fpga: simulation delivered %d of %d frames", len(res.LastOut), nframes)
	}
	res.Latency = res.LastOut[0] - res.FirstIn[0] + 1
	if nframes > 1 {
		var d []int
		for i := 1; i < nframes; i++ {
			d = append(d, res.LastOut[i]-res.LastOut[i-1])
		}
		res.II = median(d)
	}
	return res, nil
}

func median(v []int) int {
	s := append([]int(nil), v...)
	for i := range s { // insertion sort: short slices
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[len(s)/2]
}

// testbench is the C++ driver: it streams in.hex into the top module
// (always ready to take output), and logs "I cycle" per accepted input
// beat and "O cycle hex" per output beat to out.txt.
func testbench(inLanes, outLanes int) string {
	set := setWide("top->in_data", inLanes*8)
	get := getWide("top->out_data", outLanes*8)
	return `#include "Vtop.h"
#include "verilated.h"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include <cstdint>

static int hexval(char c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

int main(int argc, char** argv) {
  long want = atol(argv[1]), maxc = atol(argv[2]);
  std::vector<std::vector<uint8_t>> beats;
  FILE* in = fopen("in.hex", "r");
  char line[1 << 16];
  while (in && fgets(line, sizeof line, in)) {
    size_t n = strcspn(line, "\r\n"); line[n] = 0;
    std::vector<uint8_t> b(n / 2);
    for (size_t i = 0; i < n / 2; i++) b[n / 2 - 1 - i] = hexval(line[2 * i]) << 4 | hexval(line[2 * i + 1]);
    beats.push_back(b);
  }
  if (in) fclose(in);
  FILE* out = fopen("out.txt", "w");
  Vtop* top = new Vtop;
  top->clk = 0; top->rst = 1; top->in_valid = 0; top->out_ready = 1;
  for (int i = 0; i < 4; i++) { top->clk = 1; top->eval(); top->clk = 0; top->eval(); }
  top->rst = 0; top->eval();
  size_t next = 0; long got = 0, cycle = 0;
  while (got < want && cycle < maxc) {
    top->in_valid = next < beats.size();
    if (next < beats.size()) { const std::vector<uint8_t>& b = beats[next];
` + set + `
    }
    top->out_ready = 1;
    top->eval();
    bool in_fire = top->in_valid && top->in_ready;
    bool out_fire = top->out_valid && top->out_ready;
    if (in_fire) { fprintf(out, "I %ld\n", cycle); next++; }
    if (out_fire) {
      std::string h;
` + get + `
      fprintf(out, "O %ld %s\n", cycle, h.c_str()); got++;
    }
    top->clk = 1; top->eval(); top->clk = 0; top->eval();
    cycle++;
  }
  if (got < want) fprintf(out, "T %ld\n", cycle);
  fclose(out);
  top->final(); delete top;
  return 0;
}
`
}

// setWide assigns bytes b[0..] (lane 0 least significant) to a Verilator
// port of the given width.
func setWide(port string, bits int) string {
	if bits <= 64 {
		return fmt.Sprintf("      uint64_t v = 0; for (int i = (int)b.size() - 1; i >= 0; i--) v = v << 8 | b[i]; %s = v;", port)
	}
	return fmt.Sprintf("      for (int w = 0; w < %d; w++) { uint32_t v = 0; for (int k = 3; k >= 0; k--) { size_t i = w * 4 + k; v = v << 8 | (i < b.size() ? b[i] : 0); } %s[w] = v; }", (bits+31)/32, port)
}

// getWide renders a port as hex, most significant byte first.
func getWide(port string, bits int) string {
	n := bits / 8
	if bits <= 64 {
		return fmt.Sprintf("      uint64_t v = %s; char buf[3]; for (int i = %d - 1; i >= 0; i--) { snprintf(buf, 3, \"%%02x\", (unsigned)((v >> (8 * i)) & 255)); h += buf; }", port, n)
	}
	return fmt.Sprintf("      char buf[3]; for (int i = %d - 1; i >= 0; i--) { unsigned v = (%s[i / 4] >> (8 * (i %% 4))) & 255; snprintf(buf, 3, \"%%02x\", v); h += buf; }", n, port)
}
