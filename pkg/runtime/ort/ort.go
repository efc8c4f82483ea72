//go:build cgo

package ort

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

type backend struct{}

func init() { runtime.Register(backend{}) }

func (backend) Name() string { return "ort" }

func (backend) Capabilities() runtime.Capabilities { return capabilities(false) }

func (backend) LoadLibrary(explicit string) (path, version, source string, err error) {
	return Load(explicit)
}

func (backend) Open(m *graph.Model, opts runtime.Options) (runtime.Session, error) {
	return Open(m, opts)
}

// optLevels maps Options.OptLevel to ONNX Runtime's levels.
var optLevels = map[string]ortgo.GraphOptimizationLevel{
	"off":      ortgo.GraphOptimizationLevelDisableAll,
	"basic":    ortgo.GraphOptimizationLevelEnableBasic,
	"extended": ortgo.GraphOptimizationLevelEnableExtended,
	"all":      ortgo.GraphOptimizationLevelEnableAll,
}

// Session runs one model with ONNX Runtime. Not safe for concurrent Run.
type Session struct {
	sess    *ortgo.DynamicAdvancedSession
	runOpts *ortgo.RunOptions
	device  string
	inputs  []runtime.IOInfo
	outputs []runtime.IOInfo

	inSlots  []*slot
	inVals   []ortgo.Value
	outSlots []*slot // nil entries: strings, allocated by ORT on each Run
	outVals  []ortgo.Value
	outReady bool
	outs     []*runtime.Tensor

	// halfModel is a copy of the model kept only when a float16/bfloat16
	// output has a dynamic shape: its shape is then inferred per input
	// shape (onnxruntime_go cannot hand back such outputs itself).
	halfModel *graph.Model

	termWG     sync.WaitGroup
	terminated bool
	closed     bool

	// ioBinding (Options.IOBinding): runs go through an OrtIoBinding made
	// once per set of input shapes (see iobinding.go).
	ioBinding bool
	deviceID  int
	bind      *binding
}

// Open creates a session for m.
func Open(m *graph.Model, opts runtime.Options) (*Session, error) {
	if m == nil || m.Graph == nil {
		return nil, fmt.Errorf("ort: no model")
	}
	if err := validate(opts); err != nil {
		return nil, err
	}
	level, ok := optLevels[opts.OptLevel]
	if opts.OptLevel == "" || !ok {
		level = ortgo.GraphOptimizationLevelEnableAll
	}
	device := opts.Device
	if device == "" {
		device = "cpu"
	}
	if err := checkNCHWcBlock(m); err != nil {
		return nil, err
	}
	// ONNX Runtime aborts the process (an assertion, SIGFPE, SIGSEGV) on
	// some malformed models instead of returning an error: refuse them first.
	if err := m.CheckORT(); err != nil {
		return nil, fmt.Errorf("ort: %w", err)
	}
	if opts.MaxMemory > 0 {
		var w int64
		for _, t := range m.Graph.Initializers {
			w += t.Bytes()
		}
		if w > opts.MaxMemory {
			return nil, fmt.Errorf("ort: the model's weights take %d bytes, over the memory bound of %d bytes (--max-memory)", w, opts.MaxMemory)
		}
	}
	s := &Session{ioBinding: opts.IOBinding, deviceID: opts.DeviceID}
	var err error
	if s.inputs, err = inputInfos(m.Graph, opts.Shapes); err != nil {
		return nil, err
	}
	for _, v := range m.Graph.Outputs {
		s.outputs = append(s.outputs, ioInfo(v))
	}
	if len(s.outputs) == 0 {
		return nil, fmt.Errorf("ort: the model has no outputs")
	}
	for _, io := range append(append([]runtime.IOInfo{}, s.inputs...), s.outputs...) {
		if s.ioBinding && io.DType == graph.String {
			return nil, fmt.Errorf("ort: %q is a string tensor: io binding (--io-binding) binds fixed-size tensors only", io.Name)
		}
		if io.DType != graph.Undefined && io.DType != graph.String {
			if _, err := newSlotCheck(io.DType); err != nil {
				return nil, fmt.Errorf("ort: %q: %w", io.Name, err)
			}
		}
	}

	if err := ensureEnv(opts.ORTLib); err != nil {
		return nil, err
	}
	if len(s.inputs) == 0 {
		// onnxruntime_go's Run indexes its first input: it would panic.
		return nil, &runtime.UnsupportedError{Reason: "ort: the model has no inputs, and onnxruntime_go cannot run such a model (use --backend interp)"}
	}
	data, err := m.Marshal()
	if err != nil {
		return nil, fmt.Errorf("ort: serializing the model: %w", err)
	}
	inNames := make([]string, len(s.inputs))
	for i, in := range s.inputs {
		inNames[i] = in.Name
	}
	outNames := make([]string, len(s.outputs))
	for i, o := range s.outputs {
		outNames[i] = o.Name
	}

	s.sess, s.device, err = createSession(data, inNames, outNames, level, device, opts)
	if err != nil {
		return nil, err
	}
	if s.runOpts, err = ortgo.NewRunOptions(); err != nil {
		s.sess.Destroy()
		return nil, fmt.Errorf("ort: creating run options: %w", err)
	}
	for _, o := range s.outputs {
		if isHalf(o.DType) && !static(o.Shape) {
			s.halfModel = m.Clone()
			break
		}
	}
	s.inSlots = make([]*slot, len(s.inputs))
	s.inVals = make([]ortgo.Value, len(s.inputs))
	s.outSlots = make([]*slot, len(s.outputs))
	s.outVals = make([]ortgo.Value, len(s.outputs))
	s.outs = make([]*runtime.Tensor, len(s.outputs))
	for i := range s.outs {
		s.outs[i] = &runtime.Tensor{}
	}
	return s, nil
}

