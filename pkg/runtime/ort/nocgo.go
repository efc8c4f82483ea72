//go:build !cgo

package ort

import (
	"fmt"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

type backend struct{}

func init() { runtime.Register(backend{}) }

func (backend) Name() string { return "ort" }

func (backend) Capabilities() runtime.Capabilities {
	return runtime.Capabilities{Devices: []string{"cpu", "cuda", "tensorrt"}}
}

func (backend) Open(*graph.Model, runtime.Options) (runtime.Session, error) {
	return nil, fmt.Errorf("ort: the ort backend needs cgo; this optictl was built with CGO_ENABLED=0 (rebuild with CGO_ENABLED=1 and a C compiler, or use --backend interp)")
}

// Load reports that this build cannot load ONNX Runtime.
func Load(explicit string) (path, version, source string, err error) {
	return "", "", "", fmt.Errorf("ort: this optictl was built without cgo and cannot load ONNX Runtime")
}
