package fpga

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Part is an FPGA device and its capacity.
type Part struct {
	Name   string `json:"name"`
	Family string `json:"family"` // yosys: xc7, xcup, ice40
	LUT    int    `json:"lut"`
	FF     int    `json:"ff"`
	BRAM18 int    `json:"bram18"`
	DSP    int    `json:"dsp"`
	// Limits are FINN's utilization limits (fractions) for "fits".
	LimitLUT, LimitFF, LimitBRAM, LimitDSP float64 `json:"-"`
}

// Parts known to `fpga build --part`.
var Parts = map[string]Part{
	"xc7z020":   {Name: "xc7z020", Family: "xc7", LUT: 53200, FF: 106400, BRAM18: 280, DSP: 220, LimitLUT: 0.7, LimitFF: 0.5, LimitBRAM: 0.8, LimitDSP: 0.8},
	"xczu7ev":   {Name: "xczu7ev", Family: "xcup", LUT: 230400, FF: 460800, BRAM18: 624, DSP: 1728, LimitLUT: 0.7, LimitFF: 0.5, LimitBRAM: 0.8, LimitDSP: 0.8},
	"ice40up5k": {Name: "ice40up5k", Family: "ice40", LUT: 5280, FF: 5280, BRAM18: 30, DSP: 8, LimitLUT: 1, LimitFF: 1, LimitBRAM: 1, LimitDSP: 1},
}

// PartNames lists the known parts.
func PartNames() []string {
	var n []string
	for k := range Parts {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Resources are synthesis results (BRAM18 counts a 36 kbit block as two;
// on iCE40 it counts 4 kbit EBRs, and LUT counts LUT4 logic cells).
type Resources struct {
	LUT    int            `json:"lut"`
	FF     int            `json:"ff"`
	BRAM18 int            `json:"bram18"`
	DSP    int            `json:"dsp"`
	Source string         `json:"source"`
	Cells  map[string]int `json:"cells,omitempty"`
	// FmaxMHz from nextpnr (iCE40 only).
	FmaxMHz float64 `json:"fmax_mhz,omitempty"`
	// Fits is every resource within the part's utilization limits;
	// Limits names those that are not.
	Fits   bool     `json:"fits"`
	Limits []string `json:"over_limit,omitempty"`
}

// WriteFiles writes a design's files to dir.
func WriteFiles(dir string, files Files) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("fpga: %w", err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return fmt.Errorf("fpga: %w", err)
		}
	}
	return nil
}

func verilogFiles(files Files) []string {
	var v []string
	for name := range files {
		if strings.HasSuffix(name, ".v") {
			v = append(v, name)
		}
	}
	sort.Strings(v)
	return v
}

var statLine = regexp.MustCompile(`^\s+([A-Za-z0-9_$]+)\s+(\d+)\s*$`)

// Synthesize runs Yosys on the design files already written in dir (top
// module "top") for the part, and for iCE40 places and routes with
// nextpnr-ice40 for Fmax.
func Synthesize(ctx context.Context, dir string, p *Pipeline, files Files, part Part) (*Resources, error) {
	if _, err := exec.LookPath("yosys"); err != nil {
		return nil, fmt.Errorf("fpga: synthesis needs yosys (Debian package yosys): %w", err)
	}
	var script, source string
	switch part.Family {
	case "xc7", "xcup":
		// out of context: no I/O buffers on the top module's ports
		script = fmt.Sprintf("read_verilog %s; synth_xilinx -flatten -noiopad -family %s -top top; tee -q -o stat.txt stat", strings.Join(verilogFiles(files), " "), part.Family)
		source = fmt.Sprintf("yosys synth_xilinx -family %s -noiopad", part.Family)
	case "ice40":
		// the package has 39 I/O pins: place and route a wrapper that
		// XOR-reduces the output stream to one pin (every output bit
		// still drives it, so no logic is removed)
		if err := os.WriteFile(filepath.Join(dir, "ooc_top.v"), []byte(oocTop(p)), 0o644); err != nil {
			return nil, fmt.Errorf("fpga: %w", err)
		}
		script = fmt.Sprintf("read_verilog %s ooc_top.v; synth_ice40 -dsp -top ooc_top -json design.json; tee -q -o stat.txt stat", strings.Join(verilogFiles(files), " "))
		source = "yosys synth_ice40 -dsp + nextpnr-ice40 --up5k (outputs XOR-reduced to one pin)"
	default:
		return nil, fmt.Errorf("fpga: no synthesis flow for family %q", part.Family)
	}
	yosys := func(script string) error {
		cmd := exec.CommandContext(ctx, "yosys", "-q", "-p", script)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("fpga: yosys failed: %w\n%s", err, tail(string(out), 3000))
		}
		return nil
	}
	if err := yosys(script); err != nil {
		return nil, err
	}
	if part.Family == "xc7" || part.Family == "xcup" {
		// more multipliers than the DSP budget: map them to LUTs instead
		// (LUTs are usually the plentiful resource of these designs)
		if c, err := readStat(filepath.Join(dir, "stat.txt")); err == nil {
			n := c["DSP48E1"] + c["DSP48E2"]
			if float64(n) > part.LimitDSP*float64(part.DSP) {
				if err := yosys(strings.Replace(script, "-noiopad", "-noiopad -nodsp", 1)); err != nil {
					return nil, err
				}
				source = fmt.Sprintf("%s -nodsp (multipliers in LUTs: with DSPs they would take %d of %d)", source, n, part.DSP)
			}
		}
	}
	if part.Family == "ice40" {
		// more multipliers than DSP blocks: map them to logic instead
		if c, err := readStat(filepath.Join(dir, "stat.txt")); err == nil && c["SB_MAC16"] > part.DSP {
			if err := yosys(strings.Replace(script, "synth_ice40 -dsp", "synth_ice40", 1)); err != nil {
				return nil, err
			}
			source = fmt.Sprintf("yosys synth_ice40 (multipliers in logic: %d would need more than the %d DSPs) + nextpnr-ice40 --up5k (outputs XOR-reduced to one pin)", c["SB_MAC16"], part.DSP)
		}
	}
	if v, err := exec.CommandContext(ctx, "yosys", "-V").Output(); err == nil {
		if f := strings.Fields(string(v)); len(f) >= 2 {
			source = strings.Replace(source, "yosys", "yosys "+f[1], 1)
		}
	}
	cells, err := readStat(filepath.Join(dir, "stat.txt"))
	if err != nil {
		return nil, err
	}
	r := &Resources{Cells: cells, Source: source}
	for name, n := range cells {
		switch {
		case strings.HasPrefix(name, "LUT") && len(name) == 4: // LUT1..LUT6
			r.LUT += n
		case name == "SB_LUT4":
			r.LUT += n
		case strings.HasPrefix(name, "RAM32M"), strings.HasPrefix(name, "RAM64M"):
			r.LUT += 4 * n
		case strings.HasPrefix(name, "RAM32X1"), strings.HasPrefix(name, "RAM64X1"):
			r.LUT += 2 * n
		case strings.HasPrefix(name, "RAM128X1"), strings.HasPrefix(name, "RAM256X1"):
			r.LUT += 4 * n
		case name == "SRL16E", name == "SRLC32E":
			r.LUT += n
		case strings.HasPrefix(name, "FD"), strings.HasPrefix(name, "SB_DFF"):
			r.FF += n
		case strings.HasPrefix(name, "RAMB18"):
			r.BRAM18 += n
		case strings.HasPrefix(name, "RAMB36"):
			r.BRAM18 += 2 * n
		case name == "SB_RAM40_4K":
			r.BRAM18 += n
		case strings.HasPrefix(name, "DSP48"), name == "SB_MAC16":
			r.DSP += n
		}
	}
	if part.Family == "ice40" {
		if err := placeRoute(ctx, dir, r); err != nil {
			return nil, err
		}
	}
	r.Fits = true
	check := func(name string, used, capacity int, limit float64) {
		if float64(used) > limit*float64(capacity) {
			r.Fits = false
			r.Limits = append(r.Limits, fmt.Sprintf("%s %d of %d (limit %.0f%%)", name, used, capacity, 100*limit))
		}
	}
	check("LUT", r.LUT, part.LUT, part.LimitLUT)
	check("FF", r.FF, part.FF, part.LimitFF)
	check("BRAM18", r.BRAM18, part.BRAM18, part.LimitBRAM)
	check("DSP", r.DSP, part.DSP, part.LimitDSP)
	return r, nil
}

