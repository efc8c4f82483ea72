package graph_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/onnxpb"
)

func TestTensorFromProto(t *testing.T) {
	f := int32(graph.Float)
	i8 := int32(graph.Int8)
	ext := onnxpb.TensorProto_EXTERNAL
	cases := []struct {
		name string
		p    *onnxpb.TensorProto
		err  string
		want []float64
	}{
		{"float_data", &onnxpb.TensorProto{DataType: &f, Dims: []int64{2}, FloatData: []float32{1.5, -2}}, "", []float64{1.5, -2}},
		{"int8 in int32_data", &onnxpb.TensorProto{DataType: &i8, Dims: []int64{3}, Int32Data: []int32{-1, 0, 7}}, "", []float64{-1, 0, 7}},
		{"raw", &onnxpb.TensorProto{DataType: &f, Dims: []int64{}, RawData: []byte{0, 0, 0x80, 0x3f}}, "", []float64{1}},
		{"short float_data", &onnxpb.TensorProto{DataType: &f, Dims: []int64{3}, FloatData: []float32{1}}, "1 values for 3 elements", nil},
		{"raw length", &onnxpb.TensorProto{DataType: &f, Dims: []int64{2}, RawData: []byte{1}}, "raw_data has 1 bytes", nil},
		{"negative dim", &onnxpb.TensorProto{DataType: &f, Dims: []int64{-2}}, "negative dimension", nil},
		{"huge claim", &onnxpb.TensorProto{DataType: &f, Dims: []int64{1 << 20, 1 << 10}, FloatData: []float32{1}}, "values for", nil},
		{"unknown dtype", &onnxpb.TensorProto{DataType: proto.Int32(99), Dims: []int64{1}}, "unknown data type", nil},
		{"external", &onnxpb.TensorProto{DataType: &f, Dims: []int64{1}, DataLocation: &ext, ExternalData: []*onnxpb.StringStringEntryProto{{Key: proto.String("location"), Value: proto.String("w.bin")}}}, "external", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := graph.TensorFromProto(c.p)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			v, _ := got.AsFloat64s()
			if len(v) != len(c.want) {
				t.Fatalf("got %v want %v", v, c.want)
			}
			for i := range v {
				if v[i] != c.want[i] {
					t.Fatalf("got %v want %v", v, c.want)
				}
			}
		})
	}
}
