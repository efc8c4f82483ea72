package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

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

type jsonInput struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters map[string]any  `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data"`
}

type jsonOutputReq struct {
	Name       string         `json:"name"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

type jsonRequest struct {
	ID         string          `json:"id,omitempty"`
	Parameters map[string]any  `json:"parameters,omitempty"`
	Inputs     []jsonInput     `json:"inputs"`
	Outputs    []jsonOutputReq `json:"outputs,omitempty"`
}

type jsonOutput struct {
	Name       string         `json:"name"`
	Shape      []int64        `json:"shape"`
	Datatype   string         `json:"datatype"`
	Parameters map[string]any `json:"parameters,omitempty"`
	Data       any            `json:"data,omitempty"`
}

type jsonResponse struct {
	ModelName    string         `json:"model_name"`
	ModelVersion string         `json:"model_version"`
	ID           string         `json:"id,omitempty"`
	Parameters   map[string]any `json:"parameters,omitempty"`
	Outputs      []jsonOutput   `json:"outputs"`
}

const headerInferLen = "Inference-Header-Content-Length"

func (s *Server) handleInfer(w http.ResponseWriter, r *http.Request, name, version string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeErr(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over the limit of %d bytes", s.cfg.MaxBodyBytes))
			return
		}
		writeErr(w, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	req, binaryOut, err := s.decodeHTTP(r, body, name, version)
	if err != nil {
		writeErr(w, statusOf(err), err.Error())
		return
	}
	resp, err := s.infer(r.Context(), req)
	if err != nil {
		writeErr(w, statusOf(err), err.Error())
		return
	}
	w.Header().Set(HeaderVariant, resp.variant)
	out := jsonResponse{ModelName: resp.model, ModelVersion: resp.version, ID: resp.id,
		Parameters: map[string]any{"variant": resp.variant, "cached": resp.cached}}
	if resp.note != "" {
		out.Parameters["variant_note"] = resp.note
	}
	var blobs [][]byte
	for i, t := range resp.outs {
		o := jsonOutput{Name: resp.names[i], Shape: t.Shape, Datatype: DatatypeName(t.DType)}
		if binaryOut[resp.names[i]] {
			b := rawBytes(t)
			o.Parameters = map[string]any{"binary_data_size": len(b)}
			blobs = append(blobs, b)
		} else {
			d, err := jsonData(t)
			if err != nil {
				writeErr(w, http.StatusInternalServerError, err.Error())
				return
			}
			o.Data = d
		}
		out.Outputs = append(out.Outputs, o)
	}
	if len(blobs) == 0 {
		writeJSON(w, http.StatusOK, out)
		return
	}
	head, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(headerInferLen, strconv.Itoa(len(head)))
	w.WriteHeader(http.StatusOK)
	w.Write(head)
	for _, b := range blobs {
		w.Write(b)
	}
}

// decodeHTTP parses a JSON (or binary-extension) infer request.
func (s *Server) decodeHTTP(r *http.Request, body []byte, name, version string) (*inferRequest, map[string]bool, error) {
	jsonPart, bin := body, []byte(nil)
	if h := r.Header.Get(headerInferLen); h != "" {
		n, err := strconv.Atoi(h)
		if err != nil || n < 0 || n > len(body) {
			return nil, nil, badRequest("bad %s header %q for a %d-byte body", headerInferLen, h, len(body))
		}
		jsonPart, bin = body[:n], body[n:]
	}
	var jr jsonRequest
	if err := json.Unmarshal(jsonPart, &jr); err != nil {
		return nil, nil, badRequest("malformed JSON: %v", err)
	}
	if len(jr.Inputs) == 0 {
		return nil, nil, badRequest("request has no inputs")
	}
	req := &inferRequest{model: name, version: version, id: jr.ID}
	if v, ok := jr.Parameters["variant"].(string); ok {
		req.variant = v
	}
	for _, in := range jr.Inputs {
		if in.Name == "" {
			return nil, nil, badRequest("an input has no name")
		}
		dt, err := parseDatatype(in.Datatype)
		if err != nil {
			return nil, nil, badRequest("input %q: %v", in.Name, err)
		}
		if in.Shape == nil {
			return nil, nil, badRequest("input %q has no shape", in.Name)
		}
		var t *runtime.Tensor
		if size, ok := in.Parameters["binary_data_size"]; ok {
			f, isNum := size.(float64)
			if !isNum || f < 0 || f != float64(int64(f)) || int64(f) > int64(len(bin)) {
				return nil, nil, badRequest("input %q: binary_data_size %v does not fit the %d binary bytes left", in.Name, size, len(bin))
			}
			n := int(f)
			t, err = tensorFromRaw(in.Name, dt, in.Shape, bin[:n])
			bin = bin[n:]
		} else {
			if len(in.Data) == 0 {
				return nil, nil, badRequest("input %q has no data", in.Name)
			}
			t, err = tensorFromJSON(in.Name, dt, in.Shape, in.Data, s.cfg.AllowNaN)
		}
		if err != nil {
			return nil, nil, badRequest("%v", err)
		}
		req.names = append(req.names, in.Name)
		req.tensors = append(req.tensors, t)
	}
	if len(bin) != 0 {
		return nil, nil, badRequest("%d bytes of binary data are not claimed by any input", len(bin))
	}
	binaryOut := map[string]bool{}
	all := false
	if b, ok := jr.Parameters["binary_data_output"].(bool); ok && b {
		all = true
	}
	for _, o := range jr.Outputs {
		req.outputs = append(req.outputs, o.Name)
		if b, ok := o.Parameters["binary_data"].(bool); ok && b {
			binaryOut[o.Name] = true
		}
	}
	if all {
		sm, err := s.model(name, version)
		if err == nil {
			for _, o := range sm.variants[0].outputs {
				binaryOut[o.Name] = true
			}
		}
	}
	return req, binaryOut, nil
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
