//go:build cgo

package ort

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// onnxruntime_go v1.27 wraps OrtIoBinding but not OrtApi's memory-info,
// allocator, BindOutputToDevice or RunWithBinding-with-run-options calls,
// and it cannot create a tensor in device memory. These call OrtApi
// directly. OrtApi is a struct of function pointers that only grows at its
// end (ONNX Runtime's ABI promise), so a member is reached by its index;
// the indices are those of onnxruntime_c_api.h for C API 24 (checked by
// TestOrtApiIndices against the header onnxruntime_go ships).
enum {
	OX_GetErrorMessage = 2,
	OX_CreateTensorAsOrtValue = 48,
	OX_GetTensorMutableData = 51,
	OX_CreateMemoryInfo = 68,
	OX_MemoryInfoGetName = 71,
	OX_ReleaseStatus = 93,
	OX_ReleaseMemoryInfo = 94,
	OX_ReleaseValue = 96,
	OX_CreateAllocator = 131,
	OX_ReleaseAllocator = 132,
	OX_RunWithBinding = 133,
	OX_CreateIoBinding = 134,
	OX_ReleaseIoBinding = 135,
	OX_BindInput = 136,
	OX_BindOutput = 137,
	OX_ClearBoundInputs = 141,
	OX_ClearBoundOutputs = 142,
	OX_SynchronizeBoundInputs = 202,
	OX_SynchronizeBoundOutputs = 203,
};

typedef void *ox_status;
static void *const *ox_api = NULL;

typedef struct {
	const void *(*GetApi)(uint32_t version);
	const char *(*GetVersionString)(void);
} ox_api_base;

// ox_init finds OrtApi in the library the process already loaded.
static char *ox_init(const char *path, uint32_t version) {
	if (ox_api != NULL) return NULL;
	void *h = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
	if (h == NULL) h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	if (h == NULL) {
		const char *e = dlerror();
		return strdup(e ? e : "dlopen failed");
	}
	const ox_api_base *(*f)(void) = (const ox_api_base *(*)(void))dlsym(h, "OrtGetApiBase");
	if (f == NULL || f() == NULL) return strdup("no OrtGetApiBase");
	const void *api = f()->GetApi(version);
	if (api == NULL) return strdup("the library lacks the needed C API version");
	ox_api = (void *const *)api;
	return NULL;
}

// ox_err turns a status into a malloc'd message (NULL for success).
static char *ox_err(ox_status st) {
	if (st == NULL) return NULL;
	const char *(*msg)(ox_status) = (const char *(*)(ox_status))ox_api[OX_GetErrorMessage];
	char *out = strdup(msg(st));
	((void (*)(ox_status))ox_api[OX_ReleaseStatus])(st);
	return out;
}

