// Package numerics is optictl's one numerics vocabulary: what "verified"
// means and how the data that verifies is made. optimize, compare, run,
// bench, quant and conformance all use it, so one meaning holds everywhere.
//
//   - Tolerance and Compare: the one allclose check (|got-ref| <= ATol +
//     RTol*|ref|, NaN only where the reference has NaN, exact for integer,
//     bool and string outputs) with per-output error metrics (Diff).
//   - Seeded: seeded inputs with one range policy (see SeedIntRange):
//     floats uniform in [-1, 1), integers in [0, 4), bools fair, strings
//     "s0".."s9"; bounded by --max-memory (DefaultMaxMemory) before any
//     allocation, with an error naming the input and shape.
//   - Dims and ResolveShapes: the one shape resolver; dynamic dims come
//     from the data the command has (Dims.Shapes) when it has any.
//   - VerifyDims: representative shapes (batch 1 and 2, spatial dims that
//     every stride divides) for checking a model without data.
//   - ParseShapeFlags and ParseBytes: the --shape and --max-memory syntax
//     of every command.
//   - Accuracy and AccuracyMeter: agreement metrics (top-1, cosine, SQNR,
//     max error, IoU of binarized maps) of a variant against a reference;
//     top-1 only for class vectors, IoU only for [0, 1] outputs.
//   - Metric, ChooseMetric, Budget: the accuracy metric that fits an
//     output's shape (top1 with labels, agreement for class vectors, iou@T
//     for probability maps, cosine otherwise; sqnr on request) and the
//     budget a compressed model must keep (DefaultBudget always applies).
//   - half (a sub-package without project imports): float16 and bfloat16
//     conversion.
//
// Invariants: the same inputs, dims and seed give the same tensors; nothing
// here panics on a user's shapes (sizes are checked before allocating).
package numerics
