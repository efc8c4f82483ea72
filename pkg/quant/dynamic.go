package quant

import (
	"fmt"

	"github.com/optictl/optictl/pkg/graph"
)

// DynamicOptions configure Dynamic.
type DynamicOptions struct {
	// OpTypes restricts quantization to these op types (MatMul, Gemm);
	// empty means both.
	OpTypes []string
	// ExcludeNodes are node names left in float.
	ExcludeNodes []string
	// FullRange stores weights in the full 8 bits ([-127, 127]). The
	// default is 7 bits ([-63, 63], "reduce range"): ORT's u8*s8 kernels on
	// AVX2 CPUs without VNNI sum pairs of products in int16 and saturate
	// with 8-bit weights (measured: interp and ORT then disagree by up to
	// 6% of the output range on the test transformer; with 7 bits they
	// agree to float rounding). Use FullRange only on VNNI/AMX CPUs.
	FullRange bool
	// PerTensor uses one weight scale per tensor instead of per column.
	PerTensor bool
}

// Dynamic rewrites MatMul/Gemm with constant float32 weights into ORT's
// dynamic int8 form:
//
//	Before: Y = MatMul(X, W)            (W constant float32 [K,N])
//	After:  Xq, xs, xz = DynamicQuantizeLinear(X)
//	        Y = Cast(MatMulInteger(Xq, Wq, xz), float) * (xs * ws)
//
// Gemm(A, B, C) with transA = 0 becomes the same plus alpha folded into ws
// and Add(beta*C). Wq is int8, symmetric (zero point 0, omitted), one scale
// per output column. The model passed in is not modified.
func Dynamic(m *graph.Model, opts DynamicOptions) (*graph.Model, *Report, error) {
	if m == nil || m.Graph == nil {
		return nil, nil, fmt.Errorf("quant: no model")
	}
	out := m.Clone()
	g := out.Graph
	rep := &Report{Mode: "int8-dynamic"}
	constantsToInits(g)
	commonChecks(g, rep)
	if v := out.Opset(""); v < 11 {
		conv, note, err := raiseOpset(out, "DynamicQuantizeLinear needs 11")
		if err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("opset %d is below 11 (DynamicQuantizeLinear) and the version converter refused: %v: nothing quantized", v, err))
			rep.countOps(g)
			return out, rep, nil
		}
		rep.Notes = append(rep.Notes, note)
		out, g = conv, conv.Graph
	}
	qmax := 63.0
	if opts.FullRange {
		qmax = 127
	} else {
		rep.Notes = append(rep.Notes, "weights use 7 bits (reduce range) to avoid u8*s8 saturation on CPUs without VNNI")
	}
	inits := g.InitializerMap()
	nm := newNamer(g)
	// One DynamicQuantizeLinear per activation, shared by its consumers.
	dql := map[string][3]string{}
	var nodes []*graph.Node
	for _, n := range g.Nodes {
		if !(n.Is("MatMul") || n.Is("Gemm")) {
			nodes = append(nodes, n)
			continue
		}
		if ok, why := selected(n, opts.OpTypes, opts.ExcludeNodes); !ok {
			rep.skip(n, "%s", why)
			nodes = append(nodes, n)
			continue
		}
		repl, err := dynamicNode(g, n, inits, nm, dql, qmax, opts.PerTensor)
		if err != nil {
			rep.skip(n, "%v", err)
			nodes = append(nodes, n)
			continue
		}
		nodes = append(nodes, repl...)
		rep.quantized(n)
	}
	g.Nodes = nodes
	dropUnusedInits(g)
	if err := g.TopoSort(); err != nil {
		return nil, nil, fmt.Errorf("quant: dynamic: %w", err)
	}
	if err := out.Verify(); err != nil {
		return nil, nil, fmt.Errorf("quant: dynamic: the quantized model fails verification: %w", err)
	}
	rep.countOps(g)
	return out, rep, nil
}

