package runtime

import (
	"testing"
	"unsafe"

	"github.com/optictl/optictl/pkg/graph"
)

// TestFromGraphTensorAlias checks when FromGraphTensor aliases the graph
// tensor's bytes (aligned, exact length) and when it copies.
func TestFromGraphTensorAlias(t *testing.T) {
	words := make([]uint64, 9) // 8-byte aligned backing
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), 72)
	for i := range buf {
		buf[i] = byte(i + 1)
	}
	tests := []struct {
		name      string
		g         *graph.Tensor
		alias     bool
		wantBytes int
	}{
		{"aligned float32", &graph.Tensor{DType: graph.Float, Dims: []int64{2, 4}, Raw: buf[:32]}, true, 32},
		{"aligned int64 with spare capacity", &graph.Tensor{DType: graph.Int64, Dims: []int64{8}, Raw: buf[:64]}, true, 64},
		{"aligned int8", &graph.Tensor{DType: graph.Int8, Dims: []int64{3}, Raw: buf[8:11]}, true, 3},
		{"misaligned float32", &graph.Tensor{DType: graph.Float, Dims: []int64{4}, Raw: buf[4:20]}, false, 16},
		{"misaligned by one byte", &graph.Tensor{DType: graph.Int32, Dims: []int64{2}, Raw: buf[1:9]}, false, 8},
		{"too short", &graph.Tensor{DType: graph.Float, Dims: []int64{4}, Raw: buf[:8]}, false, 16},
		{"too long", &graph.Tensor{DType: graph.Float, Dims: []int64{1}, Raw: buf[:8]}, false, 4},
		{"empty", &graph.Tensor{DType: graph.Float, Dims: []int64{0}, Raw: nil}, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt := FromGraphTensor(tc.g)
			if err := rt.Check(); err != nil {
				t.Fatal(err)
			}
			if len(rt.Raw) != tc.wantBytes {
				t.Fatalf("%d bytes, want %d", len(rt.Raw), tc.wantBytes)
			}
			same := len(rt.Raw) > 0 && len(tc.g.Raw) > 0 && unsafe.SliceData(rt.Raw) == unsafe.SliceData(tc.g.Raw)
			if same != tc.alias {
				t.Fatalf("aliases %v, want %v", same, tc.alias)
			}
			if tc.alias && cap(rt.Raw) != len(rt.Raw) {
				t.Fatalf("aliased slice has capacity %d beyond its %d bytes: an append could write into the graph tensor", cap(rt.Raw), len(rt.Raw))
			}
			// The values are the graph tensor's, zero-padded when it is short.
			for i := range rt.Raw {
				want := byte(0)
				if i < len(tc.g.Raw) {
					want = tc.g.Raw[i]
				}
				if rt.Raw[i] != want {
					t.Fatalf("byte %d is %d, want %d", i, rt.Raw[i], want)
				}
			}
			// The shape is never shared.
			if len(rt.Shape) > 0 {
				rt.Shape[0] = 99
				if tc.g.Dims[0] == 99 {
					t.Fatal("the shape aliases the graph tensor's dims")
				}
			}
			// Typed views of an aliased tensor read the graph bytes in place
			// (no realignment copy).
			if tc.alias && tc.g.DType == graph.Float {
				f := rt.Float32s()
				if unsafe.Pointer(unsafe.SliceData(f)) != unsafe.Pointer(unsafe.SliceData(tc.g.Raw)) {
					t.Fatal("Float32s copied an aligned aliased tensor")
				}
			}
		})
	}
}

func TestFromGraphTensorStrings(t *testing.T) {
	tests := []struct {
		name string
		g    *graph.Tensor
		want []string
	}{
		{"exact", &graph.Tensor{DType: graph.String, Dims: []int64{2}, Strings: [][]byte{[]byte("a"), []byte("bc")}}, []string{"a", "bc"}},
		{"short", &graph.Tensor{DType: graph.String, Dims: []int64{3}, Strings: [][]byte{[]byte("a")}}, []string{"a", "", ""}},
		{"too many", &graph.Tensor{DType: graph.String, Dims: []int64{1}, Strings: [][]byte{[]byte("a"), []byte("b")}}, []string{"a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt := FromGraphTensor(tc.g)
			if len(rt.Strings) != len(tc.want) {
				t.Fatalf("strings %q, want %q", rt.Strings, tc.want)
			}
			for i := range tc.want {
				if rt.Strings[i] != tc.want[i] {
					t.Fatalf("strings %q, want %q", rt.Strings, tc.want)
				}
			}
			tc.g.Strings[0][0] = 'z'
			if rt.Strings[0] != tc.want[0] {
				t.Fatal("string data aliases the graph tensor")
			}
		})
	}
}
