package graph_test

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optictl/optictl/pkg/graph"
)

// bigModel builds a chain of n MatMul+Relu layers over 512x1024 float32
// weights (2 MiB each) plus small biases: n=50 gives a ~100 MB model.
func bigModel(n int) *graph.Model {
	const rows, cols = 512, 1024
	g := &graph.Graph{
		Name:    "big",
		Inputs:  []*graph.ValueInfo{{Name: "x0", HasType: true, DType: graph.Float, HasShape: true, Shape: graph.Shape{graph.SymDim("N"), graph.FixedDim(rows)}}},
		Outputs: []*graph.ValueInfo{{Name: "y", HasType: true, DType: graph.Float}},
	}
	size := rows * cols * 4
	for i := 0; i < n; i++ {
		w := make([]byte, size)
		for j := 0; j < len(w); j += 4 {
			binary.LittleEndian.PutUint32(w[j:], math.Float32bits(float32((i*7+j)%251)*1e-3))
		}
		k := strconv.Itoa(i)
		in := "x" + k
		out := "x" + strconv.Itoa(i+1)
		if i == n-1 {
			out = "y"
		}
		g.Initializers = append(g.Initializers,
			graph.NewRaw("w"+k, graph.Float, []int64{rows, cols}, w),
			graph.NewFloat32("b"+k, []int64{rows}, make([]float32, rows)))
		// Alternate MatMul [N,512]x[512,1024] and its transpose so the chain type-checks.
		if i%2 == 0 {
			g.Nodes = append(g.Nodes, &graph.Node{Name: "mm" + k, OpType: "MatMul", Inputs: []string{in, "w" + k}, Outputs: []string{"h" + k}})
		} else {
			g.Nodes = append(g.Nodes, &graph.Node{Name: "mm" + k, OpType: "Gemm", Inputs: []string{in, "w" + k}, Outputs: []string{"h" + k},
				Attrs: []*graph.Attr{graph.IntAttr("transB", 1)}})
		}
		g.Nodes = append(g.Nodes,
			&graph.Node{Name: "relu" + k, OpType: "Relu", Inputs: []string{"h" + k}, Outputs: []string{"r" + k}},
			&graph.Node{Name: "id" + k, OpType: "Identity", Inputs: []string{"r" + k}, Outputs: []string{out}})
	}
	return &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Domain: "", Version: 13}}, Graph: g}
}

// heapSampler records the peak of live heap bytes above a baseline.
type heapSampler struct {
	base, peak atomic.Uint64
	stop       chan struct{}
	wg         sync.WaitGroup
}

func heapNow() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapSampler() *heapSampler {
	runtime.GC()
	h := &heapSampler{stop: make(chan struct{})}
	h.base.Store(heapNow())
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				if v := heapNow(); v > h.peak.Load() {
					h.peak.Store(v)
				}
			}
		}
	}()
	return h
}

// peakAbove stops sampling and returns the peak minus the baseline.
func (h *heapSampler) peakAbove() uint64 {
	if v := heapNow(); v > h.peak.Load() {
		h.peak.Store(v)
	}
	close(h.stop)
	h.wg.Wait()
	if h.peak.Load() < h.base.Load() {
		return 0
	}
	return h.peak.Load() - h.base.Load()
}

// BenchmarkLoadSave loads a ~100 MB model from disk and saves it again.
// It reports throughput over the file size (MB/s) and the peak live heap
// during one load+save as a multiple of the file size (heap-x).
//
//	go test -run '^$' -bench BenchmarkLoadSave -benchtime 5x ./pkg/graph
func BenchmarkLoadSave(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts graph.SaveOptions
	}{
		{"inline", graph.SaveOptions{}},
		{"external", graph.SaveOptions{ExternalData: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			dir := b.TempDir()
			src := filepath.Join(dir, "src.onnx")
			if err := bigModel(50).SaveWith(src, tc.opts); err != nil {
				b.Fatal(err)
			}
			size := fileBytes(b, src)
			dst := filepath.Join(dir, "dst.onnx")
			b.SetBytes(size)
			var peak uint64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				h := startHeapSampler()
				b.StartTimer()
				m, err := graph.Load(src)
				if err != nil {
					b.Fatal(err)
				}
				if err := m.SaveWith(dst, tc.opts); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if p := h.peakAbove(); p > peak {
					peak = p
				}
				runtime.KeepAlive(m)
				b.StartTimer()
			}
			b.ReportMetric(float64(peak)/float64(size), "heap-x")
		})
	}
}

// BenchmarkLoad and BenchmarkSave split BenchmarkLoadSave's inline case in
// two, to see which half dominates.
func BenchmarkLoad(b *testing.B) {
	src := filepath.Join(b.TempDir(), "src.onnx")
	if err := bigModel(50).Save(src); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fileBytes(b, src))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := graph.Load(src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSave(b *testing.B) {
	dst := filepath.Join(b.TempDir(), "dst.onnx")
	m := bigModel(50)
	if err := m.Save(dst); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fileBytes(b, dst))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := m.Save(dst); err != nil {
			b.Fatal(err)
		}
	}
}

func fileBytes(b *testing.B, path string) int64 {
	var n int64
	for _, p := range []string{path, path + ".data"} {
		if st, err := os.Stat(p); err == nil {
			n += st.Size()
		}
	}
	if n == 0 {
		b.Fatalf("%s is empty", path)
	}
	return n
}