func dynamicNode(g *graph.Graph, n *graph.Node, inits map[string]*graph.Tensor, nm *namer, dql map[string][3]string, qmax float64, perTensor bool) ([]*graph.Node, error) {
	if len(n.Inputs) < 2 || len(n.Outputs) != 1 {
		return nil, fmt.Errorf("unexpected arity")
	}
	x, wname := n.Inputs[0], n.Inputs[1]
	if inits[x] != nil {
		return nil, fmt.Errorf("activation input is constant")
	}
	wt, w := floatInit(inits, wname)
	if wt == nil {
		return nil, fmt.Errorf("weight %q is not a constant float32 initializer", wname)
	}
	if len(wt.Dims) != 2 {
		return nil, fmt.Errorf("weight %q has rank %d, want 2", wname, len(wt.Dims))
	}
	K, N := int(wt.Dims[0]), int(wt.Dims[1])
	alpha := float32(1)
	var bias string
	var extra []*graph.Node
	if n.Is("Gemm") {
		if n.AttrInt("transA", 0) != 0 {
			return nil, fmt.Errorf("Gemm with transA=1")
		}
		alpha = n.AttrFloat("alpha", 1)
		beta := n.AttrFloat("beta", 1)
		if n.AttrInt("transB", 0) != 0 {
			K, N = N, K
			tw := make([]float32, len(w))
			for k := 0; k < K; k++ {
				for j := 0; j < N; j++ {
					tw[k*N+j] = w[j*K+k]
				}
			}
			w = tw
		}
		if len(n.Inputs) > 2 && n.Inputs[2] != "" {
			c := n.Inputs[2]
			if ct, cf := floatInit(inits, c); ct != nil {
				if beta != 1 {
					sc := make([]float32, len(cf))
					for i, v := range cf {
						sc[i] = beta * v
					}
					c = addInit(g, nm, c+"_scaled", graph.Float, ct.Dims, f32Bytes(sc))
				}
			} else if beta != 1 {
				return nil, fmt.Errorf("non-constant C with beta=%g", beta)
			}
			bias = c
		}
	}
	axis := 1
	if perTensor {
		axis = -1
	}
	q, ws := quantWeights(w, K, N, axis, qmax)
	if alpha != 1 {
		for i := range ws {
			ws[i] *= alpha
		}
	}
	base := n.Name
	if base == "" {
		base = n.Outputs[0]
	}
	wq := addInit(g, nm, wname+"_quantized", graph.Int8, []int64{int64(K), int64(N)}, q)
	wsDims := []int64{int64(len(ws))}
	if perTensor {
		wsDims = nil
	}
	wsName := addInit(g, nm, wname+"_scale", graph.Float, wsDims, f32Bytes(ws))
	d, ok := dql[x]
	if !ok {
		d = [3]string{nm.name(x + "_quantized"), nm.name(x + "_scale"), nm.name(x + "_zero_point")}
		dql[x] = d
		extra = append(extra, &graph.Node{Name: nm.name(x + "_DynamicQuantizeLinear"), OpType: "DynamicQuantizeLinear",
			Inputs: []string{x}, Outputs: d[:]})
	}
	y := n.Outputs[0]
	mmOut, castOut, scale := nm.name(base+"_int32"), nm.name(base+"_float"), nm.name(base+"_scale")
	mulOut := y
	if bias != "" {
		mulOut = nm.name(base + "_nobias")
	}
	extra = append(extra,
		&graph.Node{Name: nm.name(base + "_MatMulInteger"), OpType: "MatMulInteger", Inputs: []string{d[0], wq, d[2]}, Outputs: []string{mmOut}},
		&graph.Node{Name: nm.name(base + "_Cast"), OpType: "Cast", Inputs: []string{mmOut}, Outputs: []string{castOut},
			Attrs: []*graph.Attr{graph.IntAttr("to", int64(graph.Float))}},
		&graph.Node{Name: nm.name(base + "_scale_Mul"), OpType: "Mul", Inputs: []string{d[1], wsName}, Outputs: []string{scale}},
		&graph.Node{Name: nm.name(base + "_Mul"), OpType: "Mul", Inputs: []string{castOut, scale}, Outputs: []string{mulOut}},
	)
	if bias != "" {
		extra = append(extra, &graph.Node{Name: nm.name(base + "_bias_Add"), OpType: "Add", Inputs: []string{mulOut, bias}, Outputs: []string{y}})
	}
	return extra, nil
}
