package serve

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/build"
	"github.com/optictl/optictl/pkg/runtime"
	_ "github.com/optictl/optictl/pkg/runtime/ort"
	"github.com/optictl/optictl/testmodels"
)

// The serving figures of the README and the closing note:
//
//	go test ./pkg/serve -run '^$' -bench Serve -benchtime 1x
//
// BenchmarkServeOverhead: p50 of an in-process Session.Run vs a KServe HTTP
// request (binary extension) over loopback at concurrency 1; the difference
// is the server's overhead. BenchmarkServeBatching: throughput at
// concurrency 32 on the batchable MLP with and without micro-batching.
// BenchmarkServeCacheHit: p50 of a request answered from the cache.
// SERVE_BENCH_BACKEND=ort switches the backend (default interp).

func benchBackend() string {
	if b := getenv("SERVE_BENCH_BACKEND"); b != "" {
		return b
	}
	return "interp"
}

func mlpPath(b *testing.B) string {
	b.Helper()
	p := filepath.Join(b.TempDir(), "mlp.onnx")
	if err := testmodels.MLP().Save(p); err != nil {
		b.Fatal(err)
	}
	return p
}

func mlpRequest(rows int, seed int64) (string, []byte, []float32) {
	r := rand.New(rand.NewSource(seed))
	x := make([]float32, rows*784)
	for i := range x {
		x[i] = r.Float32()
	}
	head := fmt.Sprintf(`{"inputs":[{"name":"input","shape":[%d,784],"datatype":"FP32","parameters":{"binary_data_size":%d}}],"outputs":[{"name":"logits","parameters":{"binary_data":true}}]}`, rows, 4*len(x))
	var body bytes.Buffer
	body.WriteString(head)
	binary.Write(&body, binary.LittleEndian, x)
	return head, body.Bytes(), x
}

func startBench(b *testing.B, cfg Config) (*Server, string, func()) {
	cfg.HTTPAddr, cfg.GRPCAddr = "127.0.0.1:0", "off"
	cfg.Backend = benchBackend()
	cfg.Threads = 1
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	for !s.Ready() {
		time.Sleep(time.Millisecond)
	}
	h, _ := s.Addrs()
	return s, "http://" + h, func() { cancel(); <-done }
}

func send(client *http.Client, url, head string, body []byte) error {
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set(headerInferLen, fmt.Sprint(len(head)))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func BenchmarkServeOverhead(b *testing.B) {
	p := mlpPath(b)
	m, _ := graph.Load(p)
	sess, err := runtime.Open(benchBackend(), m, runtime.Options{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()
	_, s0, stop := startBench(b, Config{Models: oneModel("mlp", p)})
	defer stop()
	head, body, x := mlpRequest(1, 1)
	in := []*runtime.Tensor{runtime.FromFloat32([]int64{1, 784}, x)}
	client := &http.Client{}
	url := s0 + "/v2/models/mlp/infer"
	const n = 2000
	var direct, served []time.Duration
	for i := 0; i < 200; i++ { // warm-up
		sess.Run(context.Background(), in)
		send(client, url, head, body)
	}
	for i := 0; i < n; i++ { // A/B interleaved
		t0 := time.Now()
		if _, err := sess.Run(context.Background(), in); err != nil {
			b.Fatal(err)
		}
		direct = append(direct, time.Since(t0))
		t0 = time.Now()
		if err := send(client, url, head, body); err != nil {
			b.Fatal(err)
		}
		served = append(served, time.Since(t0))
	}
	pd, ps := median(direct), median(served)
	b.ReportMetric(float64(pd.Microseconds()), "direct-p50-us")
	b.ReportMetric(float64(ps.Microseconds()), "served-p50-us")
	b.ReportMetric(float64((ps - pd).Microseconds()), "overhead-p50-us")
}

// wideMLP is a memory-bound embedding-style model (two 1024x4096 Gemm
// layers, 32 MB of weights): one row reads every weight, as a batch of 32
// does, which is the case dynamic batching exists for.
func wideMLP(b *testing.B) string {
	bl := build.New("wide", 13)
	x := bl.Input("input", graph.Float, build.Dims("N", 1024))
	r := rand.New(rand.NewSource(3))
	w := func(name string, n int64, k int64) string {
		d := make([]float32, n*k)
		for i := range d {
			d[i] = float32(r.NormFloat64() * 0.03)
		}
		return bl.Float32(name, []int64{n, k}, d)
	}
	h := bl.Node("Relu", []string{bl.Node("Gemm", []string{x, w("w1", 1024, 4096)})})
	y := bl.Node("Gemm", []string{h, w("w2", 4096, 1024)})
	bl.Output(y, graph.Float, build.Dims("N", 1024))
	m, err := bl.Model()
	if err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(b.TempDir(), "wide.onnx")
	if err := m.Save(p); err != nil {
		b.Fatal(err)
	}
	return p
}

func wideRequest(seed int64) (string, []byte) {
	r := rand.New(rand.NewSource(seed))
	x := make([]float32, 1024)
	for i := range x {
		x[i] = r.Float32()
	}
	head := fmt.Sprintf(`{"inputs":[{"name":"input","shape":[1,1024],"datatype":"FP32","parameters":{"binary_data_size":%d}}],"parameters":{"binary_data_output":true}}`, 4*len(x))
	var body bytes.Buffer
	body.WriteString(head)
	binary.Write(&body, binary.LittleEndian, x)
	return head, body.Bytes()
}

// BenchmarkServeBatching: concurrency 32 on a memory-bound model, with and
// without micro-batching (max batch 32, 2 ms queue delay).
func BenchmarkServeBatching(b *testing.B) {
	p := wideMLP(b)
	const conc, per = 32, 20
	run := func(maxBatch int) (float64, time.Duration) {
		_, base, stop := startBench(b, Config{Models: oneModel("mlp", p), MaxBatch: maxBatch, MaxQueueDelay: 2 * time.Millisecond, QueueSize: 1024})
		defer stop()
		url := base + "/v2/models/mlp/infer"
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		t0 := time.Now()
		for c := 0; c < conc; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				client := &http.Client{}
				head, body := wideRequest(int64(c))
				for i := 0; i < per; i++ {
					t := time.Now()
					if err := send(client, url, head, body); err != nil {
						b.Error(err)
						return
					}
					mu.Lock()
					lat = append(lat, time.Since(t))
					mu.Unlock()
				}
			}(c)
		}
		wg.Wait()
		el := time.Since(t0)
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		return float64(conc*per) / el.Seconds(), lat[len(lat)*99/100]
	}
	without, p99a := run(1)
	with, p99b := run(32)
	b.ReportMetric(without, "req/s-unbatched")
	b.ReportMetric(with, "req/s-batched")
	b.ReportMetric(with/without, "batching-x")
	b.ReportMetric(float64(p99a.Microseconds()), "p99-us-unbatched")
	b.ReportMetric(float64(p99b.Microseconds()), "p99-us-batched")
}

func BenchmarkServeCacheHit(b *testing.B) {
	p := mlpPath(b)
	_, base, stop := startBench(b, Config{Models: oneModel("mlp", p), CacheBytes: 64 << 20})
	defer stop()
	head, body, _ := mlpRequest(1, 7)
	client := &http.Client{}
	url := base + "/v2/models/mlp/infer"
	if err := send(client, url, head, body); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	for i := 0; i < 2000; i++ {
		t0 := time.Now()
		if err := send(client, url, head, body); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.ReportMetric(float64(median(lat).Microseconds()), "cache-hit-p50-us")
}

func getenv(k string) string { return os.Getenv(k) }