static char *ox_create_memory_info(const char *name, int alloc_type, int device, void **out) {
	return ox_err(((ox_status(*)(const char *, int, int, int, void **))ox_api[OX_CreateMemoryInfo])(name, alloc_type, device, 0, out));
}
static char *ox_memory_info_name(void *info, const char **out) {
	return ox_err(((ox_status(*)(void *, const char **))ox_api[OX_MemoryInfoGetName])(info, out));
}
static void ox_release_memory_info(void *p) { ((void (*)(void *))ox_api[OX_ReleaseMemoryInfo])(p); }
static char *ox_create_allocator(void *session, void *info, void **out) {
	return ox_err(((ox_status(*)(void *, void *, void **))ox_api[OX_CreateAllocator])(session, info, out));
}
static void ox_release_allocator(void *p) { ((void (*)(void *))ox_api[OX_ReleaseAllocator])(p); }
static char *ox_create_tensor(void *alloc, const int64_t *shape, size_t rank, int dtype, void **out) {
	return ox_err(((ox_status(*)(void *, const int64_t *, size_t, int, void **))ox_api[OX_CreateTensorAsOrtValue])(alloc, shape, rank, dtype, out));
}
static char *ox_tensor_data(void *value, void **out) {
	return ox_err(((ox_status(*)(void *, void **))ox_api[OX_GetTensorMutableData])(value, out));
}
static void ox_release_value(void *p) { ((void (*)(void *))ox_api[OX_ReleaseValue])(p); }
static char *ox_create_io_binding(void *session, void **out) {
	return ox_err(((ox_status(*)(void *, void **))ox_api[OX_CreateIoBinding])(session, out));
}
static void ox_release_io_binding(void *p) { ((void (*)(void *))ox_api[OX_ReleaseIoBinding])(p); }
static char *ox_bind_input(void *b, const char *name, void *value) {
	return ox_err(((ox_status(*)(void *, const char *, void *))ox_api[OX_BindInput])(b, name, value));
}
static char *ox_bind_output(void *b, const char *name, void *value) {
	return ox_err(((ox_status(*)(void *, const char *, void *))ox_api[OX_BindOutput])(b, name, value));
}
static void ox_clear_bindings(void *b) {
	((void (*)(void *))ox_api[OX_ClearBoundInputs])(b);
	((void (*)(void *))ox_api[OX_ClearBoundOutputs])(b);
}
static char *ox_sync_inputs(void *b) { return ox_err(((ox_status(*)(void *))ox_api[OX_SynchronizeBoundInputs])(b)); }
static char *ox_sync_outputs(void *b) { return ox_err(((ox_status(*)(void *))ox_api[OX_SynchronizeBoundOutputs])(b)); }
static char *ox_run_with_binding(void *session, void *run_options, void *b) {
	return ox_err(((ox_status(*)(void *, void *, void *))ox_api[OX_RunWithBinding])(session, run_options, b));
}

// CUDA copies: libcudart is loaded by ONNX Runtime's CUDA provider
// (RTLD_NOLOAD finds it); dlopen by name is the fallback.
static int (*ox_cuda_memcpy)(void *, const void *, size_t, int) = NULL;
static const char *(*ox_cuda_error_string)(int) = NULL;
static char *ox_cuda_init(void) {
	if (ox_cuda_memcpy != NULL) return NULL;
	const char *names[] = {"libcudart.so.13", "libcudart.so.12", "libcudart.so"};
	void *h = NULL;
	for (int i = 0; i < 3 && h == NULL; i++) h = dlopen(names[i], RTLD_LAZY | RTLD_NOLOAD);
	for (int i = 0; i < 3 && h == NULL; i++) h = dlopen(names[i], RTLD_LAZY | RTLD_LOCAL);
	if (h == NULL) return strdup("libcudart.so.13 is not loaded and cannot be opened");
	ox_cuda_memcpy = (int (*)(void *, const void *, size_t, int))dlsym(h, "cudaMemcpy");
	ox_cuda_error_string = (const char *(*)(int))dlsym(h, "cudaGetErrorString");
	if (ox_cuda_memcpy == NULL) return strdup("libcudart has no cudaMemcpy");
	return NULL;
}
// kind: 1 host to device, 2 device to host (cudaMemcpyKind).
static char *ox_cuda_copy(void *dst, const void *src, size_t n, int kind) {
	int rc = ox_cuda_memcpy(dst, src, n, kind);
	if (rc == 0) return NULL;
	const char *s = ox_cuda_error_string ? ox_cuda_error_string(rc) : "cuda error";
	return strdup(s ? s : "cuda error");
}
*/
import "C"

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"unsafe"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/optictl/optictl/pkg/graph"
)

