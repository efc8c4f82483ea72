package serve

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/optictl/optictl/pkg/runtime"
)

type errCode int

const (
	codeBadRequest errCode = iota + 1
	codeNotFound
	codeTooMany
	codeTimeout
	codeUnavailable
	codeTooLarge
	codeInternal
	codeUnauthenticated
	codePermissionDenied
)

// reqError is an error with a protocol-neutral status.
type reqError struct {
	code errCode
	msg  string
}

func (e *reqError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &reqError{code: codeBadRequest, msg: fmt.Sprintf(format, args...)}
}

func codeOf(err error) errCode {
	var re *reqError
	if errors.As(err, &re) {
		return re.code
	}
	switch {
	case errors.Is(err, ErrQueueFull):
		return codeTooMany
	case errors.Is(err, context.DeadlineExceeded):
		return codeTimeout
	case errors.Is(err, ErrNotReady), errors.Is(err, ErrShuttingDown), errors.Is(err, context.Canceled):
		return codeUnavailable
	}
	return codeInternal
}

// inferRequest is a decoded request (from HTTP JSON, binary or gRPC).
type inferRequest struct {
	model, version, id string
	names              []string
	tensors            []*runtime.Tensor
	variant            string   // requested by the client, "" = router's choice
	outputs            []string // requested outputs, empty = all
	// borrowed: some tensors alias the request body (borrowRaw); infer
	// copies them before they can outlive the call.
	borrowed bool
}

type inferResponse struct {
	model, version, id string
	variant            string
	note               string // e.g. why a requested variant was not used
	cached             bool
	names              []string
	outs               []*runtime.Tensor
}

// infer validates, consults the cache, routes, queues and waits.
func (s *Server) infer(ctx context.Context, req *inferRequest) (resp *inferResponse, err error) {
	start := time.Now()
	sm, err := s.model(req.model, req.version)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.metrics.failure.WithLabelValues(sm.name, sm.version, reasonOf(err)).Inc()
			return
		}
		d := time.Since(start)
		sm.m.success.Inc()
		sm.m.requestUs.Add(float64(d.Microseconds()))
		sm.m.requestHist.Observe(d.Seconds())
	}()
	if !s.ready.Load() && !s.draining.Load() { // draining still serves
		return nil, &reqError{code: codeUnavailable, msg: "server is not ready"}
	}
	ref := sm.variants[0]
	inputs, batch, err := s.validate(ref, req)
	if err != nil {
		return nil, err
	}
	outIdx, err := selectOutputs(ref, req.outputs)
	if err != nil {
		return nil, err
	}
	resp = &inferResponse{model: sm.name, version: sm.version, id: req.id}
	var key string
	if s.cache != nil {
		key = cacheKey(sm.name, sm.version, sm.inputNames, inputs)
		if b, ok := s.cache.Get(ctx, key); ok {
			if v, outs, derr := decodeResult(b); derr == nil && len(outs) == len(ref.outputs) {
				sm.m.cacheHits.Inc()
				resp.variant, resp.cached = v, true
				fill(resp, ref, outIdx, outs)
				return resp, nil
			}
		}
		sm.m.cacheMisses.Inc()
	}
	if req.borrowed {
		for i, t := range inputs {
			inputs[i] = own(t)
		}
	}
	v, note := s.route(sm, req.variant)
	resp.variant, resp.note = v.name, note
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	s.inflight.Add(1)
	s.active.Add(1)
	defer func() { s.active.Add(-1); s.inflight.Done() }()
	j := &job{ctx: ctx, inputs: inputs, batch: batch, enqueued: time.Now()}
	var r jobResult
	direct := false
	if v.direct {
		r, direct = v.tryDirect(j)
	}
	if !direct {
		j.done = make(chan jobResult, 1)
		if err := v.submit(j); err != nil {
			return nil, s.queueErr(sm, v, err)
		}
		select {
		case r = <-j.done:
		case <-ctx.Done():
			r.err = ctx.Err()
			if !errors.Is(r.err, context.DeadlineExceeded) {
				return nil, r.err
			}
		}
	}
	if r.err != nil {
		if errors.Is(r.err, context.DeadlineExceeded) {
			return nil, &reqError{code: codeTimeout, msg: fmt.Sprintf("request timed out after %v", s.cfg.Timeout)}
		}
		return nil, fmt.Errorf("model %q variant %q: %w", sm.name, v.name, r.err)
	}
	if s.router {
		v.lat.add(time.Since(j.enqueued))
	}
	if s.cache != nil {
		s.cache.Set(ctx, key, encodeResult(v.name, r.outs))
	}
	fill(resp, ref, outIdx, r.outs)
	return resp, nil
}

