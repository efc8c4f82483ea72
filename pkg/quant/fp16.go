package quant

import (
	"encoding/binary"
	"fmt"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics/half"
)

// FP16Options configure FP16.
type FP16Options struct {
	// KeepIO keeps the graph's float32 inputs and outputs float32, with
	// Casts after the inputs and before the outputs. Without it the
	// graph's float inputs and outputs become float16.
	KeepIO bool
	// KeepOps are extra op types to keep in float32 (on top of
	// DefaultFP32Ops).
	KeepOps []string
	// ExcludeNodes are node names kept in float32.
	ExcludeNodes []string
}

// DefaultFP32Ops are the numerically sensitive ops FP16 keeps in float32
// (reductions, Softmax, normalizations, Exp/Log/Pow), plus ops whose float
// inputs must stay float32 by their schema (Resize scales, Dropout ratio,
// quantization scales) and random generators.
var DefaultFP32Ops = []string{
	"Softmax", "LogSoftmax", "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
	"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "CumSum",
	"BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization",
	"LpNormalization", "MeanVarianceNormalization", "Exp", "Log", "Pow",
	"Resize", "Upsample", "Dropout", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
	"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
	"Range", "EyeLike", "ConstantOfShape", "Cast", "CastLike",
}

// FP16 converts float32 compute to float16: float32 initializers read only
// by converted nodes become float16 (others get a float16 copy), and Casts
// are inserted wherever a value crosses between a float32 node and a
// float16 one. Nodes outside the default domain, nodes holding subgraphs
// and DefaultFP32Ops stay float32. The model passed in is not modified.
func FP16(m *graph.Model, opts FP16Options) (*graph.Model, *Report, error) {
	if m == nil || m.Graph == nil {
		return nil, nil, fmt.Errorf("quant: no model")
	}
	out := m.Clone()
	g := out.Graph
	rep := &Report{Mode: "fp16"}
	commonChecks(g, rep)
	if _, err := graph.InferShapes(out, graph.InferOptions{}); err != nil {
		return nil, nil, fmt.Errorf("quant: fp16: %w", err)
	}
	dt := map[string]graph.DType{}
	vis := map[string]*graph.ValueInfo{}
	for _, v := range g.ValueInfo {
		dt[v.Name], vis[v.Name] = v.DType, v
	}
	for _, v := range g.Inputs {
		dt[v.Name] = v.DType
	}
	for _, v := range g.Outputs {
		dt[v.Name] = v.DType
	}
	inits := g.InitializerMap()
	for _, t := range g.Initializers {
		dt[t.Name] = t.DType
	}
	keep := map[string]bool{}
	for _, o := range DefaultFP32Ops {
		keep[o] = true
	}
	for _, o := range opts.KeepOps {
		keep[o] = true
	}
	excl := map[string]bool{}
	for _, e := range opts.ExcludeNodes {
		excl[e] = true
	}
	// half: the value currently holds float16 data.
	half := map[string]bool{}
	if !opts.KeepIO {
		for _, v := range g.RealInputs() {
			if v.DType == graph.Float {
				v.DType = graph.Float16
				half[v.Name] = true
			}
		}
	}
	nm := newNamer(g)
	castTo := map[[2]string]string{} // (value, "16"/"32") -> cast output
	halfInit := map[string]string{}
	var nodes []*graph.Node
	cast := func(v string, to graph.DType) string {
		key := [2]string{v, to.String()}
		if c, ok := castTo[key]; ok {
			return c
		}
		c := nm.name(v + "_" + to.String())
		nodes = append(nodes, &graph.Node{Name: nm.name(v + "_Cast"), OpType: "Cast", Inputs: []string{v}, Outputs: []string{c},
			Attrs: []*graph.Attr{graph.IntAttr("to", int64(to))}})
		castTo[key] = c
		return c
	}
	converted, kept := 0, 0
	for _, n := range g.Nodes {
		floatIO := false
		for _, v := range append(append([]string{}, n.Inputs...), n.Outputs...) {
			if v != "" && (dt[v] == graph.Float || half[v]) {
				floatIO = true
			}
		}
		toHalf := floatIO && n.IsDefaultDomain() && !keep[n.OpType] && !excl[n.Name] && len(n.Subgraphs()) == 0
		for _, o := range n.Outputs {
			if _, known := dt[o]; o != "" && !known {
				toHalf = false // an output of unknown type could not be tracked
			}
		}
		if n.Is("Constant") {
			if t := n.AttrTensor("value"); t != nil && t.DType == graph.Float {
				toHalf = true
			} else {
				toHalf = false
			}
		}
		for i, v := range n.Inputs {
			if v == "" {
				continue
			}
			switch {
			case toHalf && dt[v] == graph.Float && !half[v]:
				if t := inits[v]; t != nil {
					h, ok := halfInit[v]
					if !ok {
						h = addInit(g, nm, v+"_fp16", graph.Float16, t.Dims, toHalfBytes(t))
						halfInit[v] = h
					}
					n.Inputs[i] = h
				} else {
					n.Inputs[i] = cast(v, graph.Float16)
				}
			case !toHalf && half[v]:
				n.Inputs[i] = cast(v, graph.Float)
			}
		}
		if toHalf {
			converted++
			if n.Is("Constant") {
				t := n.AttrTensor("value")
				h := graph.NewRaw(t.Name, graph.Float16, t.Dims, toHalfBytes(t))
				n.SetAttr(graph.TensorAttr("value", h))
			}
			for _, o := range n.Outputs {
				if o != "" && dt[o] == graph.Float {
					half[o] = true
					if vi := vis[o]; vi != nil {
						vi.DType = graph.Float16
					}
				}
			}
		} else if floatIO {
			kept++
			if n.IsDefaultDomain() && keep[n.OpType] && !n.Is("Cast") {
				rep.skip(n, "kept in float32 (numerically sensitive or schema needs float32)")
			} else if excl[n.Name] {
				rep.skip(n, "excluded by name")
			} else if !n.IsDefaultDomain() || len(n.Subgraphs()) > 0 {
				rep.skip(n, "custom-domain op or subgraph holder: kept in float32")
			}
		}
		if toHalf {
			rep.Quantized = append(rep.Quantized, n.String())
		}
		nodes = append(nodes, n)
	}
	// graph outputs
	for _, v := range g.Outputs {
		if !half[v.Name] {
			continue
		}
		if !opts.KeepIO {
			v.DType = graph.Float16
			continue
		}
		// rename the producer's output, cast back into the output name
		inner := nm.name(v.Name + "_fp16")
		for _, n := range nodes {
			for i, in := range n.Inputs {
				if in == v.Name {
					n.Inputs[i] = inner
				}
			}
			for i, o := range n.Outputs {
				if o == v.Name {
					n.Outputs[i] = inner
				}
			}
		}
		if vi := vis[v.Name]; vi != nil {
			vi.Name = inner
		}
		nodes = append(nodes, &graph.Node{Name: nm.name(v.Name + "_Cast"), OpType: "Cast", Inputs: []string{inner}, Outputs: []string{v.Name},
			Attrs: []*graph.Attr{graph.IntAttr("to", int64(graph.Float))}})
	}
	g.Nodes = nodes
	dropUnusedInits(g)
	if err := g.TopoSort(); err != nil {
		return nil, nil, fmt.Errorf("quant: fp16: %w", err)
	}
	if err := out.Verify(); err != nil {
		return nil, nil, fmt.Errorf("quant: fp16: the converted model fails verification: %w", err)
	}
	rep.countOps(g)
	rep.Notes = append(rep.Notes, fmt.Sprintf("%d nodes converted to float16, %d kept in float32", converted, kept))
	return out, rep, nil
}

func toHalfBytes(t *graph.Tensor) []byte {
	f, _ := t.Float32s()
	b := make([]byte, 2*len(f))
	for i, v := range f {
		binary.LittleEndian.PutUint16(b[2*i:], half.Float32ToFloat16(v))
	}
	return b
}
