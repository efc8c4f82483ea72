package graph

import (
	"fmt"
	"sort"
)

// TopoSort reorders g.Nodes (not subgraphs) so every node comes after the
// producers of its inputs, keeping the existing order wherever it is already
// valid. It fails, leaving the graph unchanged, when the nodes form a cycle.
func (g *Graph) TopoSort() error {
	prod := map[string]int{}
	for i, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o != "" {
				prod[o] = i
			}
		}
	}
	deps := make([][]int, len(g.Nodes))
	indeg := make([]int, len(g.Nodes))
	users := make([][]int, len(g.Nodes))
	for i, n := range g.Nodes {
		seen := map[int]bool{}
		add := func(name string) {
			if p, ok := prod[name]; ok && p != i && !seen[p] {
				seen[p] = true
				deps[i] = append(deps[i], p)
				users[p] = append(users[p], i)
				indeg[i]++
			} else if ok && p == i {
				indeg[i] += 1 << 30 // self loop: never ready
			}
		}
		for _, in := range n.Inputs {
			add(in)
		}
		for _, sg := range n.Subgraphs() {
			for name := range sg.OuterReads() {
				add(name)
			}
		}
	}
	// Kahn's algorithm, always taking the ready node with the lowest index.
	ready := &intHeap{}
	for i := range g.Nodes {
		if indeg[i] == 0 {
			ready.push(i)
		}
	}
	order := make([]*Node, 0, len(g.Nodes))
	for ready.len() > 0 {
		i := ready.pop()
		order = append(order, g.Nodes[i])
		for _, u := range users[i] {
			indeg[u]--
			if indeg[u] == 0 {
				ready.push(u)
			}
		}
	}
	if len(order) != len(g.Nodes) {
		var stuck []string
		for i, n := range g.Nodes {
			if indeg[i] > 0 {
				stuck = append(stuck, n.String())
				if len(stuck) == 3 {
					break
				}
			}
		}
		return fmt.Errorf("graph %q: cycle among nodes %v", g.Name, stuck)
	}
	copy(g.Nodes, order)
	return nil
}

type intHeap struct{ a []int }

func (h *intHeap) len() int { return len(h.a) }
func (h *intHeap) push(v int) {
	h.a = append(h.a, v)
	// small heaps: insertion keeps it sorted descending so pop is O(1)
	i := sort.Search(len(h.a)-1, func(k int) bool { return h.a[k] < v })
	copy(h.a[i+1:], h.a[i:len(h.a)-1])
	h.a[i] = v
}
func (h *intHeap) pop() int {
	v := h.a[len(h.a)-1]
	h.a = h.a[:len(h.a)-1]
	return v
}
