package fpga

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"path/filepath"
	"strings"
	"time"

	"github.com/optictl/optictl/pkg/graph"
)

// BuildOptions configure Build.
type BuildOptions struct {
	Part      string
	ClockMHz  float64
	TargetFPS float64
	Folding   map[string]Fold
	Shapes    map[string][]int64
	// SimFrames frames (seeded random inputs in the input's range) run
	// through the Verilator simulation of the whole design, checked bit
	// for bit against the Go model; 0 skips the simulation.
	SimFrames int
	// SimLayers also simulates every layer alone for its cycles.
	SimLayers bool
	// Synth runs Yosys (and nextpnr for iCE40).
	Synth bool
	// Progress, when set, gets one line per step.
	Progress func(string)
}

// LayerReport is a layer of the report.
type LayerReport struct {
	LayerInfo
	CyclesSimulated int `json:"cycles_simulated,omitempty"`
	// Analytical resource estimate (FINN-style).
	EstLUT    int `json:"lut_estimated"`
	EstBRAM18 int `json:"bram18_estimated"`
	EstDSP    int `json:"dsp_estimated"`
}

// Report is what `fpga build` writes.
type Report struct {
	Part          string          `json:"part"`
	ClockMHz      float64         `json:"clock_mhz"`
	Layers        []LayerReport   `json:"layers"`
	IIEstimated   int             `json:"ii_cycles_estimated"`
	IICycles      int             `json:"ii_cycles,omitempty"`
	LatencyCycles int             `json:"latency_cycles,omitempty"`
	Simulated     bool            `json:"simulated"`
	SimFrames     int             `json:"sim_frames,omitempty"`
	BitExact      bool            `json:"sim_bit_exact,omitempty"`
	FPS           float64         `json:"fps"`
	LatencyUS     float64         `json:"latency_us,omitempty"`
	Resources     *Resources      `json:"resources,omitempty"`
	Estimated     Resources       `json:"resources_estimated"`
	Capacity      Part            `json:"capacity"`
	HostOps       []string        `json:"host_ops"`
	Folding       map[string]Fold `json:"folding"`
	Bottleneck    string          `json:"bottleneck"`
	// Limiting names, when the design does not fit, the layers that take
	// most of each over-limit resource (from the per-layer estimates).
	Limiting []string           `json:"limiting,omitempty"`
	Seconds  map[string]float64 `json:"seconds"`
	Dir      string             `json:"dir"`
}

