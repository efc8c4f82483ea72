package graph

import (
	"strconv"
	"strings"

	"github.com/optictl/optictl/pkg/onnxpb"
)

// Dim is one dimension of a shape: a fixed size (Size >= 0), a named
// symbolic size (Size == -1, Param set, e.g. "batch"), or unknown (Size == -1,
// Param empty).
type Dim struct {
	Size       int64
	Param      string
	Denotation string
}

// Known reports whether the dimension has a fixed size.
func (d Dim) Known() bool { return d.Size >= 0 }

func (d Dim) String() string {
	switch {
	case d.Size >= 0:
		return strconv.FormatInt(d.Size, 10)
	case d.Param != "":
		return d.Param
	}
	return "?"
}

// FixedDim and SymDim build dimensions.
func FixedDim(n int64) Dim    { return Dim{Size: n} }
func SymDim(name string) Dim  { return Dim{Size: -1, Param: name} }
func UnknownDim() Dim         { return Dim{Size: -1} }
func DimsOf(s ...int64) Shape { return ShapeOf(s) }
func ShapeOf(s []int64) Shape {
	out := make(Shape, len(s))
	for i, v := range s {
		out[i] = FixedDim(v)
	}
	return out
}

// Shape is a list of dimensions. A nil Shape together with
// ValueInfo.HasShape == false means the rank is unknown; an empty non-nil
// Shape is a scalar.
type Shape []Dim

// Static returns the dims as int64s and whether all are fixed.
func (s Shape) Static() ([]int64, bool) {
	out := make([]int64, len(s))
	for i, d := range s {
		if d.Size < 0 {
			return nil, false
		}
		out[i] = d.Size
	}
	return out, true
}

func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = d.String()
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// Clone copies the shape.
func (s Shape) Clone() Shape {
	if s == nil {
		return nil
	}
	return append(Shape{}, s...)
}

// ValueInfo describes a named value: its element type and shape. Values
// that are not plain tensors (sequences, maps, optionals, sparse tensors)
// keep their full TypeProto in Other; DType and Shape then describe the
// innermost tensor where there is one.
type ValueInfo struct {
	Name     string
	DType    DType
	Shape    Shape
	HasShape bool
	Doc      string

	// HasType is false when the ValueInfoProto carried no type at all.
	HasType bool
	// Other holds a non-tensor TypeProto verbatim.
	Other *onnxpb.TypeProto
	// Denotation is TypeProto.denotation of a tensor type.
	Denotation string

	unknown     []byte // ValueInfoProto unknown fields
	typeUnknown []byte // TypeProto / TypeProto.Tensor unknown fields
	tensUnknown []byte
}

// IsTensor reports whether the value is a plain tensor.
func (v *ValueInfo) IsTensor() bool { return v.Other == nil }

// Clone deep-copies the value info.
func (v *ValueInfo) Clone() *ValueInfo {
	c := *v
	c.Shape = v.Shape.Clone()
	return &c
}

// TypeString renders "float32[1,3,?,batch]" (or the kind of a non-tensor).
func (v *ValueInfo) TypeString() string {
	if !v.HasType {
		return "?"
	}
	if v.Other != nil {
		switch {
		case v.Other.GetSequenceType() != nil:
			return "sequence"
		case v.Other.GetMapType() != nil:
			return "map"
		case v.Other.GetOptionalType() != nil:
			return "optional"
		case v.Other.GetSparseTensorType() != nil:
			return "sparse"
		}
		return "opaque"
	}
	if !v.HasShape {
		return v.DType.String() + "[...]"
	}
	return v.DType.String() + v.Shape.String()
}
