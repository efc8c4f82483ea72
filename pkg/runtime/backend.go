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

// Capabilities is what a backend declares about itself. Commands read it
// instead of naming backends: which devices a --device may name, which ops
// a model may use, which options (command-line flags) the backend takes and
// whether their values make sense together.
type Capabilities struct {
	// Devices the backend can run on; the first is its default ("cpu").
	Devices []string
	DTypes  []graph.DType
	// Supports reports whether the backend runs op_type of domain ("" or
	// "ai.onnx" for the default domain) at opset version. Nil means
	// "unknown: try".
	Supports func(domain, opType string, opset int64) bool
	// PureGo is true when the backend needs no cgo.
	PureGo bool
	// Reference marks an independent implementation that numeric checks
	// may use as a second opinion when the requested backend cannot run a
	// model (see passes' verification).
	Reference bool
	// Options lists the Options the backend takes besides Device, Threads,
	// MaxMemory and Shapes (which every backend takes), by the flag that
	// sets them. An option a backend does not list is ignored by it, and a
	// command refuses the flag when no selected backend lists it.
	Options []OptionSpec
	// Validate checks what per-option Values cannot: combinations (a
	// fallback needs a GPU device, say). Errors name the flags. Nil: nothing
	// more to check. CheckOptions calls it.
	Validate func(Options) error
}

// Option names: each is the command-line flag (without "--") that sets one
// Options field. A backend lists the ones it takes in Capabilities.Options.
const (
	OptionDeviceID       = "device-id"       // Options.DeviceID
	OptionFallback       = "fallback"        // Options.Fallback
	OptionOptLevel       = "ort-opt"         // Options.OptLevel
	OptionLibrary        = "ort-lib"         // Options.ORTLib
	OptionProviderOption = "provider-option" // Options.ProviderOptions (key=value, repeatable)
	OptionIOBinding      = "io-binding"      // Options.IOBinding
)

// OptionSpec describes one option a backend takes.
type OptionSpec struct {
	// Name is the flag that sets it, one of the Option* constants.
	Name string
	// Values lists the accepted values; empty means free-form (a path, a
	// number, key=value pairs), checked by Capabilities.Validate.
	Values []string
	// Default is the value used when the option is not given.
	Default string
	// Doc says what it does, for --help.
	Doc string
}

// Option returns the spec of the named option, if the backend takes it.
func (c Capabilities) Option(name string) (OptionSpec, bool) {
	for _, o := range c.Options {
		if o.Name == name {
			return o, true
		}
	}
	return OptionSpec{}, false
}

// HasDevice reports whether the backend can run on device ("" is its
// default device).
func (c Capabilities) HasDevice(device string) bool {
	if device == "" {
		return true
	}
	for _, d := range c.Devices {
		if d == device {
			return true
		}
	}
	return false
}

// optionValue is the string form of the Options field an option sets ("" when
// unset), for checking against OptionSpec.Values.
func optionValue(o Options, name string) string {
	switch name {
	case OptionFallback:
		return o.Fallback
	case OptionOptLevel:
		return o.OptLevel
	}
	return ""
}

// CheckOptions checks opts against what backend b declares: the device is
// one of its Devices, its Validate (combinations, with the backend's own
// wording), then each option it takes with fixed Values has one of them. Options the backend does not take are ignored
// (a command decides whether a flag given for no selected backend is an
// error). Errors name the flag.
func CheckOptions(b Backend, opts Options) error {
	c := b.Capabilities()
	if len(c.Devices) > 0 && !c.HasDevice(opts.Device) {
		return fmt.Errorf("runtime: --device %s is not available on backend %s (devices: %s)", opts.Device, b.Name(), strings.Join(c.Devices, ", "))
	}
	if c.Validate != nil {
		if err := c.Validate(opts); err != nil {
			return err
		}
	}
	for _, spec := range c.Options {
		v := optionValue(opts, spec.Name)
		if v == "" || len(spec.Values) == 0 {
			continue
		}
		ok := false
		for _, a := range spec.Values {
			ok = ok || a == v
		}
		if !ok {
			return fmt.Errorf("runtime: --%s %q: want one of %s", spec.Name, v, strings.Join(spec.Values, ", "))
		}
	}
	return nil
}

// Devices lists every device some registered backend can use: "cpu", then
// the others sorted.
func Devices() []string {
	seen := map[string]bool{"cpu": true}
	var more []string
	for _, n := range Names() {
		b, _ := Get(n)
		for _, d := range b.Capabilities().Devices {
			if !seen[d] {
				seen[d] = true
				more = append(more, d)
			}
		}
	}
	sort.Strings(more)
	return append([]string{"cpu"}, more...)
}

// BackendsWith lists the registered backends whose capabilities satisfy
// keep, sorted by name.
func BackendsWith(keep func(Capabilities) bool) []string {
	var out []string
	for _, n := range Names() {
		b, _ := Get(n)
		if keep(b.Capabilities()) {
			out = append(out, n)
		}
	}
	return out
}

// LookupOption returns the spec of the named option from the first
// registered backend (by name) that takes it.
func LookupOption(name string) (OptionSpec, bool) {
	for _, n := range Names() {
		b, _ := Get(n)
		if o, ok := b.Capabilities().Option(name); ok {
			return o, true
		}
	}
	return OptionSpec{}, false
}

// LibraryLoader is implemented by backends that load a shared library at
// run time (ort): `optictl backends` reports which one they would use.
type LibraryLoader interface {
	// LoadLibrary loads (or finds) the library the way a session would;
	// explicit is Options.ORTLib.
	LoadLibrary(explicit string) (path, version, source string, err error)
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
