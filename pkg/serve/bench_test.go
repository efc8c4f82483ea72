package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/graph/build"
	"github.com/optictl/optictl/pkg/runtime"
	_ "github.com/optictl/optictl/pkg/runtime/backends"
	"github.com/optictl/optictl/testmodels"
)

// The serving figures of the README and the closing note:
//
//	go test ./pkg/serve -run '^$' -bench Serve -benchtime 1x
//
// BenchmarkServeOverhead: p50 of an in-process Session.Run vs a KServe HTTP
// request (binary extension) over loopback at concurrency 1; the difference
// is the server's overhead. Interleaved with both, the same client against
// a bare net/http server (reads the body, writes a same-size response):
// bare-http-p50-us is the loopback floor of the machine at that moment and
// over-bare-p50-us (served - direct - bare) what optictl's own request path
// costs. BenchmarkServeBatching: throughput at concurrency 32 on the
// batchable MLP with and without micro-batching. BenchmarkServeCacheHit:
// p50 of a request answered from the cache, next to the bare floor.
// BenchmarkServeRequest and BenchmarkServeHandler run b.N requests (over
// loopback, or the handler in-process) for pprof and allocs/op.
// SERVE_BENCH_BACKEND=ort switches the backend (default interp).
// Overhead and cache-hit run twice: client=net-http (Go's client, which
// itself adds ~35 us a request here) and client=raw (a wrk-style
// HTTP/1.1 client, see rawClient), each with its own bare floor.

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

// benchClient is a real net/http client over loopback with keep-alive.
// Like a tuned client it reuses its requests (one per URL, with a new body
// reader each time) and drains responses into a reused buffer, so that its own
// allocations do not pad the figures; the bare net/http floor measured next
// to optictl uses the same client.
type benchClient struct {
	c    *http.Client
	buf  bytes.Buffer
	reqs map[string]*http.Request
}

func newBenchClient() *benchClient {
	return &benchClient{c: &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 4}},
		reqs: map[string]*http.Request{}}
}

func (bc *benchClient) send(url, head string, body []byte) error {
	req := bc.reqs[url]
	if req == nil {
		req, _ = http.NewRequest("POST", url, nil)
		bc.reqs[url] = req
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	req.ContentLength = int64(len(body))
	req.Header[headerInferLen] = []string{strconv.Itoa(len(head))}
	resp, err := bc.c.Do(req)
	if err != nil {
		return err
	}
	bc.buf.Reset()
	bc.buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d: %s", resp.StatusCode, bc.buf.Bytes())
	}
	return nil
}

// rawClient is a minimal HTTP/1.1 keep-alive client, the way wrk measures
// servers: one TCP connection per host, the request written in one syscall
// from a reused buffer, the response parsed for its status and
// Content-Length only. Go's net/http client adds ~35 us per request on this
// machine (its read and write loop goroutines and channel handoffs), which
// is client cost, not server cost; this client shows what the server adds.
// It still speaks real HTTP to the real server over loopback.
type rawClient struct {
	conns map[string]*rawConn
}

type rawConn struct {
	c   net.Conn
	br  *bufio.Reader
	req []byte
	buf []byte
}

func newRawClient() *rawClient { return &rawClient{conns: map[string]*rawConn{}} }

func (rc *rawClient) close() {
	for _, c := range rc.conns {
		c.c.Close()
	}
}

