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

// Capabilities are those of the cgo build: the flags parse and validate the
// same way, and Open explains that this build cannot run ONNX Runtime.
func (backend) Capabilities() runtime.Capabilities { return capabilities(false) }

func (backend) Open(*graph.Model, runtime.Options) (runtime.Session, error) {
	return nil, fmt.Errorf("ort: the ort backend needs cgo; this optictl was built with CGO_ENABLED=0 (rebuild with CGO_ENABLED=1 and a C compiler, or use --backend interp)")
}

func (backend) LoadLibrary(explicit string) (path, version, source string, err error) {
	return Load(explicit)
}

// Load reports that this build cannot load ONNX Runtime.
func Load(explicit string) (path, version, source string, err error) {
	return "", "", "", fmt.Errorf("ort: this optictl was built without cgo and cannot load ONNX Runtime")
}
