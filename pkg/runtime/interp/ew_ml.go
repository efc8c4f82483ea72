package interp

import (
	"math"
	"strconv"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// ai.onnx.ml: ArrayFeatureExtractor, Binarizer, LabelEncoder.

const ewMLDomain = "ai.onnx.ml"

func init() {
	Register(ewMLDomain, "ArrayFeatureExtractor", ewBuildArrayFeatureExtractor)
	Register(ewMLDomain, "Binarizer", ewBuildBinarizer)
	Register(ewMLDomain, "LabelEncoder", ewBuildLabelEncoder)
}

func ewBuildArrayFeatureExtractor(n *graph.Node, bc *BuildContext) (Kernel, error) {
	return func(c *Call) error {
		x, ind := c.In[0], c.In[1]
		if x == nil || ind == nil || len(x.Shape) < 1 {
			return ewErr(n, "needs data and indices")
		}
		iv, err := ewInts(ind)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		last := x.Shape[len(x.Shape)-1]
		shape := append(append([]int64(nil), x.Shape[:len(x.Shape)-1]...), int64(len(iv)))
		if len(x.Shape) == 1 {
			shape = []int64{1, int64(len(iv))}
		}
		o, err := c.Out(0, x.DType, shape)
		if err != nil {
			return err
		}
		outer := x.Len() / max(int(last), 1)
		idx := make([]int, 0, outer*len(iv))
		for j := 0; j < outer; j++ {
			for _, k := range iv {
				if k < 0 || k >= last {
					return ewErr(n, "index %d out of range for last dim %d", k, last)
				}
				idx = append(idx, j*int(last)+int(k))
			}
		}
		ewTake(o, x, idx)
		return nil
	}, nil
}

func ewBuildBinarizer(n *graph.Node, bc *BuildContext) (Kernel, error) {
	th := float64(n.AttrFloat("threshold", 0))
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || !ewIsNumeric(x.DType) {
			return ewErr(n, "needs a numeric input")
		}
		v, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		for i, f := range v {
			if f > th {
				v[i] = 1
			} else if !math.IsNaN(f) {
				v[i] = 0
			}
		}
		o, err := c.Out(0, x.DType, x.Shape)
		if err != nil {
			return err
		}
		return ewSetF64(o, v)
	}, nil
}

// ewKeyStrings renders keys (or values) of any supported type as strings.
func ewKeyStrings(t *runtime.Tensor) ([]string, error) {
	if t.DType == graph.String {
		return t.Strings, nil
	}
	v, err := ewF64s(t)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(v))
	for i, f := range v {
		if t.DType.IsInt() {
			out[i] = strconv.FormatInt(int64(f), 10)
		} else {
			out[i] = strconv.FormatFloat(float64(float32(f)), 'g', -1, 32)
		}
	}
	return out, nil
}

func ewBuildLabelEncoder(n *graph.Node, bc *BuildContext) (Kernel, error) {
	attrTensor := func(prefix string) *runtime.Tensor {
		if a := n.Attr(prefix + "_tensor"); a != nil && a.T != nil {
			return runtime.FromGraphTensor(a.T)
		}
		if a := n.Attr(prefix + "_int64s"); a != nil {
			return runtime.FromInt64([]int64{int64(len(a.Ints))}, a.Ints)
		}
		if a := n.Attr(prefix + "_floats"); a != nil {
			return runtime.FromFloat32([]int64{int64(len(a.Floats))}, a.Floats)
		}
		if a := n.Attr(prefix + "_strings"); a != nil {
			t := runtime.NewTensor(graph.String, []int64{int64(len(a.Strings))})
			for i, s := range a.Strings {
				t.Strings[i] = string(s)
			}
			return t
		}
		return nil
	}
	keys, vals := attrTensor("keys"), attrTensor("values")
	if keys == nil || vals == nil || keys.Len() != vals.Len() {
		return nil, ewErr(n, "needs keys and values of one length")
	}
	ks, err := ewKeyStrings(keys)
	if err != nil {
		return nil, ewErr(n, "%v", err)
	}
	lookup := make(map[string]int, len(ks))
	for i, k := range ks {
		if _, dup := lookup[k]; !dup {
			lookup[k] = i
		}
	}
	// default value as a one-element tensor of the values' dtype
	def := runtime.NewTensor(vals.DType, []int64{1})
	if a := n.Attr("default_tensor"); a != nil && a.T != nil {
		def = runtime.FromGraphTensor(a.T)
	} else {
		switch vals.DType {
		case graph.String:
			def.Strings[0] = n.AttrString("default_string", "_Unused")
		case graph.Int64:
			ewView[int64](def)[0] = n.AttrInt("default_int64", -1)
		case graph.Float:
			ewView[float32](def)[0] = n.AttrFloat("default_float", float32(math.Copysign(0, -1)))
		}
	}
	return func(c *Call) error {
		x := c.In[0]
		if x == nil {
			return ewErr(n, "missing input")
		}
		xs, err := ewKeyStrings(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		o, err := c.Out(0, vals.DType, x.Shape)
		if err != nil {
			return err
		}
		hit := make([]int, len(xs))
		miss := make([]int, len(xs))
		for i, s := range xs {
			if j, ok := lookup[s]; ok {
				hit[i], miss[i] = j, -1
			} else {
				hit[i], miss[i] = -1, 0
			}
		}
		ewTake(o, vals, hit)
		ewTake(o, def, miss)
		return nil
	}, nil
}
