// Package compare holds the non-command logic behind `optictl run` and
// `optictl compare`: binding named input files to a session's inputs,
// pairing a data set's reference outputs with the model's outputs (by name,
// else by position; outputs without a reference are listed, not refused),
// listing the ops a backend lacks before anything runs, and output
// summaries.
//
// The comparison itself (tolerances, the allclose verdict, error metrics)
// and seeded inputs live in pkg/numerics, so "verified" means the same in
// compare, optimize and bench.
package compare
