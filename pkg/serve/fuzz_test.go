package serve

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// FuzzDecodeHTTP feeds arbitrary bodies (JSON and binary-extension) to the
// request decoder: it must return a request or an error, never panic, and
// never allocate beyond what the body and the element limit allow. Where
// the fast readers (parseHeaderFast, numbersFast) take an input, they must
// read exactly what encoding/json reads.
func FuzzDecodeHTTP(f *testing.F) {
	for _, c := range headerCases {
		f.Add([]byte(c.json), 0)
	}
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[2,2],"datatype":"INT8","data":[[1,-2],[3,127]]}]}`), 0)
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[3],"datatype":"FP16","data":[1e-3,65504,-0]}]}`), 0)
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`), 0)
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[2,2],"datatype":"INT64","data":[[1,2],[3,4]]}]}`), 0)
	f.Add([]byte(`{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","data":["a","b"]}]}`), 0)
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}abcd`), 82)
	f.Add([]byte(`{"inputs":[{"name":"s","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":9}}]}`+"\x05\x00\x00\x00hello"), 89)
	// model m takes x: FP32 and s: BYTES of any shape
	s := &Server{cfg: Config{MaxBodyBytes: 1 << 20}, models: map[string]*servedModel{"m": {name: "m", version: "1",
		variants: []*variant{{inputs: []runtime.IOInfo{{Name: "x", DType: graph.Float}, {Name: "s", DType: graph.String}}}}}}}
	f.Fuzz(func(t *testing.T, body []byte, headerLen int) {
		r := httptest.NewRequest("POST", "/v2/models/m/infer", strings.NewReader(""))
		if headerLen > 0 {
			r.Header.Set(headerInferLen, strconv.Itoa(headerLen))
		}
		jsonPart := body
		if headerLen > 0 && headerLen <= len(body) {
			jsonPart = body[:headerLen]
		}
		if fast, ok := parseHeaderFast(jsonPart); ok {
			slow, err := decodeHeaderSlow(jsonPart)
			if err != nil {
				t.Fatalf("fast reader accepted %q, encoding/json says %v", jsonPart, err)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("%q: fast %+v, encoding/json %+v", jsonPart, fast, slow)
			}
			for _, in := range fast.inputs {
				dt, err := parseDatatype(in.datatype)
				if err != nil || in.data == nil || in.shape == nil {
					continue
				}
				a, errA := tensorFromJSON(in.name, dt, in.shape, in.data, false)
				b, errB := tensorFromJSONStream(in.name, dt, in.shape, in.data, false)
				if fmt.Sprint(errA) != fmt.Sprint(errB) || errA == nil && (!bytes.Equal(a.Raw, b.Raw) || !reflect.DeepEqual(a.Strings, b.Strings)) {
					t.Fatalf("data %q: fast %v %v, encoding/json %v %v", in.data, a, errA, b, errB)
				}
			}
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
