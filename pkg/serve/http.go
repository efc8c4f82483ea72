package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// HeaderVariant names the variant that answered, on every infer response.
const HeaderVariant = "X-Optictl-Variant"

// Handler is the HTTP/REST side of the server (KServe v2 + /metrics).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	mux.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, r *http.Request) {
		if !s.Ready() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]bool{"ready": false})
			return
		}
		writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
	})
	mux.HandleFunc("GET /v2", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.serverMetadata())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/v2/models/", s.handleModel)
	return s.recoverer(mux)
}

// recoverer turns a handler panic into a 500 for that request only.
func (s *Server) recoverer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.cfg.Log.Error("handler panic", "path", r.URL.Path, "panic", fmt.Sprint(v))
				writeErr(w, http.StatusInternalServerError, "internal error")
			}
		}()
		h.ServeHTTP(w, r)
	})
}

type serverMeta struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

func (s *Server) serverMetadata() serverMeta {
	return serverMeta{Name: "optictl", Version: Version, Extensions: []string{"binary_tensor_data", "model_variants", "response_cache"}}
}

// Version is reported by server metadata; the CLI sets it.
var Version = "dev"

type tensorMeta struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

type modelMeta struct {
	Name     string       `json:"name"`
	Versions []string     `json:"versions"`
	Platform string       `json:"platform"`
	Inputs   []tensorMeta `json:"inputs"`
	Outputs  []tensorMeta `json:"outputs"`
	Variants []string     `json:"variants,omitempty"`
}

func (s *Server) modelMetadata(sm *servedModel) modelMeta {
	v := sm.variants[0]
	mm := modelMeta{Name: sm.name, Versions: []string{sm.version}, Platform: "onnx_onnxv1"}
	for _, io := range v.inputs {
		mm.Inputs = append(mm.Inputs, tensorMeta{io.Name, DatatypeName(io.DType), shapeOrEmpty(io.Shape)})
	}
	for _, io := range v.outputs {
		mm.Outputs = append(mm.Outputs, tensorMeta{io.Name, DatatypeName(io.DType), shapeOrEmpty(io.Shape)})
	}
	for _, vv := range sm.variants {
		mm.Variants = append(mm.Variants, vv.name)
	}
	return mm
}

func shapeOrEmpty(s []int64) []int64 {
	if s == nil {
		return []int64{}
	}
	return s
}

// handleModel routes /v2/models/{name}[/versions/{v}][/ready|/infer].
func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/v2/models/")
	parts := strings.Split(rest, "/")
	if len(parts) == 0 || parts[0] == "" {
		writeErr(w, http.StatusNotFound, "no model name in path")
		return
	}
	name, version := parts[0], ""
	parts = parts[1:]
	if len(parts) >= 2 && parts[0] == "versions" {
		version = parts[1]
		parts = parts[2:]
	}
	action := ""
	if len(parts) == 1 {
		action = parts[0]
	} else if len(parts) > 1 {
		writeErr(w, http.StatusNotFound, "unknown path "+r.URL.Path)
		return
	}
	sm, err := s.model(name, version)
	switch {
	case action == "" && r.Method == http.MethodGet:
		if err != nil {
			writeErr(w, http.StatusNotFound, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, s.modelMetadata(sm))
	case action == "ready" && r.Method == http.MethodGet:
		if err != nil {
			writeErr(w, http.StatusNotFound, err.Error())
			return
		}
		if !s.Ready() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"name": sm.name, "ready": false})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"name": sm.name, "ready": true})
	case action == "infer" && r.Method == http.MethodPost:
		s.handleInfer(w, r, name, version)
	case action == "infer" || action == "ready" || action == "":
		w.Header().Set("Allow", map[bool]string{true: "POST", false: "GET"}[action == "infer"])
		writeErr(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
	default:
		writeErr(w, http.StatusNotFound, "unknown path "+r.URL.Path)
	}
}

