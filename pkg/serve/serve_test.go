package serve

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	_ "github.com/optictl/optictl/pkg/runtime/backends"
	"github.com/optictl/optictl/pkg/serve/kservepb"
)

// writeMLP writes a small real model with a dynamic batch dim:
// y = Relu(x @ W + b), x: float32[N,4], y: float32[N,3].
func writeMLP(t *testing.T, dir, name string, scale float32) string {
	t.Helper()
	w := make([]float32, 12)
	for i := range w {
		w[i] = scale * float32(i%5-2) / 3
	}
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Domain: "", Version: 13}}, ProducerName: "serve_test"}
	m.Graph = &graph.Graph{
		Name:    "mlp",
		Inputs:  []*graph.ValueInfo{{Name: "x", DType: graph.Float, HasType: true, HasShape: true, Shape: graph.Shape{graph.SymDim("N"), graph.FixedDim(4)}}},
		Outputs: []*graph.ValueInfo{{Name: "y", DType: graph.Float, HasType: true, HasShape: true, Shape: graph.Shape{graph.SymDim("N"), graph.FixedDim(3)}}},
		Initializers: []*graph.Tensor{
			graph.NewFloat32("W", []int64{4, 3}, w),
			graph.NewFloat32("b", []int64{3}, []float32{0.1, -0.2, 0.3}),
		},
		Nodes: []*graph.Node{
			{Name: "mm", OpType: "MatMul", Inputs: []string{"x", "W"}, Outputs: []string{"h"}},
			{Name: "add", OpType: "Add", Inputs: []string{"h", "b"}, Outputs: []string{"z"}},
			{Name: "relu", OpType: "Relu", Inputs: []string{"z"}, Outputs: []string{"y"}},
		},
	}
	p := filepath.Join(dir, name)
	if err := m.Save(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// slowSession delays each Run: it induces load for backpressure, timeout,
// draining and switching tests while the real model still computes. Like
// the real backends it stops when ctx ends.
type slowSession struct {
	runtime.Session
	delay time.Duration
}

func (s *slowSession) Run(ctx context.Context, in []*runtime.Tensor) ([]*runtime.Tensor, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, fmt.Errorf("slow: %w", ctx.Err())
	}
	return s.Session.Run(ctx, in)
}

func slowOpen(delays map[string]time.Duration) func(string, *graph.Model, runtime.Options) (runtime.Session, error) {
	return func(b string, m *graph.Model, o runtime.Options) (runtime.Session, error) {
		s, err := runtime.Open(b, m, o)
		if err != nil {
			return nil, err
		}
		if d := delays[m.ProducerVersion]; d > 0 {
			return &slowSession{s, d}, nil
		}
		return s, nil
	}
}