// oxIndices are the OrtApi member indices the C code above uses, by
// name (TestOrtApiIndices checks them against onnxruntime_c_api.h).
var oxIndices = map[string]int{
	"GetErrorMessage": C.OX_GetErrorMessage, "CreateTensorAsOrtValue": C.OX_CreateTensorAsOrtValue,
	"GetTensorMutableData": C.OX_GetTensorMutableData, "CreateMemoryInfo": C.OX_CreateMemoryInfo,
	"MemoryInfoGetName": C.OX_MemoryInfoGetName, "ReleaseStatus": C.OX_ReleaseStatus,
	"ReleaseMemoryInfo": C.OX_ReleaseMemoryInfo, "ReleaseValue": C.OX_ReleaseValue,
	"CreateAllocator": C.OX_CreateAllocator, "ReleaseAllocator": C.OX_ReleaseAllocator,
	"RunWithBinding": C.OX_RunWithBinding, "CreateIoBinding": C.OX_CreateIoBinding,
	"ReleaseIoBinding": C.OX_ReleaseIoBinding, "BindInput": C.OX_BindInput, "BindOutput": C.OX_BindOutput,
	"ClearBoundInputs": C.OX_ClearBoundInputs, "ClearBoundOutputs": C.OX_ClearBoundOutputs,
	"SynchronizeBoundInputs": C.OX_SynchronizeBoundInputs, "SynchronizeBoundOutputs": C.OX_SynchronizeBoundOutputs,
}

// cErr converts a malloc'd C message into an error (nil for NULL).
func cErr(msg *C.char, what string) error {
	if msg == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(msg))
	return fmt.Errorf("ort: io binding: %s: %s", what, C.GoString(msg))
}

var apiOnce struct {
	sync.Mutex
	err  error
	done bool
}

// initAPI makes OrtApi reachable from the library the environment loaded.
func initAPI() error {
	apiOnce.Lock()
	defer apiOnce.Unlock()
	if apiOnce.done {
		return apiOnce.err
	}
	path, _, _ := LoadedLibrary()
	if path == "" {
		return fmt.Errorf("ort: io binding: ONNX Runtime is not loaded yet")
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	apiOnce.err = cErr(C.ox_init(cpath, C.uint32_t(cAPIVersion)), "finding OrtApi in "+path)
	apiOnce.done = true
	return apiOnce.err
}

// internalPtr reads the C pointer onnxruntime_go keeps in an unexported
// field (path: field names from v). onnxruntime_go v1.27 exposes no getter
// for the OrtSession, OrtRunOptions or OrtValue pointers that the OrtApi
// calls here need; a renamed field is reported, never guessed.
func internalPtr(v any, path ...string) (unsafe.Pointer, error) {
	rv := reflect.ValueOf(v)
	for _, name := range path {
		for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
			if rv.IsNil() {
				return nil, fmt.Errorf("ort: io binding: nil %s on the way to %v", rv.Type(), path)
			}
			rv = rv.Elem()
		}
		if rv.Kind() != reflect.Struct {
			return nil, fmt.Errorf("ort: io binding: %s is not a struct (onnxruntime_go internals changed; io binding needs v1.27)", rv.Type())
		}
		f := rv.FieldByName(name)
		if !f.IsValid() {
			return nil, fmt.Errorf("ort: io binding: %s has no field %s (onnxruntime_go internals changed; io binding needs v1.27)", rv.Type(), name)
		}
		rv = f
	}
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil, fmt.Errorf("ort: io binding: %v is not a live pointer", path)
	}
	return rv.UnsafePointer(), nil
}

func valuePtr(v ortgo.Value) (unsafe.Pointer, error) {
	return internalPtr(v.GetInternals(), "ortValue")
}

// bindAllocated makes the session bind buffers that ONNX Runtime allocates
// in the device's memory (and copy the inputs in and the outputs out), as
// on cuda, also on the CPU. Tests set it to run the device path with CPU
// memory; on the CPU the session otherwise binds its own Go buffers.
var bindAllocated = false

// binding is a session's OrtIoBinding with everything bound to it.
type binding struct {
	session, runOpts unsafe.Pointer
	io               unsafe.Pointer // OrtIoBinding*
	names            []*C.char      // inputs, then outputs

	// Host path (cpu): the session's own buffers are bound; boundIn is
	// what each input is bound to (scalars get a new value on change).
	boundIn []ortgo.Value

	// Device path (cuda, or bindAllocated): buffers from the session's
	// allocator for mem; inputs are copied in and outputs out.
	cuda            bool
	mem, alloc      unsafe.Pointer
	devIn, devOut   []unsafe.Pointer // OrtValue*
	dataIn, dataOut []unsafe.Pointer // their data
	sizeIn, sizeOut []int
}