// newSlotCheck reports whether dt can be fed to or read from ORT.
func newSlotCheck(dt graph.DType) (bool, error) {
	switch dt {
	case graph.Float, graph.Double, graph.Int8, graph.Uint8, graph.Int16, graph.Uint16,
		graph.Int32, graph.Uint32, graph.Int64, graph.Uint64, graph.Bool,
		graph.Float16, graph.BFloat16, graph.String:
		return true, nil
	}
	return false, &runtime.UnsupportedError{Reason: fmt.Sprintf("dtype %s is not supported by the ort backend", dt)}
}

// createSession builds session options for device and creates the session;
// with Fallback "cpu" a device that cannot be set up falls back to the CPU.
func createSession(data []byte, inNames, outNames []string, level ortgo.GraphOptimizationLevel, device string, opts runtime.Options) (*ortgo.DynamicAdvancedSession, string, error) {
	try := func(dev string) (*ortgo.DynamicAdvancedSession, error) {
		so, err := ortgo.NewSessionOptions()
		if err != nil {
			return nil, fmt.Errorf("ort: creating session options: %w", err)
		}
		defer so.Destroy()
		if err := so.SetGraphOptimizationLevel(level); err != nil {
			return nil, fmt.Errorf("ort: setting optimization level: %w", err)
		}
		if opts.Threads > 0 {
			if err := so.SetIntraOpNumThreads(opts.Threads); err != nil {
				return nil, fmt.Errorf("ort: setting %d threads: %w", opts.Threads, err)
			}
		}
		if err := so.SetInterOpNumThreads(1); err != nil {
			return nil, fmt.Errorf("ort: setting inter-op threads: %w", err)
		}
		if err := appendProvider(so, dev, opts); err != nil {
			return nil, err
		}
		sess, err := ortgo.NewDynamicAdvancedSessionWithONNXData(data, inNames, outNames, so)
		if err != nil {
			if dev != "cpu" {
				return nil, &deviceError{dev: dev, err: err}
			}
			return nil, classify("creating the session: ", err)
		}
		return sess, nil
	}
	sess, err := try(device)
	if err == nil {
		if device == "cpu" {
			return sess, "cpu", nil
		}
		return sess, fmt.Sprintf("%s:%d", device, opts.DeviceID), nil
	}
	var de *deviceError
	if !errors.As(err, &de) || opts.Fallback != "cpu" {
		return nil, "", err
	}
	sess, err2 := try("cpu")
	if err2 != nil {
		return nil, "", err2
	}
	return sess, fmt.Sprintf("cpu (fallback from %s: %s)", device, de.reason()), nil
}

