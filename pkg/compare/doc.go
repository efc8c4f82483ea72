// Package compare checks that two sets of model outputs agree (one model on
// two backends, two models on one backend, or a backend against reference
// files), Polygraphy-style: per output the max absolute and relative error,
// cosine similarity, top-1 agreement for class-like outputs, and a pass/fail
// verdict against numpy.allclose-style tolerances (|a-b| <= atol + rtol*|ref|).
//
// It also holds the non-command logic behind `optictl run` and
// `optictl compare`: binding named input files to a session's inputs,
// seeded random inputs that respect dtypes and fixed dims, listing the ops a
// backend lacks before anything runs, and output summaries.
package compare