// newBinding binds the session's current input and output slots. The
// output slots must be sized (after a first run).
func (s *Session) newBinding() (b *binding, err error) {
	if err := initAPI(); err != nil {
		return nil, err
	}
	b = &binding{}
	defer func() {
		if err != nil {
			b.destroy()
			b = nil
		}
	}()
	if b.session, err = internalPtr(s.sess, "s", "ortSession"); err != nil {
		return nil, err
	}
	if b.runOpts, err = internalPtr(s.runOpts, "o"); err != nil {
		return nil, err
	}
	var io unsafe.Pointer
	if err := cErr(C.ox_create_io_binding(b.session, &io), "creating the binding"); err != nil {
		return nil, err
	}
	b.io = io
	for _, in := range s.inputs {
		b.names = append(b.names, C.CString(in.Name))
	}
	for _, o := range s.outputs {
		b.names = append(b.names, C.CString(o.Name))
	}
	b.cuda = s.onCUDA()
	if b.cuda || bindAllocated {
		err = b.bindDevice(s, s.deviceID)
	} else {
		err = b.bindHost(s)
	}
	return b, err
}

func (b *binding) bindHost(s *Session) error {
	b.boundIn = make([]ortgo.Value, len(s.inVals))
	for i, v := range s.inVals {
		if err := b.bindIn(i, v); err != nil {
			return err
		}
	}
	for i, sl := range s.outSlots {
		if sl == nil {
			return fmt.Errorf("ort: io binding: output %q has no fixed buffer to bind (a string output)", s.outputs[i].Name)
		}
		p, err := valuePtr(sl.v)
		if err != nil {
			return err
		}
		if err := cErr(C.ox_bind_output(b.io, b.names[len(s.inputs)+i], p), "binding output "+s.outputs[i].Name); err != nil {
			return err
		}
	}
	return nil
}

func (b *binding) bindIn(i int, v ortgo.Value) error {
	p, err := valuePtr(v)
	if err != nil {
		return err
	}
	if err := cErr(C.ox_bind_input(b.io, b.names[i], p), fmt.Sprintf("binding input %d", i)); err != nil {
		return err
	}
	b.boundIn[i] = v
	return nil
}