// Build lowers the model, writes the design to dir, and (as asked)
// simulates and synthesizes it.
func Build(ctx context.Context, m *graph.Model, dir string, opts BuildOptions) (*Report, *Design, error) {
	part, ok := Parts[opts.Part]
	if !ok {
		return nil, nil, fmt.Errorf("fpga: unknown part %q (known: %v)", opts.Part, PartNames())
	}
	if !(opts.ClockMHz > 0) {
		return nil, nil, fmt.Errorf("fpga: clock %g MHz must be positive", opts.ClockMHz)
	}
	say := func(format string, args ...any) {
		if opts.Progress != nil {
			opts.Progress(fmt.Sprintf(format, args...))
		}
	}
	rep := &Report{Part: part.Name, ClockMHz: opts.ClockMHz, Capacity: part, Seconds: map[string]float64{}, Dir: dir}
	t0 := time.Now()
	lo := LowerOptions{Folding: opts.Folding, Shapes: opts.Shapes}
	if opts.TargetFPS > 0 {
		lo.TargetCycles = int(math.Floor(opts.ClockMHz * 1e6 / opts.TargetFPS))
		if lo.TargetCycles < 1 {
			return nil, nil, fmt.Errorf("fpga: %g FPS at %g MHz leaves less than one cycle per frame", opts.TargetFPS, opts.ClockMHz)
		}
	}
	for name := range opts.Folding {
		found := false
		for _, n := range m.Graph.Nodes {
			found = found || n.Name == name
		}
		if !found {
			return nil, nil, fmt.Errorf("fpga: folding names node %q, which the model does not have", name)
		}
	}
	d, err := Lower(m, lo)
	if err != nil {
		return nil, nil, err
	}
	files := Files{}
	if err := d.Pipeline.Emit(files); err != nil {
		return nil, nil, err
	}
	first, last := d.Pipeline.Stages[0], d.Pipeline.Stages[len(d.Pipeline.Stages)-1]
	files["tb.cpp"] = testbench(first.InLanes(), last.OutLanes()*last.OutBits()/8)
	if err := WriteFiles(dir, files); err != nil {
		return nil, nil, err
	}
	rep.HostOps = d.HostOps
	rep.Folding = map[string]Fold{}
	var folds func(st []Stage)
	folds = func(st []Stage) {
		for _, s := range st {
			switch e := s.(type) {
			case *MVAU:
				rep.Folding[e.Name] = Fold{PE: e.PE, SIMD: e.SIMD}
			case *VVAU:
				rep.Folding[e.Name] = Fold{PE: e.PE, SIMD: e.SIMD}
			case *Residual:
				folds(e.Body.Stages)
			}
		}
	}
	folds(d.Pipeline.Stages)
	var est Resources
	for i, li := range d.Layers {
		lr := LayerReport{LayerInfo: li}
		if mv := layerMVAU(d, i); mv != nil {
			lr.EstDSP = mv.PE * mv.SIMD
			lr.EstBRAM18 = bram18(mv.NF()*mv.SF(), mv.PE*mv.SIMD*8)
			lr.EstLUT = int(300 + 1.1*float64(mv.PE)*float64(mv.SIMD*8+int(mv.AccBits())*2+40))
		} else if r, ok := layerStages(d, i)[0].(*Residual); ok && len(layerStages(d, i)) == 1 {
			// the add (two multipliers and a requantizer per channel)
			// and the frame-deep bypass FIFO; the body's layers count
			// their own
			pixels := r.InFrame() / r.C
			lr.EstDSP = 3 * r.C
			lr.EstBRAM18 = bram18(pixels, r.C*8)
			lr.EstLUT = int(300 + 1.1*float64(r.C)*120)
		} else if p := layerAvgPool(d, i); p != nil {
			// an adder and a requantizer multiplier per channel; the
			// running sums of a row of windows
			lr.EstDSP = p.C
			lr.EstBRAM18 = bram18(p.OW(), p.C*int(p.AccBits()))
			lr.EstLUT = int(300 + 1.1*float64(p.C)*float64(int(p.AccBits())*3+40))
		}
		est.DSP += lr.EstDSP
		est.BRAM18 += lr.EstBRAM18
		est.LUT += lr.EstLUT
		rep.Layers = append(rep.Layers, lr)
		if li.EstCyc > rep.IIEstimated {
			rep.IIEstimated = li.EstCyc
			rep.Bottleneck = li.Node
		}
	}
	est.Source = "analytical (FINN-style: one DSP per PE·SIMD multiplier, weight memory by BRAM18 width/depth ladder)"
	rep.Estimated = est
	rep.FPS = opts.ClockMHz * 1e6 / float64(rep.IIEstimated)
	rep.Seconds["lower"] = time.Since(t0).Seconds()
	say("lowered: %d layers, estimated II %d cycles (%s), %.0f FPS at %g MHz", len(d.Layers), rep.IIEstimated, rep.Bottleneck, rep.FPS, opts.ClockMHz)

	if opts.SimFrames > 0 {
		t1 := time.Now()
		frames := RandomFrames(first, opts.SimFrames, 1)
		say("simulating %d frames with Verilator", len(frames))
		res, err := d.Pipeline.Simulate(ctx, filepath.Join(dir, "sim"), frames)
		if err != nil {
			return nil, nil, err
		}
		var want []int32
		for _, f := range frames {
			y, err := d.Pipeline.Forward(f)
			if err != nil {
				return nil, nil, err
			}
			want = append(want, y...)
		}
		rep.BitExact = len(want) == len(res.Outputs)
		for i := range want {
			if rep.BitExact && want[i] != res.Outputs[i] {
				rep.BitExact = false
			}
		}
		if !rep.BitExact {
			return nil, nil, fmt.Errorf("fpga: the RTL simulation differs from the Go model of the hardware (a generator bug; design in %s)", dir)
		}
		rep.Simulated, rep.SimFrames = true, len(frames)
		rep.IICycles, rep.LatencyCycles = res.II, res.Latency
		if res.II > 0 {
			rep.FPS = opts.ClockMHz * 1e6 / float64(res.II)
		}
		rep.LatencyUS = float64(res.Latency) / opts.ClockMHz
		if opts.SimLayers {
			for i := range d.Layers {
				st := layerStages(d, i)
				p := &Pipeline{Stages: st}
				say("simulating layer %s alone", d.Layers[i].Node)
				r, err := p.Simulate(ctx, filepath.Join(dir, "sim_"+Ident(d.Layers[i].Node)), RandomFrames(st[0], 3, 2))
				if err != nil {
					return nil, nil, err
				}
				rep.Layers[i].CyclesSimulated = r.II
			}
		}
		rep.Seconds["simulate"] = time.Since(t1).Seconds()
		say("simulated: II %d cycles, latency %d cycles, bit-exact on %d frames", res.II, res.Latency, len(frames))
	}
	if opts.Synth {
		t2 := time.Now()
		say("synthesizing with yosys for %s", part.Name)
		r, err := Synthesize(ctx, dir, d.Pipeline, files, part)
		if err != nil {
			return nil, nil, err
		}
		rep.Resources = r
		rep.Limiting = limitingLayers(rep)
		rep.Seconds["synthesize"] = time.Since(t2).Seconds()
		say("synthesized: %d LUT, %d FF, %d BRAM18, %d DSP (fits: %v)", r.LUT, r.FF, r.BRAM18, r.DSP, r.Fits)
	}
	return rep, d, nil
}