type testServer struct {
	*Server
	base   string
	grpc   string
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg Config) *testServer {
	t.Helper()
	cfg.HTTPAddr, cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	if cfg.Backend == "" {
		cfg.Backend = "interp"
	}
	if cfg.DrainDelay == 0 {
		cfg.DrainDelay = -1 // tests that drain set their own
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: s, cancel: cancel, done: make(chan error, 1)}
	h, g := s.Addrs()
	ts.base, ts.grpc = "http://"+h, g
	go func() { ts.done <- s.Serve(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for !s.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("server never became ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

func (ts *testServer) stop(t *testing.T) {
	if ts.cancel == nil {
		return
	}
	ts.cancel()
	ts.cancel = nil
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("Serve returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("server did not stop")
	}
}

func oneModel(name, path string) []ModelConfig {
	return []ModelConfig{{Name: name, Variants: []VariantConfig{{Name: "default", Path: path}}}}
}

func inferBody(rows [][]float32, extra string) string {
	flat := []float32{}
	for _, r := range rows {
		flat = append(flat, r...)
	}
	d, _ := json.Marshal(flat)
	return fmt.Sprintf(`{"id":"r1"%s,"inputs":[{"name":"x","shape":[%d,4],"datatype":"FP32","data":%s}]}`, extra, len(rows), d)
}

func post(t *testing.T, url, body string) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("response is not JSON: %q", b)
	}
	return resp.StatusCode, m, resp.Header
}

func get(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// reference computes the model directly through a session.
func reference(t *testing.T, path string, rows [][]float32) []float32 {
	t.Helper()
	m, err := graph.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := runtime.Open("interp", m, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	flat := []float32{}
	for _, r := range rows {
		flat = append(flat, r...)
	}
	out, err := s.Run(context.Background(), []*runtime.Tensor{runtime.FromFloat32([]int64{int64(len(rows)), 4}, flat)})
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32{}, out[0].Float32s()...)
}

func outputData(t *testing.T, m map[string]any) []float32 {
	t.Helper()
	outs, _ := m["outputs"].([]any)
	if len(outs) != 1 {
		t.Fatalf("want one output, got %v", m)
	}
	o := outs[0].(map[string]any)
	var res []float32
	for _, v := range o["data"].([]any) {
		res = append(res, float32(v.(float64)))
	}
	return res
}

func TestHTTPProtocol(t *testing.T) {
	dir := t.TempDir()
	p := writeMLP(t, dir, "mlp.onnx", 1)
	ts := start(t, Config{Models: oneModel("mlp", p)})
	for _, c := range []struct {
		path string
		code int
		key  string
	}{
		{"/v2/health/live", 200, "live"},
		{"/v2/health/ready", 200, "ready"},
		{"/v2", 200, "extensions"},
		{"/v2/models/mlp", 200, "inputs"},
		{"/v2/models/mlp/versions/1", 200, "inputs"},
		{"/v2/models/mlp/ready", 200, "ready"},
		{"/v2/models/mlp/versions/1/ready", 200, "ready"},
		{"/v2/models/nope", 404, "error"},
		{"/v2/models/mlp/versions/7", 404, "error"},
	} {
		code, m := get(t, ts.base+c.path)
		if code != c.code {
			t.Errorf("GET %s: %d, want %d (%v)", c.path, code, c.code, m)
		}
		if _, ok := m[c.key]; !ok {
			t.Errorf("GET %s: no %q in %v", c.path, c.key, m)
		}
	}
	_, meta := get(t, ts.base+"/v2/models/mlp")
	in := meta["inputs"].([]any)[0].(map[string]any)
	if in["name"] != "x" || in["datatype"] != "FP32" || fmt.Sprint(in["shape"]) != "[-1 4]" {
		t.Errorf("metadata input = %v", in)
	}
	rows := [][]float32{{1, 2, 3, 4}, {-1, 0.5, 2, -3}}
	code, m, hdr := post(t, ts.base+"/v2/models/mlp/infer", inferBody(rows, ""))
	if code != 200 {
		t.Fatalf("infer: %d %v", code, m)
	}
	if m["id"] != "r1" || m["model_name"] != "mlp" || m["model_version"] != "1" {
		t.Errorf("response identity: %v", m)
	}
	if hdr.Get(HeaderVariant) != "default" || m["parameters"].(map[string]any)["variant"] != "default" {
		t.Errorf("variant not reported: header %q params %v", hdr.Get(HeaderVariant), m["parameters"])
	}
	got, want := outputData(t, m), reference(t, p, rows)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("infer = %v, want %v", got, want)
	}
	// nested data arrays are accepted too
	code, m, _ = post(t, ts.base+"/v2/models/mlp/versions/1/infer", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[[1,2,3,4]]}]}`)
	if code != 200 || fmt.Sprint(outputData(t, m)) != fmt.Sprint(reference(t, p, rows[:1])) {
		t.Errorf("nested data: %d %v", code, m)
	}
}

func TestHTTPBinaryExtension(t *testing.T) {
	dir := t.TempDir()
	p := writeMLP(t, dir, "mlp.onnx", 1)
	ts := start(t, Config{Models: oneModel("mlp", p)})
	rows := [][]float32{{1, 2, 3, 4}}
	head := `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}],"outputs":[{"name":"y","parameters":{"binary_data":true}}]}`
	var body bytes.Buffer
	body.WriteString(head)
	for _, v := range rows[0] {
		binary.Write(&body, binary.LittleEndian, v)
	}
	req, _ := http.NewRequest("POST", ts.base+"/v2/models/mlp/infer", &body)
	req.Header.Set(headerInferLen, fmt.Sprint(len(head)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	var n int
	fmt.Sscan(resp.Header.Get(headerInferLen), &n)
	if n <= 0 || n > len(b) || len(b)-n != 12 {
		t.Fatalf("binary response: header len %d, body %d", n, len(b))
	}
	want := reference(t, p, rows)
	for i := range want {
		got := math.Float32frombits(binary.LittleEndian.Uint32(b[n+4*i:]))
		if got != want[i] {
			t.Errorf("y[%d] = %v, want %v", i, got, want[i])
		}
	}
}

func TestBadRequestsKeepServing(t *testing.T) {
	dir := t.TempDir()
	p := writeMLP(t, dir, "mlp.onnx", 1)
	ts := start(t, Config{Models: oneModel("mlp", p), MaxBodyBytes: 4096})
	url := ts.base + "/v2/models/mlp/infer"
	nan := `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}]}`
	cases := []struct {
		name, body string
		code       int
		msg        string
	}{
		{"malformed json", `{"inputs": [`, 400, "malformed JSON"},
		{"no inputs", `{"inputs": []}`, 400, "no inputs"},
		{"missing input", `{"inputs":[{"name":"z","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`, 400, "missing input \"x\""},
		{"extra input", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]},{"name":"q","shape":[1],"datatype":"FP32","data":[1]}]}`, 400, "no input \"q\""},
		{"wrong dtype", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"INT64","data":[1,2,3,4]}]}`, 400, "expected datatype FP32"},
		{"wrong shape", `{"inputs":[{"name":"x","shape":[1,5],"datatype":"FP32","data":[1,2,3,4,5]}]}`, 400, "expected shape"},
		{"short data", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3]}]}`, 400, "has 3 values"},
		{"long data", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4,5]}]}`, 400, "more data values"},
		{"string in data", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,"a",4]}]}`, 400, "not a number"},
		{"bad datatype", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FLOAT99","data":[1,2,3,4]}]}`, 400, "unknown datatype"},
		{"negative dim", `{"inputs":[{"name":"x","shape":[-1,4],"datatype":"FP32","data":[1,2,3,4]}]}`, 400, "negative"},
		{"absurd shape", `{"inputs":[{"name":"x","shape":[1000000000,1000000000],"datatype":"FP32","data":[1]}]}`, 400, "elements"},
		{"unknown model", ``, 404, "unknown model"},
		{"oversized", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[` + strings.Repeat("1,", 5000) + `1]}]}`, 413, "over the limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := url
			body := c.body
			if c.name == "unknown model" {
				u = ts.base + "/v2/models/nope/infer"
				body = inferBody([][]float32{{1, 2, 3, 4}}, "")
			}
			code, m, _ := post(t, u, body)
			if code != c.code {
				t.Fatalf("status %d, want %d: %v", code, c.code, m)
			}
			if msg, _ := m["error"].(string); !strings.Contains(msg, c.msg) {
				t.Fatalf("error %q lacks %q", msg, c.msg)
			}
		})
	}
	t.Run("nan binary", func(t *testing.T) {
		var body bytes.Buffer
		body.WriteString(nan)
		for _, v := range []float32{1, float32(math.NaN()), 3, 4} {
			binary.Write(&body, binary.LittleEndian, v)
		}
		req, _ := http.NewRequest("POST", url, &body)
		req.Header.Set(headerInferLen, fmt.Sprint(len(nan)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), "NaN") {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	})
	code, _, _ := post(t, url, inferBody([][]float32{{1, 2, 3, 4}}, ""))
	if code != 200 {
		t.Fatalf("server stopped serving good requests: %d", code)
	}
	_, mt := get(t, ts.base+"/v2/health/ready")
	if mt["ready"] != true {
		t.Fatal("server not ready after bad requests")
	}
}

func TestGRPC(t *testing.T) {
	dir := t.TempDir()
	p := writeMLP(t, dir, "mlp.onnx", 1)
	ts := start(t, Config{Models: oneModel("mlp", p)})
	conn, err := grpc.NewClient(ts.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := kservepb.NewGRPCInferenceServiceClient(conn)
	ctx := context.Background()
	if r, err := c.ServerLive(ctx, &kservepb.ServerLiveRequest{}); err != nil || !r.Live {
		t.Fatalf("ServerLive: %v %v", r, err)
	}
	if r, err := c.ServerReady(ctx, &kservepb.ServerReadyRequest{}); err != nil || !r.Ready {
		t.Fatalf("ServerReady: %v %v", r, err)
	}
	if r, err := c.ModelReady(ctx, &kservepb.ModelReadyRequest{Name: "mlp"}); err != nil || !r.Ready {
		t.Fatalf("ModelReady: %v %v", r, err)
	}
	if _, err := c.ModelReady(ctx, &kservepb.ModelReadyRequest{Name: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("ModelReady unknown: %v", err)
	}
	if r, err := c.ServerMetadata(ctx, &kservepb.ServerMetadataRequest{}); err != nil || r.Name != "optictl" {
		t.Fatalf("ServerMetadata: %v %v", r, err)
	}
	md, err := c.ModelMetadata(ctx, &kservepb.ModelMetadataRequest{Name: "mlp"})
	if err != nil || len(md.Inputs) != 1 || md.Inputs[0].Datatype != "FP32" || md.Outputs[0].Name != "y" {
		t.Fatalf("ModelMetadata: %v %v", md, err)
	}
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}
	rows := [][]float32{{1, 2, 3, 4}, {0, -1, 2, 0.5}}
	want := reference(t, p, rows)
	// typed contents
	req := &kservepb.ModelInferRequest{ModelName: "mlp", Id: "g1", Inputs: []*kservepb.ModelInferRequest_InferInputTensor{{
		Name: "x", Datatype: "FP32", Shape: []int64{2, 4},
		Contents: &kservepb.InferTensorContents{Fp32Contents: append(append([]float32{}, rows[0]...), rows[1]...)},
	}}}
	resp, err := c.ModelInfer(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Id != "g1" || resp.Parameters["variant"].GetStringParam() != "default" || len(resp.RawOutputContents) != 1 {
		t.Fatalf("response: %v", resp)
	}
	raw := resp.RawOutputContents[0]
	for i := range want {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); got != want[i] {
			t.Fatalf("y[%d] = %v want %v", i, got, want[i])
		}
	}
	// raw contents
	var rb bytes.Buffer
	for _, r := range rows {
		for _, v := range r {
			binary.Write(&rb, binary.LittleEndian, v)
		}
	}
	req.Inputs[0].Contents = nil
	req.RawInputContents = [][]byte{rb.Bytes()}
	resp2, err := c.ModelInfer(ctx, req)
	if err != nil || !bytes.Equal(resp2.RawOutputContents[0], raw) {
		t.Fatalf("raw contents: %v", err)
	}
	// bad requests map to codes
	bad := proto.Clone(req).(*kservepb.ModelInferRequest)
	bad.Inputs[0].Shape = []int64{2, 5}
	if _, err := c.ModelInfer(ctx, bad); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad shape: %v", err)
	}
	bad.Inputs[0].Shape = []int64{2, 4}
	bad.ModelName = "nope"
	if _, err := c.ModelInfer(ctx, bad); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown model: %v", err)
	}
}

func TestBatchingMatchesUnbatched(t *testing.T) {
	dir := t.TempDir()
	p := writeMLP(t, dir, "mlp.onnx", 1)
	ts := start(t, Config{Models: oneModel("mlp", p), MaxBatch: 8, MaxQueueDelay: 20 * time.Millisecond, Instances: 2})
	const n = 48
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rows := [][]float32{{float32(i), float32(i%7) - 3, 0.25 * float32(i), -1}}
			if i%5 == 0 { // some requests carry two rows
				rows = append(rows, []float32{1, float32(-i), 2, 3})
			}
			code, m, _ := post(t, ts.base+"/v2/models/mlp/infer", inferBody(rows, ""))
			if code != 200 {
				errs <- fmt.Sprintf("req %d: %d %v", i, code, m)
				return
			}
			if got, want := outputData(t, m), reference(t, p, rows); fmt.Sprint(got) != fmt.Sprint(want) {
				errs <- fmt.Sprintf("req %d: batched %v, unbatched %v", i, got, want)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	metrics := scrape(t, ts.base)
	infer := metricValue(metrics, `nv_inference_count{model="mlp",variant="default",version="1"}`)
	exec := metricValue(metrics, `nv_inference_exec_count{model="mlp",variant="default",version="1"}`)
	if infer < n || exec >= infer {
		t.Errorf("no batching happened: %v inferences in %v executions", infer, exec)
	}
}

func scrape(t *testing.T, base string) string {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, series+" ") {
			var v float64
			fmt.Sscan(strings.TrimPrefix(line, series+" "), &v)
			return v
		}
	}
	return -1
}

func TestBackpressureAndTimeout(t *testing.T) {
	dir := t.TempDir()
	p := writeMLP(t, dir, "mlp.onnx", 1)
	m, _ := graph.Load(p)
	m.ProducerVersion = "slow"
	slow := filepath.Join(dir, "slow.onnx")
	if err := m.Save(slow); err != nil {
		t.Fatal(err)
	}
	ts := start(t, Config{Models: oneModel("mlp", slow), QueueSize: 2, Timeout: 2 * time.Second,
		Open: slowOpen(map[string]time.Duration{"slow": 300 * time.Millisecond})})
	var wg sync.WaitGroup
	codes := make(chan int, 12)
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, _ := post(t, ts.base+"/v2/models/mlp/infer", inferBody([][]float32{{1, 2, 3, 4}}, ""))
			codes <- c
		}()
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[429] == 0 || count[200] == 0 || count[200]+count[429] != 12 {
		t.Fatalf("want some 200 and some 429, got %v", count)
	}

	ts2 := start(t, Config{Models: oneModel("mlp", slow), Timeout: 50 * time.Millisecond,
		Open: slowOpen(map[string]time.Duration{"slow": 300 * time.Millisecond})})
	code, body, _ := post(t, ts2.base+"/v2/models/mlp/infer", inferBody([][]float32{{1, 2, 3, 4}}, ""))
	if code != 504 || !strings.Contains(fmt.Sprint(body["error"]), "timed out") {
		t.Fatalf("timeout: %d %v", code, body)
	}
}

func TestGracefulShutdownLosesNothing(t *testing.T) {
	before := goruntime.NumGoroutine()
	dir := t.TempDir()
	p := writeMLP(t, dir, "mlp.onnx", 1)
	m, _ := graph.Load(p)
	m.ProducerVersion = "slow"
	slow := filepath.Join(dir, "slow.onnx")
	m.Save(slow)
	ts := start(t, Config{Models: oneModel("mlp", slow), Instances: 2, QueueSize: 64,
		Open: slowOpen(map[string]time.Duration{"slow": 100 * time.Millisecond})})
	const n = 16
	var wg sync.WaitGroup
	results := make(chan int, n)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Post(ts.base+"/v2/models/mlp/infer", "application/json", strings.NewReader(inferBody([][]float32{{1, 2, 3, 4}}, "")))
			if err != nil {
				results <- -1
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	// wait until every request is in the server, then shut down
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ts.active.Load() == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	ts.stop(t)
	wg.Wait()
	close(results)
	for c := range results {
		if c != 200 {
			t.Errorf("a request in flight at shutdown got %d", c)
		}
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(ts.base, "http://"), 200*time.Millisecond); err == nil {
		t.Error("server still accepts connections after shutdown")
	}
	client.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	leakCheck(t, before)
}

func leakCheck(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		now := goruntime.NumGoroutine()
		if now <= before+2 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			n := goruntime.Stack(buf, true)
			t.Fatalf("goroutines: %d before, %d after shutdown\n%s", before, now, buf[:n])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCacheLRUAndPrecompute(t *testing.T) {
	dir := t.TempDir()
	p := writeMLP(t, dir, "mlp.onnx", 1)
	// one precomputed request in the ONNX test-data layout
	pre := filepath.Join(dir, "pre", "req0")
	os.MkdirAll(pre, 0o755)
	x := runtime.FromFloat32([]int64{1, 4}, []float32{9, 8, 7, 6})
	tp, err := graph.TensorToProto(x.ToGraphTensor("x"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := proto.Marshal(tp)
	os.WriteFile(filepath.Join(pre, "input_0.pb"), b, 0o644)
	ts := start(t, Config{Models: oneModel("mlp", p), CacheBytes: 1 << 20, PrecomputeDir: filepath.Join(dir, "pre")})
	_, m, _ := post(t, ts.base+"/v2/models/mlp/infer", inferBody([][]float32{{9, 8, 7, 6}}, ""))
	if m["parameters"].(map[string]any)["cached"] != true {
		t.Fatalf("precomputed request missed the cache: %v", m)
	}
	body := inferBody([][]float32{{1, 1, 1, 1}}, "")
	_, m1, _ := post(t, ts.base+"/v2/models/mlp/infer", body)
	_, m2, _ := post(t, ts.base+"/v2/models/mlp/infer", body)
	if m1["parameters"].(map[string]any)["cached"] != false || m2["parameters"].(map[string]any)["cached"] != true {
		t.Fatalf("cache: first %v second %v", m1["parameters"], m2["parameters"])
	}
	if fmt.Sprint(outputData(t, m1)) != fmt.Sprint(outputData(t, m2)) {
		t.Fatal("cached result differs")
	}
	if hits := metricValue(scrape(t, ts.base), `nv_cache_num_hits_per_model{model="mlp",version="1"}`); hits != 2 {
		t.Fatalf("cache hits metric = %v, want 2", hits)
	}
	// the LRU is bounded in bytes
	l := NewLRU(100)
	for i := 0; i < 10; i++ {
		l.Set(context.Background(), fmt.Sprint(i), make([]byte, 30))
	}
	if l.Len() != 3 {
		t.Fatalf("LRU holds %d entries of 31 bytes in 100", l.Len())
	}
	if _, ok := l.Get(context.Background(), "9"); !ok {
		t.Fatal("LRU evicted the newest entry")
	}
}

// startRedis runs a private redis-server on a free loopback port.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		testutil.Missing(t, "redis-server (Debian package redis-server)")
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatal("redis-server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Sprintf("redis://127.0.0.1:%d", port)
}

func TestRedisCacheSharedByReplicas(t *testing.T) {
	url := startRedis(t)
	dir := t.TempDir()
	p := writeMLP(t, dir, "mlp.onnx", 1)
	a := start(t, Config{Models: oneModel("mlp", p), CacheURL: url})
	b := start(t, Config{Models: oneModel("mlp", p), CacheURL: url})
	body := inferBody([][]float32{{3, 1, 4, 1}}, "")
	_, m1, _ := post(t, a.base+"/v2/models/mlp/infer", body)
	_, m2, _ := post(t, b.base+"/v2/models/mlp/infer", body)
	if m1["parameters"].(map[string]any)["cached"] != false || m2["parameters"].(map[string]any)["cached"] != true {
		t.Fatalf("replica b did not hit a's entry: %v / %v", m1["parameters"], m2["parameters"])
	}
	if fmt.Sprint(outputData(t, m1)) != fmt.Sprint(outputData(t, m2)) {
		t.Fatal("shared cache returned another result")
	}
	if _, err := NewRedis("redis://127.0.0.1:1", time.Minute); err == nil {
		t.Fatal("a dead redis should be an error at start")
	}
}

func TestVariantSwitchingUnderLoad(t *testing.T) {
	dir := t.TempDir()
	acc := writeMLP(t, dir, "acc.onnx", 1)
	m, _ := graph.Load(acc)
	m.ProducerVersion = "slow"
	m.Save(acc)
	fast := writeMLP(t, dir, "fast.onnx", 1)
	ts := start(t, Config{
		Models: []ModelConfig{{Name: "mlp", Variants: []VariantConfig{{Name: "accurate", Path: acc}, {Name: "fast", Path: fast}}}},
		SLOP99: 5 * time.Millisecond, Instances: 1, QueueSize: 512,
		Open: slowOpen(map[string]time.Duration{"slow": 8 * time.Millisecond}),
	})
	url := ts.base + "/v2/models/mlp/infer"
	// a client may pin a variant
	_, pinned, hdr := post(t, url, inferBody([][]float32{{1, 2, 3, 4}}, `,"parameters":{"variant":"fast"}`))
	if hdr.Get(HeaderVariant) != "fast" || pinned["parameters"].(map[string]any)["variant"] != "fast" {
		t.Fatalf("pinned variant ignored: %v", pinned["parameters"])
	}
	// induced load: 8 concurrent clients for a while
	stop := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]int{}
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				code, m, _ := post(t, url, inferBody([][]float32{{float32(c), float32(i), 1, 2}}, ""))
				if code == 200 {
					mu.Lock()
					seen[m["parameters"].(map[string]any)["variant"].(string)]++
					mu.Unlock()
				}
			}
		}(c)
	}
	wg.Wait()
	if seen["fast"] == 0 {
		t.Fatalf("router never switched to the fast variant under load: %v", seen)
	}
	met := scrape(t, ts.base)
	if v := metricValue(met, `optictl_variant_switches_total{from="accurate",model="mlp",to="fast",version="1"}`); v < 1 {
		t.Fatalf("no switch counted:\n%s", met)
	}
	// load gone: back to the accurate variant (hysteresis: within a few seconds)
	deadline := time.Now().Add(5 * time.Second)
	for ts.models["mlp"].active.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("router did not switch back after load fell")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestParseModelArg(t *testing.T) {
	for _, c := range []struct{ in, name, path string }{
		{"a=x.onnx", "a", "x.onnx"},
		{"dir/mlp.onnx", "mlp", "dir/mlp.onnx"},
		{"../models/ppocr-cls/model.onnx", "ppocr-cls", "../models/ppocr-cls/model.onnx"},
	} {
		n, p, err := ParseModelArg(c.in)
		if err != nil || n != c.name || p != c.path {
			t.Errorf("ParseModelArg(%q) = %q %q %v", c.in, n, p, err)
		}
	}
	if _, _, err := ParseModelArg("a b=x"); err == nil {
		t.Error("a name with a space should be refused")
	}
}
