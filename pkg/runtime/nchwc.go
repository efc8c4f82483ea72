package runtime

import (
	"github.com/optictl/optictl/pkg/graph"
	goruntime "runtime"

	"golang.org/x/sys/cpu"
)

// NCHWcMetadataKey is the model metadata key under which optimize records
// the NCHWc block size a model with com.microsoft.nchwc ops was written
// for (see passes' layout-nchwc).
const NCHWcMetadataKey = graph.NCHWcMetadataKey

// HostNCHWcBlock is the NCHWc block size ONNX Runtime's CPU kernels (MLAS)
// use on this machine: 16 with AVX-512F, 8 with AVX2+FMA; 0 when this
// package knows of none (an NCHWc model must not run here then).
func HostNCHWcBlock() int {
	if goruntime.GOARCH != "amd64" {
		return 0
	}
	switch {
	case cpu.X86.HasAVX512F:
		return 16
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return 8
	}
	return 0
}
