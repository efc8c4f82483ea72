// Package bench measures models side by side: latency distributions,
// throughput under closed- and open-loop load, accuracy against a reference
// model, and CI gates over the results. It talks to models only through
// runtime.Session; `optictl bench` is a thin layer over Run.
//
// # Method
//
//   - The first model is the reference. At each batch/concurrency point the
//     models run in interleaved rounds (A, B, A, B, ...; Config.Rounds,
//     default 5), each round taking 1/Rounds of the iteration or time
//     budget, so machine drift hits every model alike. Warm-up runs
//     (Config.Warmup per session per point) are never timed.
//   - Timed runs repeat one input set per point: the first --data sample
//     (stacked with the next ones for batch > 1) or the seeded inputs.
//   - Closed loop: Concurrency workers, one session each, send the next
//     request when the previous one returns; latency is one Session.Run.
//     Open loop (Rate > 0): requests arrive on a fixed schedule (constant
//     gaps or Poisson) whatever the model's speed and wait for a free
//     worker; latency runs from the scheduled arrival to completion, so
//     queueing counts (perf_analyzer's definition).
//   - Percentiles interpolate linearly between closest ranks (Hyndman and
//     Fan definition 7, NumPy's default): see Percentile. Stddev is the
//     sample standard deviation (n-1); CV = stddev/mean.
//   - The p50 confidence interval is a seeded percentile bootstrap (1000
//     resamples, 95%, by default). A speedup is flagged not significant
//     (speedup_significant false) when the p50 intervals of the variant and
//     the reference overlap.
//   - Throughput is completed inferences over the summed wall time of the
//     model's slices; samples/s multiplies by the batch.
//   - Accuracy runs every model on the same inputs (--data samples, or 8
//     seeded random input sets) and compares with the reference's outputs:
//     top-1 agreement on the first output, max abs error, cosine and SQNR
//     over every numeric output, and with labels top-1 accuracy (the
//     metrics are numerics.AccuracyMeter's; seeded inputs follow numerics'
//     one range policy and --max-memory bound).
//   - Memory: VmHWM is per process, and one process holds every model, so
//     the report gives the process peak plus, per model, the growth of
//     VmRSS while its first session was opened and run once.
//   - Reproducibility: each run's own p50 interval is tight; the spread is
//     between processes. On a 16-vCPU Xeon VM at --threads 1 (5 runs each):
//     interp on MNIST had a p50 CV of 4.6% unpinned and 0.3% pinned to one
//     core (taskset -c 3); ort on ppocr-cls had 14.5% unpinned, 4.8% pinned
//     to core 3 and 18.9% pinned to core 7, because ORT processes settle in
//     one of two modes (p50 about 1.08 or 1.5 ms) for their whole life. Pin
//     to one core, and compare variants within one bench run (interleaved)
//     rather than across runs.
//
// # JSON report (schema_version 1)
//
// --json writes one object:
//
//	{
//	  "schema_version": 1,
//	  "backend": "ort",             // --backend
//	  "device": "cpu",              // --device
//	  "threads": 1,                 // --threads (0: backend default)
//	  "mode": "closed",             // "closed" or "open"
//	  "arrival": "poisson",         // open loop only: "constant" | "poisson"
//	  "rate": 200,                  // open loop only: requests per second
//	  "iterations": 1000,           // per model per point (or duration_s)
//	  "duration_s": 10,
//	  "warmup": 10, "rounds": 5, "seed": 1,
//	  "data": "DIR", "labels": "FILE",   // when given
//	  "host": {"os": "linux", "arch": "amd64", "cpus": 16, "go": "go1.26.0"},
//	  "peak_rss_bytes": 123456789,  // VmHWM of the bench process (all models)
//	  "reference": "model.onnx",    // variant name of the first model
//	  "models": [{
//	    "model": "path/model.onnx", "variant": "model.onnx", "reference": true,
//	    "size_bytes": 1234, "session_rss_bytes": 5678, "device": "cpu",
//	    "accuracy": {...},          // as in results
//	    "accuracy_error": "..."     // when the comparison was impossible
//	  }],
//	  "results": [{                 // one per model per batch/concurrency point
//	    "model": "path/model.onnx",
//	    "variant": "model.onnx",
//	    "reference": false,
//	    "batch": 1,
//	    "concurrency": 1,
//	    "mode": "closed",
//	    "count": 1000,              // timed inferences (warm-up excluded)
//	    "latency_ms": {"min": 0, "mean": 0, "p50": 0, "p90": 0, "p95": 0,
//	                   "p99": 0, "p999": 0, "max": 0, "stddev": 0},
//	    "p50_ci_ms": {"lo": 0, "hi": 0, "level": 0.95},
//	    "cv": 0.03,                 // stddev / mean of the latencies
//	    "throughput_per_s": 0,      // inferences per second
//	    "samples_per_s": 0,         // throughput_per_s x batch
//	    "speedup": 1.5,             // reference p50 / this p50, same point
//	    "speedup_significant": true,// false when the p50 CIs overlap
//	    "size_bytes": 1234,         // model file + external data on disk
//	    "peak_rss_bytes": 0,        // process VmHWM after this point
//	    "accuracy": {               // {} when not measured; fields omitted
//	      "samples": 8,             //   input sets compared
//	      "top1_agreement": 1,      //   argmax equal to the reference's
//	      "max_abs_error": 0,
//	      "cosine": 1,
//	      "sqnr_db": 45.2,          //   omitted when outputs are identical
//	      "top1_accuracy": 0.98,    //   with --labels
//	      "labelled": 100,          //   rows compared with labels
//	      "nonfinite": 0            //   NaN/Inf values in the outputs
//	    }
//	  }],
//	  "gates": [{                   // when gates are given
//	    "gate": "max-p99", "variant": "opt.onnx", "batch": 1,
//	    "concurrency": 1, "measured": 12.5, "limit": 10, "unit": "ms",
//	    "passed": false, "note": ""
//	  }]
//	}
//
// Times are milliseconds. Fields are only added within a schema version.
//
// # Gates
//
// Latency (max-p50, max-p99) and throughput (min-throughput, inferences/s)
// gates apply to every variant at every point (to the reference only when
// it is the sole model); min-speedup and max-accuracy-drop apply to the
// variants. The accuracy drop is in percentage points: the reference's
// top-1 accuracy minus the variant's with labels, else 100 x (1 - top-1
// agreement). A gate on something not measured fails.
package bench
