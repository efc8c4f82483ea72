package serve

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics/half"
	"github.com/optictl/optictl/pkg/runtime"
)

// headerCases are request headers of every shape the fast reader meets:
// the ones it must read, and the ones it must leave to encoding/json.
var headerCases = []struct {
	name string
	json string
	fast bool // the fast reader takes it
}{
	{"binary", `{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","parameters":{"binary_data_size":3136}}],"outputs":[{"name":"logits","parameters":{"binary_data":true}}]}`, true},
	{"json data", `{"id":"r1","inputs":[{"name":"x","shape":[2,2],"datatype":"INT64","data":[[1,2],[3,4]]}]}`, true},
	{"whitespace", " {\n\t\"inputs\" : [ { \"name\" : \"x\" , \"shape\" : [ ] , \"datatype\" : \"FP32\" , \"data\" : 1.5e3 } ] }\r\n", true},
	{"parameters", `{"parameters":{"variant":"fast","binary_data_output":true,"other":null,"n":-1.5e-3},"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`, true},
	{"variant not a string", `{"parameters":{"variant":3},"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`, true},
	{"duplicate parameter", `{"parameters":{"variant":"a","variant":false},"inputs":[]}`, true},
	{"size not a number", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":"4"}}]}`, true},
	{"size null", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":null}}]}`, true},
	{"data null", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":null}]}`, true},
	{"data strings", `{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","data":["a\"b","\u00e9"]}]}`, true},
	{"empty input", `{"inputs":[{}]}`, true},
	{"no inputs", `{"inputs":[]}`, true},
	{"empty", `{}`, true},
	{"outputs only", `{"outputs":[{"name":"y"},{"name":"z","parameters":{"binary_data":1}}]}`, true},
	{"unknown field", `{"inputs":[],"extra":1}`, true},
	{"unknown fields everywhere", `{"x":[1,[2]],"inputs":[{"name":"x","junk":{"a":[1]},"shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{"name":"y","z":null}]}`, true},
	{"nested parameter", `{"parameters":{"a":{"b":1}},"inputs":[]}`, true},
	{"size an object", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":{"n":4}}}]}`, true},
	{"variant an array", `{"parameters":{"variant":["a"]},"inputs":[]}`, true},
	// left to encoding/json
	{"unknown field nested too deep", `{"x":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `,"inputs":[]}`, false},
	{"field case in input", `{"inputs":[{"Name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`, false},
	{"too many dims", `{"inputs":[{"name":"x","shape":[` + strings.Repeat("1,", 64) + `1],"datatype":"FP32","data":[1]}]}`, false},
	{"field case", `{"Inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`, false},
	{"duplicate field", `{"inputs":[],"inputs":[]}`, false},
	{"escaped name", `{"inputs":[{"name":"\u0078","shape":[1],"datatype":"FP32","data":[1]}]}`, false},
	{"non-ASCII name", `{"inputs":[{"name":"é","shape":[1],"datatype":"FP32","data":[1]}]}`, false},
	{"float shape", `{"inputs":[{"name":"x","shape":[1.0],"datatype":"FP32","data":[1]}]}`, false},
	{"shape null", `{"inputs":[{"name":"x","shape":null,"datatype":"FP32","data":[1]}]}`, false},
	{"huge number", `{"parameters":{"a":1e999},"inputs":[]}`, false},
	{"trailing garbage", `{"inputs":[]} x`, false},
	{"trailing NUL", "{}\x00", false},
	{"bad JSON", `{"inputs":[}`, false},
	{"null", `null`, false},
	{"leading zero", `{"inputs":[{"name":"x","shape":[01],"datatype":"FP32","data":[1]}]}`, false},
	{"id number", `{"id":5,"inputs":[]}`, false},
}

func TestHeaderFastMatchesEncodingJSON(t *testing.T) {
	for _, c := range headerCases {
		t.Run(c.name, func(t *testing.T) {
			fast, ok := parseHeaderFast([]byte(c.json))
			if ok != c.fast {
				t.Fatalf("fast reader took it: %v, want %v", ok, c.fast)
			}
			slow, err := decodeHeaderSlow([]byte(c.json))
			if !ok {
				return
			}
			if err != nil {
				t.Fatalf("fast reader accepted what encoding/json refuses: %v", err)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("fast %+v\nslow %+v", fast, slow)
			}
		})
	}
}

func TestJSONDataFastMatchesSlow(t *testing.T) {
	for _, c := range []struct {
		dt    graph.DType
		shape []int64
		data  string
		fast  bool
	}{
		{graph.Float, []int64{2, 2}, `[[1,-2.5],[3e-3, 4E+2]]`, true},
		{graph.Float, []int64{1}, `7`, true},
		{graph.Double, []int64{3}, `[0.1, -0, 1e300]`, true},
		{graph.Float16, []int64{2}, `[0.5, 65504]`, true},
		{graph.Int64, []int64{3}, `[9007199254740992, -3, 0]`, true},
		{graph.Int8, []int64{2}, `[-128, 127]`, true},
		{graph.Uint8, []int64{2}, `[0, 255]`, true},
		{graph.Int32, []int64{1}, `[[[[5]]]]`, true},
		{graph.Float, []int64{0}, `[]`, true},
		// left to the general path, which words the errors
		{graph.Int8, []int64{1}, `[128]`, false},
		{graph.Int32, []int64{1}, `[1.5]`, false},
		{graph.Float, []int64{3}, `[1,2]`, false},
		{graph.Float, []int64{1}, `[1,2]`, false},
		{graph.Float, []int64{1}, `["NaN"]`, false},
		{graph.Float, []int64{1}, `[1e999]`, false},
		{graph.Bool, []int64{2}, `[true, 0]`, false},
		{graph.String, []int64{1}, `["a"]`, false},
		{graph.Float, []int64{1 << 20}, `[1]`, false},
		{graph.Float, []int64{1}, "[1]\x00", false},
	} {
		t.Run(fmt.Sprintf("%s%v %s", c.dt, c.shape, c.data), func(t *testing.T) {
			n, _ := elements(c.shape)
			if 2*n-1 <= len(c.data) {
				tt := runtime.NewTensor(c.dt, c.shape)
				if got := numbersFast(tt, []byte(c.data), n, false); got != c.fast {
					t.Fatalf("numbersFast took it: %v, want %v", got, c.fast)
				}
			} else if c.fast {
				t.Fatal("case cannot reach the fast path")
			}
			a, errA := tensorFromJSON("x", c.dt, c.shape, []byte(c.data), false)
			b, errB := tensorFromJSONStream("x", c.dt, c.shape, []byte(c.data), false)
			if fmt.Sprint(errA) != fmt.Sprint(errB) {
				t.Fatalf("errors differ: %v / %v", errA, errB)
			}
			if errA == nil && (!bytes.Equal(a.Raw, b.Raw) || !reflect.DeepEqual(a.Strings, b.Strings) || fmt.Sprint(a.Shape) != fmt.Sprint(b.Shape)) {
				t.Fatalf("fast %v, slow %v", a.Raw, b.Raw)
			}
			if c.fast && errA != nil {
				t.Fatalf("fast case failed: %v", errA)
			}
		})
	}
}

// The response encoder writes what encoding/json wrote before it: these
// are the types and the calls it replaced.
type refOutput struct {
	Name       string         `json:"name"`
	Shape      []int64        `json:"shape"`
	Datatype   string         `json:"datatype"`
	Parameters map[string]any `json:"parameters,omitempty"`
	Data       any            `json:"data,omitempty"`
}

type refResponse struct {
	ModelName    string         `json:"model_name"`
	ModelVersion string         `json:"model_version"`
	ID           string         `json:"id,omitempty"`
	Parameters   map[string]any `json:"parameters,omitempty"`
	Outputs      []refOutput    `json:"outputs"`
}

func refEncode(t *testing.T, resp *inferResponse, bin binaryOutputs) []byte {
	out := refResponse{ModelName: resp.model, ModelVersion: resp.version, ID: resp.id,
		Parameters: map[string]any{"variant": resp.variant, "cached": resp.cached}}
	if resp.note != "" {
		out.Parameters["variant_note"] = resp.note
	}
	var blobs [][]byte
	for i, tt := range resp.outs {
		o := refOutput{Name: resp.names[i], Shape: tt.Shape, Datatype: DatatypeName(tt.DType)}
		if bin.has(resp.names[i]) {
			b := rawBytes(tt)
			o.Parameters = map[string]any{"binary_data_size": len(b)}
			blobs = append(blobs, b)
		} else {
			d, err := jsonData(tt)
			if err != nil {
				t.Fatal(err)
			}
			o.Data = d
		}
		out.Outputs = append(out.Outputs, o)
	}
	if len(blobs) == 0 {
		var buf bytes.Buffer
		json.NewEncoder(&buf).Encode(out)
		return buf.Bytes()
	}
	head, _ := json.Marshal(out)
	for _, b := range blobs {
		head = append(head, b...)
	}
	return head
}

func TestResponseEncoderMatchesEncodingJSON(t *testing.T) {
	f32 := runtime.FromFloat32([]int64{2, 4}, []float32{0.1, -2, float32(math.NaN()), float32(math.Inf(1)),
		float32(math.Inf(-1)), 1e-7, 3e21, 0})
	f64 := runtime.NewTensor(graph.Double, []int64{3})
	copy(f64.Float64s(), []float64{1e-9, 12345678.9, -0.5})
	i64 := runtime.NewTensor(graph.Int64, []int64{2})
	copy(i64.Int64s(), []int64{-1 << 62, 7})
	i32 := runtime.NewTensor(graph.Int32, []int64{2})
	binary.LittleEndian.PutUint32(i32.Raw, uint32(0xffffffff))
	b := runtime.NewTensor(graph.Bool, []int64{3})
	b.Raw[1] = 1
	s := runtime.NewTensor(graph.String, []int64{2})
	s.Strings[0], s.Strings[1] = "<a&b>", "é\n"
	h := runtime.NewTensor(graph.Float16, []int64{1})
	binary.LittleEndian.PutUint16(h.Raw, half.Float32ToFloat16(1.5))
	empty := runtime.NewTensor(graph.Float, []int64{0, 3})
	scalar := &runtime.Tensor{DType: graph.Float, Raw: make([]byte, 4)}
	all := []*runtime.Tensor{f32, f64, i64, i32, b, s, h, empty, scalar}
	names := []string{"f32", "f64", "i64", "i32", "bool", "str", "f16", "empty", "scalar"}
	for _, c := range []struct {
		name string
		resp inferResponse
		bin  binaryOutputs
	}{
		{"json", inferResponse{model: "m", version: "1", variant: "default", names: names, outs: all}, binaryOutputs{}},
		{"binary", inferResponse{model: "m", version: "1", variant: "default", cached: true, names: names, outs: all}, binaryOutputs{all: true}},
		{"mixed", inferResponse{model: "m", version: "2", id: "req-<7>", variant: "fast", note: "requested variant x is overloaded",
			names: names, outs: all}, binaryOutputs{names: []string{"str", "f32"}}},
		{"empty binary only", inferResponse{model: "m", version: "1", variant: "v", names: []string{"empty"},
			outs: []*runtime.Tensor{empty}}, binaryOutputs{all: true}},
		{"quoted names", inferResponse{model: `m"1`, version: "1", id: "\u2028", variant: "v", names: []string{`o\u`},
			outs: []*runtime.Tensor{i64}}, binaryOutputs{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := refEncode(t, &c.resp, c.bin)
			got, headLen, err := appendResponse(nil, &c.resp, c.bin)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got\n%q\nwant\n%q", got, want)
			}
			if headLen >= 0 && !json.Valid(got[:headLen]) {
				t.Fatalf("JSON part %q", got[:headLen])
			}
		})
	}
}

// cacheKeyRef is the key as it was first written (entries in a shared
// Redis cache outlive a server version: the key must not change).
func cacheKeyRef(model, version string, names []string, in []*runtime.Tensor) string {
	h := sha256.New()
	var b [8]byte
	w := func(s string) {
		binary.LittleEndian.PutUint64(b[:], uint64(len(s)))
		h.Write(b[:])
		h.Write([]byte(s))
	}
	w(model)
	w(version)
	for i, t := range in {
		w(names[i])
		binary.LittleEndian.PutUint64(b[:], uint64(t.DType))
		h.Write(b[:])
		for _, d := range t.Shape {
			binary.LittleEndian.PutUint64(b[:], uint64(d))
			h.Write(b[:])
		}
		w(string(rawBytes(t)))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestCacheKeyStable(t *testing.T) {
	s := runtime.NewTensor(graph.String, []int64{2})
	s.Strings[0], s.Strings[1] = strings.Repeat("long", 100), "x"
	x := runtime.FromFloat32([]int64{1, 3}, []float32{1, 2, 3})
	big := runtime.NewTensor(graph.Uint8, []int64{5000})
	for _, in := range [][]*runtime.Tensor{{x}, {s, x}, {big, s}, {runtime.NewTensor(graph.Int64, []int64{0})}} {
		names := []string{"a", "bb", "ccc"}[:len(in)]
		want := cacheKeyRef("model", "1", names, in)
		for i := 0; i < 2; i++ { // the second time from a pooled hasher
			if got := cacheKey("model", "1", names, in); got != want {
				t.Fatalf("key %s, want %s", got, want)
			}
		}
	}
	// the key of a borrowed (unaligned) tensor is the key of its copy
	buf := append([]byte{0}, x.Raw...)
	bt, err := borrowRaw("x", graph.Float, []int64{1, 3}, buf[1:])
	if err != nil {
		t.Fatal(err)
	}
	if cacheKey("m", "1", []string{"x"}, []*runtime.Tensor{bt}) != cacheKey("m", "1", []string{"x"}, []*runtime.Tensor{own(bt)}) {
		t.Fatal("borrowed and owned tensors hash differently")
	}
}

// TestFastPathRequestsMatchReference sends binary and JSON requests, with
// and without the cache, and checks every answer against the model run
// directly; the cached answer must equal the fresh one byte for byte.
func TestFastPathRequestsMatchReference(t *testing.T) {
	dir := t.TempDir()
	p := writeMLP(t, dir, "mlp.onnx", 1)
	rows := [][]float32{{1, -2, 3.5, 4}, {0.25, 0, -1, 8}}
	want := reference(t, p, rows)
	var raw bytes.Buffer
	for _, r := range rows {
		binary.Write(&raw, binary.LittleEndian, r)
	}
	binHead := `{"id":"b1","inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","parameters":{"binary_data_size":32}}],"outputs":[{"name":"y","parameters":{"binary_data":true}}]}`
	jsonBody := inferBody(rows, "")
	slowBody := strings.Replace(inferBody(rows, ""), `"inputs"`, `"Inputs"`, 1) // encoding/json's path
	for _, cache := range []int64{0, 1 << 20} {
		ts := start(t, Config{Models: oneModel("mlp", p), CacheBytes: cache})
		url := ts.base + "/v2/models/mlp/infer"
		var first []byte
		for i := 0; i < 3; i++ {
			req, _ := http.NewRequest("POST", url, io.MultiReader(strings.NewReader(binHead), bytes.NewReader(raw.Bytes())))
			req.Header.Set(headerInferLen, strconv.Itoa(len(binHead)))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			n, _ := strconv.Atoi(resp.Header.Get(headerInferLen))
			if resp.StatusCode != 200 || n <= 0 || len(b)-n != 4*len(want) {
				t.Fatalf("cache %d: %d %q", cache, resp.StatusCode, b)
			}
			var head map[string]any
			if err := json.Unmarshal(b[:n], &head); err != nil {
				t.Fatal(err)
			}
			if cached := head["parameters"].(map[string]any)["cached"]; cached != (cache > 0 && i > 0) || head["id"] != "b1" {
				t.Fatalf("cache %d request %d: %v", cache, i, head)
			}
			for k := range want {
				if got := math.Float32frombits(binary.LittleEndian.Uint32(b[n+4*k:])); got != want[k] {
					t.Fatalf("y[%d] = %v, want %v", k, got, want[k])
				}
			}
			if i == 0 {
				first = b[n:]
			} else if !bytes.Equal(b[n:], first) {
				t.Fatalf("request %d answered %v, the first %v", i, b[n:], first)
			}
		}
		var firstJSON []any
		for i, body := range []string{jsonBody, jsonBody, slowBody} {
			code, m, _ := post(t, url, body)
			if code != 200 {
				t.Fatalf("%d %v", code, m)
			}
			if got := outputData(t, m); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("JSON request %d: %v, want %v", i, got, want)
			}
			data := m["outputs"].([]any)[0].(map[string]any)["data"].([]any)
			if i == 0 {
				firstJSON = data
			} else if !reflect.DeepEqual(data, firstJSON) {
				t.Fatalf("JSON request %d answered %v, the first %v", i, data, firstJSON)
			}
		}
		ts.stop(t)
	}
}

// TestDirectPathMetricsAndTimeout: without batching, requests run in their
// own goroutine; metrics, the queue bound and timeouts behave as queued.
func TestDirectPathMetricsAndTimeout(t *testing.T) {
	dir := t.TempDir()
	p := writeMLP(t, dir, "mlp.onnx", 1)
	ts := start(t, Config{Models: oneModel("mlp", p), Instances: 2})
	if v := ts.models["mlp"].variants[0]; !v.direct {
		t.Fatal("an unbatched variant should run requests directly")
	}
	const n = 20
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rows := [][]float32{{float32(i), 1, 2, 3}}
			code, m, _ := post(t, ts.base+"/v2/models/mlp/infer", inferBody(rows, ""))
			if code != 200 {
				t.Errorf("%d %v", code, m)
				return
			}
			if got, want := outputData(t, m), reference(t, p, rows); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("req %d: %v, want %v", i, got, want)
			}
		}(i)
	}
	wg.Wait()
	met := scrape(t, ts.base)
	for series, want := range map[string]float64{
		`nv_inference_count{model="mlp",variant="default",version="1"}`:       n,
		`nv_inference_exec_count{model="mlp",variant="default",version="1"}`:  n,
		`nv_inference_request_success{model="mlp",version="1"}`:               n,
		`optictl_queue_depth{model="mlp",variant="default",version="1"}`:      0,
		`optictl_batch_size_count{model="mlp",variant="default",version="1"}`: n,
	} {
		if got := metricValue(met, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}

	// a backend that honours its context stops at the deadline: the
	// client hears 504 long before the 300 ms run would have ended
	m, _ := graph.Load(p)
	m.ProducerVersion = "slow"
	slow := dir + "/slow.onnx"
	if err := m.Save(slow); err != nil {
		t.Fatal(err)
	}
	ts2 := start(t, Config{Models: oneModel("mlp", slow), Timeout: 50 * time.Millisecond, QueueSize: 1,
		Open: slowOpen(map[string]time.Duration{"slow": 300 * time.Millisecond})})
	url := ts2.base + "/v2/models/mlp/infer"
	t0 := time.Now()
	code, body, _ := post(t, url, inferBody([][]float32{{1, 2, 3, 4}}, ""))
	if el := time.Since(t0); code != 504 || !strings.Contains(fmt.Sprint(body["error"]), "timed out") || el > 250*time.Millisecond {
		t.Fatalf("timeout: %d %v after %v", code, body, el)
	}
	// one running, one waiting (QueueSize 1): the third is refused at once
	ts3 := start(t, Config{Models: oneModel("mlp", slow), Timeout: 5 * time.Second, QueueSize: 1,
		Open: slowOpen(map[string]time.Duration{"slow": 400 * time.Millisecond})})
	url = ts3.base + "/v2/models/mlp/infer"
	codes := make(chan int, 3)
	for i := 0; i < 3; i++ {
		go func() { c, _, _ := post(t, url, inferBody([][]float32{{1, 2, 3, 4}}, "")); codes <- c }()
		time.Sleep(60 * time.Millisecond)
	}
	got := map[int]int{}
	for i := 0; i < 3; i++ {
		got[<-codes]++
	}
	if got[429] != 1 || got[200] != 2 {
		t.Fatalf("want one 429 and two 200, got %v", got)
	}
	met = scrape(t, ts3.base)
	if v := metricValue(met, `nv_inference_request_failure{model="mlp",reason="BACKLOG",version="1"}`); v != 1 {
		t.Errorf("BACKLOG failures = %v, want 1", v)
	}
	if v := metricValue(met, `optictl_queue_depth{model="mlp",variant="default",version="1"}`); v != 0 {
		t.Errorf("queue depth after the burst = %v", v)
	}
	if v := metricValue(met, `optictl_queue_duration_seconds_count{model="mlp",variant="default",version="1"}`); v != 2 {
		t.Errorf("queue durations observed = %v, want 2", v)
	}
}

// TestBorrowedInputsDoNotOutliveTheRequest: the binary inputs of a request
// alias its (pooled) body; a later request reusing the buffer must not
// change what an earlier one computed or cached.
func TestBorrowedInputsDoNotOutliveTheRequest(t *testing.T) {
	dir := t.TempDir()
	p := writeMLP(t, dir, "mlp.onnx", 1)
	s, err := New(Config{Models: oneModel("mlp", p), Backend: "interp", CacheBytes: 1 << 20, HTTPAddr: "127.0.0.1:0", GRPCAddr: "off"})
	if err != nil {
		t.Fatal(err)
	}
	s.ready.Store(true)
	defer s.shutdown()
	h := s.Handler()
	send := func(x []float32) []byte {
		head := `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}],"parameters":{"binary_data_output":true}}`
		var body bytes.Buffer
		body.WriteString(head)
		binary.Write(&body, binary.LittleEndian, x)
		r := httptest.NewRequest("POST", "/v2/models/mlp/infer", &body)
		r.Header.Set(headerInferLen, strconv.Itoa(len(head)))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		n, _ := strconv.Atoi(w.Header().Get(headerInferLen))
		return w.Body.Bytes()[n:]
	}
	rows := [][]float32{{1, 2, 3, 4}, {-4, 3, -2, 1}, {9, 9, 9, 9}}
	first := map[int][]byte{}
	for round := 0; round < 3; round++ {
		for i, r := range rows {
			got := send(r)
			want := reference(t, p, [][]float32{r})
			for k := range want {
				if v := math.Float32frombits(binary.LittleEndian.Uint32(got[4*k:])); v != want[k] {
					t.Fatalf("round %d row %d: y[%d] = %v, want %v", round, i, k, v, want[k])
				}
			}
			if round == 0 {
				first[i] = got
			} else if !bytes.Equal(got, first[i]) {
				t.Fatalf("round %d row %d: cached %v, fresh %v", round, i, got, first[i])
			}
		}
	}
}

// TestCheckFinite: every position of every length finds a NaN or an
// infinity (float32 and float64), finite extremes pass, and the error
// names the element.
func TestCheckFinite(t *testing.T) {
	f32 := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(0x7fc00001), math.Float32frombits(0xff800001)}
	ok32 := []float32{math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, 0, float32(math.Copysign(0, -1)), 1}
	for n := 1; n <= 9; n++ {
		for pos := 0; pos < n; pos++ {
			for _, bad := range f32 {
				x := make([]float32, n)
				for i := range x {
					x[i] = ok32[i%len(ok32)]
				}
				x[pos] = bad
				err := checkFinite("x", runtime.FromFloat32([]int64{int64(n)}, x))
				if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("element %d is", pos)) {
					t.Fatalf("float32 n=%d pos=%d %v: %v", n, pos, bad, err)
				}
			}
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = ok32[(i+n)%len(ok32)]
		}
		if err := checkFinite("x", runtime.FromFloat32([]int64{int64(n)}, x)); err != nil {
			t.Fatalf("finite float32s refused: %v", err)
		}
		d := runtime.NewTensor(graph.Double, []int64{int64(n)})
		vs := d.Float64s()
		for i := range vs {
			vs[i] = []float64{math.MaxFloat64, -1, 0, math.SmallestNonzeroFloat64}[i%4]
		}
		if err := checkFinite("d", d); err != nil {
			t.Fatalf("finite float64s refused: %v", err)
		}
		for pos := 0; pos < n; pos++ {
			for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
				old := vs[pos]
				vs[pos] = bad
				err := checkFinite("d", d)
				vs[pos] = old
				if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("element %d is", pos)) {
					t.Fatalf("float64 n=%d pos=%d %v: %v", n, pos, bad, err)
				}
			}
		}
	}
}

// TestRequestBodyLengths: the body is read whole whatever Content-Length
// says (exact, absent, a lie larger than the data, over the limit).
func TestRequestBodyLengths(t *testing.T) {
	dir := t.TempDir()
	p := writeMLP(t, dir, "mlp.onnx", 1)
	s, err := New(Config{Models: oneModel("mlp", p), Backend: "interp", MaxBodyBytes: 4 << 20, HTTPAddr: "127.0.0.1:0", GRPCAddr: "off"})
	if err != nil {
		t.Fatal(err)
	}
	s.ready.Store(true)
	defer s.shutdown()
	h := s.Handler()
	body := inferBody([][]float32{{1, 2, 3, 4}}, "")
	for _, c := range []struct {
		name   string
		length int64
		code   int
		msg    string
	}{
		{"exact", int64(len(body)), 200, ""},
		{"absent (chunked)", -1, 200, ""},
		{"claims 2 MB", 2 << 20, 200, ""},
		{"over the limit", 8 << 20, 413, "over the limit of 4194304 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v2/models/mlp/infer", strings.NewReader(body))
			r.ContentLength = c.length
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != c.code || !strings.Contains(w.Body.String(), c.msg) {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
		})
	}
}
