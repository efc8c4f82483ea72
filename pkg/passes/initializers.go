package passes

// Unused initializer elimination.
//   Before: an initializer no node (or subgraph) reads, not a graph input
//           or output.  After: it is gone.
//
// Duplicate initializer elimination.
//   Before: W1, W2 initializers with equal dtype, dims and bytes.
//   After:  readers of W2 read W1; W2 is gone.
//   Preconditions: neither is a graph input or output; content compared
//   byte for byte after a hash match.

import (
	"bytes"
	"hash/maphash"
	"slices"

	"github.com/optictl/optictl/pkg/graph"
)

var unusedInits = &Pass{
	Name:  "eliminate-unused-initializers",
	Doc:   "Remove initializers that nothing reads.",
	Level: O1,
	Run: func(c *Context) (bool, error) {
		changed := false
		_ = c.Graph().Walk(func(g *graph.Graph) error {
			cons := g.Consumers()
			out := g.Initializers[:0:0]
			for _, t := range g.Initializers {
				if len(cons[t.Name]) == 0 && !g.IsGraphOutput(t.Name) && !g.IsGraphInput(t.Name) {
					changed = true
					continue
				}
				out = append(out, t)
			}
			g.Initializers = out
			return nil
		})
		return changed, nil
	},
}

var dedupeInits = &Pass{
	Name:  "dedupe-initializers",
	Doc:   "Merge initializers with identical dtype, shape and bytes.",
	Level: O1,
	Run: func(c *Context) (bool, error) {
		g := c.Graph()
		type key struct {
			dt   graph.DType
			dims string
			h    uint64
		}
		groups := map[key][]*graph.Tensor{}
		changed := false
		var drop []string
		// maphash (AES-based where the CPU has it) hashes 100 MB of weights
		// in milliseconds, where FNV took most of a second; equal hashes are
		// still confirmed byte by byte, so the per-run seed cannot change
		// the result.
		seed := maphash.MakeSeed()
		for _, t := range g.Initializers {
			if t.DType == graph.String || t.Raw == nil || g.IsGraphInput(t.Name) || g.IsGraphOutput(t.Name) {
				continue
			}
			k := key{t.DType, dimsKey(t.Dims), maphash.Bytes(seed, t.Raw)}
			var keep *graph.Tensor
			for _, o := range groups[k] {
				if bytes.Equal(o.Raw, t.Raw) {
					keep = o
					break
				}
			}
			if keep == nil {
				groups[k] = append(groups[k], t)
				continue
			}
			renameUses(g, t.Name, keep.Name)
			drop = append(drop, t.Name)
			changed = true
		}
		if changed {
			g.Initializers = slices.DeleteFunc(g.Initializers, func(t *graph.Tensor) bool { return slices.Contains(drop, t.Name) })
		}
		return changed, nil
	},
}

func dimsKey(d []int64) string {
	b := make([]byte, 0, 8*len(d))
	for _, v := range d {
		for i := 0; i < 8; i++ {
			b = append(b, byte(v>>(8*i)))
		}
	}
	return string(b)
}
