package serve

import (
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// checkInput validates one request input's name, datatype and shape
// against the model's declared input, and its element count against the
// server's limits, before any of its data is allocated. It returns the
// element count. validate checks the same again on the decoded tensors (it
// also covers inputs that are missing); this check exists so that a tiny
// request claiming a huge shape never sizes a buffer.
//
// The size limit: every element takes at least one byte of the request in
// every encoding (raw bytes, a protobuf varint, a JSON number), so a shape
// with more elements than --max-body bytes can never be honest.
func (s *Server) checkInput(sm *servedModel, name string, dt graph.DType, shape []int64) (int, error) {
	n, err := elements(shape)
	if err != nil {
		return 0, badRequest("input %q: %v", name, err)
	}
	var info *runtime.IOInfo
	ref := sm.variants[0]
	for i := range ref.inputs {
		if ref.inputs[i].Name == name {
			info = &ref.inputs[i]
			break
		}
	}
	// An input the model lacks is left to validate, which words the error
	// (a missing input first, then the extra one); the size limit holds.
	if info != nil {
		if err := checkDeclared(s, ref, info, name, dt, shape); err != nil {
			return 0, err
		}
	}
	if int64(n) > s.cfg.MaxBodyBytes {
		return 0, badRequest("input %q: shape %v has %d elements; a request of at most %d bytes (--max-body) cannot carry them", name, shape, n, s.cfg.MaxBodyBytes)
	}
	return n, nil
}

func checkDeclared(s *Server, ref *variant, info *runtime.IOInfo, name string, dt graph.DType, shape []int64) error {
	if dt != info.DType {
		return badRequest("input %q: expected datatype %s, got %s", name, DatatypeName(info.DType), DatatypeName(dt))
	}
	if info.Shape != nil {
		if len(shape) != len(info.Shape) {
			return badRequest("input %q: expected shape %s, got %v", name, runtime.ShapeString(info.Shape), shape)
		}
		for k, d := range info.Shape {
			if d >= 0 && shape[k] != d {
				return badRequest("input %q: expected shape %s, got %v", name, runtime.ShapeString(info.Shape), shape)
			}
		}
		if ref.batchable && s.cfg.MaxBatch > 1 && len(shape) > 0 && shape[0] > int64(s.cfg.MaxBatch) {
			return badRequest("input %q: batch %d is larger than --max-batch %d", name, shape[0], s.cfg.MaxBatch)
		}
	}
	return nil
}
