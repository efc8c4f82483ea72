package serve

import (
	"context"
	goruntime "runtime"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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
