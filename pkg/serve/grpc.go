package serve

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/serve/kservepb"
)

type grpcService struct {
	kservepb.UnimplementedGRPCInferenceServiceServer
	s *Server
}

func grpcErr(err error) error {
	c := codes.Internal
	switch codeOf(err) {
	case codeBadRequest:
		c = codes.InvalidArgument
	case codeNotFound:
		c = codes.NotFound
	case codeTooMany:
		c = codes.ResourceExhausted
	case codeTimeout:
		c = codes.DeadlineExceeded
	case codeUnavailable:
		c = codes.Unavailable
	case codeTooLarge:
		c = codes.ResourceExhausted
	case codeUnauthenticated:
		c = codes.Unauthenticated
	case codePermissionDenied:
		c = codes.PermissionDenied
	}
	return status.Error(c, err.Error())
}

func (g *grpcService) ServerLive(context.Context, *kservepb.ServerLiveRequest) (*kservepb.ServerLiveResponse, error) {
	return &kservepb.ServerLiveResponse{Live: true}, nil
}

func (g *grpcService) ServerReady(context.Context, *kservepb.ServerReadyRequest) (*kservepb.ServerReadyResponse, error) {
	return &kservepb.ServerReadyResponse{Ready: g.s.Ready()}, nil
}

func (g *grpcService) ModelReady(_ context.Context, r *kservepb.ModelReadyRequest) (*kservepb.ModelReadyResponse, error) {
	if _, err := g.s.model(r.Name, r.Version); err != nil {
		return nil, grpcErr(err)
	}
	return &kservepb.ModelReadyResponse{Ready: g.s.Ready()}, nil
}

func (g *grpcService) ServerMetadata(context.Context, *kservepb.ServerMetadataRequest) (*kservepb.ServerMetadataResponse, error) {
	m := g.s.serverMetadata()
	return &kservepb.ServerMetadataResponse{Name: m.Name, Version: m.Version, Extensions: m.Extensions}, nil
}

func (g *grpcService) ModelMetadata(_ context.Context, r *kservepb.ModelMetadataRequest) (*kservepb.ModelMetadataResponse, error) {
	sm, err := g.s.model(r.Name, r.Version)
	if err != nil {
		return nil, grpcErr(err)
	}
	mm := g.s.modelMetadata(sm)
	resp := &kservepb.ModelMetadataResponse{Name: mm.Name, Versions: mm.Versions, Platform: mm.Platform}
	for _, t := range mm.Inputs {
		resp.Inputs = append(resp.Inputs, &kservepb.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape})
	}
	for _, t := range mm.Outputs {
		resp.Outputs = append(resp.Outputs, &kservepb.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape})
	}
	return resp, nil
}

func (g *grpcService) ModelInfer(ctx context.Context, r *kservepb.ModelInferRequest) (resp *kservepb.ModelInferResponse, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = status.Error(codes.Internal, fmt.Sprint("internal error: ", v))
		}
	}()
	if err := takeRefusal(r); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	req, err := g.s.decodeGRPC(r)
	if err != nil {
		return nil, grpcErr(err)
	}
	res, err := g.s.infer(ctx, req)
	if err != nil {
		return nil, grpcErr(err)
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-optictl-variant", res.variant))
	out := &kservepb.ModelInferResponse{ModelName: res.model, ModelVersion: res.version, Id: res.id,
		Parameters: map[string]*kservepb.InferParameter{
			"variant": {ParameterChoice: &kservepb.InferParameter_StringParam{StringParam: res.variant}},
			"cached":  {ParameterChoice: &kservepb.InferParameter_BoolParam{BoolParam: res.cached}},
		}}
	if res.note != "" {
		out.Parameters["variant_note"] = &kservepb.InferParameter{ParameterChoice: &kservepb.InferParameter_StringParam{StringParam: res.note}}
	}
	for i, t := range res.outs {
		out.Outputs = append(out.Outputs, &kservepb.ModelInferResponse_InferOutputTensor{Name: res.names[i], Datatype: DatatypeName(t.DType), Shape: t.Shape})
		out.RawOutputContents = append(out.RawOutputContents, rawBytes(t))
	}
	return out, nil
}