// deviceError is a device that could not be set up.
type deviceError struct {
	dev string
	err error
}

func (e *deviceError) Error() string {
	name := map[string]string{"cuda": "CUDA", "tensorrt": "TensorRT"}[e.dev]
	return fmt.Sprintf("ort: %s execution provider unavailable: %s (use --fallback cpu to run on the CPU instead)", name, e.reason())
}

// reason is the provider error without ONNX Runtime's source location.
func (e *deviceError) reason() string {
	msg := e.err.Error()
	if i := strings.LastIndex(msg, "FAIL : "); i >= 0 {
		msg = msg[i+len("FAIL : "):]
	}
	return msg
}

func (e *deviceError) Unwrap() error { return e.err }

func appendProvider(so *ortgo.SessionOptions, dev string, opts runtime.Options) error {
	if dev == "cpu" {
		return nil
	}
	po := map[string]string{"device_id": fmt.Sprint(opts.DeviceID)}
	for k, v := range opts.ProviderOptions {
		po[k] = v
	}
	switch dev {
	case "cuda":
		co, err := ortgo.NewCUDAProviderOptions()
		if err != nil {
			return &deviceError{dev: dev, err: err}
		}
		defer co.Destroy()
		if err := co.Update(po); err != nil {
			return &deviceError{dev: dev, err: err}
		}
		if err := so.AppendExecutionProviderCUDA(co); err != nil {
			return &deviceError{dev: dev, err: err}
		}
	case "tensorrt":
		to, err := ortgo.NewTensorRTProviderOptions()
		if err != nil {
			return &deviceError{dev: dev, err: err}
		}
		defer to.Destroy()
		if err := to.Update(po); err != nil {
			return &deviceError{dev: dev, err: err}
		}
		if err := so.AppendExecutionProviderTensorRT(to); err != nil {
			return &deviceError{dev: dev, err: err}
		}
	}
	return nil
}

func ioInfo(v *graph.ValueInfo) runtime.IOInfo {
	info := runtime.IOInfo{Name: v.Name, DType: v.DType}
	if v.HasShape {
		info.Shape = make([]int64, len(v.Shape))
		info.DimNames = make([]string, len(v.Shape))
		for i, d := range v.Shape {
			info.Shape[i] = d.Size
			if d.Size < 0 {
				info.Shape[i] = -1
			}
			info.DimNames[i] = d.Param
		}
	}
	return info
}

// inputInfos describes the model's real inputs with Options.Shapes applied.
func inputInfos(g *graph.Graph, fixed map[string][]int64) ([]runtime.IOInfo, error) {
	var out []runtime.IOInfo
	used := 0
	for _, v := range g.RealInputs() {
		info := ioInfo(v)
		if f, ok := fixed[v.Name]; ok {
			used++
			if info.Shape != nil && len(f) != len(info.Shape) {
				return nil, fmt.Errorf("ort: input %q: --shape gives rank %d, the model declares %s", v.Name, len(f), runtime.ShapeString(info.Shape))
			}
			for k, d := range f {
				if d < 0 {
					return nil, fmt.Errorf("ort: input %q: --shape dim %d is %d", v.Name, k, d)
				}
				if info.Shape != nil && info.Shape[k] >= 0 && info.Shape[k] != d {
					return nil, fmt.Errorf("ort: input %q: --shape %v contradicts the model's %s (dim %d)", v.Name, f, runtime.ShapeString(info.Shape), k)
				}
			}
			info.Shape = append([]int64{}, f...)
			if info.DimNames == nil {
				info.DimNames = make([]string, len(f))
			}
		}
		out = append(out, info)
	}
	if used != len(fixed) {
		for name := range fixed {
			found := false
			for _, in := range out {
				found = found || in.Name == name
			}
			if !found {
				return nil, fmt.Errorf("ort: --shape names %q, which is not a model input", name)
			}
		}
	}
	return out, nil
}

