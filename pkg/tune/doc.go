// Package tune searches a model's variants (optimization levels, targets,
// quantization recipes, structured pruning with reconstruction and
// distillation recovery) across the backends that can run them and reports
// the latency–accuracy frontier: what `optictl tune` prints, writes as
// JSON, plots and hands to `optictl serve`.
//
// Invariants:
//   - Every candidate model is produced by the library functions optimize
//     uses (passes.Optimize with numeric verification, the quant recipe
//     registry) and written to OUTDIR/candidates/<variant>.onnx; a variant
//     that fails verification or quantizes nothing is skipped with a reason,
//     never measured.
//   - Latency is measured by bench.Run, each candidate interleaved with the
//     baseline (the original model on the same backend, threads and batch)
//     when that backend can run the original.
//   - Accuracy is always measured against the original model's outputs on
//     the same samples (--data, else calibration samples held out from
//     calibration, else seeded inputs), and the report says which.
//   - A measurement is cached under OUTDIR/cache keyed by the sha256 of the
//     candidate's bytes, its recipe, backend and settings; a rerun reuses it
//     instead of measuring again.
//   - Nothing is dropped unmeasured without a stated reason in the report's
//     skipped list; cheap estimates (graph.Cost dominance among variants
//     that compute the same function, the per-layer int8 profile on ort)
//     only drop what they show cannot be faster.
//   - chosen is re-measured by bench against the original after the
//     search, and the report gives both speedups (chosen_remeasured).
package tune
