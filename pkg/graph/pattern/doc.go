// Package pattern holds the matchers of the rewrite patterns that both the
// graph passes (pkg/passes) and the interpreter's open-time fusions
// (pkg/runtime/interp) look for: Conv followed by BatchNormalization, a
// per-channel Add or Mul and an activation; written-out HardSwish, GELU and
// LayerNormalization; MatMul followed by a bias Add. A matching bug is
// fixed here once, for both.
//
// A matcher only reads the graph, through a View (producers, consumers and
// constant values). It returns the matched nodes and parameters, or a
// *Mismatch that names the candidate node and says, in words a user can
// act on, why it did not match ("Conv_3's output has 2 readers"). Matchers
// check the structure of a pattern and the preconditions every user needs
// (single readers, constants, dtypes); a user adds its own (the exact
// constants a rewrite needs, an opset, a kernel's limits) and never
// weakens these.
//
// Invariants: matchers never modify the graph; a value "read only inside
// the pattern" is read by exactly one node, in one input slot, not from a
// subgraph, and is not a graph output (View.Sole); a "scalar" constant has
// one element and rank at most 1, so it never raises the rank of what it
// broadcasts against.
package pattern
