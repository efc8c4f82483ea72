package serve

import (
	"fmt"
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/optictl/optictl/pkg/serve/kservepb"
)

// Protobuf decoding itself can amplify: an empty repeated message costs 2
// bytes on the wire and ~100 bytes decoded, an empty bytes_contents entry
// 2 bytes and a 24-byte slice header. So a large ModelInferRequest is
// scanned on the wire before it is decoded (scanInferRequest), and one
// that could not be honest (more tensors or parameters than maxTensors,
// more dims than maxRank, more bytes_contents entries than its shape
// holds) is never decoded. gRPC would report a codec error as INTERNAL, so
// the codec leaves such a message empty and records why; ModelInfer
// answers INVALID_ARGUMENT with it.

// scanAbove: messages up to this size are decoded without a scan (their
// decoded form is at most a few MB).
const scanAbove = 64 << 10

// inferCodec is the proto codec with the scan in front of ModelInfer.
type inferCodec struct{ encoding.CodecV2 }

var refusedInfer sync.Map // *kservepb.ModelInferRequest -> error

func newInferCodec() encoding.CodecV2 { return inferCodec{encoding.GetCodecV2("proto")} }

func (c inferCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*kservepb.ModelInferRequest); ok && data.Len() > scanAbove {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		err := scanInferRequest(buf.ReadOnlyData())
		buf.Free()
		if err != nil {
			refusedInfer.Store(r, err)
			return nil
		}
	}
	return c.CodecV2.Unmarshal(data, v)
}

// takeRefusal reports (once) why r was left undecoded, if it was.
func takeRefusal(r *kservepb.ModelInferRequest) error {
	if err, ok := refusedInfer.LoadAndDelete(r); ok {
		return err.(error)
	}
	return nil
}

// fields calls fn for each field of a message; false from fn stops.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, val []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("malformed message")
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return fmt.Errorf("malformed message")
		}
		val := b[:m]
		if typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(val)
			val = v
		}
		if err := fn(num, typ, val); err != nil {
			return err
		}
		b = b[m:]
	}
	return nil
}

// scanInferRequest checks the counts that decoding would allocate for.
func scanInferRequest(b []byte) error {
	var inputs, outputs, raw, params int
	return fields(b, func(num protowire.Number, typ protowire.Type, val []byte) error {
		switch num {
		case 4: // parameters (map entries)
			params++
		case 5:
			inputs++
			if err := scanInput(val, inputs-1); err != nil {
				return err
			}
		case 6:
			outputs++
			if err := scanParamsOnly(val, 3); err != nil { // output parameters are field 3
				return err
			}
		case 7:
			raw++
		}
		if inputs > maxTensors || outputs > maxTensors || raw > maxTensors || params > maxTensors {
			return fmt.Errorf("request has more than %d inputs, outputs, raw contents or parameters", maxTensors)
		}
		return nil
	})
}

func scanParamsOnly(b []byte, field protowire.Number) error {
	n := 0
	return fields(b, func(num protowire.Number, _ protowire.Type, _ []byte) error {
		if num == field {
			if n++; n > maxTensors {
				return fmt.Errorf("a tensor has more than %d parameters", maxTensors)
			}
		}
		return nil
	})
}

// scanInput: InferInputTensor fields 3 shape, 4 parameters, 5 contents.
func scanInput(b []byte, idx int) error {
	var shape []int64
	var contents [][]byte
	params := 0
	err := fields(b, func(num protowire.Number, typ protowire.Type, val []byte) error {
		switch num {
		case 3:
			if typ == protowire.BytesType { // packed
				for len(val) > 0 {
					d, n := protowire.ConsumeVarint(val)
					if n < 0 {
						return fmt.Errorf("malformed shape")
					}
					shape = append(shape, int64(d))
					val = val[n:]
					if len(shape) > maxRank {
						return fmt.Errorf("input %d has more than %d dims", idx, maxRank)
					}
				}
			} else if typ == protowire.VarintType {
				d, _ := protowire.ConsumeVarint(val)
				if shape = append(shape, int64(d)); len(shape) > maxRank {
					return fmt.Errorf("input %d has more than %d dims", idx, maxRank)
				}
			}
		case 4:
			if params++; params > maxTensors {
				return fmt.Errorf("input %d has more than %d parameters", idx, maxTensors)
			}
		case 5:
			contents = append(contents, val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	n, err := elements(shape)
	if err != nil {
		return nil // the decoded request gets the worded error
	}
	for _, c := range contents {
		k := 0
		if err := fields(c, func(num protowire.Number, _ protowire.Type, _ []byte) error {
			if num == 8 { // bytes_contents
				if k++; k > n {
					return fmt.Errorf("input %d: bytes_contents has more values than shape %v holds", idx, shape)
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}