func (rc *rawClient) send(url, head string, body []byte) error {
	u, err := neturl.Parse(url)
	if err != nil {
		return err
	}
	c := rc.conns[u.Host]
	if c == nil {
		nc, err := net.Dial("tcp", u.Host)
		if err != nil {
			return err
		}
		c = &rawConn{c: nc, br: bufio.NewReaderSize(nc, 64<<10)}
		rc.conns[u.Host] = c
	}
	c.req = append(c.req[:0], "POST "...)
	c.req = append(c.req, u.RequestURI()...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, u.Host...)
	c.req = append(c.req, "\r\nContent-Type: application/octet-stream\r\n"+headerInferLen+": "...)
	c.req = strconv.AppendInt(c.req, int64(len(head)), 10)
	c.req = append(c.req, "\r\nContent-Length: "...)
	c.req = strconv.AppendInt(c.req, int64(len(body)), 10)
	c.req = append(c.req, "\r\n\r\n"...)
	c.req = append(c.req, body...)
	if _, err := c.c.Write(c.req); err != nil {
		return err
	}
	status, err := c.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	ok := bytes.HasPrefix(status, []byte("HTTP/1.1 200 "))
	n := -1
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if k, v, found := bytes.Cut(line, []byte(":")); found && bytes.EqualFold(bytes.TrimSpace(k), []byte("Content-Length")) {
			if n, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return err
			}
		}
	}
	if n < 0 {
		return fmt.Errorf("no Content-Length in the response")
	}
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	if _, err := io.ReadFull(c.br, c.buf[:n]); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s %s", bytes.TrimSpace(status), c.buf[:n])
	}
	return nil
}

// sender is a load client: the net/http one or the raw one.
type sender interface {
	send(url, head string, body []byte) error
}

// benchClients runs fn once per load client, as sub-benchmarks.
func benchClients(b *testing.B, fn func(b *testing.B, client sender)) {
	b.Run("client=net-http", func(b *testing.B) { fn(b, newBenchClient()) })
	b.Run("client=raw", func(b *testing.B) {
		rc := newRawClient()
		defer rc.close()
		fn(b, rc)
	})
}

// startBare is the floor: a plain net/http server on loopback whose handler
// reads the whole body and answers with a fixed binary-extension response
// of the same size and headers as optictl's. served minus bare is what
// optictl's own request path costs.
func startBare(b *testing.B, respHead string, blob []byte) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	resp := append([]byte(respHead), blob...)
	hlen := strconv.Itoa(len(respHead))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if len(body) == 0 {
			http.Error(w, "empty", 400)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set(headerInferLen, hlen)
		h.Set(HeaderVariant, "default")
		w.Write(resp)
	})}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String() + "/v2/models/mlp/infer", func() { srv.Close() }
}

