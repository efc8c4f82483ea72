package interp

import (
	"fmt"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Minimal test-only kernels in a private domain, so the control-flow tests
// run before (or without) the other helpers' elementwise kernels. A model's
// node is moved to this domain only when the default domain lacks the op.
const seqShimDomain = "optictl.seqtest"

func init() {
	bin := func(f32 func(a, b float32) float32, i64 func(a, b int64) int64) Builder {
		return func(n *graph.Node, bc *BuildContext) (Kernel, error) {
			return func(c *Call) error {
				a, b := c.In[0], c.In[1]
				if a.DType != b.DType {
					return fmt.Errorf("dtype mismatch")
				}
				big := a
				if b.Len() > a.Len() {
					big = b
				}
				if a.Len() != big.Len() && a.Len() != 1 || b.Len() != big.Len() && b.Len() != 1 {
					return fmt.Errorf("shim: unsupported broadcast %v %v", a.Shape, b.Shape)
				}
				o, err := c.Out(0, a.DType, big.Shape)
				if err != nil {
					return err
				}
				at := func(t *runtime.Tensor, i int) int {
					if t.Len() == 1 {
						return 0
					}
					return i
				}
				switch a.DType {
				case graph.Float:
					x, y, z := a.Float32s(), b.Float32s(), o.Float32s()
					for i := range z {
						z[i] = f32(x[at(a, i)], y[at(b, i)])
					}
				case graph.Int64:
					x, y, z := a.Int64s(), b.Int64s(), o.Int64s()
					for i := range z {
						z[i] = i64(x[at(a, i)], y[at(b, i)])
					}
				default:
					return fmt.Errorf("shim: dtype %s", a.DType)
				}
				return nil
			}, nil
		}
	}
	Register(seqShimDomain, "Add", bin(func(a, b float32) float32 { return a + b }, func(a, b int64) int64 { return a + b }))
	Register(seqShimDomain, "Mul", bin(func(a, b float32) float32 { return a * b }, func(a, b int64) int64 { return a * b }))
	Register(seqShimDomain, "Identity", func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		return func(c *Call) error { c.SetOut(0, c.In[0]); return nil }, nil
	})
	Register(seqShimDomain, "Constant", func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		t := runtime.FromGraphTensor(n.AttrTensor("value"))
		return func(c *Call) error { c.SetOut(0, t); return nil }, nil
	})
	Register(seqShimDomain, "Unsqueeze", func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		return func(c *Call) error {
			if len(c.In[0].Shape) != 0 {
				return fmt.Errorf("shim: Unsqueeze of a scalar only")
			}
			return c.Alias(0, c.In[0], []int64{1})
		}, nil
	})
	Register(seqShimDomain, "Panic", func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		return func(c *Call) error {
			if c.In[0].Len() == 3 {
				var s []int
				_ = s[5] // an index bug in a kernel
			}
			c.SetOut(0, c.In[0])
			return nil
		}, nil
	})
	Register(seqShimDomain, "Slice", func(n *graph.Node, bc *BuildContext) (Kernel, error) {
		return func(c *Call) error {
			x := c.In[0]
			s, e := c.In[1].Int64s()[0], c.In[2].Int64s()[0]
			if len(x.Shape) != 1 || s < 0 || e > x.Shape[0] || s > e {
				return fmt.Errorf("shim: Slice of 1-D within bounds only")
			}
			sz := int64(x.DType.Size())
			h := &runtime.Tensor{DType: x.DType, Shape: []int64{e - s}, Raw: x.Raw[s*sz : e*sz]}
			c.SetOut(0, h)
			return nil
		}, nil
	})
}

// seqShim moves nodes whose op has no default-domain kernel to the shim
// domain when the shim has one.
func seqShim(m *graph.Model) {
	_ = m.Graph.Walk(func(g *graph.Graph) error {
		for _, n := range g.Nodes {
			if n.IsDefaultDomain() && !Supported("", n.OpType) && Supported(seqShimDomain, n.OpType) {
				n.Domain = seqShimDomain
			}
		}
		return nil
	})
}