// layerMVAU is the MVAU of lowered layer i, or the description of its
// VVAU (same folding and weight memory shape).
func layerMVAU(d *Design, i int) *MVAU {
	for _, s := range layerStages(d, i) {
		switch e := s.(type) {
		case *MVAU:
			return e
		case *VVAU:
			return &e.MVAU
		}
	}
	return nil
}

// layerAvgPool is the average pool of lowered layer i, if it is one.
func layerAvgPool(d *Design, i int) *AvgPool {
	for _, s := range layerStages(d, i) {
		if p, ok := s.(*AvgPool); ok {
			return p
		}
	}
	return nil
}

// layerStages are the stages of lowered layer i (its window generator,
// MVAU and pools).
func layerStages(d *Design, i int) []Stage {
	if b := d.Layers[i].body; b != nil {
		return b
	}
	var st []Stage
	for _, k := range d.Layers[i].Stages {
		st = append(st, d.Pipeline.Stages[k])
	}
	return st
}

// RandomFrames are seeded frames in the stage's input range.
func RandomFrames(s Stage, n int, seed int64) [][]int32 {
	rng := rand.New(rand.NewSource(seed))
	out := make([][]int32, n)
	for i := range out {
		out[i] = make([]int32, s.InFrame())
		for j := range out[i] {
			v := int32(rng.Intn(256))
			if s.InIsSigned() {
				v -= 128
			}
			out[i][j] = v
		}
	}
	return out
}

// bram18 counts 18 kbit blocks for a depth×width memory (Xilinx's
// width/depth ladder); memories under 1 kbit go to LUTs.
func bram18(depth, width int) int {
	if depth*width < 1024 {
		return 0
	}
	var w int
	switch {
	case depth <= 512:
		w = 36
	case depth <= 1024:
		w = 18
	case depth <= 2048:
		w = 9
	case depth <= 4096:
		w = 4
	case depth <= 8192:
		w = 2
	default:
		w = 1
	}
	perBlockDepth := 18432 / w
	return ((width + w - 1) / w) * ((depth + perBlockDepth - 1) / perBlockDepth)
}

// limitingLayers names, for each resource over the part's limit, the
// layer with the largest estimated share of it (LUT multipliers count as
// DSPs when synthesis put them in LUTs).
func limitingLayers(rep *Report) []string {
	r := rep.Resources
	if r == nil || r.Fits {
		return nil
	}
	var out []string
	share := func(what string, get func(LayerReport) int) {
		total, best := 0, -1
		for i, l := range rep.Layers {
			total += get(l)
			if best < 0 || get(l) > get(rep.Layers[best]) {
				best = i
			}
		}
		if best >= 0 && total > 0 {
			l := rep.Layers[best]
			out = append(out, fmt.Sprintf("%s: layer %s (%s, PE %d × SIMD %d) holds %d of the %d estimated", what, l.Node, l.Engine, l.PE, l.SIMD, get(l), total))
		}
	}
	for _, lim := range r.Limits {
		switch {
		case strings.HasPrefix(lim, "DSP"), strings.HasPrefix(lim, "LUT") && r.DSP == 0:
			share("multipliers", func(l LayerReport) int { return l.EstDSP })
		case strings.HasPrefix(lim, "BRAM18"):
			share("BRAM18", func(l LayerReport) int { return l.EstBRAM18 })
		case strings.HasPrefix(lim, "LUT"):
			share("LUT", func(l LayerReport) int { return l.EstLUT })
		}
	}
	return out
}
