package interp

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// ai.onnx.ml TreeEnsemble (opset 5): trees given by node arrays, leaf
// weights per target, SUM/AVERAGE/MIN/MAX aggregation, set membership
// splits, following onnx's reference.

func init() { Register(ewMLDomain, "TreeEnsemble", ewBuildTreeEnsemble) }

// ewAttrNums reads a numeric attribute given as a tensor, ints or floats.
func ewAttrNums(n *graph.Node, name string) []float64 {
	a := n.Attr(name)
	if a == nil {
		return nil
	}
	if a.T != nil {
		v, err := ewF64s(runtime.FromGraphTensor(a.T))
		if err == nil {
			return v
		}
		return nil
	}
	var out []float64
	for _, i := range a.Ints {
		out = append(out, float64(i))
	}
	for _, f := range a.Floats {
		out = append(out, float64(f))
	}
	return out
}

func ewBuildTreeEnsemble(n *graph.Node, bc *BuildContext) (Kernel, error) {
	splits := ewAttrNums(n, "nodes_splits")
	feats := ewAttrNums(n, "nodes_featureids")
	modes := ewAttrNums(n, "nodes_modes")
	tIDs := ewAttrNums(n, "nodes_truenodeids")
	fIDs := ewAttrNums(n, "nodes_falsenodeids")
	tLeaf := ewAttrNums(n, "nodes_trueleafs")
	fLeaf := ewAttrNums(n, "nodes_falseleafs")
	leafT := ewAttrNums(n, "leaf_targetids")
	leafW := ewAttrNums(n, "leaf_weights")
	roots := ewAttrNums(n, "tree_roots")
	missing := ewAttrNums(n, "nodes_missing_value_tracks_true")
	members := ewAttrNums(n, "membership_values")
	agg := n.AttrInt("aggregate_function", 1)
	nTargets := int(n.AttrInt("n_targets", 0))
	nn := len(modes)
	for _, a := range [][]float64{splits, feats, tIDs, fIDs, tLeaf, fLeaf} {
		if len(a) != nn {
			return nil, ewErr(n, "node attribute arrays differ in length")
		}
	}
	if len(leafT) != len(leafW) || nTargets <= 0 {
		return nil, ewErr(n, "leaf arrays differ in length or n_targets is missing")
	}
	// membership sets, consumed in the reference's build order
	sets := map[int]map[float64]bool{}
	mi := 0
	var build func(i int, leaf bool) error
	build = func(i int, leaf bool) error {
		if leaf {
			if i < 0 || i >= len(leafW) {
				return ewErr(n, "leaf %d out of range", i)
			}
			return nil
		}
		if i < 0 || i >= nn {
			return ewErr(n, "node %d out of range", i)
		}
		if modes[i] == 6 {
			s := map[float64]bool{}
			for mi < len(members) {
				m := members[mi]
				mi++
				if m == 0 || math.IsNaN(m) {
					break
				}
				s[m] = true
			}
			sets[i] = s
		}
		if err := build(int(tIDs[i]), tLeaf[i] != 0); err != nil {
			return err
		}
		return build(int(fIDs[i]), fLeaf[i] != 0)
	}
	rootLeaf := make([]bool, len(roots))
	for k, r := range roots {
		ri := int(r)
		if ri < 0 || ri >= nn {
			return nil, ewErr(n, "tree root %d out of range", ri)
		}
		// a degenerate tree is a single leaf, indexed by the root index
		rootLeaf[k] = tLeaf[ri] != 0 && fLeaf[ri] != 0 && tIDs[ri] == fIDs[ri]
		if err := build(ri, rootLeaf[k]); err != nil {
			return nil, err
		}
	}
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || len(x.Shape) != 2 || !x.DType.IsFloat() {
			return ewErr(n, "X must be a 2-D float tensor")
		}
		N, F := int(x.Shape[0]), int(x.Shape[1])
		xv, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		res := make([]float64, N*nTargets)
		init := 0.0
		switch agg {
		case 2:
			init = math.MaxFloat32
		case 3:
			init = -math.MaxFloat32
		}
		for i := range res {
			res[i] = init
		}
		for b := 0; b < N; b++ {
			row := xv[b*F : (b+1)*F]
			for k, r := range roots {
				i, leaf := int(r), rootLeaf[k]
				for steps := 0; !leaf; steps++ {
					if steps > nn {
						return ewErr(n, "tree %d has a cycle", k)
					}
					f := int(feats[i])
					if f < 0 || f >= F {
						return ewErr(n, "feature %d out of range", f)
					}
					v, s := row[f], splits[i]
					var ok bool
					switch modes[i] {
					case 0:
						ok = v <= s
					case 1:
						ok = v < s
					case 2:
						ok = v >= s
					case 3:
						ok = v > s
					case 4:
						ok = v == s
					case 5:
						ok = v != s
					case 6:
						ok = sets[i][v]
					}
					if !ok && missing != nil && missing[i] != 0 && math.IsNaN(v) {
						ok = true
					}
					if ok {
						i, leaf = int(tIDs[i]), tLeaf[i] != 0
					} else {
						i, leaf = int(fIDs[i]), fLeaf[i] != 0
					}
				}
				t := int(leafT[i])
				if t < 0 || t >= nTargets {
					return ewErr(n, "leaf target %d out of range", t)
				}
				p, w := b*nTargets+t, leafW[i]
				switch agg {
				case 0:
					res[p] += w / float64(len(roots))
				case 2:
					res[p] = min(res[p], w)
				case 3:
					res[p] = max(res[p], w)
				default:
					res[p] += w
				}
			}
		}
		o, err := c.Out(0, x.DType, []int64{int64(N), int64(nTargets)})
		if err != nil {
			return err
		}
		return ewSetF64(o, res)
	}, nil
}