// The slow-path request types. Nothing in them decodes into an any: a
// parameters object keeps only its scalar values (jsonParams), and inputs,
// outputs and shapes are bounded in count (maxTensors, maxRank), so an
// ignored or oversized field costs a scan of its bytes, not memory.
type jsonInput struct {
	Name       string          `json:"name"`
	Shape      jsonShape       `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters jsonParams      `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data"`
}

type jsonOutputReq struct {
	Name       string     `json:"name"`
	Parameters jsonParams `json:"parameters,omitempty"`
}

type jsonRequest struct {
	ID         string                  `json:"id,omitempty"`
	Parameters jsonParams              `json:"parameters,omitempty"`
	Inputs     jsonList[jsonInput]     `json:"inputs"`
	Outputs    jsonList[jsonOutputReq] `json:"outputs,omitempty"`
}

// Request structure limits (no model has more inputs or dims than this).
const (
	maxTensors = 1024 // inputs, and requested outputs, per request
	maxRank    = 64
)

// jsonList is a JSON array of at most maxTensors elements.
type jsonList[T any] []T

func (l *jsonList[T]) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*l = nil
		return nil
	}
	var out jsonList[T]
	s := &scanner{b: b}
	var err error
	ok := s.array(func() bool {
		if len(out) >= maxTensors {
			err = fmt.Errorf("more than %d tensors in one request", maxTensors)
			return false
		}
		s.ws()
		start := s.i
		if !s.skipValue(10000) {
			return false
		}
		var v T
		if err = json.Unmarshal(b[start:s.i], &v); err != nil {
			return false
		}
		out = append(out, v)
		return true
	})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("malformed array")
	}
	*l = out
	return nil
}

// jsonShape is []int64 of at most maxRank dims.
type jsonShape []int64

func (sh *jsonShape) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*sh = nil
		return nil
	}
	s := &scanner{b: b}
	out := jsonShape{}
	var err error
	ok := s.array(func() bool {
		if len(out) >= maxRank {
			err = fmt.Errorf("shape has more than %d dims", maxRank)
			return false
		}
		tok, ok := s.number()
		if !ok {
			err = fmt.Errorf("shape dims must be integers")
			return false
		}
		d, perr := strconv.ParseInt(string(tok), 10, 64)
		if perr != nil {
			err = fmt.Errorf("shape dim %s is not an int64", tok)
			return false
		}
		out = append(out, d)
		return true
	})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("shape must be an array of integers")
	}
	*sh = out
	return nil
}

// jsonParams is a parameters object: scalar values are kept as
// encoding/json decodes them into an any (string, float64, bool, nil); an
// object or array value is passed over and kept as a compositeParam.
type jsonParams map[string]any

// compositeParam stands for an object or array parameter value.
type compositeParam string

func (p *jsonParams) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s := &scanner{b: b}
	m := jsonParams{}
	if !s.eat('{') {
		return fmt.Errorf("parameters must be an object")
	}
	if !s.eat('}') {
		for {
			s.ws()
			start := s.i
			if !s.skipString() {
				return fmt.Errorf("malformed parameters")
			}
			key := jsonString(b[start:s.i])
			if !s.eat(':') {
				return fmt.Errorf("malformed parameters")
			}
			var v any
			switch s.next() {
			case '{', '[':
				v = compositeParam(map[byte]string{'{': "an object", '[': "an array"}[s.b[s.i]])
				if !s.skipValue(10000) {
					return fmt.Errorf("malformed parameter %q", key)
				}
			case '"':
				vs := s.i
				if !s.skipString() {
					return fmt.Errorf("malformed parameter %q", key)
				}
				v = jsonString(b[vs:s.i])
			default:
				var ok bool
				if v, ok = s.scalar(); !ok {
					return fmt.Errorf("parameter %q: bad value", key)
				}
			}
			m[key] = v
			if s.eat('}') {
				break
			}
			if !s.eat(',') {
				return fmt.Errorf("malformed parameters")
			}
		}
	}
	*p = m
	return nil
}

const headerInferLen = "Inference-Header-Content-Length"

