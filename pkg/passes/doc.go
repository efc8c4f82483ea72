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
// Each pass lives in a file named after it, or after its small family
// (fuse_conv.go holds fuse-conv-batchnorm, -mul and -add); Pass.File
// records it and `optictl passes` prints it. Each rewrite file opens with
// its contract: "Before: ... After: ..." and its preconditions.
//
// A fusion is a rule (rule.go): Match, built on the shared matchers of
// pkg/graph/pattern (the interp backend's open-time fusions use the same
// ones) plus the pass's own preconditions, returns a match or a
// *pattern.Mismatch saying why the candidate does not fit; Apply rewrites.
// With Options.Explain naming the pass, the mismatches of its last run are
// reported per candidate node (PassStat.Misses, `optimize --explain`).
package passes
