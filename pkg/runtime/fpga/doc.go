// Package fpga registers the "fpga" runtime backend: it lowers a QDQ int8
// model to optictl's streaming dataflow hardware (package
// github.com/optictl/optictl/pkg/fpga) when a session opens, and runs it
// either with the Go model of that hardware (default: bit for bit what
// the RTL computes) or with the Verilator simulation of the generated
// Verilog (provider option fpga_sim=rtl). The input's QuantizeLinear and
// the float ops after the last engine run on the host.
//
// Options (runtime.Options.ProviderOptions, the --provider-option flag):
// fpga_part (xc7z020, xczu7ev, ice40up5k; default xc7z020), fpga_clock
// (MHz, default 100), fpga_folding (a folding JSON file), fpga_target_fps,
// fpga_sim (model or rtl). Sessions report the device's simulated timing
// (runtime.SimulatedTiming): cycles per frame at the clock, never the
// host's wall time.
//
// Invariants: one input, batch 1 (the hardware streams frames one after
// another); the lowered design is cached per model and options, and RTL
// simulators are built once per design in the user cache directory.
package fpga
