package backends

import (
	_ "github.com/optictl/optictl/pkg/runtime/interp" // pure Go, every platform
	_ "github.com/optictl/optictl/pkg/runtime/ort"    // ONNX Runtime (cgo; without cgo Open explains)
)