func (s *Session) Inputs() []runtime.IOInfo  { return s.inputs }
func (s *Session) Outputs() []runtime.IOInfo { return s.outputs }

// Device is "cpu", "cuda:N", "tensorrt:N", or "cpu (fallback from ...)".
func (s *Session) Device() string { return s.device }

// Close releases every ONNX Runtime object of the session.
func (s *Session) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.dropOutputs()
	for i, sl := range s.inSlots {
		sl.destroy()
		s.inSlots[i] = nil
	}
	var err error
	if s.runOpts != nil {
		s.runOpts.Destroy()
	}
	if s.sess != nil {
		if e := s.sess.Destroy(); e != nil {
			err = fmt.Errorf("ort: closing the session: %w", e)
		}
	}
	return err
}

func (s *Session) dropOutputs() {
	s.bind.destroy()
	s.bind = nil
	for i, sl := range s.outSlots {
		sl.destroy()
		s.outSlots[i] = nil
	}
	s.outReady = false
}

// Run executes the model. The returned tensors alias buffers the session
// reuses on the next Run (strings excepted).
func (s *Session) Run(ctx context.Context, in []*runtime.Tensor) ([]*runtime.Tensor, error) {
	if s.closed {
		return nil, fmt.Errorf("ort: session is closed")
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ort: %w", err)
	}
	if err := runtime.CheckInputs(s.inputs, in); err != nil {
		return nil, err
	}
	changed, err := s.bindInputs(in)
	if err != nil {
		return nil, err
	}
	if changed {
		s.dropOutputs()
	}
	if s.outReady {
		var err error
		if s.ioBinding {
			var retry bool
			if retry, err = s.runBinding(ctx); err != nil && !retry {
				return nil, err
			}
		} else {
			for i, sl := range s.outSlots {
				s.outVals[i] = nil
				if sl != nil {
					s.outVals[i] = sl.v
				}
			}
			err = s.run(ctx)
		}
		if err == nil {
			return s.collect()
		}
		if ctx.Err() != nil {
			return nil, err
		}
		// An output whose shape depends on the input values changed:
		// find the output shapes again.
		s.dropOutputs()
	}
	out, err := s.discover(ctx)
	if err != nil || !s.ioBinding {
		return out, err
	}
	// Bind now and run once more through the binding: a bound session's
	// outputs always come from a bound run (compare --io-binding checks
	// that path), and RunBound can follow.
	if _, err := s.runBinding(ctx); err != nil {
		s.dropOutputs()
		return nil, err
	}
	return s.collect()
}

// bindInputs copies the inputs into the session's input buffers,
// reallocating those whose shape changed.
func (s *Session) bindInputs(in []*runtime.Tensor) (changed bool, err error) {
	for i, t := range in {
		sl := s.inSlots[i]
		if sl == nil || sl.dt != t.DType || !sl.sameShape(t.Shape) {
			sl.destroy()
			s.inSlots[i] = nil
			if sl, err = newSlot(t.DType, t.Shape); err != nil {
				return false, fmt.Errorf("ort: input %q: %w", s.inputs[i].Name, err)
			}
			s.inSlots[i] = sl
			s.inVals[i] = sl.v
			changed = true
		}
		switch {
		case sl.str != nil:
			if err := sl.str.SetContents(t.Strings); err != nil {
				return false, fmt.Errorf("ort: input %q: %w", s.inputs[i].Name, err)
			}
		case sl.scalar:
			copy(sl.raw, t.Raw)
			if err := sl.load(); err != nil {
				return false, fmt.Errorf("ort: input %q: %w", s.inputs[i].Name, err)
			}
			s.inVals[i] = sl.v
		default:
			copy(sl.raw, t.Raw)
		}
	}
	return changed, nil
}

