// Package build constructs graph.Models in Go code, for test models and
// tests: declare inputs and outputs, add initializers, chain nodes, and ask
// for the Model, which is verified before it is returned.
//
//	b := build.New("tiny", 13)
//	x := b.Input("x", graph.Float, build.Dims("N", 4))
//	w := b.Float32("w", []int64{4, 2}, []float32{...})
//	y := b.Node("MatMul", []string{x, w})
//	b.Output(b.Node("Relu", []string{y}), graph.Float, build.Dims("N", 2))
//	m, err := b.Model()
//
// Values that Node creates are named after the op and a counter ("matmul_0",
// "relu_1"), as are the nodes themselves; Op gives full control over names.
// The first error (a duplicate name, a malformed tensor) sticks and is
// returned by Model, so a chain of calls needs one check at the end.
package build
