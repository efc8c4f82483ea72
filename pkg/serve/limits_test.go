package serve

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/serve/kservepb"
)

// heapGrowth runs fn and reports how many bytes the Go heap allocated
// during it (TotalAlloc counts every allocation, freed or not, so a buffer
// the server made and dropped at once still shows).
func heapGrowth(fn func()) uint64 {
	var a, b goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&a)
	fn()
	goruntime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// A tiny ModelInfer claiming a huge shape is refused before its tensor is
// allocated (issue 18 item 1: a 31-byte request used to cost 1-4 GB).
func TestGRPCHugeShapeAllocatesNothing(t *testing.T) {
	p := writeMLP(t, t.TempDir(), "mlp.onnx", 1)
	ts := start(t, Config{Models: oneModel("mlp", p)})
	conn, err := grpc.NewClient(ts.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := kservepb.NewGRPCInferenceServiceClient(conn)
	ctx := context.Background()
	if _, err := c.ServerLive(ctx, &kservepb.ServerLiveRequest{}); err != nil { // connect first
		t.Fatal(err)
	}
	cases := []struct {
		name, dtype string
		shape       []int64
		msg         string
	}{
		{"fp32 wrong rank", "FP32", []int64{268435456}, "expected shape"},
		{"bytes wrong rank", "BYTES", []int64{268435456}, "expected datatype"},
		{"fp32 over the body limit", "FP32", []int64{67108864, 4}, "cannot carry them"},
		{"fp32 empty contents", "FP32", []int64{4000000, 4}, "contents have 0 values"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := &kservepb.ModelInferRequest{ModelName: "mlp", Inputs: []*kservepb.ModelInferRequest_InferInputTensor{{
				Name: "x", Datatype: tc.dtype, Shape: tc.shape, Contents: &kservepb.InferTensorContents{}}}}
			if tc.name == "fp32 wrong rank" {
				if b, _ := proto.Marshal(req); len(b) > 40 {
					t.Fatalf("request is %d bytes, want a tiny one", len(b))
				}
			}
			var err error
			grew := heapGrowth(func() { _, err = c.ModelInfer(ctx, req) })
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
			if st, _ := status.FromError(err); !strings.Contains(st.Message(), tc.msg) {
				t.Fatalf("message %q lacks %q", st.Message(), tc.msg)
			}
			// the whole call (client and server) allocates far less than
			// the 16 MB the smallest claimed tensor would take
			if grew > 2<<20 {
				t.Fatalf("a refused request allocated %d bytes", grew)
			}
		})
	}
}

// A 50 MB JSON body of 25M small numbers, in data or in an ignored
// parameters field, costs a small multiple of its size (issue 18 item 2:
// it cost ~1.8 GB through []any).
func TestJSONBodyAmplification(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 50 MB bodies")
	}
	p := writeMLP(t, t.TempDir(), "mlp.onnx", 1)
	ts := start(t, Config{Models: oneModel("mlp", p), GRPCAddr: "off"})
	const count = 25_000_000
	nums := bytes.Repeat([]byte("1,"), count)
	nums = nums[:len(nums)-1]
	build := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	nested := strings.Repeat("[", 100) + "1,2,3,4" + strings.Repeat("]", 100)
	cases := []struct {
		name   string
		body   []byte
		code   int
		msg    string
		tensor uint64 // bytes of the tensor the shape honestly declares
	}{
		{"25M values for 4", build([]byte(`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[`), nums, []byte(`]}]}`)),
			400, "more data values than the shape holds", 0},
		{"25M values in ignored parameters", build([]byte(`{"parameters":{"junk":[`), nums, []byte(`]},"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`)),
			200, "", 0},
		{"1M values, the last a string", build([]byte(`{"inputs":[{"name":"x","shape":[250000,4],"datatype":"FP32","data":[`), nums[:2*999_999], []byte(`"a"]}]}`)),
			400, "value 999999 (\\\"a\\\") is not a number", 4_000_000},
		{"1M values in an unknown input field", build([]byte(`{"inputs":[{"name":"x","junk":[`), nums[:2*999_999+1], []byte(`],"shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`)),
			200, "", 0},
		{"nested too deep", []byte(`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":` + nested + `}]}`), 400, "nested more than 64 deep", 0},
	}
	client := &http.Client{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var code int
			var msg []byte
			grew := heapGrowth(func() {
				resp, err := client.Post(ts.base+"/v2/models/mlp/infer", "application/json", bytes.NewReader(c.body))
				if err != nil {
					t.Fatal(err)
				}
				msg, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			})
			if code != c.code || !strings.Contains(string(msg), c.msg) {
				t.Fatalf("%d %.200s, want %d %q", code, msg, c.code, c.msg)
			}
			// the body itself (read in doubling steps), the tensor its
			// shape honestly declares, and 1 MB for the rest
			limit := 3*uint64(len(c.body)) + c.tensor + 1<<20
			t.Logf("%d-byte body: %d bytes allocated", len(c.body), grew)
			if grew > limit {
				t.Fatalf("a %d-byte body allocated %d bytes (limit %d)", len(c.body), grew, limit)
			}
		})
	}
}