// run calls ONNX Runtime with s.inVals/s.outVals, turning ctx
// cancellation into ORT's terminate flag.
func (s *Session) run(ctx context.Context) error {
	err := s.cancellable(ctx, func() error { return s.sess.RunWithOptions(s.inVals, s.outVals, s.runOpts) })
	if err != nil && !errors.Is(err, errCancelled) {
		return classify("", err)
	}
	return err
}

// errCancelled marks a run that ctx stopped.
var errCancelled = errors.New("ort: run cancelled")

// cancellable calls f (one ONNX Runtime run with s.runOpts), asking ORT to
// terminate it when ctx is done.
func (s *Session) cancellable(ctx context.Context, f func() error) error {
	if ctx.Done() == nil {
		return f()
	}
	s.termWG.Add(1)
	stop := context.AfterFunc(ctx, func() {
		s.runOpts.Terminate()
		s.terminated = true
		s.termWG.Done()
	})
	err := f()
	if stop() {
		s.termWG.Done()
	}
	s.termWG.Wait()
	if s.terminated {
		s.terminated = false
		s.runOpts.UnsetTerminate()
		if err != nil || ctx.Err() != nil {
			return fmt.Errorf("%w: %w", errCancelled, ctx.Err())
		}
	}
	return err
}

// discover runs with ORT allocating the outputs, adopts them as the
// session's output buffers for the current input shapes, and runs again
// when an output had to be reallocated (float16/bfloat16).
func (s *Session) discover(ctx context.Context) ([]*runtime.Tensor, error) {
	// Outputs declared as scalars, and float16/bfloat16 outputs, must be
	// pre-allocated: onnxruntime_go cannot wrap such results.
	var inferred *graph.Model
	for i, o := range s.outputs {
		s.outVals[i] = nil
		shape := o.Shape
		if isHalf(o.DType) && !static(shape) {
			if inferred == nil {
				var err error
				if inferred, err = s.inferHalf(); err != nil {
					s.dropOutputs()
					return nil, err
				}
			}
			shape = nil
			if v := inferred.Graph.Outputs[i]; v.HasShape {
				if st, ok := v.Shape.Static(); ok {
					shape = st
				}
			}
			if shape == nil {
				s.dropOutputs()
				return nil, fmt.Errorf("ort: output %q: the shape of this %s output cannot be worked out before the run, and onnxruntime_go cannot return %s outputs it has to size itself", o.Name, o.DType, o.DType)
			}
		}
		if shape != nil && (len(shape) == 0 || isHalf(o.DType)) && o.DType != graph.String {
			sl, err := newSlot(o.DType, shape)
			if err != nil {
				return nil, fmt.Errorf("ort: output %q: %w", o.Name, err)
			}
			s.outSlots[i] = sl
			s.outVals[i] = sl.v
		}
	}
	err := s.run(ctx)
	if err != nil {
		s.freeAuto()
		s.dropOutputs()
		if strings.Contains(err.Error(), "ZeroShapeLength") || strings.Contains(err.Error(), "at least one dimension") {
			return nil, fmt.Errorf("%w (an output without a declared shape is a scalar, which onnxruntime_go cannot return)", err)
		}
		return nil, err
	}
	rerun := false
	for i, v := range s.outVals {
		if s.outSlots[i] != nil || v == nil {
			continue
		}
		if _, isStr := v.(*ortgo.StringTensor); isStr {
			continue // read by collect, then released
		}
		sl, dt, shape, ok := adopt(v)
		if ok {
			s.outSlots[i] = sl
			continue
		}
		v.Destroy()
		s.outVals[i] = nil
		sl, err := newSlot(dt, shape)
		if err != nil {
			s.freeAuto()
			s.dropOutputs()
			return nil, fmt.Errorf("ort: output %q: %w", s.outputs[i].Name, err)
		}
		s.outSlots[i] = sl
		s.outVals[i] = sl.v
		rerun = true
	}
	if rerun {
		s.freeAuto()
		for i, sl := range s.outSlots {
			if sl != nil {
				s.outVals[i] = sl.v
			}
		}
		if err := s.run(ctx); err != nil {
			s.freeAuto()
			s.dropOutputs()
			return nil, err
		}
	}
	s.outReady = true
	return s.collect()
}

