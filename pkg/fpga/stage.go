package fpga

import "fmt"

// Stage is one engine of a streaming dataflow: it takes a frame as a
// stream of beats of InLanes elements and produces the next frame as
// beats of OutLanes elements. Elements are 8-bit (two's complement when
// signed) except an MVAU's raw accumulator outputs, 32-bit.
type Stage interface {
	StageName() string
	ModuleName() string
	InLanes() int
	OutLanes() int
	OutBits() int
	InIsSigned() bool
	OutIsSigned() bool
	// InFrame and OutFrame are elements per frame.
	InFrame() int
	OutFrame() int
	// EstCycles is the analytical cycles per frame of the engine alone
	// (inputs always available, outputs always taken).
	EstCycles() int
	Check() error
	Emit(Files) error
	// Forward maps one frame, in stream order, exactly as the hardware.
	Forward(frame []int32) ([]int32, error)
}

var (
	_ Stage = (*MVAU)(nil)
	_ Stage = (*SWG)(nil)
	_ Stage = (*MaxPool)(nil)
)

func checkFrame(s Stage, frame []int32) error {
	if len(frame) != s.InFrame() {
		return fmt.Errorf("fpga: %s: frame of %d elements, want %d", s.StageName(), len(frame), s.InFrame())
	}
	return nil
}