// With --cache-hmac-key an entry planted in Redis by someone without the
// key is ignored (a miss, counted) and the model answers; replicas that
// share the key share entries. Without a key the planted answer is served:
// that is the documented trust boundary.
func TestRedisCacheHMAC(t *testing.T) {
	url := startRedis(t)
	p := writeMLP(t, t.TempDir(), "mlp.onnx", 1)
	key := []byte("replica secret")
	a := start(t, Config{Models: oneModel("mlp", p), CacheURL: url, CacheHMACKey: key, GRPCAddr: "off"})
	b := start(t, Config{Models: oneModel("mlp", p), CacheURL: url, CacheHMACKey: key, GRPCAddr: "off"})
	open := start(t, Config{Models: oneModel("mlp", p), CacheURL: url, GRPCAddr: "off"})
	cached := func(m map[string]any) bool { return m["parameters"].(map[string]any)["cached"] == true }

	// shared between keyed replicas
	body := inferBody([][]float32{{3, 1, 4, 1}}, "")
	_, m1, _ := post(t, a.base+"/v2/models/mlp/infer", body)
	_, m2, _ := post(t, b.base+"/v2/models/mlp/infer", body)
	if cached(m1) || !cached(m2) || fmt.Sprint(outputData(t, m1)) != fmt.Sprint(outputData(t, m2)) {
		t.Fatalf("keyed replicas do not share: %v / %v", m1, m2)
	}
	// the unkeyed server cannot read signed entries as answers
	if _, m3, _ := post(t, open.base+"/v2/models/mlp/infer", body); fmt.Sprint(outputData(t, m3)) != fmt.Sprint(outputData(t, m1)) {
		t.Fatalf("unkeyed replica answered %v", outputData(t, m3))
	}

	// plant a forged answer for another request
	rows := [][]float32{{2, 7, 1, 8}}
	want := reference(t, p, rows)
	x := runtime.FromFloat32([]int64{1, 4}, rows[0])
	k := cacheKey("mlp", "1", []string{"x"}, []*runtime.Tensor{x})
	forged := encodeResult("default", []*runtime.Tensor{runtime.FromFloat32([]int64{1, 3}, []float32{666, 666, 666})})
	rc, err := NewRedis(url, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rc.Set(context.Background(), k, forged)
	forgedBody := inferBody(rows, "")
	_, mb, _ := post(t, b.base+"/v2/models/mlp/infer", forgedBody)
	if cached(mb) || fmt.Sprint(outputData(t, mb)) != fmt.Sprint(want) {
		t.Fatalf("keyed replica served a planted entry: %v", mb)
	}
	if n := metricValue(scrape(t, b.base), "optictl_cache_rejected_total"); n < 1 {
		t.Fatalf("optictl_cache_rejected_total = %v, want >= 1", n)
	}
	// b's miss overwrote the entry with a signed one; plant again for the
	// unkeyed server, which trusts whatever Redis holds
	rc.Set(context.Background(), k, forged)
	_, mo, _ := post(t, open.base+"/v2/models/mlp/infer", forgedBody)
	if !cached(mo) || fmt.Sprint(outputData(t, mo)) != "[666 666 666]" {
		t.Fatalf("without a key the planted entry should be served (the documented trust boundary): %v", mo)
	}
}

// rawCodec sends pre-built wire bytes (a *[]byte) and receives into one.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// Protobuf decoding itself amplifies (a 2-byte empty entry becomes a
// 24-byte slice header or a ~100-byte message): such requests are refused
// on the wire, before decoding, with INVALID_ARGUMENT.
func TestGRPCWireAmplification(t *testing.T) {
	p := writeMLP(t, t.TempDir(), "mlp.onnx", 1)
	ts := start(t, Config{Models: oneModel("mlp", p)})
	conn, err := grpc.NewClient(ts.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := func() []byte {
		b := protowire.AppendTag(nil, 1, protowire.BytesType)
		return protowire.AppendString(b, "mlp")
	}
	const many = 4_000_000
	// 4M empty bytes_contents for a [4] BYTES input
	var contents []byte
	for i := 0; i < many; i++ {
		contents = append(contents, 8<<3|2, 0)
	}
	var in []byte
	in = protowire.AppendTag(in, 1, protowire.BytesType)
	in = protowire.AppendString(in, "x")
	in = protowire.AppendTag(in, 2, protowire.BytesType)
	in = protowire.AppendString(in, "BYTES")
	in = protowire.AppendTag(in, 3, protowire.BytesType)
	in = protowire.AppendBytes(in, protowire.AppendVarint(nil, 4))
	in = protowire.AppendTag(in, 5, protowire.BytesType)
	in = protowire.AppendBytes(in, contents)
	bytesReq := protowire.AppendBytes(protowire.AppendTag(head(), 5, protowire.BytesType), in)
	// 4M empty inputs
	inputsReq := head()
	for i := 0; i < many; i++ {
		inputsReq = append(inputsReq, 5<<3|2, 0)
	}
	for _, c := range []struct {
		name string
		msg  []byte
		want string
	}{
		{"bytes_contents beyond the shape", bytesReq, "more values than shape"},
		{"millions of empty inputs", inputsReq, "more than 1024 inputs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out []byte
			var err error
			grew := heapGrowth(func() {
				err = conn.Invoke(context.Background(), "/inference.GRPCInferenceService/ModelInfer", &c.msg, &out, grpc.ForceCodec(rawCodec{}))
			})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want InvalidArgument %q", err, c.want)
			}
			// the message travels and is copied once or twice; decoded it
			// would be 100-400 MB
			if limit := 4*uint64(len(c.msg)) + 1<<20; grew > limit {
				t.Fatalf("a %d-byte message allocated %d bytes (limit %d)", len(c.msg), grew, limit)
			}
		})
	}
}
