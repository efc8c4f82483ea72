package quant

import (
	"fmt"

	"github.com/optictl/optictl/pkg/graph"
)

// upgradeTo13 raises a model's default opset (>= 7) to 13 in place,
// rewriting the ops whose form changed on the way: Clip-6 (min/max
// attributes become inputs), Slice-1 (starts/ends/axes attributes become
// inputs) and Softmax/LogSoftmax before 13 (accepted only where the axis is
// the last one, where the old 2-D coercion and the new per-axis form agree).
// Any other op must be in opsetSafe. On error the model is unchanged.
func upgradeTo13(m *graph.Model, nm *namer) error {
	g := m.Graph
	if v := m.Opset(""); v < 7 {
		return fmt.Errorf("opset %d is older than 7", v)
	}
	var ranks map[string]int
	type edit func()
	var edits []edit
	for _, n := range g.Nodes {
		if !n.IsDefaultDomain() {
			return fmt.Errorf("%s is outside the default domain", n)
		}
		switch {
		case opsetSafe[n.OpType], n.Is("Constant"), n.Is("Cast"), n.Is("HardSigmoid"), n.Is("Relu"),
			n.Is("GlobalAveragePool"), n.Is("MaxPool"), n.Is("BatchNormalization"):
		case n.Is("Clip"):
			if len(n.Inputs) > 1 {
				continue // already the input form
			}
			n := n
			edits = append(edits, func() {
				lo, hi := n.AttrFloat("min", -3.4028234663852886e38), n.AttrFloat("max", 3.4028234663852886e38)
				n.DelAttr("min")
				n.DelAttr("max")
				n.Inputs = append(n.Inputs[:1],
					addInit(g, nm, n.Inputs[0]+"_clip_min", graph.Float, nil, f32Bytes([]float32{lo})),
					addInit(g, nm, n.Inputs[0]+"_clip_max", graph.Float, nil, f32Bytes([]float32{hi})))
			})
		case n.Is("Slice"):
			if len(n.Inputs) > 1 {
				continue
			}
			n := n
			edits = append(edits, func() {
				ins := []string{n.Inputs[0],
					addInit(g, nm, n.Outputs[0]+"_starts", graph.Int64, []int64{int64(len(n.AttrInts("starts")))}, i64Bytes(n.AttrInts("starts"))),
					addInit(g, nm, n.Outputs[0]+"_ends", graph.Int64, []int64{int64(len(n.AttrInts("ends")))}, i64Bytes(n.AttrInts("ends")))}
				if ax := n.Attr("axes"); ax != nil {
					ins = append(ins, addInit(g, nm, n.Outputs[0]+"_axes", graph.Int64, []int64{int64(len(ax.Ints))}, i64Bytes(ax.Ints)))
				}
				n.DelAttr("starts")
				n.DelAttr("ends")
				n.DelAttr("axes")
				n.Inputs = ins
			})
		case n.Is("Softmax"), n.Is("LogSoftmax"):
			if ranks == nil {
				ranks = map[string]int{}
				c := m.Clone()
				if _, err := graph.InferShapes(c, graph.InferOptions{}); err == nil {
					for _, vs := range [][]*graph.ValueInfo{c.Graph.ValueInfo, c.Graph.Inputs, c.Graph.Outputs} {
						for _, v := range vs {
							if v.HasShape {
								ranks[v.Name] = len(v.Shape)
							}
						}
					}
				}
			}
			r, ok := ranks[n.Inputs[0]]
			axis := n.AttrInt("axis", 1)
			if !ok || !(axis == -1 || axis == int64(r-1)) {
				return fmt.Errorf("%s: axis %d is not known to be the last axis (its meaning changed in opset 13)", n, axis)
			}
			n := n
			edits = append(edits, func() { n.SetAttr(graph.IntAttr("axis", -1)) })
		default:
			return fmt.Errorf("%s changed meaning by opset 13", n)
		}
	}
	for _, e := range edits {
		e()
	}
	m.SetOpset("", 13)
	if m.IRVersion < 7 {
		m.IRVersion = 7
	}
	return nil
}

func i64Bytes(v []int64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		for k := 0; k < 8; k++ {
			b[8*i+k] = byte(uint64(x) >> (8 * k))
		}
	}
	return b
}
