package serve

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unsafe"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// The request path's JSON, without reflection. Decoding has two ways in:
// parseHeaderFast reads the common shape of a KServe request (exact field
// names, ASCII strings without escapes, scalar parameters) and gives up on
// anything else, and then encoding/json (decodeHeaderSlow) reads it, so
// every error message and every corner of encoding/json's behaviour (case-
// insensitive field names, duplicate keys, escapes, nulls) stays as it
// was. FuzzDecodeHTTP checks that when the fast reader accepts a header it
// reads exactly what encoding/json reads.

// reqHeader is the JSON part of an HTTP infer request.
type reqHeader struct {
	id      string
	variant string // parameters.variant when it is a string
	binAll  bool   // parameters.binary_data_output is true
	inputs  []reqInput
	outputs []reqOutput
}

type reqInput struct {
	name, datatype string
	shape          []int64
	hasSize        bool   // parameters has binary_data_size
	size           any    // its value as encoding/json decodes it into an any
	data           []byte // the raw JSON of "data"; nil when absent
}

type reqOutput struct {
	name   string
	binary bool // parameters.binary_data is true
}

// decodeHeaderSlow reads a header with encoding/json.
func decodeHeaderSlow(b []byte) (*reqHeader, error) {
	var jr jsonRequest
	if err := json.Unmarshal(b, &jr); err != nil {
		return nil, err
	}
	h := &reqHeader{id: jr.ID}
	h.variant, _ = jr.Parameters["variant"].(string)
	h.binAll, _ = jr.Parameters["binary_data_output"].(bool)
	for _, in := range jr.Inputs {
		ri := reqInput{name: in.Name, datatype: in.Datatype, shape: in.Shape, data: in.Data}
		ri.size, ri.hasSize = in.Parameters["binary_data_size"]
		h.inputs = append(h.inputs, ri)
	}
	for _, o := range jr.Outputs {
		ro := reqOutput{name: o.Name}
		ro.binary, _ = o.Parameters["binary_data"].(bool)
		h.outputs = append(h.outputs, ro)
	}
	return h, nil
}

// scanner is the fast reader's cursor; any method returning false means
// "not the common shape": the caller falls back to encoding/json.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next skips white space and reports the next byte (0 at the end).
func (s *scanner) next() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// end skips white space and reports whether the input is over.
func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

func (s *scanner) eat(c byte) bool {
	if s.next() == c {
		s.i++
		return true
	}
	return false
}

// plainBytes reads a string of printable ASCII without escapes, which
// decodes to exactly its bytes; the result aliases the input.
func (s *scanner) plainBytes() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// plainString is plainBytes as a new string.
func (s *scanner) plainString() (string, bool) {
	b, ok := s.plainBytes()
	return string(b), ok
}

// number reads a JSON number token (grammar checked) and returns its bytes.
func (s *scanner) number() ([]byte, bool) {
	s.ws()
	b, i := s.b, s.i
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return nil, false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return nil, false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	s.i = i
	return b[start:i], true
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// skipString passes over any valid JSON string (escapes checked).
func (s *scanner) skipString() bool {
	if !s.eat('"') {
		return false
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		s.i++
		switch {
		case c == '"':
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if s.i >= len(s.b) {
				return false
			}
			e := s.b[s.i]
			s.i++
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(s.b)-s.i < 4 {
					return false
				}
				for _, h := range s.b[s.i : s.i+4] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				s.i += 4
			default:
				return false
			}
		}
	}
	return false
}

