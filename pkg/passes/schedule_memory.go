package passes

// Memory-aware node scheduling.
//   Before: nodes in producer order as exported
//   After:  the same nodes in a topological order chosen greedily: among
//           ready nodes, run the one that frees the most activation bytes
//           (bytes of inputs whose last reader it is, minus bytes it
//           allocates), ties broken by the current position
// Preconditions: output sizes known for the values involved (static shapes);
// values of unknown size count as 0 bytes, so they do not steer the order.
// The new order is kept only when its estimated peak is strictly lower.
// Reads from subgraphs count as reads (graph.Graph.Consumers), so an If/Loop
// stays after every value its body reads.

import (
	"github.com/optictl/optictl/pkg/graph"
)

var schedule = &Pass{
	Name:  "schedule-memory",
	Doc:   "Reorder nodes (keeping topological order) to lower peak activation memory.",
	Level: O2,
	Run: func(c *Context) (bool, error) {
		g := c.Graph()
		// Sizes with dynamic input dims as in the --data inputs, else 1.
		dims := map[string][]int64{}
		if c.Options != nil {
			for name, t := range c.Options.Inputs {
				dims[name] = t.Shape
			}
		}
		sizes := valueBytes(costView(c.Model, dims))
		before := peakMemory(g, sizes)
		order := greedyOrder(g, sizes)
		if order == nil {
			return false, nil
		}
		old := g.Nodes
		g.Nodes = order
		after := peakMemory(g, sizes)
		if after >= before {
			g.Nodes = old
			c.Note("peak activation %d bytes (unchanged)", before)
			return false, nil
		}
		c.Note("peak activation %d -> %d bytes", before, after)
		return true, nil
	},
}

// valueBytes estimates each value's size from static shapes.
func valueBytes(m *graph.Model) map[string]int64 {
	out := map[string]int64{}
	for name, t := range staticShapes(m) {
		if !t.ok || t.dt == graph.String || !t.dt.Known() {
			continue
		}
		n, err := graph.NumElements(t.dims)
		if err != nil {
			continue
		}
		out[name] = t.dt.ByteSize(n)
	}
	return out
}

// peakMemory simulates g's node order: graph inputs are live from the
// start, a node's outputs are allocated when it runs, and a value is freed
// after its last reader (graph outputs are never freed). Initializers are
// weights, not activations, and are not counted.
func peakMemory(g *graph.Graph, sizes map[string]int64) int64 {
	last := map[string]int{}
	for i, n := range g.Nodes {
		for _, in := range n.Inputs {
			last[in] = i
		}
		for _, sg := range n.Subgraphs() {
			for name := range sg.OuterReads() {
				last[name] = i
			}
		}
	}
	init := map[string]bool{}
	for _, t := range g.Initializers {
		init[t.Name] = true
	}
	for _, n := range g.Nodes {
		if n.Is("Constant") {
			// Constants are weights, not activations.
			for _, o := range n.Outputs {
				init[o] = true
			}
		}
	}
	var live, peak int64
	for _, v := range g.RealInputs() {
		live += sizes[v.Name]
	}
	peak = live
	for i, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o != "" && !init[o] {
				live += sizes[o]
			}
		}
		peak = max(peak, live)
		freed := map[string]bool{}
		for _, in := range n.Inputs {
			if in != "" && last[in] == i && !init[in] && !g.IsGraphOutput(in) && !freed[in] {
				live -= sizes[in]
				freed[in] = true
			}
		}
		for _, o := range n.Outputs {
			if _, used := last[o]; o != "" && !used && !g.IsGraphOutput(o) && !init[o] {
				live -= sizes[o]
			}
		}
	}
	return peak
}

// greedyOrder returns a topological order of g.Nodes preferring, among
// ready nodes, the one that frees the most bytes; nil when g has a cycle.
func greedyOrder(g *graph.Graph, sizes map[string]int64) []*graph.Node {
	n := len(g.Nodes)
	prod := map[string]int{}
	for i, nd := range g.Nodes {
		for _, o := range nd.Outputs {
			if o != "" {
				prod[o] = i
			}
		}
	}
	reads := make([][]string, n)
	indeg := make([]int, n)
	users := make([][]int, n)
	remaining := map[string]int{} // readers not yet scheduled
	for i, nd := range g.Nodes {
		seen := map[string]bool{}
		add := func(v string) {
			if v == "" || seen[v] {
				return
			}
			seen[v] = true
			reads[i] = append(reads[i], v)
			remaining[v]++
			if p, ok := prod[v]; ok && p != i {
				indeg[i]++
				users[p] = append(users[p], i)
			}
		}
		for _, in := range nd.Inputs {
			add(in)
		}
		for _, sg := range nd.Subgraphs() {
			for v := range sg.OuterReads() {
				add(v)
			}
		}
	}
	keep := map[string]bool{}
	for _, t := range g.Initializers {
		keep[t.Name] = true
	}
	for _, o := range g.Outputs {
		keep[o.Name] = true
	}
	ready := []int{}
	for i := 0; i < n; i++ {
		if indeg[i] == 0 {
			ready = append(ready, i)
		}
	}
	score := func(i int) int64 {
		var s int64
		for _, v := range reads[i] {
			if remaining[v] == 1 && !keep[v] {
				s += sizes[v]
			}
		}
		for _, o := range g.Nodes[i].Outputs {
			s -= sizes[o]
		}
		return s
	}
	order := make([]*graph.Node, 0, n)
	for len(ready) > 0 {
		best := 0
		bs := score(ready[0])
		for k := 1; k < len(ready); k++ {
			s := score(ready[k])
			if s > bs || s == bs && ready[k] < ready[best] {
				best, bs = k, s
			}
		}
		i := ready[best]
		ready = append(ready[:best], ready[best+1:]...)
		order = append(order, g.Nodes[i])
		for _, v := range reads[i] {
			remaining[v]--
		}
		for _, u := range users[i] {
			indeg[u]--
			if indeg[u] == 0 {
				ready = append(ready, u)
			}
		}
	}
	if len(order) != n {
		return nil
	}
	return order
}
