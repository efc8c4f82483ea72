package serve

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// tensorFromJSON builds a runtime tensor from a JSON data array: numbers
// straight into the tensor when they are plain (numbersFast), else through
// decodeJSONData, which reads any data and words the errors.
func tensorFromJSON(name string, dt graph.DType, shape []int64, data []byte, allowNaN bool) (*runtime.Tensor, error) {
	n, err := elements(shape)
	if err != nil {
		return nil, fmt.Errorf("input %q: %w", name, err)
	}
	var t *runtime.Tensor
	if fitsJSON(n, data) {
		t = runtime.NewTensor(dt, shape)
		if numbersFast(t, data, n, allowNaN) {
			return t, nil
		}
	}
	return decodeJSONData(name, t, dt, shape, n, data, allowNaN)
}

// fitsJSON: each JSON value takes at least two bytes ("1,") but the last,
// so the data bounds how many values there can be; a tensor is never
// sized from a claimed shape the data cannot fill.
func fitsJSON(n int, data []byte) bool { return 2*n-1 <= len(data) }

// maxDataDepth bounds how deeply data arrays may nest.
const maxDataDepth = 64

// tensorFromJSONStream decodes any JSON data (nested arrays of numbers,
// booleans or strings) in one pass over the bytes, each value straight into
// the tensor: no []any, at most n values, arrays nested at most
// maxDataDepth deep. The first problem found is the error.
func tensorFromJSONStream(name string, dt graph.DType, shape []int64, data []byte, allowNaN bool) (*runtime.Tensor, error) {
	n, err := elements(shape)
	if err != nil {
		return nil, fmt.Errorf("input %q: %w", name, err)
	}
	return decodeJSONData(name, nil, dt, shape, n, data, allowNaN)
}

// decodeJSONData is tensorFromJSONStream into t (nil: allocate one when the
// data can fill it, else only count the values for the error).
func decodeJSONData(name string, t *runtime.Tensor, dt graph.DType, shape []int64, n int, data []byte, allowNaN bool) (*runtime.Tensor, error) {
	if t == nil && fitsJSON(n, data) {
		t = runtime.NewTensor(dt, shape)
	} else if t != nil {
		clear(t.Raw)
	}
	kind := "number"
	switch dt {
	case graph.String:
		kind = "string"
	case graph.Bool:
		kind = "boolean"
	case graph.BFloat16:
		return nil, fmt.Errorf("input %q: datatype %s is not supported in JSON", name, DatatypeName(dt))
	}
	s := &scanner{b: data}
	k := 0
	var werr error
	fail := func(format string, args ...any) bool {
		if werr == nil {
			werr = fmt.Errorf("input %q: "+format, append([]any{name}, args...)...)
		}
		return false
	}
	syntax := func() bool { return fail("data: malformed JSON near byte %d", s.i) }
	var walk func(depth int) bool
	walk = func(depth int) bool {
		c := s.next()
		if c == '[' {
			if depth == 0 {
				return fail("data: arrays nested more than %d deep", maxDataDepth)
			}
			if !s.array(func() bool { return walk(depth - 1) }) {
				return syntax() // keeps an earlier error
			}
			return true
		}
		if t == nil || k >= n {
			if t != nil {
				return fail("data: more data values than the shape holds")
			}
			k++ // the data cannot fill the shape: only count
			return s.skipValue(depth) || syntax()
		}
		i := k
		k++
		switch c {
		case '"':
			start := s.i
			if !s.skipString() {
				return syntax()
			}
			if dt != graph.String {
				return fail("value %d (%s) is not a %s", i, data[start:s.i], kind)
			}
			t.Strings[i] = jsonString(data[start:s.i])
			return true
		case 't', 'f':
			if !s.literal("true") && !s.literal("false") {
				return syntax()
			}
			if dt != graph.Bool {
				return fail("value %d (%v) is not a %s", i, c == 't', kind)
			}
			if c == 't' {
				t.Raw[i] = 1
			}
			return true
		case 'n':
			if !s.literal("null") {
				return syntax()
			}
			return fail("value %d (null) is not a %s", i, kind)
		case '{':
			if !s.skipValue(depth) {
				return syntax()
			}
			return fail("value %d (an object) is not a %s", i, kind)
		}
		tok, ok := s.number()
		if !ok {
			return syntax()
		}
		f, err := strconv.ParseFloat(string(tok), 64)
		if err != nil {
			return fail("value %d (%s) is out of range", i, tok)
		}
		switch dt {
		case graph.String:
			return fail("value %d (%s) is not a string", i, tok)
		case graph.Bool:
			if f != 0 && f != 1 {
				return fail("value %d (%s) is not a boolean", i, tok)
			}
			t.Raw[i] = byte(f)
			return true
		}
		if err := putNumber(t, i, f, allowNaN); err != nil {
			return fail("value %d: %v", i, err)
		}
		return true
	}
	if !walk(maxDataDepth) {
		return nil, werr
	}
	if !s.end() {
		return nil, fmt.Errorf("input %q: data: malformed JSON near byte %d", name, s.i)
	}
	if k != n || t == nil {
		return nil, fmt.Errorf("input %q: data has %d values, shape %v needs %d", name, k, shape, n)
	}
	return t, nil
}

// jsonString decodes a valid JSON string token as encoding/json does
// (escapes resolved, invalid UTF-8 replaced).
func jsonString(tok []byte) string {
	body := tok[1 : len(tok)-1]
	for _, c := range body {
		if c < 0x20 || c >= 0x7f || c == '\\' {
			var v string
			_ = json.Unmarshal(tok, &v) // tok passed skipString
			return v
		}
	}
	return string(body)
}
