package fpga

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	hw "github.com/optictl/optictl/pkg/fpga"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

func init() { runtime.Register(backend{}) }

type backend struct{}

func (backend) Name() string { return "fpga" }

func (backend) Capabilities() runtime.Capabilities {
	return runtime.Capabilities{
		Devices: []string{"cpu"},
		DTypes:  []graph.DType{graph.Float},
		Supports: func(domain, op string, _ int64) bool {
			if domain != "" && domain != "ai.onnx" {
				return false
			}
			switch op {
			case "QuantizeLinear", "DequantizeLinear", "Conv", "MatMul", "Gemm", "Add", "Mul", "Relu", "Clip",
				"MaxPool", "Reshape", "Flatten", "Constant", "Softmax", "Identity":
				return true
			}
			return false
		},
		PureGo: true,
		Options: []runtime.OptionSpec{{Name: runtime.OptionProviderOption,
			Doc: "fpga backend options key=value: fpga_part (xc7z020, xczu7ev, ice40up5k), fpga_clock (MHz), fpga_target_fps, fpga_folding (JSON file), fpga_sim (model or rtl)"}},
		Validate: func(o runtime.Options) error { _, err := parseConfig(o); return err },
	}
}

// config is what a session is lowered and run with.
type config struct {
	part      string
	clockMHz  float64
	folding   map[string]hw.Fold
	targetFPS float64
	sim       string // model | rtl
}

func parseConfig(opts runtime.Options) (config, error) {
	c := config{part: "xc7z020", clockMHz: 100, sim: "model"}
	keys := make([]string, 0, len(opts.ProviderOptions))
	for k := range opts.ProviderOptions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := opts.ProviderOptions[k]
		switch k {
		case "fpga_part":
			if _, ok := hw.Parts[v]; !ok {
				return c, fmt.Errorf("fpga: provider option fpga_part=%q: known parts %v", v, hw.PartNames())
			}
			c.part = v
		case "fpga_clock":
			f, err := strconv.ParseFloat(strings.TrimSuffix(strings.ToLower(v), "mhz"), 64)
			if err != nil || !(f > 0) {
				return c, fmt.Errorf("fpga: provider option fpga_clock=%q: want MHz, e.g. 100", v)
			}
			c.clockMHz = f
		case "fpga_target_fps":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || !(f > 0) {
				return c, fmt.Errorf("fpga: provider option fpga_target_fps=%q: want a positive number", v)
			}
			c.targetFPS = f
		case "fpga_folding":
			b, err := os.ReadFile(v)
			if err != nil {
				return c, fmt.Errorf("fpga: provider option fpga_folding: %w", err)
			}
			if err := json.Unmarshal(b, &c.folding); err != nil {
				return c, fmt.Errorf("fpga: provider option fpga_folding=%s: %w", v, err)
			}
		case "fpga_sim":
			if v != "model" && v != "rtl" {
				return c, fmt.Errorf("fpga: provider option fpga_sim=%q: want model or rtl", v)
			}
			c.sim = v
		default:
			return c, fmt.Errorf("fpga: unknown provider option %q (fpga_part, fpga_clock, fpga_target_fps, fpga_folding, fpga_sim)", k)
		}
	}
	if c.folding != nil && c.targetFPS > 0 {
		return c, fmt.Errorf("fpga: fpga_folding and fpga_target_fps exclude each other")
	}
	return c, nil
}

// Session runs one lowered design. Not safe for concurrent Run.
type Session struct {
	cfg     config
	d       *hw.Design
	ex      *hw.Executor
	simDir  string
	inputs  []runtime.IOInfo
	outputs []runtime.IOInfo
	mu      sync.Mutex
	closed  bool
	// last simulated timing (rtl), else the analytical one
	iiCycles, latCycles int
}

