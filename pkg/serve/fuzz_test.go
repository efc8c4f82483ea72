package serve

import (
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// FuzzDecodeHTTP feeds arbitrary bodies (JSON and binary-extension) to the
// request decoder: it must return a request or an error, never panic, and
// never allocate beyond what the body and the element limit allow.
func FuzzDecodeHTTP(f *testing.F) {
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`), 0)
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[2,2],"datatype":"INT64","data":[[1,2],[3,4]]}]}`), 0)
	f.Add([]byte(`{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","data":["a","b"]}]}`), 0)
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}abcd`), 82)
	f.Add([]byte(`{"inputs":[{"name":"s","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":9}}]}`+"\x05\x00\x00\x00hello"), 89)
	s := &Server{cfg: Config{}, models: map[string]*servedModel{}}
	f.Fuzz(func(t *testing.T, body []byte, headerLen int) {
		r := httptest.NewRequest("POST", "/v2/models/m/infer", strings.NewReader(""))
		if headerLen > 0 {
			r.Header.Set(headerInferLen, strconv.Itoa(headerLen))
		}
		req, _, err := s.decodeHTTP(r, body, "m", "")
		if err == nil {
			for i, tt := range req.tensors {
				if tt.Check() != nil {
					t.Fatalf("decoded input %q is inconsistent", req.names[i])
				}
			}
		}
	})
}

// FuzzCacheEntry: a corrupt shared-cache entry is a miss, never a panic.
func FuzzCacheEntry(f *testing.F) {
	f.Add(encodeResult("v", nil))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = decodeResult(b)
	})
}