// bareResponse is what optictl answers to mlpRequest(1, ...): the JSON head
// and the 10 logits.
func bareResponse() (string, []byte) {
	return `{"model_name":"mlp","model_version":"1","parameters":{"cached":false,"variant":"default"},"outputs":[{"name":"logits","shape":[1,10],"datatype":"FP32","parameters":{"binary_data_size":40}}]}`, make([]byte, 40)
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
	rh, rb := bareResponse()
	bareURL, stopBare := startBare(b, rh, rb)
	defer stopBare()
	head, body, x := mlpRequest(1, 1)
	in := []*runtime.Tensor{runtime.FromFloat32([]int64{1, 784}, x)}
	benchClients(b, func(b *testing.B, client sender) {
		url := s0 + "/v2/models/mlp/infer"
		const n = 2000
		var direct, bare, served []time.Duration
		for i := 0; i < 200; i++ { // warm-up
			sess.Run(context.Background(), in)
			client.send(bareURL, head, body)
			client.send(url, head, body)
		}
		for i := 0; i < n; i++ { // A/B/C interleaved
			t0 := time.Now()
			if _, err := sess.Run(context.Background(), in); err != nil {
				b.Fatal(err)
			}
			direct = append(direct, time.Since(t0))
			bare = append(bare, timedSend(b, client, bareURL, head, body))
			served = append(served, timedSend(b, client, url, head, body))
		}
		pd, pb, ps := median(direct), median(bare), median(served)
		b.ReportMetric(float64(pd.Microseconds()), "direct-p50-us")
		b.ReportMetric(float64(pb.Microseconds()), "bare-http-p50-us")
		b.ReportMetric(float64(ps.Microseconds()), "served-p50-us")
		b.ReportMetric(float64((ps - pd).Microseconds()), "overhead-p50-us")
		b.ReportMetric(float64((ps - pd - pb).Microseconds()), "over-bare-p50-us")
	})
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
				client := newBenchClient()
				head, body := wideRequest(int64(c))
				for i := 0; i < per; i++ {
					t := time.Now()
					if err := client.send(url, head, body); err != nil {
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
	rh, rb := bareResponse()
	bareURL, stopBare := startBare(b, rh, rb)
	defer stopBare()
	head, body, _ := mlpRequest(1, 7)
	benchClients(b, func(b *testing.B, client sender) {
		url := base + "/v2/models/mlp/infer"
		for i := 0; i < 200; i++ { // warm-up; the first request fills the cache
			if err := client.send(url, head, body); err != nil {
				b.Fatal(err)
			}
			client.send(bareURL, head, body)
		}
		var lat, bare []time.Duration
		for i := 0; i < 2000; i++ { // A/B interleaved
			bare = append(bare, timedSend(b, client, bareURL, head, body))
			lat = append(lat, timedSend(b, client, url, head, body))
		}
		b.ReportMetric(float64(median(bare).Microseconds()), "bare-http-p50-us")
		b.ReportMetric(float64(median(lat).Microseconds()), "cache-hit-p50-us")
	})
}

// BenchmarkServeRequest runs b.N requests through one path (for pprof and
// allocs/op): "miss" runs the model, "hit" is answered by the cache, "json"
// is a JSON (not binary) request that runs the model.
//
//	go test ./pkg/serve -run '^$' -bench ServeRequest -benchmem -cpuprofile cpu.out
func BenchmarkServeRequest(b *testing.B) {
	p := mlpPath(b)
	jsonHead := func(x []float32) string {
		var sb strings.Builder
		sb.WriteString(`{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","data":[`)
		for i, v := range x {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
		}
		sb.WriteString(`]}]}`)
		return sb.String()
	}
	for _, tc := range []struct {
		name  string
		cache int64
		json  bool
	}{{"miss", 0, false}, {"hit", 64 << 20, false}, {"json", 0, true}} {
		b.Run(tc.name, func(b *testing.B) {
			_, base, stop := startBench(b, Config{Models: oneModel("mlp", p), CacheBytes: tc.cache})
			defer stop()
			head, body, x := mlpRequest(1, 7)
			if tc.json {
				head = jsonHead(x)
				body = []byte(head)
			}
			client := newBenchClient()
			url := base + "/v2/models/mlp/infer"
			send := func() error {
				if tc.json {
					req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
					resp, err := client.c.Do(req)
					if err != nil {
						return err
					}
					client.buf.Reset()
					client.buf.ReadFrom(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						return fmt.Errorf("status %d", resp.StatusCode)
					}
					return nil
				}
				return client.send(url, head, body)
			}
			if err := send(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := send(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func getenv(k string) string { return os.Getenv(k) }

// BenchmarkServeHandler is optictl's own request path without the network:
// the HTTP handler called in-process on a recorded request (binary
// extension, the MLP), answered by the model ("miss") or the cache ("hit").
func BenchmarkServeHandler(b *testing.B) {
	p := mlpPath(b)
	for _, tc := range []struct {
		name  string
		cache int64
	}{{"miss", 0}, {"hit", 64 << 20}} {
		b.Run(tc.name, func(b *testing.B) {
			s, _, stop := startBench(b, Config{Models: oneModel("mlp", p), CacheBytes: tc.cache})
			defer stop()
			h := s.Handler()
			head, body, _ := mlpRequest(1, 7)
			hlen := strconv.Itoa(len(head))
			w := &discardWriter{h: http.Header{}}
			serve := func() {
				r := httptest.NewRequest("POST", "/v2/models/mlp/infer", bytes.NewReader(body))
				r.Header[headerInferLen] = []string{hlen}
				clear(w.h)
				w.code = 0
				h.ServeHTTP(w, r)
				if w.code != 200 {
					b.Fatalf("status %d", w.code)
				}
			}
			serve()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				serve()
			}
		})
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(c int)   { w.code = c }
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	return len(p), nil
}

// timedSend sends one request and returns how long it took (fatal on error).
func timedSend(b *testing.B, client sender, url, head string, body []byte) time.Duration {
	t0 := time.Now()
	if err := client.send(url, head, body); err != nil {
		b.Fatal(err)
	}
	return time.Since(t0)
}
