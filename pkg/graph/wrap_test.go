package graph

import (
	"testing"
	"unsafe"
)

func TestWrapFloat32(t *testing.T) {
	tests := []struct {
		name string
		dims []int64
		data []float32
	}{
		{"matrix", []int64{2, 3}, []float32{1, -2, 3.5, 0, 5, 6}},
		{"scalar", nil, []float32{7}},
		{"empty", []int64{0}, []float32{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dims := append([]int64(nil), tc.dims...)
			w := WrapFloat32("w", dims, tc.data)
			if w.DType != Float || w.Len() != int64(len(tc.data)) || len(w.Raw) != 4*len(tc.data) {
				t.Fatalf("got %s%v with %d bytes", w.DType, w.Dims, len(w.Raw))
			}
			if len(tc.data) > 0 && unsafe.Pointer(unsafe.SliceData(w.Raw)) != unsafe.Pointer(unsafe.SliceData(tc.data)) {
				t.Fatal("WrapFloat32 copied the data")
			}
			got, err := w.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.data {
				if got[i] != tc.data[i] {
					t.Fatalf("element %d is %g, want %g", i, got[i], tc.data[i])
				}
			}
			if len(dims) > 0 {
				dims[0] = 99
				if w.Dims[0] == 99 {
					t.Fatal("dims are shared with the caller")
				}
			}
		})
	}
}
