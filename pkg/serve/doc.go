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
// respond. Each response names the variant that answered.
//
// Invariants: a request never waits on an unbounded queue; a bad request
// never affects others (validation happens before queueing, kernel panics
// are errors); batched results are exactly the per-request results.
package serve