func (s *Server) queueErr(sm *servedModel, v *variant, err error) error {
	return &reqError{code: codeTooMany, msg: fmt.Sprintf("model %q variant %q: %v (%d requests waiting); retry later", sm.name, v.name, err, s.cfg.QueueSize)}
}

func reasonOf(err error) string {
	switch codeOf(err) {
	case codeBadRequest, codeNotFound, codeTooLarge:
		return "REJECTED"
	case codeTooMany:
		return "BACKLOG"
	case codeTimeout:
		return "TIMEOUT"
	case codeUnavailable:
		return "UNAVAILABLE"
	}
	return "OTHER"
}

func fill(resp *inferResponse, ref *variant, idx []int, outs []*runtime.Tensor) {
	resp.names = make([]string, 0, len(idx))
	resp.outs = make([]*runtime.Tensor, 0, len(idx))
	for _, i := range idx {
		resp.names = append(resp.names, ref.outputs[i].Name)
		resp.outs = append(resp.outs, outs[i])
	}
}

func selectOutputs(ref *variant, want []string) ([]int, error) {
	if len(want) == 0 {
		idx := make([]int, len(ref.outputs))
		for i := range idx {
			idx[i] = i
		}
		return idx, nil
	}
	var idx []int
	for _, w := range want {
		found := -1
		for i, o := range ref.outputs {
			if o.Name == w {
				found = i
			}
		}
		if found < 0 {
			return nil, badRequest("model has no output %q", w)
		}
		idx = append(idx, found)
	}
	return idx, nil
}

// validate orders inputs as the model wants and checks names, dtypes,
// shapes and values. It returns the batch rows (dim 0) for batchable models.
func (s *Server) validate(ref *variant, req *inferRequest) ([]*runtime.Tensor, int64, error) {
	byName := map[string]*runtime.Tensor{}
	for i, n := range req.names {
		if _, dup := byName[n]; dup {
			return nil, 0, badRequest("input %q given twice", n)
		}
		byName[n] = req.tensors[i]
	}
	out := make([]*runtime.Tensor, len(ref.inputs))
	var batch int64 = 1
	for i, info := range ref.inputs {
		t, ok := byName[info.Name]
		if !ok {
			return nil, 0, badRequest("missing input %q (%s%s)", info.Name, DatatypeName(info.DType), runtime.ShapeString(info.Shape))
		}
		delete(byName, info.Name)
		if t.DType != info.DType {
			return nil, 0, badRequest("input %q: expected datatype %s, got %s", info.Name, DatatypeName(info.DType), DatatypeName(t.DType))
		}
		if info.Shape != nil {
			if len(t.Shape) != len(info.Shape) {
				return nil, 0, badRequest("input %q: expected shape %s, got %v", info.Name, runtime.ShapeString(info.Shape), t.Shape)
			}
			for k, d := range info.Shape {
				if d >= 0 && t.Shape[k] != d {
					return nil, 0, badRequest("input %q: expected shape %s, got %v", info.Name, runtime.ShapeString(info.Shape), t.Shape)
				}
			}
		}
		if ref.batchable {
			if i == 0 {
				batch = t.Shape[0]
			} else if t.Shape[0] != batch {
				return nil, 0, badRequest("input %q: batch dimension %d differs from input %q's %d", info.Name, t.Shape[0], ref.inputs[0].Name, batch)
			}
			if batch < 1 {
				return nil, 0, badRequest("input %q: batch dimension must be at least 1", info.Name)
			}
			if batch > int64(s.cfg.MaxBatch) && s.cfg.MaxBatch > 1 {
				return nil, 0, badRequest("input %q: batch %d is larger than --max-batch %d", info.Name, batch, s.cfg.MaxBatch)
			}
		}
		if !s.cfg.AllowNaN {
			if err := checkFinite(info.Name, t); err != nil {
				return nil, 0, badRequest("%v", err)
			}
		}
		out[i] = t
	}
	for n := range byName {
		return nil, 0, badRequest("model has no input %q", n)
	}
	return out, batch, nil
}
