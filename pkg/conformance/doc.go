// Package conformance runs the ONNX node conformance tests (folders holding
// model.onnx and test_data_set_N/{input,output}_K.pb) through any registered
// runtime backend and reports per-op pass / fail / unsupported / error
// counts and the overall pass rate.
//
// Outputs are compared like onnx's backend test runner: |got-want| <=
// atol + rtol*|want| with rtol 1e-3 and atol 1e-7 by default (NaN equals
// NaN, infinities must match exactly), exact equality for integer, bool and
// string outputs. A few tests get wider tolerances, each with its reason, in
// the Overrides table.
//
// A test is attributed to one op: the non-Constant op of its model when
// there is one; otherwise the op whose name the test folder starts with
// (test_reduce_sum_... is ReduceSum), chosen among every op type the suite
// uses, so that function-expanded tests (_expanded) count for the op they
// expand.
//
// Tests run in parallel on at most two workers; each has a timeout, after
// which it is reported as an error and the run goes on (the runaway
// goroutine is abandoned).
package conformance
