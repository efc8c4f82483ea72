package passes

// Pad into Conv / AveragePool / MaxPool.
//   Before: P = Pad(X, pads, mode="constant", value=v); Y = Conv(P, W, B)
//   After:  Y = Conv(X, W, B) with the spatial pads added to Conv's pads
// Preconditions: P read only by Y, not a graph output; pads constant and
// non-negative, zero on the batch and channel dims; no Pad axes input;
// Conv/pool auto_pad NOTSET (or absent); for Conv and AveragePool the pad
// value is 0 (AveragePool also needs count_include_pad=1), for MaxPool it is
// -inf (MaxPool ignores its own pads); the pooled op's storage_order and
// ceil_mode are left as they are.

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
)

var padIntoConv = &Pass{
	Name:  "fuse-pad-into-conv",
	Doc:   "Fold a constant Pad into the pads of the Conv or pool that reads it.",
	Level: O2,
	Run: func(c *Context) (bool, error) {
		g := c.Graph()
		prod := g.Producers()
		cons := g.Consumers()
		ci := newConstIndex(g)
		dead := map[*graph.Node]bool{}
		for _, n := range g.Nodes {
			if !(n.Is("Conv") || n.Is("AveragePool") || n.Is("MaxPool")) || len(n.Inputs) == 0 {
				continue
			}
			p := producerOf(prod, n.Inputs[0])
			if p == nil || !p.Is("Pad") || dead[p] {
				continue
			}
			c.At(n)
			if !singleUse(g, cons, p.Outputs[0]) {
				c.Miss(n, "the Pad's output %s is read elsewhere or is a graph output", p.Outputs[0])
				continue
			}
			if n.AttrString("auto_pad", "NOTSET") != "NOTSET" {
				c.Miss(n, "auto_pad is set")
				continue
			}
			if p.AttrString("mode", "constant") != "constant" || len(p.Inputs) > 3 && p.Inputs[3] != "" {
				c.Miss(n, "the Pad is not a constant-mode Pad of every axis")
				continue
			}
			var pads []int64
			value := float64(p.AttrFloat("value", 0))
			if len(p.Inputs) >= 2 && p.Inputs[1] != "" {
				v, ok := intsConst(ci.get(p.Inputs[1]))
				if !ok {
					c.Miss(n, "the Pad's pads %s are not constant", p.Inputs[1])
					continue
				}
				pads = v
				value = 0
				if len(p.Inputs) >= 3 && p.Inputs[2] != "" {
					x, ok := scalarFloat(ci.get(p.Inputs[2]))
					if !ok {
						c.Miss(n, "the Pad's value %s is not a constant scalar", p.Inputs[2])
						continue
					}
					value = x
				}
			} else {
				pads = p.AttrInts("pads")
			}
			r := len(pads) / 2
			if r < 3 || len(pads) != 2*r {
				c.Miss(n, "the Pad's pads %v are not those of a rank >= 3 input", pads)
				continue
			}
			ok := pads[0] == 0 && pads[1] == 0 && pads[r] == 0 && pads[r+1] == 0
			for _, v := range pads {
				ok = ok && v >= 0
			}
			switch {
			case n.Is("MaxPool"):
				ok = ok && math.IsInf(value, -1) && len(n.Outputs) == 1
			case n.Is("AveragePool"):
				ok = ok && value == 0 && n.AttrInt("count_include_pad", 0) == 1
			default:
				ok = ok && value == 0
			}
			if !ok {
				c.Miss(n, "the Pad pads the batch or channel axis, by a negative amount, or with a value (%g) the op does not pad with", value)
				continue
			}
			sp := r - 2
			old := n.AttrInts("pads")
			if old != nil && len(old) != 2*sp {
				c.Miss(n, "its pads attribute %v does not fit %d spatial axes", old, sp)
				continue
			}
			np := make([]int64, 2*sp)
			for i := 0; i < sp; i++ {
				np[i] = pads[2+i]
				np[sp+i] = pads[r+2+i]
				if old != nil {
					np[i] += old[i]
					np[sp+i] += old[sp+i]
				}
			}
			n.SetAttr(graph.IntsAttr("pads", np...))
			n.Inputs[0] = p.Inputs[0]
			dead[p] = true
		}
		g.RemoveNodes(dead)
		return len(dead) > 0, nil
	},
}
