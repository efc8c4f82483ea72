// Package fpga generates streaming dataflow hardware for quantized
// networks, in the manner of FINN: one engine per layer, each folded by PE
// (output channels computed in parallel) and SIMD (inputs consumed in
// parallel), connected by ready/valid streams.
//
// This package holds the engines' arithmetic and their three forms, kept
// bit for bit equal:
//
//   - a Go model of the hardware (Forward methods): what the runtime
//     backend executes by default, and the reference the RTL is checked
//     against;
//   - synthesizable Verilog-2005 (Emit methods), weights and per-channel
//     parameters as $readmemh ROM init files;
//   - a Verilator simulation driver (Simulate) that builds the RTL with a
//     generated C++ testbench, streams frames through it and reports the
//     outputs and the measured cycles (initiation interval and latency).
//
// Requantization (Requant) maps an int32 accumulator to an 8-bit output
// exactly as ONNX QuantizeLinear specifies for the real-valued product
// acc·M (round half to even, add the zero point, saturate), using only a
// fixed-point multiplier and an arithmetic shift. NewRequant proves the
// equality for every accumulator value in the layer's reachable range by
// checking the output-level thresholds with exact rational arithmetic:
// both functions are monotone in acc, so agreeing on each side of every
// threshold means agreeing everywhere.
//
// Invariants: a folding is valid only when PE divides MH and SIMD divides
// MW (Fold.Check names the valid values otherwise); cycles per frame of an
// MVAU are (MH/PE)·(MW/SIMD), FINN's formula, and the simulation measures
// exactly that initiation interval. A VVAU (depthwise Conv) is described
// by an MVAU of MH channels and rows of K·K taps, so lowering and the
// requantizer proof treat both alike; its cycles per window are FINN's
// (C/PE)·(K·K/SIMD), and SIMD > 1 needs PE = C (the window stream keeps a
// tap's channels together). An average pool sums each window and
// requantizes the sum with the mean's 1/N in the multiplier (PoolRequant:
// the exact rational sx/(N·sy) wherever a fixed point reproduces it).
// A residual block is one stage (Residual) holding its body as a
// pipeline, so the top stays a chain: its input forks into the body and
// a bypass FIFO a frame deep (the body may take up to a frame of latency
// without a stall), and AddRequant, checked on every input pair, joins
// them. Every requantizing engine emits its per-channel stage through
// one helper (chanRTL), so the Verilog of the requantizer exists once.
package fpga
