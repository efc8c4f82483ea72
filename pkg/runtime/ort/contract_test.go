//go:build cgo

package ort

import (
	"errors"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/build"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/runtime/runtimetest"
)

// TestSessionContract runs the runtime Session contract on ONNX Runtime.
func TestSessionContract(t *testing.T) {
	needLib(t)
	b, err := runtime.Get("ort")
	if err != nil {
		t.Fatal(err)
	}
	runtimetest.TestSession(t, b)
}

// TestNoInputsRefused: onnxruntime_go's Run panics on a model without
// inputs; Open refuses it with runtime.ErrUnsupported instead.
func TestNoInputsRefused(t *testing.T) {
	needLib(t)
	b := build.New("noinputs", 13)
	c := b.Float32("c", []int64{2}, []float32{1, 2})
	b.Output(b.Node("Identity", []string{c}), graph.Float, build.Dims(2))
	m, err := b.Model()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(m, runtime.Options{})
	if err == nil {
		s.Close()
		t.Fatal("a model without inputs was opened")
	}
	if !errors.Is(err, runtime.ErrUnsupported) {
		t.Fatalf("%v, want runtime.ErrUnsupported", err)
	}
}