// bodyPool recycles request bodies and response buffers. A request's
// binary inputs borrow its body only until infer returns (see borrowRaw);
// nothing else keeps a reference to it.
var bodyPool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooled: larger buffers go to the garbage collector, not the pool.
const maxPooled = 1 << 20

func getBuf(n int) *[]byte {
	p := bodyPool.Get().(*[]byte)
	if cap(*p) < n {
		*p = make([]byte, 0, n)
	}
	*p = (*p)[:0]
	return p
}

func putBuf(p *[]byte) {
	if cap(*p) <= maxPooled {
		bodyPool.Put(p)
	}
}

// readBody reads the whole request body, up to the limit, into a buffer
// that grows (doubling, never past a claimed Content-Length) only as data
// actually arrives: a claimed length alone never sizes a buffer, and every
// byte of buffer is first taken from the server's in-flight body budget
// (Config.MaxInflightBody). The caller returns the buffer with putBuf and
// the budget with s.bodies.release(held).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (p *[]byte, held int64, err error) {
	limit := s.cfg.MaxBodyBytes
	tooLarge := func() error {
		return &reqError{code: codeTooLarge, msg: fmt.Sprintf("request body is over the limit of %d bytes", limit)}
	}
	if r.ContentLength > limit {
		return nil, 0, tooLarge()
	}
	ctx, cancel := context.WithTimeout(r.Context(), budgetWait)
	defer cancel()
	take := func(n int64) error {
		if !s.bodies.acquire(ctx, n) {
			return &reqError{code: codeTooMany, msg: fmt.Sprintf("request bodies in flight are over the server's budget of %d bytes; retry later", s.cfg.MaxInflightBody)}
		}
		held += n
		return nil
	}
	first := int64(4096)
	if r.ContentLength >= 0 {
		first = min(r.ContentLength, first)
	}
	p = getBuf(int(first))
	// room is the part of the buffer in use and counted in the budget (a
	// pooled buffer may be larger)
	room := min(int64(cap(*p)), limit)
	if r.ContentLength >= 0 {
		room = min(room, r.ContentLength)
	}
	if err := take(room); err != nil {
		putBuf(p)
		return nil, 0, err
	}
	defer func() {
		if err != nil {
			putBuf(p)
			s.bodies.release(held)
			p, held = nil, 0
		}
	}()
	body := http.MaxBytesReader(w, r.Body, limit)
	b := (*p)[:0]
	var one [1]byte
	for {
		if int64(len(b)) == room {
			grow := min(max(2*room, 4096), limit)
			if r.ContentLength >= 0 {
				grow = min(grow, r.ContentLength)
			}
			if grow <= room { // full: only the end of the body may follow
				n, rerr := body.Read(one[:])
				if n > 0 {
					*p = b
					return p, held, tooLarge()
				}
				if rerr == nil {
					continue // a zero-length read; try again
				}
				err = rerr
			} else {
				// (the old buffer is garbage once copied: the budget
				// counts the size reached, not the copy)
				if err := take(grow - room); err != nil {
					*p = b
					return p, held, err
				}
				room = grow
				if int64(cap(b)) >= grow {
					continue
				}
				nb := make([]byte, len(b), grow)
				copy(nb, b)
				*p = b
				putBuf(p)
				p = &nb
				b = nb
				continue
			}
		} else {
			var n int
			n, err = body.Read(b[len(b):room])
			b = b[:len(b)+n]
		}
		if err == io.EOF {
			*p = b
			return p, held, nil
		}
		if err != nil {
			*p = b
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return p, held, tooLarge()
			}
			return p, held, badRequest("reading body: %v", err)
		}
	}
}

// budgetWait is how long a request may wait for room in the in-flight body
// budget before it is refused with 429 / RESOURCE_EXHAUSTED.
const budgetWait = 2 * time.Second

// byteBudget bounds the request-body bytes the server holds at once.
type byteBudget struct {
	mu   sync.Mutex
	free int64
	wake chan struct{}
}

func newByteBudget(n int64) *byteBudget { return &byteBudget{free: n, wake: make(chan struct{})} }

