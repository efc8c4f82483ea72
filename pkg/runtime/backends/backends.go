package backends

import (
	_ "github.com/optictl/optictl/pkg/runtime/fpga"   // generated streaming hardware (Go model or Verilator)
	_ "github.com/optictl/optictl/pkg/runtime/interp" // pure Go, every platform
	_ "github.com/optictl/optictl/pkg/runtime/ort"    // ONNX Runtime (cgo; without cgo Open explains)
)
