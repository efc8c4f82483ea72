package runtime

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/optictl/optictl/pkg/graph"
)

// IOInfo describes one session input or output. Shape dims of -1 are dynamic.
type IOInfo struct {
	Name  string
	DType graph.DType
	Shape []int64
	// DimNames holds symbolic names of dynamic dims where the model gives them.
	DimNames []string
}

// Options configure a session. Zero values mean the backend's defaults.
type Options struct {
	Device   string // "cpu" (default), "cuda", "tensorrt"
	DeviceID int
	// Fallback "cpu" lets a session fall back to the CPU when the device is
	// unavailable; the fallback is reported through Session.Device().
	Fallback string
	Threads  int    // intra-op threads; 0 = backend default
	OptLevel string // ort graph optimizations: off|basic|extended|all (default all)
	ORTLib   string // explicit path of libonnxruntime.so
	// MaxMemory bounds the bytes a session may plan for activations and
	// weights; 0 means no bound.
	MaxMemory int64
	// Shapes fixes dynamic input dims (name -> full shape).
	Shapes map[string][]int64
	// Provider options for cuda/tensorrt (e.g. "cudnn_conv_algo_search",
	// "trt_fp16_enable", "trt_engine_cache_path", "enable_cuda_graph").
	ProviderOptions map[string]string
	// IOBinding (ort backend only; commands refuse it for others): inputs and
	// outputs are bound once per set of input shapes (ONNX Runtime I/O
	// binding, in GPU memory on cuda) and the binding is reused across runs.
	IOBinding bool
}

// Capabilities is what a backend declares about itself.
type Capabilities struct {
	Devices []string
	DTypes  []graph.DType
	// Supports reports whether the backend runs op_type of domain at opset
	// version. Nil means "unknown: try".
	Supports func(domain, opType string, opset int64) bool
	// PureGo is true when the backend needs no cgo.
	PureGo bool
}

// Backend opens sessions.
type Backend interface {
	Name() string
	Capabilities() Capabilities
	Open(m *graph.Model, opts Options) (Session, error)
}

// Session runs one model. See the package doc for the buffer contract.
type Session interface {
	Inputs() []IOInfo
	Outputs() []IOInfo
	Run(ctx context.Context, inputs []*Tensor) ([]*Tensor, error)
	// Device names where the session actually runs ("cpu", "cuda:0", ...).
	Device() string
	Close() error
}

var (
	mu       sync.RWMutex
	backends = map[string]Backend{}
)

// Register adds a backend; it panics on a duplicate name (a programming
// error caught at init).
func Register(b Backend) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := backends[b.Name()]; dup {
		panic("runtime: backend registered twice: " + b.Name())
	}
	backends[b.Name()] = b
}

// Get returns a registered backend by name.
func Get(name string) (Backend, error) {
	mu.RLock()
	defer mu.RUnlock()
	if b, ok := backends[name]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("runtime: unknown backend %q (available: %s)", name, strings.Join(namesLocked(), ", "))
}

// Names lists registered backends, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	return namesLocked()
}

func namesLocked() []string {
	var out []string
	for n := range backends {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Open is Get(name).Open(m, opts).
func Open(name string, m *graph.Model, opts Options) (Session, error) {
	b, err := Get(name)
	if err != nil {
		return nil, err
	}
	return b.Open(m, opts)
}

// RunNamed runs a session with inputs by name and returns outputs by name
// (cloned, so they outlive the next Run). Convenience for non-hot paths.
func RunNamed(ctx context.Context, s Session, in map[string]*Tensor) (map[string]*Tensor, error) {
	infos := s.Inputs()
	args := make([]*Tensor, len(infos))
	for i, info := range infos {
		t, ok := in[info.Name]
		if !ok {
			return nil, fmt.Errorf("runtime: missing input %q", info.Name)
		}
		args[i] = t
	}
	if len(in) > len(infos) {
		for name := range in {
			found := false
			for _, info := range infos {
				found = found || info.Name == name
			}
			if !found {
				return nil, fmt.Errorf("runtime: model has no input %q", name)
			}
		}
	}
	outs, err := s.Run(ctx, args)
	if err != nil {
		return nil, err
	}
	res := make(map[string]*Tensor, len(outs))
	for i, o := range s.Outputs() {
		res[o.Name] = outs[i].Clone()
	}
	return res, nil
}

// CheckInputs validates inputs against the session's declared IO (count,
// dtype, rank, fixed dims, data length) with errors naming the input.
func CheckInputs(infos []IOInfo, in []*Tensor) error {
	if len(in) != len(infos) {
		return fmt.Errorf("runtime: model takes %d inputs, got %d", len(infos), len(in))
	}
	for i, info := range infos {
		t := in[i]
		if t == nil {
			return fmt.Errorf("runtime: input %q is missing", info.Name)
		}
		if info.DType != graph.Undefined && t.DType != info.DType {
			return fmt.Errorf("runtime: input %q: expected dtype %s, got %s", info.Name, info.DType, t.DType)
		}
		if info.Shape != nil {
			if len(t.Shape) != len(info.Shape) {
				return fmt.Errorf("runtime: input %q: expected shape %s, got %v", info.Name, ShapeString(info.Shape), t.Shape)
			}
			for k, d := range info.Shape {
				if d >= 0 && t.Shape[k] != d {
					return fmt.Errorf("runtime: input %q: expected shape %s, got %v (dim %d)", info.Name, ShapeString(info.Shape), t.Shape, k)
				}
			}
		}
		if err := t.Check(); err != nil {
			return fmt.Errorf("runtime: input %q: %w", info.Name, err)
		}
	}
	return nil
}

// ShapeString renders dims with -1 as "?".
func ShapeString(s []int64) string {
	p := make([]string, len(s))
	for i, d := range s {
		if d < 0 {
			p[i] = "?"
		} else {
			p[i] = fmt.Sprint(d)
		}
	}
	return "[" + strings.Join(p, ",") + "]"
}