// acquire takes n bytes, waiting for releases until ctx ends.
func (b *byteBudget) acquire(ctx context.Context, n int64) bool {
	for {
		b.mu.Lock()
		if b.free >= n {
			b.free -= n
			b.mu.Unlock()
			return true
		}
		w := b.wake
		b.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return false
		}
	}
}

func (b *byteBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.free += n
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}

var (
	hdrOctet = []string{"application/octet-stream"}
	hdrJSON  = []string{"application/json"}
)

func (s *Server) handleInfer(w http.ResponseWriter, r *http.Request, name, version string) {
	s.inferRead.Add(1)
	body, held, err := s.readBody(w, r)
	if err != nil {
		writeErr(w, statusOf(err), err.Error())
		return
	}
	defer s.bodies.release(held)
	req, bin, err := s.decodeHTTP(r, *body, name, version)
	if err != nil {
		putBuf(body)
		writeErr(w, statusOf(err), err.Error())
		return
	}
	// req's binary inputs borrow the body until infer returns (a cache
	// hit never copies them; a miss copies them before they are queued).
	resp, err := s.infer(r.Context(), req)
	putBuf(body)
	if err != nil {
		writeErr(w, statusOf(err), err.Error())
		return
	}
	out := getBuf(1024)
	defer putBuf(out)
	b, headLen, err := appendResponse(*out, resp, bin)
	*out = b
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	h := w.Header()
	h[HeaderVariant] = []string{resp.variant}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	if headLen < 0 {
		h["Content-Type"] = hdrJSON
	} else {
		h["Content-Type"] = hdrOctet
		h[headerInferLen] = []string{strconv.Itoa(headLen)}
	}
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// binaryOutputs says which outputs a request wants in binary.
type binaryOutputs struct {
	all   bool
	names []string
}

func (bo binaryOutputs) has(name string) bool {
	if bo.all {
		return true
	}
	for _, n := range bo.names {
		if n == name {
			return true
		}
	}
	return false
}

// appendResponse writes the KServe JSON response (fields in the order, and
// numbers in the form, encoding/json gives them), followed by the binary
// outputs when any; it returns the JSON part's length, or -1 when no output
// is binary: then the response is JSON alone and ends with a newline, as
// json.Encoder writes it.
func appendResponse(b []byte, resp *inferResponse, bin binaryOutputs) ([]byte, int, error) {
	start := len(b)
	b = append(b, `{"model_name":`...)
	b = appendJSONString(b, resp.model)
	b = append(b, `,"model_version":`...)
	b = appendJSONString(b, resp.version)
	if resp.id != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, resp.id)
	}
	b = append(b, `,"parameters":{"cached":`...)
	b = strconv.AppendBool(b, resp.cached)
	b = append(b, `,"variant":`...)
	b = appendJSONString(b, resp.variant)
	if resp.note != "" {
		b = append(b, `,"variant_note":`...)
		b = appendJSONString(b, resp.note)
	}
	b = append(b, `},"outputs":`...)
	if len(resp.outs) == 0 {
		b = append(b, "null"...)
	}
	nBin := 0
	for i, t := range resp.outs {
		if i == 0 {
			b = append(b, '[')
		} else {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendJSONString(b, resp.names[i])
		b = append(b, `,"shape":`...)
		b = appendShape(b, t.Shape)
		b = append(b, `,"datatype":`...)
		b = appendJSONString(b, DatatypeName(t.DType))
		if bin.has(resp.names[i]) {
			n := len(t.Raw)
			if t.DType == graph.String {
				n = len(rawBytes(t))
			}
			nBin++
			b = append(b, `,"parameters":{"binary_data_size":`...)
			b = strconv.AppendInt(b, int64(n), 10)
			b = append(b, '}')
		} else {
			b = append(b, `,"data":`...)
			var err error
			if b, err = appendJSONData(b, t); err != nil {
				return b, 0, err
			}
		}
		b = append(b, '}')
	}
	if len(resp.outs) > 0 {
		b = append(b, ']')
	}
	b = append(b, '}')
	if nBin == 0 {
		return append(b, '\n'), -1, nil
	}
	headLen := len(b) - start
	for i, t := range resp.outs {
		if bin.has(resp.names[i]) {
			b = append(b, rawBytes(t)...)
		}
	}
	return b, headLen, nil
}

