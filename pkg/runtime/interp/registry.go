package interp

import (
	"fmt"
	"sort"
	"sync"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Kernel executes one node for one Run.
type Kernel func(c *Call) error

// Builder prepares a node once at Open and returns its Kernel. It should
// parse and validate attributes here, so that errors surface before any run
// and Kernel does no parsing.
type Builder func(n *graph.Node, b *BuildContext) (Kernel, error)

type opKey struct{ domain, op string }

var (
	regMu    sync.RWMutex
	registry = map[opKey]Builder{}
)

func normDomain(d string) string {
	if d == "ai.onnx" {
		return ""
	}
	return d
}

// Register adds a kernel builder for an op of a domain ("" = ai.onnx).
// Registering the same op twice panics (a programming error found at init).
func Register(domain, op string, b Builder) {
	regMu.Lock()
	defer regMu.Unlock()
	k := opKey{normDomain(domain), op}
	if _, dup := registry[k]; dup {
		panic(fmt.Sprintf("interp: op %s/%s registered twice", domain, op))
	}
	registry[k] = b
}

func lookup(domain, op string) (Builder, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	b, ok := registry[opKey{normDomain(domain), op}]
	return b, ok
}

// Supported reports whether interp has a kernel for the op.
func Supported(domain, op string) bool {
	_, ok := lookup(domain, op)
	return ok
}

// Ops lists the registered ops as "op" or "domain.op", sorted.
func Ops() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]string, 0, len(registry))
	for k := range registry {
		if k.domain == "" {
			out = append(out, k.op)
		} else {
			out = append(out, k.domain+"."+k.op)
		}
	}
	sort.Strings(out)
	return out
}

// BuildContext is what a Builder may ask about the node being built.
type BuildContext struct {
	// Opset is the version imported for the node's domain.
	Opset   int64
	Threads int
	prog    *Program
	consts  []*runtime.Tensor
	node    *graph.Node
	model   *graph.Model
}

// Const returns input i when it is a constant (an initializer or the output
// of a Constant node), or nil.
func (b *BuildContext) Const(i int) *runtime.Tensor {
	if i < 0 || i >= len(b.consts) {
		return nil
	}
	return b.consts[i]
}

// NumInputs is the number of input slots of the node (including omitted ones).
func (b *BuildContext) NumInputs() int { return len(b.node.Inputs) }

// HasInput reports whether input i is present (not omitted).
func (b *BuildContext) HasInput(i int) bool { return i < len(b.node.Inputs) && b.node.Inputs[i] != "" }

// ValueInfo returns what the model says about a value's type, if anything.
func (b *BuildContext) ValueInfo(name string) *graph.ValueInfo { return b.prog.valueInfo(name) }

// CompileSubgraph compiles a subgraph attribute (If/Loop/Scan body) in the
// scope of the current graph, so it can read outer values.
func (b *BuildContext) CompileSubgraph(g *graph.Graph) (*Program, error) {
	return b.prog.compileChild(g)
}