func (b *binding) bindDevice(s *Session, device int) error {
	name, kind := "Cpu", "the CPU"
	if b.cuda {
		name, kind = "Cuda", fmt.Sprintf("CUDA device %d", device)
		if err := cErr(C.ox_cuda_init(), "loading cudaMemcpy"); err != nil {
			return err
		}
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var mem, alloc unsafe.Pointer
	// OrtArenaAllocator, as ONNX Runtime's own CUDA I/O binding examples.
	if err := cErr(C.ox_create_memory_info(cname, 1, C.int(device), &mem), "memory info for "+kind); err != nil {
		return err
	}
	b.mem = mem
	if err := cErr(C.ox_create_allocator(b.session, b.mem, &alloc), "the session's allocator for "+kind); err != nil {
		return err
	}
	b.alloc = alloc
	newValue := func(dt graph.DType, shape []int64, what string) (unsafe.Pointer, unsafe.Pointer, int, error) {
		if dt == graph.String {
			return nil, nil, 0, fmt.Errorf("ort: io binding: %s is a string tensor, which cannot live in %s memory", what, name)
		}
		n, err := graph.NumElements(shape)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("ort: io binding: %s: %w", what, err)
		}
		var cshape *C.int64_t
		if len(shape) > 0 {
			cshape = (*C.int64_t)(C.malloc(C.size_t(8 * len(shape))))
			defer C.free(unsafe.Pointer(cshape))
			copy(unsafe.Slice((*int64)(unsafe.Pointer(cshape)), len(shape)), shape)
		}
		var v, data unsafe.Pointer
		if err := cErr(C.ox_create_tensor(b.alloc, cshape, C.size_t(len(shape)), C.int(dt), &v), "allocating "+what+" in "+kind+" memory"); err != nil {
			return nil, nil, 0, err
		}
		size := dt.ByteSize(n)
		if size > 0 {
			if err := cErr(C.ox_tensor_data(v, &data), "the data of "+what); err != nil {
				C.ox_release_value(v)
				return nil, nil, 0, err
			}
		}
		return v, data, int(size), nil
	}
	for i, sl := range s.inSlots {
		what := fmt.Sprintf("input %q", s.inputs[i].Name)
		v, data, size, err := newValue(sl.dt, sl.shape, what)
		if err != nil {
			return err
		}
		b.devIn, b.dataIn, b.sizeIn = append(b.devIn, v), append(b.dataIn, data), append(b.sizeIn, size)
		if size != len(sl.raw) {
			return fmt.Errorf("ort: io binding: %s: %d bytes on the device, %d on the host", what, size, len(sl.raw))
		}
		if err := cErr(C.ox_bind_input(b.io, b.names[i], v), "binding "+what); err != nil {
			return err
		}
	}
	for i, sl := range s.outSlots {
		what := fmt.Sprintf("output %q", s.outputs[i].Name)
		if sl == nil {
			return fmt.Errorf("ort: io binding: %s has no fixed shape to allocate (a string output)", what)
		}
		v, data, size, err := newValue(sl.dt, sl.shape, what)
		if err != nil {
			return err
		}
		b.devOut, b.dataOut, b.sizeOut = append(b.devOut, v), append(b.dataOut, data), append(b.sizeOut, size)
		if size != len(sl.raw) {
			return fmt.Errorf("ort: io binding: %s: %d bytes on the device, %d on the host", what, size, len(sl.raw))
		}
		if err := cErr(C.ox_bind_output(b.io, b.names[len(s.inputs)+i], v), "binding "+what); err != nil {
			return err
		}
	}
	return nil
}

