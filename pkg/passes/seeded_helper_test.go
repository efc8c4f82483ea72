package passes

import (
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
)

// seededInputs makes numerics' seeded inputs for m's real inputs; shapes
// (nil for none) fix whole input shapes, other dynamic dims are 1.
func seededInputs(m *graph.Model, shapes map[string][]int64, seed uint64) (map[string]*runtime.Tensor, error) {
	ins, err := numerics.InputsOf(m)
	if err != nil {
		return nil, err
	}
	return numerics.SeededMap(ins, numerics.SeedOptions{Seed: seed, Dims: numerics.Dims{Shapes: shapes}})
}