// skipValue passes over any valid JSON value nested at most depth deep.
func (s *scanner) skipValue(depth int) bool {
	if depth <= 0 {
		return false
	}
	switch s.next() {
	case '"':
		return s.skipString()
	case '{':
		s.i++
		if s.eat('}') {
			return true
		}
		for {
			if !s.skipString() || !s.eat(':') || !s.skipValue(depth-1) {
				return false
			}
			if s.eat('}') {
				return true
			}
			if !s.eat(',') {
				return false
			}
		}
	case '[':
		s.i++
		if s.eat(']') {
			return true
		}
		for {
			if !s.skipValue(depth - 1) {
				return false
			}
			if s.eat(']') {
				return true
			}
			if !s.eat(',') {
				return false
			}
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	_, ok := s.number()
	return ok
}

// scalar reads a parameter value as encoding/json decodes it into an any:
// string, float64, bool or nil. Objects and arrays are not the common shape.
func (s *scanner) scalar() (any, bool) {
	switch s.next() {
	case '"':
		return s.plainString()
	case 't':
		return true, s.literal("true")
	case 'f':
		return false, s.literal("false")
	case 'n':
		return nil, s.literal("null")
	}
	tok, ok := s.number()
	if !ok {
		return nil, false
	}
	f, err := strconv.ParseFloat(unsafe.String(&tok[0], len(tok)), 64)
	return f, err == nil
}

// object reads {"key": value, ...}, calling field for each key; field
// reads the value.
func (s *scanner) object(field func(key []byte) bool) bool {
	if !s.eat('{') {
		return false
	}
	if s.eat('}') {
		return true
	}
	for {
		k, ok := s.plainBytes()
		if !ok || !s.eat(':') || !field(k) {
			return false
		}
		if s.eat('}') {
			return true
		}
		if !s.eat(',') {
			return false
		}
	}
}

// array reads [elem, ...], calling elem for each element.
func (s *scanner) array(elem func() bool) bool {
	if !s.eat('[') {
		return false
	}
	if s.eat(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if s.eat(']') {
			return true
		}
		if !s.eat(',') {
			return false
		}
	}
}

// params reads a parameters object of scalars; keep is called with each
// key and value (a later duplicate overrides, as in a map).
//
// An object or array value is passed over (as jsonParams does) and kept as
// a compositeParam: a parameter nobody reads costs no memory.
func (s *scanner) params(keep func(key []byte, v any)) bool {
	return s.object(func(k []byte) bool {
		switch c := s.next(); c {
		case '{', '[':
			v := compositeParam(map[byte]string{'{': "an object", '[': "an array"}[c])
			if !s.skipValue(64) {
				return false
			}
			keep(k, v)
			return true
		}
		v, ok := s.scalar()
		if ok {
			keep(k, v)
		}
		return ok
	})
}

// unknownField passes over the value of a field the request type does not
// have, as encoding/json ignores it; a key that matches a known field but
// for case is left to encoding/json (which matches it case-insensitively).
func (s *scanner) unknownField(k []byte, known ...string) bool {
	for _, f := range known {
		if strings.EqualFold(string(k), f) {
			return false
		}
	}
	return s.skipValue(64)
}

// once marks a field seen; a duplicate field is not the common shape.
func once(seen *uint32, bit uint32) bool {
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

// parseHeaderFast reads the common shape of a request header, or reports
// false (then decodeHeaderSlow decides).
func parseHeaderFast(b []byte) (*reqHeader, bool) {
	s := &scanner{b: b}
	h := &reqHeader{}
	var seen uint32
	var variant, binAll any
	ok := s.object(func(k []byte) bool {
		switch string(k) {
		case "id":
			if !once(&seen, 1) {
				return false
			}
			var ok bool
			h.id, ok = s.plainString()
			return ok
		case "parameters":
			return once(&seen, 2) && s.params(func(k []byte, v any) {
				switch string(k) {
				case "variant":
					variant = v
				case "binary_data_output":
					binAll = v
				}
			})
		case "inputs":
			return once(&seen, 4) && s.array(func() bool {
				if len(h.inputs) >= maxTensors {
					return false
				}
				in, ok := s.input()
				h.inputs = append(h.inputs, in)
				return ok
			})
		case "outputs":
			return once(&seen, 8) && s.array(func() bool {
				if len(h.outputs) >= maxTensors {
					return false
				}
				var o reqOutput
				var oseen uint32
				var bin any
				ok := s.object(func(k []byte) bool {
					switch string(k) {
					case "name":
						var ok bool
						o.name, ok = s.plainString()
						return once(&oseen, 1) && ok
					case "parameters":
						return once(&oseen, 2) && s.params(func(k []byte, v any) {
							if string(k) == "binary_data" {
								bin = v
							}
						})
					}
					return s.unknownField(k, "name", "parameters")
				})
				o.binary, _ = bin.(bool)
				h.outputs = append(h.outputs, o)
				return ok
			})
		}
		return s.unknownField(k, "id", "parameters", "inputs", "outputs")
	})
	if !ok || !s.end() {
		return nil, false
	}
	h.variant, _ = variant.(string)
	h.binAll, _ = binAll.(bool)
	return h, true
}

func (s *scanner) input() (reqInput, bool) {
	var in reqInput
	var seen uint32
	ok := s.object(func(k []byte) bool {
		var ok bool
		switch string(k) {
		case "name":
			in.name, ok = s.plainString()
			return once(&seen, 1) && ok
		case "datatype":
			var b []byte
			b, ok = s.plainBytes()
			in.datatype = datatypeString(b)
			return once(&seen, 2) && ok
		case "shape":
			in.shape = []int64{}
			return once(&seen, 4) && s.array(func() bool {
				tok, ok := s.number()
				if !ok || len(in.shape) >= maxRank {
					return false
				}
				d, err := strconv.ParseInt(unsafe.String(&tok[0], len(tok)), 10, 64)
				in.shape = append(in.shape, d)
				return err == nil
			})
		case "parameters":
			return once(&seen, 8) && s.params(func(k []byte, v any) {
				if string(k) == "binary_data_size" {
					in.hasSize, in.size = true, v
				}
			})
		case "data":
			if !once(&seen, 16) {
				return false
			}
			s.ws()
			start := s.i
			if !s.skipValue(64) {
				return false
			}
			in.data = s.b[start:s.i:s.i]
			return true
		}
		return s.unknownField(k, "name", "datatype", "shape", "parameters", "data")
	})
	return in, ok
}

// numbersFast fills a numeric tensor from JSON data that is nested arrays
// of exactly n numbers, each valid for the dtype; otherwise it reports
// false and tensorFromJSON's general path decides (and words the error).
func numbersFast(t *runtime.Tensor, data []byte, n int, allowNaN bool) bool {
	switch t.DType {
	case graph.String, graph.Bool, graph.BFloat16:
		return false
	}
	s := &scanner{b: data}
	k := 0
	var walk func(depth int) bool
	walk = func(depth int) bool {
		if s.next() == '[' {
			return depth > 0 && s.array(func() bool { return walk(depth - 1) })
		}
		tok, ok := s.number()
		if !ok || k >= n {
			return false
		}
		f, err := strconv.ParseFloat(unsafe.String(&tok[0], len(tok)), 64)
		if err != nil || putNumber(t, k, f, allowNaN) != nil {
			return false
		}
		k++
		return true
	}
	return walk(64) && s.end() && k == n
}

// appendJSONString appends s as a JSON string the way encoding/json writes
// it (HTML-safe escaping, invalid UTF-8 replaced).
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONFloat appends v as encoding/json writes a float64, and the
// non-finite values as the strings jsonFloat gives them.
func appendJSONFloat(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, `"NaN"`...)
	case math.IsInf(v, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(v, -1):
		return append(b, `"-Infinity"`...)
	}
	format := byte('f')
	if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, v, format, -1, 64)
	if format == 'e' { // e-09 -> e-9, as encoding/json
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

func appendShape(b []byte, shape []int64) []byte {
	if shape == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, d := range shape {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, d, 10)
	}
	return append(b, ']')
}

// appendJSONData appends a tensor's values as jsonData renders them.
func appendJSONData(b []byte, t *runtime.Tensor) ([]byte, error) {
	switch t.DType {
	case graph.String:
		q, err := json.Marshal(t.Strings)
		return append(b, q...), err
	case graph.Bool:
		b = append(b, '[')
		for i, v := range t.Raw {
			if i > 0 {
				b = append(b, ',')
			}
			if v != 0 {
				b = append(b, "true"...)
			} else {
				b = append(b, "false"...)
			}
		}
		return append(b, ']'), nil
	case graph.Float:
		b = append(b, '[')
		for i, v := range t.Float32s() {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONFloat(b, float64(v))
		}
		return append(b, ']'), nil
	case graph.Int64:
		b = append(b, '[')
		for i, v := range t.Int64s() {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, v, 10)
		}
		return append(b, ']'), nil
	}
	vs, err := t.AsFloat64()
	if err != nil {
		return b, err
	}
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONFloat(b, v)
	}
	return append(b, ']'), nil
}

// datatypeString is string(b), without a new string for a known name.
func datatypeString(b []byte) string {
	for _, k := range datatypeNames {
		if k == string(b) {
			return k
		}
	}
	return string(b)
}

var datatypeNames = []string{"FP32", "INT64", "FP16", "INT32", "UINT8", "INT8", "BOOL", "BYTES", "FP64",
	"INT16", "UINT16", "UINT32", "UINT64", "BF16"}