// decodeGRPC turns a ModelInfer request into tensors. Every input's
// datatype and shape are checked against the model (checkInput), and its
// value count or byte length against the shape, before its tensor is
// allocated: a 31-byte request claiming [268435456] allocates nothing.
func (s *Server) decodeGRPC(r *kservepb.ModelInferRequest) (*inferRequest, error) {
	sm, err := s.model(r.ModelName, r.ModelVersion)
	if err != nil {
		return nil, err
	}
	req := &inferRequest{model: r.ModelName, version: r.ModelVersion, id: r.Id}
	if p, ok := r.Parameters["variant"]; ok {
		req.variant = p.GetStringParam()
	}
	if len(r.Inputs) == 0 {
		return nil, badRequest("request has no inputs")
	}
	useRaw := len(r.RawInputContents) > 0
	if useRaw && len(r.RawInputContents) != len(r.Inputs) {
		return nil, badRequest("%d raw_input_contents for %d inputs", len(r.RawInputContents), len(r.Inputs))
	}
	for i, in := range r.Inputs {
		dt, err := parseDatatype(in.Datatype)
		if err != nil {
			return nil, badRequest("input %q: %v", in.Name, err)
		}
		if _, err := s.checkInput(sm, in.Name, dt, in.Shape); err != nil {
			return nil, err
		}
		var t *runtime.Tensor
		if useRaw {
			t, err = tensorFromRaw(in.Name, dt, in.Shape, r.RawInputContents[i])
		} else {
			t, err = tensorFromContents(in.Name, dt, in.Shape, in.Contents)
		}
		if err != nil {
			return nil, badRequest("%v", err)
		}
		req.names = append(req.names, in.Name)
		req.tensors = append(req.tensors, t)
	}
	for _, o := range r.Outputs {
		req.outputs = append(req.outputs, o.Name)
	}
	return req, nil
}

// contentsLen is how many values c holds in the field dt reads.
func contentsLen(dt graph.DType, c *kservepb.InferTensorContents) (int, bool) {
	switch dt {
	case graph.Float:
		return len(c.Fp32Contents), true
	case graph.Double:
		return len(c.Fp64Contents), true
	case graph.Int64:
		return len(c.Int64Contents), true
	case graph.Int32, graph.Int16, graph.Int8:
		return len(c.IntContents), true
	case graph.Uint32, graph.Uint16, graph.Uint8:
		return len(c.UintContents), true
	case graph.Uint64:
		return len(c.Uint64Contents), true
	case graph.Bool:
		return len(c.BoolContents), true
	case graph.String:
		return len(c.BytesContents), true
	}
	return 0, false
}

func tensorFromContents(name string, dt graph.DType, shape []int64, c *kservepb.InferTensorContents) (*runtime.Tensor, error) {
	n, err := elements(shape)
	if err != nil {
		return nil, fmt.Errorf("input %q: %w", name, err)
	}
	if c == nil {
		return nil, fmt.Errorf("input %q has no contents", name)
	}
	have, ok := contentsLen(dt, c)
	if !ok {
		return nil, fmt.Errorf("input %q: datatype %s needs raw_input_contents", name, DatatypeName(dt))
	}
	if have != n {
		return nil, fmt.Errorf("input %q: contents have %d values, shape %v needs %d", name, have, shape, n)
	}
	// The count matches the values the message carries: only now is the
	// tensor allocated.
	t := runtime.NewTensor(dt, shape)
	r := t.Raw
	switch dt {
	case graph.Float:
		for i, v := range c.Fp32Contents {
			binary.LittleEndian.PutUint32(r[4*i:], math.Float32bits(v))
		}
	case graph.Double:
		for i, v := range c.Fp64Contents {
			binary.LittleEndian.PutUint64(r[8*i:], math.Float64bits(v))
		}
	case graph.Int64:
		for i, v := range c.Int64Contents {
			binary.LittleEndian.PutUint64(r[8*i:], uint64(v))
		}
	case graph.Int32, graph.Int16, graph.Int8:
		for i, v := range c.IntContents {
			if err := putNumber(t, i, float64(v), true); err != nil {
				return nil, fmt.Errorf("input %q: value %d: %w", name, i, err)
			}
		}
	case graph.Uint32, graph.Uint16, graph.Uint8:
		for i, v := range c.UintContents {
			if err := putNumber(t, i, float64(v), true); err != nil {
				return nil, fmt.Errorf("input %q: value %d: %w", name, i, err)
			}
		}
	case graph.Uint64:
		for i, v := range c.Uint64Contents {
			binary.LittleEndian.PutUint64(r[8*i:], v)
		}
	case graph.Bool:
		for i, v := range c.BoolContents {
			if v {
				r[i] = 1
			}
		}
	case graph.String:
		for i, v := range c.BytesContents {
			t.Strings[i] = string(v)
		}
	default:
		return nil, fmt.Errorf("input %q: datatype %s needs raw_input_contents", name, DatatypeName(dt))
	}
	return t, nil
}