func (backend) Open(m *graph.Model, opts runtime.Options) (runtime.Session, error) {
	if m == nil || m.Graph == nil {
		return nil, fmt.Errorf("fpga: no model")
	}
	if d := opts.Device; d != "" && d != "cpu" {
		return nil, fmt.Errorf("fpga: device %q: the fpga backend runs its simulated hardware on the host (cpu)", d)
	}
	cfg, err := parseConfig(opts)
	if err != nil {
		return nil, err
	}
	lo := hw.LowerOptions{Folding: cfg.folding, Shapes: opts.Shapes}
	if cfg.targetFPS > 0 {
		lo.TargetCycles = int(cfg.clockMHz * 1e6 / cfg.targetFPS)
	}
	d, err := hw.Lower(m, lo)
	if err != nil {
		// the model is outside what the hardware generator supports: a
		// capability of this backend, not a broken model
		return nil, &runtime.UnsupportedError{Reason: err.Error(), Err: err}
	}
	ex, err := hw.NewExecutor(d)
	if err != nil {
		return nil, err
	}
	// the analytical II: the slowest layer, window generator included
	ii := d.Pipeline.EstimatedII()
	for _, l := range d.Layers {
		ii = max(ii, l.EstCyc)
	}
	s := &Session{cfg: cfg, d: d, ex: ex, iiCycles: ii}
	s.latCycles = s.iiCycles
	s.inputs = []runtime.IOInfo{{Name: d.Input, DType: graph.Float, Shape: append([]int64(nil), d.InShape...)}}
	vi := m.Graph.ValueInfoMap()
	for _, o := range m.Graph.Outputs {
		info := runtime.IOInfo{Name: o.Name, DType: graph.Float}
		if o.HasShape {
			info.Shape = make([]int64, len(o.Shape))
			for i, dd := range o.Shape {
				info.Shape[i] = dd.Size
			}
		} else if v, ok := vi[o.Name]; ok && v.HasShape {
			info.Shape, _ = v.Shape.Static()
		}
		s.outputs = append(s.outputs, info)
	}
	if cfg.sim == "rtl" {
		dir, err := simCache(m, cfg)
		if err != nil {
			ex.Close()
			return nil, err
		}
		if err := d.Pipeline.BuildSim(context.Background(), dir); err != nil {
			ex.Close()
			return nil, err
		}
		s.simDir = dir
	}
	return s, nil
}

// simCache is the folder of a design's simulator: the user cache dir
// keyed by the model's bytes and the options.
func simCache(m *graph.Model, cfg config) (string, error) {
	b, err := m.Marshal()
	if err != nil {
		return "", fmt.Errorf("fpga: %w", err)
	}
	h := sha256.New()
	h.Write(b)
	fb, _ := json.Marshal(cfg.folding)
	fmt.Fprintf(h, "|%s|%g|%g|%s", cfg.part, cfg.clockMHz, cfg.targetFPS, fb)
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "optictl", "fpga", hex.EncodeToString(h.Sum(nil))[:24]), nil
}

func (s *Session) Inputs() []runtime.IOInfo  { return s.inputs }
func (s *Session) Outputs() []runtime.IOInfo { return s.outputs }
func (s *Session) Device() string {
	if s.cfg.sim == "rtl" {
		return fmt.Sprintf("fpga:%s@%gMHz (Verilator RTL simulation)", s.cfg.part, s.cfg.clockMHz)
	}
	return fmt.Sprintf("fpga:%s@%gMHz (Go model of the hardware)", s.cfg.part, s.cfg.clockMHz)
}

func (s *Session) Run(ctx context.Context, in []*runtime.Tensor) ([]*runtime.Tensor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("fpga: session is closed")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fpga: %w", err)
	}
	if err := runtime.CheckInputs(s.inputs, in); err != nil {
		return nil, err
	}
	x := in[0].Float32s()
	if s.simDir == "" {
		return s.ex.Run(ctx, x)
	}
	q, err := s.d.QuantizeInput(x)
	if err != nil {
		return nil, err
	}
	res, err := s.d.Pipeline.RunSim(ctx, s.simDir, [][]int32{q})
	if err != nil {
		return nil, err
	}
	s.latCycles = res.Latency
	return s.ex.Finish(ctx, res.Outputs)
}

func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.ex.Close()
}

// SimulatedTiming is the device's time per frame at the clock: the
// initiation interval (throughput) and the latency of the last frame (RTL)
// or the analytical estimate (Go model).
func (s *Session) SimulatedTiming() (interval, latency time.Duration, note string) {
	ns := 1e3 / s.cfg.clockMHz
	interval = time.Duration(float64(s.iiCycles) * ns)
	latency = time.Duration(float64(s.latCycles) * ns)
	note = fmt.Sprintf("simulated: %d cycles per frame at %g MHz", s.iiCycles, s.cfg.clockMHz)
	return interval, latency, note
}
