package passes

import (
	"os"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
)

// bigModel builds a model with about mb megabytes of float32 weights: a
// chain of blocks MatMul(1024x1024) + Add -> BatchNormalization-free
// Identity -> Relu, plus Conv+BatchNormalization blocks, so that O2 has
// fusions to do on every block (each fusion writes new weights).
func bigModel(mb int) *graph.Model {
	b := newBuilder(13)
	const d = 1024
	x := b.input("x", graph.Float, 1, d)
	cur := x
	layers := mb / 4 // 4 MiB per 1024x1024 float32 matrix
	for i := 0; i < layers; i++ {
		s := itoa(i)
		w := b.floats("w"+s, []int64{d, d}, func(k int) float32 { return float32((k*31+i)%97)/970 - 0.05 })
		bias := b.floats("b"+s, []int64{d}, small)
		b.node("MatMul", []string{cur, w}, []string{"mm" + s})
		b.node("Add", []string{"mm" + s, bias}, []string{"a" + s})
		b.node("Identity", []string{"a" + s}, []string{"i" + s})
		b.node("Relu", []string{"i" + s}, []string{"r" + s})
		cur = "r" + s
	}
	b.node("Identity", []string{cur}, []string{"out"})
	b.output("out", graph.Float, 1, d)
	return b.m
}

// bigConvModel is a ~mb MB chain of Conv(256x256x3x3) + BatchNormalization
// + Relu blocks: conv-batchnorm fusion rewrites every weight.
func bigConvModel(mb int) *graph.Model {
	b := newBuilder(13)
	const c = 256
	x := b.input("x", graph.Float, 1, c, 8, 8)
	cur := x
	layers := mb * (1 << 20) / (c * c * 9 * 4)
	for i := 0; i < layers; i++ {
		s := itoa(i)
		w := b.floats("w"+s, []int64{c, c, 3, 3}, func(k int) float32 { return float32((k*31+i)%97)/9700 - 0.005 })
		b.node("Conv", []string{cur, w}, []string{"c" + s}, graph.IntsAttr("pads", 1, 1, 1, 1))
		b.node("BatchNormalization", []string{"c" + s, b.floats("s"+s, []int64{c}, pos), b.floats("bb"+s, []int64{c}, small),
			b.floats("m"+s, []int64{c}, wave), b.floats("v"+s, []int64{c}, pos)}, []string{"n" + s})
		b.node("Relu", []string{"n" + s}, []string{"r" + s})
		cur = "r" + s
	}
	b.node("Identity", []string{cur}, []string{"out"})
	b.output("out", graph.Float, 1, c, 8, 8)
	return b.m
}

// BenchmarkOptimize100MB: `optimize -O2` on a generated ~100 MB model,
// structural checks after every pass, numeric verification off.
//
//	go test ./pkg/passes -run '^$' -bench Optimize100MB -benchmem -benchtime 3x
func BenchmarkOptimize100MB(b *testing.B) {
	for _, bc := range []struct {
		name  string
		model func(int) *graph.Model
	}{{"matmul-add", bigModel}, {"conv-bn", bigConvModel}} {
		b.Run(bc.name, func(b *testing.B) {
			m := bc.model(100)
			_, bytes := paramsBytes(m)
			b.SetBytes(bytes)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_, rep, err := Optimize(m, Options{Level: O2})
				if err != nil {
					b.Fatal(err)
				}
				if len(rep.Rollbacks) > 0 || rep.After.Nodes >= rep.Before.Nodes {
					b.Fatalf("rollbacks %v, nodes %d -> %d", rep.Rollbacks, rep.Before.Nodes, rep.After.Nodes)
				}
			}
		})
	}
}

// TestWriteBigModel writes the generated model for measuring the binary
// (peak RSS with /usr/bin/time -v): OPTICTL_BIG_MODEL=/tmp/big.onnx.
func TestWriteBigModel(t *testing.T) {
	p := os.Getenv("OPTICTL_BIG_MODEL")
	if p == "" {
		t.Skip("set OPTICTL_BIG_MODEL=path to write the ~100 MB benchmark model")
	}
	m := bigModel(100)
	if os.Getenv("OPTICTL_BIG_KIND") == "conv-bn" {
		m = bigConvModel(100)
	}
	if err := m.Save(p); err != nil {
		t.Fatal(err)
	}
}
