// Package serve is optictl's inference server: the KServe v2 / Open
// Inference Protocol over HTTP/REST (JSON, plus the binary-data extension)
// and gRPC (inference.GRPCInferenceService, with grpc.health.v1), in front
// of runtime.Sessions.
//
// Request path: decode and validate (names, dtypes, shapes, data length,
// non-finite floats) -> response cache lookup (key: model, version and the
// input bytes) -> variant choice (client's request, else the load-aware
// router) -> the variant's bounded queue (full: 429 / RESOURCE_EXHAUSTED at
// once) -> a batcher goroutine per session instance that merges requests
// along the batch dimension for up to MaxQueueDelay -> Run -> split, cache,
// respond. Each response names the variant that answered. A variant that
// never merges requests (MaxBatch 1, or no dynamic batch dim) has no
// batcher: a request waits (within the same queue bound) for an idle
// instance and runs it in its own goroutine, with its deadline handed to
// Session.Run.
//
// The hot path avoids reflection: JSON request headers of the usual shape
// are read by a small scanner (anything else goes to encoding/json, which
// stays the reference for errors), responses are written with strconv into
// pooled buffers, binary inputs borrow the request body until a cache miss
// needs a copy, and metric series are resolved once per model and variant.
//
// Invariants: a request never waits on an unbounded queue; a bad request
// never affects others (validation happens before queueing, kernel panics
// are errors); batched results are exactly the per-request results.
//
// Limits come before allocation (issue 18): a request's claimed shape is
// checked against the model and the body limit (checkInput) and its data's
// count against the shape before a tensor is made; JSON data is decoded
// straight into the tensor and ignored fields are passed over, not kept;
// large gRPC messages are scanned on the wire before protobuf decodes them;
// bodies grow only as bytes arrive, within an in-flight budget. Endpoint
// restrictions are checked before a body is read; on shutdown the server
// drains (not ready, still serving) before it stops accepting.
package serve
