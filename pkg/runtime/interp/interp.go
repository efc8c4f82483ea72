package interp

import (
	"context"
	"fmt"
	goruntime "runtime"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

func init() { runtime.Register(backend{}) }

type backend struct{}

func (backend) Name() string { return "interp" }

func (backend) Capabilities() runtime.Capabilities {
	return runtime.Capabilities{
		Devices: []string{"cpu"},
		DTypes: []graph.DType{graph.Float, graph.Double, graph.Float16, graph.Int64, graph.Int32,
			graph.Int16, graph.Int8, graph.Uint8, graph.Uint16, graph.Uint32, graph.Uint64, graph.Bool, graph.String},
		Supports: func(domain, op string, _ int64) bool { return Supported(domain, op) },
		PureGo:   true,
	}
}

// Session is an interp session. Not safe for concurrent Run.
type Session struct {
	prog    *Program
	inputs  []runtime.IOInfo
	outputs []runtime.IOInfo
}

func (backend) Open(m *graph.Model, opts runtime.Options) (runtime.Session, error) {
	return Open(m, opts)
}

// Open compiles a model. Ops without a kernel are all listed in the error
// before anything runs.
func Open(m *graph.Model, opts runtime.Options) (*Session, error) {
	if m == nil || m.Graph == nil {
		return nil, fmt.Errorf("interp: no model")
	}
	if d := opts.Device; d != "" && d != "cpu" {
		if opts.Fallback != "cpu" {
			return nil, fmt.Errorf("interp: device %q is not available: the interp backend runs on the CPU only (use --backend ort for cuda/tensorrt, or --fallback cpu)", d)
		}
	}
	if bad, first := unsupportedOps(m.Graph); len(bad) > 0 {
		return nil, &runtime.UnsupportedError{Op: first.OpType, Domain: first.Domain,
			Reason: fmt.Sprintf("interp: unsupported ops: %s", strings.Join(bad, ", "))}
	}
	threads := opts.Threads
	if threads <= 0 {
		threads = goruntime.GOMAXPROCS(0)
	}
	sh := &shared{threads: threads, maxMemory: opts.MaxMemory, pool: &workerPool{}}
	if opts.MaxMemory > 0 {
		var w int64
		for _, t := range m.Graph.Initializers {
			w += t.Bytes()
		}
		if w > opts.MaxMemory {
			return nil, fmt.Errorf("interp: the model's weights take %d bytes, over the memory bound of %d bytes (--max-memory)", w, opts.MaxMemory)
		}
		sh.allocated = w
	}
	p := newProgram(m, m.Graph, nil, sh)
	if err := p.compile(true); err != nil {
		return nil, err
	}
	s := &Session{prog: p}
	vi := m.Graph.ValueInfoMap()
	for _, name := range p.inNames {
		s.inputs = append(s.inputs, ioInfo(vi[name], name, opts.Shapes))
	}
	for _, v := range m.Graph.Outputs {
		s.outputs = append(s.outputs, ioInfo(v, v.Name, nil))
	}
	return s, nil
}

func ioInfo(v *graph.ValueInfo, name string, fixed map[string][]int64) runtime.IOInfo {
	info := runtime.IOInfo{Name: name}
	if v == nil {
		return info
	}
	info.DType = v.DType
	if f, ok := fixed[name]; ok {
		info.Shape = append([]int64{}, f...)
		return info
	}
	if v.HasShape {
		info.Shape = make([]int64, len(v.Shape))
		info.DimNames = make([]string, len(v.Shape))
		for i, d := range v.Shape {
			info.Shape[i] = d.Size
			info.DimNames[i] = d.Param
		}
	}
	return info
}

func (s *Session) Inputs() []runtime.IOInfo  { return s.inputs }
func (s *Session) Outputs() []runtime.IOInfo { return s.outputs }
func (s *Session) Device() string            { return "cpu" }

// Close releases the compiled program; Run afterwards is an error. Closing
// twice is allowed.
func (s *Session) Close() error {
	s.prog = nil
	return nil
}

// Run executes the model. Outputs are owned by the session until the next Run.
func (s *Session) Run(ctx context.Context, inputs []*runtime.Tensor) ([]*runtime.Tensor, error) {
	if s.prog == nil {
		return nil, fmt.Errorf("interp: session is closed")
	}
	if err := runtime.CheckInputs(s.inputs, inputs); err != nil {
		return nil, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	return s.prog.exec(ctx, nil, inputs)
}