// decodeHTTP parses a JSON (or binary-extension) infer request.
// Every input's datatype and shape are checked against the model
// (checkInput) before its data is decoded or allocated.
func (s *Server) decodeHTTP(r *http.Request, body []byte, name, version string) (*inferRequest, binaryOutputs, error) {
	var bo binaryOutputs
	sm, err := s.model(name, version)
	if err != nil {
		return nil, bo, err
	}
	jsonPart, bin := body, []byte(nil)
	if h := r.Header.Get(headerInferLen); h != "" {
		n, err := strconv.Atoi(h)
		if err != nil || n < 0 || n > len(body) {
			return nil, bo, badRequest("bad %s header %q for a %d-byte body", headerInferLen, h, len(body))
		}
		jsonPart, bin = body[:n], body[n:]
	}
	jr, ok := parseHeaderFast(jsonPart)
	if !ok {
		if jr, err = decodeHeaderSlow(jsonPart); err != nil {
			return nil, bo, badRequest("malformed JSON: %v", err)
		}
	}
	if len(jr.inputs) == 0 {
		return nil, bo, badRequest("request has no inputs")
	}
	req := &inferRequest{model: name, version: version, id: jr.id, variant: jr.variant,
		names: make([]string, 0, len(jr.inputs)), tensors: make([]*runtime.Tensor, 0, len(jr.inputs))}
	for _, in := range jr.inputs {
		if in.name == "" {
			return nil, bo, badRequest("an input has no name")
		}
		dt, err := parseDatatype(in.datatype)
		if err != nil {
			return nil, bo, badRequest("input %q: %v", in.name, err)
		}
		if in.shape == nil {
			return nil, bo, badRequest("input %q has no shape", in.name)
		}
		if _, err := s.checkInput(sm, in.name, dt, in.shape); err != nil {
			return nil, bo, err
		}
		var t *runtime.Tensor
		if in.hasSize {
			f, isNum := in.size.(float64)
			if !isNum || f < 0 || f != float64(int64(f)) || int64(f) > int64(len(bin)) {
				return nil, bo, badRequest("input %q: binary_data_size %v does not fit the %d binary bytes left", in.name, in.size, len(bin))
			}
			n := int(f)
			t, err = borrowRaw(in.name, dt, in.shape, bin[:n])
			bin = bin[n:]
			req.borrowed = true
		} else {
			if len(in.data) == 0 {
				return nil, bo, badRequest("input %q has no data", in.name)
			}
			t, err = tensorFromJSON(in.name, dt, in.shape, in.data, s.cfg.AllowNaN)
		}
		if err != nil {
			return nil, bo, badRequest("%v", err)
		}
		req.names = append(req.names, in.name)
		req.tensors = append(req.tensors, t)
	}
	if len(bin) != 0 {
		return nil, bo, badRequest("%d bytes of binary data are not claimed by any input", len(bin))
	}
	bo.all = jr.binAll
	for _, o := range jr.outputs {
		req.outputs = append(req.outputs, o.name)
		if o.binary {
			bo.names = append(bo.names, o.name)
		}
	}
	return req, bo, nil
}

func statusOf(err error) int {
	switch codeOf(err) {
	case codeBadRequest:
		return http.StatusBadRequest
	case codeNotFound:
		return http.StatusNotFound
	case codeTooMany:
		return http.StatusTooManyRequests
	case codeTimeout:
		return http.StatusGatewayTimeout
	case codeUnavailable:
		return http.StatusServiceUnavailable
	case codeTooLarge:
		return http.StatusRequestEntityTooLarge
	case codeUnauthenticated:
		return http.StatusUnauthorized
	case codePermissionDenied:
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
