// Package passes rewrites a graph.Model into a faster one that computes the
// same thing, and checks that it does.
//
// A pass is a declared value (Pass: Name, Doc, Level, Requires, Run), in the
// style of golang.org/x/tools/go/analysis. Every built-in pass is listed
// once in the pipeline table (pipeline.go), which fixes the order per
// optimization level; the ordering constraints and their reasons sit next to
// the table and are checked when the package initialises.
//
// Optimize runs the pipeline in a bounded fixed-point loop. Before each pass
// the model is cloned (weights are shared, so this is cheap); after each pass
// that reports a change the model must still pass graph.Model.Verify and
// keep its graph inputs and outputs. With Options.Verify the final model
// must also produce the same outputs as the original on seeded inputs
// (reference outputs computed once, before any pass). When it does not, or
// cannot be run, the pipeline is replayed from the original with that
// numeric check after every pass that changed something
// (Options.VerifyEachPass asks for this from the start). A pass that breaks
// any check, returns an error or panics is rolled back and reported by name.
//
// Verification runs models of more than 16 MB of weights in segments of
// bounded weight size, one short-lived session each (segment.go), so that
// a verification session never needs a second copy of all the weights.
//
// Invariants every pass keeps:
//   - graph inputs and outputs are never renamed, removed or retyped;
//   - nodes of domains a pass does not know are left untouched;
//   - a value read inside an If/Loop/Scan body counts as used
//     (graph.Graph.Consumers);
//   - weights are never edited in place (graph.Tensor.Raw is immutable): a
//     rewrite makes new tensors;
//   - when a precondition of a rewrite fails, the rewrite does not fire.
//
// Each rewrite file opens with its contract: "Before: ... After: ..." and
// its preconditions.
package passes
