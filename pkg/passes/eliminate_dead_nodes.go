package passes

// Dead node elimination.
//   Before: Y = Op(X) where Y (and every other output of the node) is read
//           by nobody and is not a graph output.
//   After:  the node is gone.
//   Preconditions: default ONNX domain (custom ops may have side effects);
//   not Loop/Scan; reads from inside subgraphs count as reads.

import (
	"github.com/optictl/optictl/pkg/graph"
)

var deadNodes = &Pass{
	Name:  "eliminate-dead-nodes",
	Doc:   "Remove nodes whose outputs nobody reads.\nCustom-domain nodes and Loop/Scan are kept.",
	Level: O1,
	Run: func(c *Context) (bool, error) {
		changed := false
		err := c.Graph().Walk(func(g *graph.Graph) error {
			if removeDead(g) > 0 {
				changed = true
			}
			return nil
		})
		return changed, err
	},
}
