package runtime

import "time"

// SimulatedTimer is implemented by sessions whose device is simulated
// (the fpga backend): the time the device itself takes per inference,
// worked out from simulated clock cycles, which the host's wall time of
// running the simulation says nothing about. Reports show it labelled
// as simulated.
type SimulatedTimer interface {
	// SimulatedTiming is the device's initiation interval (time between
	// successive inferences in a stream: 1/throughput) and latency (one
	// inference, input to output), and a note saying how they were
	// obtained.
	SimulatedTiming() (interval, latency time.Duration, note string)
}