// copyIn puts the session's input slots into the bound buffers.
func (b *binding) copyIn(s *Session) error {
	if b.devIn == nil {
		for i, v := range s.inVals {
			if v != b.boundIn[i] { // a scalar whose value changed
				if err := b.bindIn(i, v); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for i, sl := range s.inSlots {
		if b.sizeIn[i] == 0 {
			continue
		}
		src := unsafe.Pointer(unsafe.SliceData(sl.raw))
		if b.cuda {
			if err := cErr(C.ox_cuda_copy(b.dataIn[i], src, C.size_t(b.sizeIn[i]), 1), "copying input "+s.inputs[i].Name+" to the GPU"); err != nil {
				return err
			}
		} else {
			C.memcpy(b.dataIn[i], src, C.size_t(b.sizeIn[i]))
		}
	}
	if b.cuda {
		return cErr(C.ox_sync_inputs(b.io), "synchronizing inputs")
	}
	return nil
}

// copyOut puts the bound outputs into the session's output slots.
func (b *binding) copyOut(s *Session) error {
	if b.devOut == nil {
		return nil
	}
	for i, sl := range s.outSlots {
		if b.sizeOut[i] == 0 {
			continue
		}
		dst := unsafe.Pointer(unsafe.SliceData(sl.raw))
		if b.cuda {
			if err := cErr(C.ox_cuda_copy(dst, b.dataOut[i], C.size_t(b.sizeOut[i]), 2), "copying output "+s.outputs[i].Name+" from the GPU"); err != nil {
				return err
			}
		} else {
			C.memcpy(dst, b.dataOut[i], C.size_t(b.sizeOut[i]))
		}
	}
	return nil
}

// run runs the session on what is bound (RunWithBinding with the
// session's run options, so cancellation works as in Run).
func (b *binding) run() error {
	if err := cErr(C.ox_run_with_binding(b.session, b.runOpts, b.io), "run"); err != nil {
		return err
	}
	if b.cuda {
		return cErr(C.ox_sync_outputs(b.io), "synchronizing outputs")
	}
	return nil
}

func (b *binding) destroy() {
	if b == nil {
		return
	}
	if b.io != nil {
		C.ox_clear_bindings(b.io)
		C.ox_release_io_binding(b.io)
		b.io = nil
	}
	for _, v := range append(b.devIn, b.devOut...) {
		if v != nil {
			C.ox_release_value(v)
		}
	}
	b.devIn, b.devOut = nil, nil
	if b.alloc != nil {
		C.ox_release_allocator(b.alloc)
		b.alloc = nil
	}
	if b.mem != nil {
		C.ox_release_memory_info(b.mem)
		b.mem = nil
	}
	for _, n := range b.names {
		C.free(unsafe.Pointer(n))
	}
	b.names = nil
	b.boundIn = nil
}

// memoryName reports the name ONNX Runtime gives the binding's memory
// ("Cpu", "Cuda"), or "" on the host path.
func (b *binding) memoryName() string {
	if b == nil || b.mem == nil {
		return ""
	}
	var p *C.char
	if cErr(C.ox_memory_info_name(b.mem, &p), "memory name") != nil || p == nil {
		return ""
	}
	return C.GoString(p)
}

// runBinding is Run's path with Options.IOBinding once the output shapes
// are known: the inputs (already in the session's slots) go into the
// bound buffers, the session runs on the binding, the outputs come back.
//
// retry is true only for a failed run itself (an output whose shape
// depends on the input values changed, say): Run then finds the output
// shapes again and rebinds. A binding that cannot be made or filled is an
// error of its own, not a reason to fall back to the unbound path.
func (s *Session) runBinding(ctx context.Context) (retry bool, err error) {
	if s.bind == nil {
		b, err := s.newBinding()
		if err != nil {
			return false, err
		}
		s.bind = b
	}
	if err := s.bind.copyIn(s); err != nil {
		return false, err
	}
	if err := s.runBoundCtx(ctx); err != nil {
		return true, err
	}
	return false, s.bind.copyOut(s)
}

// runBoundCtx runs the binding, turning ctx cancellation into ORT's
// terminate flag as run does.
func (s *Session) runBoundCtx(ctx context.Context) error {
	return s.cancellable(ctx, s.bind.run)
}

// onCUDA reports whether the session's buffers live in CUDA memory (cuda,
// and tensorrt, whose inputs and outputs are CUDA memory too).
func (s *Session) onCUDA() bool {
	return strings.HasPrefix(s.device, "cuda:") || strings.HasPrefix(s.device, "tensorrt:")
}

// RunBound runs the model again on the inputs bound by the last Run,
// without copying them in or the outputs out: with --device cuda they
// stay in GPU memory. It needs Options.IOBinding and a successful Run
// before it; the outputs of the last Run are not updated (Run copies them).
// bench --io-binding times this call.
func (s *Session) RunBound(ctx context.Context) error {
	switch {
	case s.closed:
		return fmt.Errorf("ort: session is closed")
	case !s.ioBinding:
		return fmt.Errorf("ort: RunBound needs a session opened with io binding (--io-binding)")
	case s.bind == nil:
		return fmt.Errorf("ort: RunBound needs a successful Run first (it binds the inputs)")
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ort: %w", err)
	}
	return s.runBoundCtx(ctx)
}

// IOBindingMemory reports where the bound buffers live: "" without a
// binding, "host" when the session's own Go buffers are bound (cpu),
// else ONNX Runtime's memory name ("Cuda", or "Cpu" in tests).
func (s *Session) IOBindingMemory() string {
	switch {
	case s.bind == nil:
		return ""
	case s.bind.mem == nil:
		return "host"
	}
	return s.bind.memoryName()
}
