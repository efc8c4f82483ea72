package fpga

import (
	"context"
	"fmt"

	"github.com/optictl/optictl/pkg/runtime"
)

// QuantizeInput is the host head: ONNX QuantizeLinear of the float input
// (in NCHW order) into the stream order of the first engine.
func (d *Design) QuantizeInput(x []float32) ([]int32, error) {
	n := 1
	for _, s := range d.InShape {
		n *= int(s)
	}
	if len(x) != n {
		return nil, fmt.Errorf("fpga: input has %d values, the design takes %v", len(x), d.InShape)
	}
	q := qparams{scale: d.InScale, zero: d.InZero, signed: d.InSigned}
	out := make([]int32, n)
	if len(d.InShape) == 4 {
		C, H, W := int(d.InShape[1]), int(d.InShape[2]), int(d.InShape[3])
		for c := 0; c < C; c++ {
			for h := 0; h < H; h++ {
				for w := 0; w < W; w++ {
					out[(h*W+w)*C+c] = quantize(x[(c*H+h)*W+w], q)
				}
			}
		}
		return out, nil
	}
	for i, v := range x {
		out[i] = quantize(v, q)
	}
	return out, nil
}

// Dequantize turns the pipeline's output frame into the float value the
// host tail reads (ONNX layout, NCHW for maps).
func (d *Design) Dequantize(y []int32) []float32 {
	out := make([]float32, len(y))
	for i, v := range y {
		c := i % d.outC
		if d.OutRaw {
			out[i] = float32(v) * d.OutScale[c]
			if d.OutBias != nil {
				out[i] += d.OutBias[c]
			}
		} else {
			out[i] = float32(v-d.OutZero) * d.OutScale[0]
		}
	}
	if d.outSpatial && len(d.TailShape) == 4 {
		C, H, W := int(d.TailShape[1]), int(d.TailShape[2]), int(d.TailShape[3])
		nchw := make([]float32, len(out))
		for h := 0; h < H; h++ {
			for w := 0; w < W; w++ {
				for c := 0; c < C; c++ {
					nchw[(c*H+h)*W+w] = out[(h*W+w)*C+c]
				}
			}
		}
		return nchw
	}
	return out
}

// Executor runs a design: host head, the engines (Go model of the
// hardware, bit for bit), host tail (the interp backend).
type Executor struct {
	D    *Design
	tail runtime.Session
}

// NewExecutor opens the host tail.
func NewExecutor(d *Design) (*Executor, error) {
	e := &Executor{D: d}
	if d.Tail != nil {
		s, err := runtime.Open("interp", d.Tail, runtime.Options{Threads: 1})
		if err != nil {
			return nil, fmt.Errorf("fpga: host tail: %w", err)
		}
		e.tail = s
	}
	return e, nil
}

// Close releases the host tail.
func (e *Executor) Close() error {
	if e.tail != nil {
		return e.tail.Close()
	}
	return nil
}

// Run computes the model's outputs for one float input.
func (e *Executor) Run(ctx context.Context, x []float32) ([]*runtime.Tensor, error) {
	q, err := e.D.QuantizeInput(x)
	if err != nil {
		return nil, err
	}
	y, err := e.D.Pipeline.Forward(q)
	if err != nil {
		return nil, err
	}
	return e.Finish(ctx, y)
}

// Finish runs the host tail on a pipeline output frame (from the Go model
// or the RTL simulation).
func (e *Executor) Finish(ctx context.Context, y []int32) ([]*runtime.Tensor, error) {
	v := e.D.Dequantize(y)
	t := runtime.FromFloat32(e.D.TailShape, v)
	if e.tail == nil {
		return []*runtime.Tensor{t}, nil
	}
	outs, err := e.tail.Run(ctx, []*runtime.Tensor{t})
	if err != nil {
		return nil, fmt.Errorf("fpga: host tail: %w", err)
	}
	res := make([]*runtime.Tensor, len(outs))
	for i, o := range outs {
		res[i] = o.Clone()
	}
	return res, nil
}