func readStat(path string) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("fpga: yosys wrote no statistics: %w", err)
	}
	defer f.Close()
	cells := map[string]int{}
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "Number of cells:") {
			in = true
			continue
		}
		if !in {
			continue
		}
		m := statLine.FindStringSubmatch(line)
		if m == nil {
			if strings.TrimSpace(line) == "" {
				continue
			}
			in = false
			continue
		}
		n, _ := strconv.Atoi(m[2])
		cells[m[1]] = n
	}
	return cells, sc.Err()
}

var fmaxLine = regexp.MustCompile(`Max frequency for clock\s+'[^']*':\s+([0-9.]+) MHz`)

// placeRoute runs nextpnr-ice40 on design.json for Fmax and the logic
// cell count it reports.
func placeRoute(ctx context.Context, dir string, r *Resources) error {
	if _, err := exec.LookPath("nextpnr-ice40"); err != nil {
		return fmt.Errorf("fpga: iCE40 place and route needs nextpnr-ice40 (Debian package nextpnr-ice40): %w", err)
	}
	cmd := exec.CommandContext(ctx, "nextpnr-ice40", "--up5k", "--package", "sg48", "--json", "design.json",
		"--asc", "design.asc", "--pcf-allow-unconstrained", "--timing-allow-fail", "--seed", "1", "--freq", "12")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("fpga: nextpnr-ice40 failed: %w\n%s", err, tail(string(out), 3000))
	}
	ms := fmaxLine.FindAllStringSubmatch(string(out), -1)
	if len(ms) > 0 {
		r.FmaxMHz, _ = strconv.ParseFloat(ms[len(ms)-1][1], 64)
	}
	lc := regexp.MustCompile(`ICESTORM_LC:\s+(\d+)/\s*(\d+)`).FindAllStringSubmatch(string(out), -1)
	if len(lc) > 0 {
		r.LUT, _ = strconv.Atoi(lc[len(lc)-1][1])
	}
	return nil
}

// oocTop wraps "top" for iCE40 place and route: the input stream is
// loaded a byte per cycle into a shift register, the output stream
// XOR-reduced to one pin.
func oocTop(p *Pipeline) string {
	first, last := p.Stages[0], p.Stages[len(p.Stages)-1]
	iw, ow := first.InLanes()*8, last.OutLanes()*last.OutBits()
	return fmt.Sprintf(`module ooc_top (input clk, input rst, input in_valid, input [7:0] in_byte, output in_ready, output out_valid, input out_ready, output out_x);
  reg [%d:0] sh;
  always @(posedge clk) sh <= {sh, in_byte};
  wire [%d:0] od;
  top u (.clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .in_data(sh), .out_valid(out_valid), .out_ready(out_ready), .out_data(od));
  assign out_x = ^od;
endmodule
`, iw-1, ow-1)
}

var lookPath = exec.LookPath