func isHalf(dt graph.DType) bool { return dt == graph.Float16 || dt == graph.BFloat16 }

func static(shape []int64) bool {
	if shape == nil {
		return false
	}
	for _, d := range shape {
		if d < 0 {
			return false
		}
	}
	return true
}

// inferHalf infers output shapes for the current input shapes.
func (s *Session) inferHalf() (*graph.Model, error) {
	if s.halfModel == nil {
		return nil, fmt.Errorf("ort: internal error: no model to infer float16 output shapes")
	}
	m := s.halfModel.Clone()
	fixed := map[string][]int64{}
	for i, in := range s.inputs {
		if sl := s.inSlots[i]; sl != nil {
			fixed[in.Name] = sl.shape
		}
	}
	if _, err := graph.InferShapes(m, graph.InferOptions{Fixed: fixed}); err != nil {
		return nil, fmt.Errorf("ort: inferring output shapes: %w", err)
	}
	return m, nil
}

// freeAuto releases outputs ORT allocated that the session did not adopt.
func (s *Session) freeAuto() {
	for i, v := range s.outVals {
		if v != nil && !isNil(v) && s.outSlots[i] == nil {
			v.Destroy()
		}
		s.outVals[i] = nil
	}
}

// isNil catches a typed nil inside a Value (onnxruntime_go can store one
// when it fails to wrap an output).
func isNil(v ortgo.Value) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// collect fills the output tensors from the output buffers.
func (s *Session) collect() ([]*runtime.Tensor, error) {
	for i, sl := range s.outSlots {
		if sl != nil {
			if sl.scalar {
				sl.store()
			}
			s.outs[i] = sl.tensor(s.outs[i])
			continue
		}
		v := s.outVals[i]
		st, ok := v.(*ortgo.StringTensor)
		if !ok {
			s.freeAuto()
			return nil, fmt.Errorf("ort: output %q: ONNX Runtime returned no tensor", s.outputs[i].Name)
		}
		strs, err := st.GetContents()
		shape := []int64(st.GetShape())
		st.Destroy()
		s.outVals[i] = nil
		if err != nil {
			s.freeAuto()
			return nil, fmt.Errorf("ort: output %q: %w", s.outputs[i].Name, err)
		}
		s.outs[i] = &runtime.Tensor{DType: graph.String, Shape: shape, Strings: strs}
	}
	return s.outs, nil
}

// checkNCHWcBlock refuses a model whose com.microsoft.nchwc filters were
// laid out for another CPU's block size (recorded by optimize --nchwc in
// metadata): ORT would run it without complaint and compute wrong results.
func checkNCHWcBlock(m *graph.Model) error {
	for _, kv := range m.Metadata {
		if kv.Key != runtime.NCHWcMetadataKey {
			continue
		}
		host := runtime.HostNCHWcBlock()
		if kv.Value != strconv.Itoa(host) {
			have := "no NCHWc kernels known to optictl"
			if host > 0 {
				have = "block " + strconv.Itoa(host)
			}
			// This CPU cannot run the model (a capability limit, not a
			// broken model): verification falls back to another backend.
			return &runtime.UnsupportedError{Domain: "com.microsoft.nchwc", Reason: fmt.Sprintf("ort: the model was optimized for ONNX Runtime's NCHWc block size %s (metadata %s) but this CPU has %s: "+
				"its convolutions would compute wrong results here; optimize the original model again on this machine "+
				"(optictl optimize -O3 --target ort-cpu --nchwc auto) or without --nchwc", kv.Value, kv.Key, have)}
		}
	}
	return nil
}
