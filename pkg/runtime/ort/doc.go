// Package ort is the "ort" runtime backend: it runs models with ONNX
// Runtime through cgo (github.com/yalue/onnxruntime_go), so every operator
// ONNX Runtime knows runs, com.microsoft contrib ops included.
//
// The shared library is found at the first Open, in this order:
//
//  1. runtime.Options.ORTLib (optictl's --ort-lib);
//  2. $ONNXRUNTIME_SHARED_LIBRARY_PATH;
//  3. the cache that "make setup" fills: $OPTICTL_ORT_CACHE, then
//     .cache/ort/<version>/ found by walking up from the executable and
//     from the working directory to the module root;
//  4. an installed Python onnxruntime (site-packages/onnxruntime/capi/);
//  5. /usr/local/lib, /usr/lib, /usr/lib/x86_64-linux-gnu, /usr/lib64.
//
// An explicit path (1, 2) is used or reported, never skipped; a library
// found by the search that is too old (the C API 24 of ONNX Runtime >= 1.24
// is needed) is named in the error with its version when nothing better is
// found.
//
// Invariants:
//   - ONNX Runtime's environment is process-global: it is created once, on
//     the first Open, and lives until the process exits. One process loads
//     one library; asking for a different one later is an error.
//   - Every ONNX Runtime object a session creates is released by
//     Session.Close; callers never see Destroy.
//   - Inputs are copied into buffers the session owns; outputs are returned
//     in buffers the session owns and reuses while input shapes stay the
//     same (no allocation per Run once warm; see the runtime package's
//     buffer contract). Strings are the exception and are copied.
//   - Run checks ctx before it starts and, for a context that can be
//     cancelled, asks ONNX Runtime to terminate the running call when ctx
//     is done (RunOptions terminate flag); ONNX Runtime checks that flag
//     between nodes, so a single long kernel is not interrupted.
//   - With Options.IOBinding, runs go through an OrtIoBinding made at the
//     first Run of each set of input shapes and reused while they stay the
//     same: on the CPU the session's own input and output buffers are bound
//     (no copies at all); on cuda/tensorrt the bound buffers live in GPU
//     memory (allocated by the session's CUDA allocator), inputs are copied
//     in and outputs out with cudaMemcpy. RunBound reruns on the bound
//     inputs with no copy (bench --io-binding). The first Run of a new
//     shape runs twice (once to size the outputs, once bound), so every
//     output a bound session returns comes from a bound run. String
//     tensors are refused.
//     onnxruntime_go v1.27 lacks device memory info and run options for
//     I/O binding, so iobinding.go calls ORT's C API (OrtApi) directly.
//   - MaxMemory bounds only the model's weights (checked at Open); ONNX
//     Runtime's own arena for activations is not bounded by it.
//
// Without cgo the backend is still registered, and Open explains that it
// needs a cgo build.
package ort
