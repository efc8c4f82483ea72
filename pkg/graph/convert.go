package graph

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/optictl/optictl/pkg/onnxpb"
)

func unknownOf(m proto.Message) []byte {
	u := m.ProtoReflect().GetUnknown()
	if len(u) == 0 {
		return nil
	}
	return u
}

func setUnknown(m proto.Message, u []byte) {
	if len(u) > 0 {
		m.ProtoReflect().SetUnknown(protoreflect.RawFields(u))
	}
}

// externalResolver reads the bytes of external tensors during conversion.
type externalResolver func(t *Tensor, want int64) ([]byte, error)

type converter struct {
	ext externalResolver
}

func (c *converter) model(p *onnxpb.ModelProto) (*Model, error) {
	m := &Model{
		IRVersion:       p.GetIrVersion(),
		ProducerName:    p.GetProducerName(),
		ProducerVersion: p.GetProducerVersion(),
		Domain:          p.GetDomain(),
		ModelVersion:    p.GetModelVersion(),
		Doc:             p.GetDocString(),
		Functions:       p.Functions,
	}
	for _, o := range p.OpsetImport {
		m.Opsets = append(m.Opsets, OpsetImport{Domain: o.GetDomain(), Version: o.GetVersion()})
	}
	for _, kv := range p.MetadataProps {
		m.Metadata = append(m.Metadata, KV{kv.GetKey(), kv.GetValue()})
	}
	if p.Graph == nil {
		return nil, fmt.Errorf("graph: model has no graph")
	}
	g, err := c.graph(p.Graph)
	if err != nil {
		return nil, err
	}
	m.Graph = g
	// Keep what is left (training_info, unknown fields) in a shell, with the
	// original opset_import entries (their unknown fields) and the presence
	// of scalar fields whose value is the default, so Save writes back
	// exactly what was read.
	rest := &onnxpb.ModelProto{TrainingInfo: p.TrainingInfo, OpsetImport: p.OpsetImport,
		IrVersion: p.IrVersion, ProducerName: p.ProducerName, ProducerVersion: p.ProducerVersion,
		Domain: p.Domain, ModelVersion: p.ModelVersion, DocString: p.DocString}
	setUnknown(rest, unknownOf(p))
	m.rest = rest
	return m, nil
}

func (c *converter) graph(p *onnxpb.GraphProto) (*Graph, error) {
	g := &Graph{Name: p.GetName(), Doc: p.GetDocString()}
	var err error
	if g.Inputs, err = c.valueInfos(p.Input); err != nil {
		return nil, fmt.Errorf("graph %q input: %w", g.Name, err)
	}
	if g.Outputs, err = c.valueInfos(p.Output); err != nil {
		return nil, fmt.Errorf("graph %q output: %w", g.Name, err)
	}
	if g.ValueInfo, err = c.valueInfos(p.ValueInfo); err != nil {
		return nil, fmt.Errorf("graph %q value_info: %w", g.Name, err)
	}
	g.Initializers = make([]*Tensor, 0, len(p.Initializer))
	for i, tp := range p.Initializer {
		t, err := c.tensor(tp)
		if err != nil {
			return nil, fmt.Errorf("graph %q initializer %d: %w", g.Name, i, err)
		}
		g.Initializers = append(g.Initializers, t)
	}
	g.Nodes = make([]*Node, 0, len(p.Node))
	for i, np := range p.Node {
		n, err := c.node(np)
		if err != nil {
			return nil, fmt.Errorf("graph %q node %d (%s %q): %w", g.Name, i, np.GetOpType(), np.GetName(), err)
		}
		g.Nodes = append(g.Nodes, n)
	}
	if len(p.SparseInitializer) > 0 || len(p.QuantizationAnnotation) > 0 || len(unknownOf(p)) > 0 {
		rest := &onnxpb.GraphProto{SparseInitializer: p.SparseInitializer, QuantizationAnnotation: p.QuantizationAnnotation}
		setUnknown(rest, unknownOf(p))
		g.rest = rest
	}
	return g, nil
}

func (c *converter) valueInfos(ps []*onnxpb.ValueInfoProto) ([]*ValueInfo, error) {
	out := make([]*ValueInfo, 0, len(ps))
	for _, p := range ps {
		v, err := valueInfoFromProto(p)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func valueInfoFromProto(p *onnxpb.ValueInfoProto) (*ValueInfo, error) {
	v := &ValueInfo{Name: p.GetName(), Doc: p.GetDocString(), unknown: unknownOf(p)}
	tp := p.Type
	if tp == nil {
		return v, nil
	}
	v.HasType = true
	tt := tp.GetTensorType()
	if tt == nil {
		v.Other = tp
		// Describe the innermost tensor for sequences/optionals where possible.
		return v, nil
	}
	v.Denotation = tp.GetDenotation()
	v.typeUnknown = unknownOf(tp)
	v.tensUnknown = unknownOf(tt)
	v.DType = DType(tt.GetElemType())
	if tt.Shape != nil {
		v.HasShape = true
		v.Shape = make(Shape, 0, len(tt.Shape.Dim))
		for _, d := range tt.Shape.Dim {
			dim := Dim{Size: -1, Denotation: d.GetDenotation()}
			switch x := d.Value.(type) {
			case *onnxpb.TensorShapeProto_Dimension_DimValue:
				if x.DimValue < 0 {
					// ONNX says dim_value must be >= 0; treat as unknown rather than reject,
					// since some exporters write -1 for dynamic dims.
					dim.Size = -1
				} else {
					dim.Size = x.DimValue
				}
			case *onnxpb.TensorShapeProto_Dimension_DimParam:
				dim.Param = x.DimParam
			}
			v.Shape = append(v.Shape, dim)
		}
	}
	return v, nil
}

func (c *converter) node(p *onnxpb.NodeProto) (*Node, error) {
	n := &Node{
		Name: p.GetName(), OpType: p.GetOpType(), Domain: p.GetDomain(),
		Inputs: p.Input, Outputs: p.Output, Doc: p.GetDocString(),
		unknown: unknownOf(p),
	}
	if n.Inputs == nil {
		n.Inputs = []string{}
	}
	if n.Outputs == nil {
		n.Outputs = []string{}
	}
	n.Attrs = make([]*Attr, 0, len(p.Attribute))
	for _, ap := range p.Attribute {
		a, err := c.attr(ap)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", ap.GetName(), err)
		}
		n.Attrs = append(n.Attrs, a)
	}
	return n, nil
}

func (c *converter) attr(p *onnxpb.AttributeProto) (*Attr, error) {
	a := &Attr{
		Name: p.GetName(), RefAttrName: p.GetRefAttrName(), Doc: p.GetDocString(),
		F: p.GetF(), I: p.GetI(), S: p.S, Floats: p.Floats, Ints: p.Ints, Strings: p.Strings,
		Sparse: p.SparseTensor, SparseList: p.SparseTensors, TP: p.Tp, TPs: p.TypeProtos,
		unknown: unknownOf(p),
	}
	if p.Type != nil {
		a.Type = AttrType(p.GetType())
	} else {
		a.Type = inferAttrType(p)
	}
	switch {
	case a.RefAttrName != "":
		// a reference to a caller's attribute carries no value of its own
	case a.Type == AttrGraph && p.G == nil:
		return nil, fmt.Errorf("declared as a GRAPH attribute but holds no graph")
	case a.Type == AttrTensor && p.T == nil:
		return nil, fmt.Errorf("declared as a TENSOR attribute but holds no tensor")
	}
	// Only the field the type names is part of the attribute; ONNX allows
	// exactly one, and a stray second one would be dropped on save anyway.
	var err error
	if p.T != nil && a.Type == AttrTensor {
		if a.T, err = c.tensor(p.T); err != nil {
			return nil, err
		}
	}
	if p.G != nil && a.Type == AttrGraph {
		if a.G, err = c.graph(p.G); err != nil {
			return nil, err
		}
	}
	for _, tp := range p.Tensors {
		if a.Type != AttrTensors {
			break
		}
		t, err := c.tensor(tp)
		if err != nil {
			return nil, err
		}
		a.Tensors = append(a.Tensors, t)
	}
	for _, gp := range p.Graphs {
		if a.Type != AttrGraphs {
			break
		}
		g, err := c.graph(gp)
		if err != nil {
			return nil, err
		}
		a.Graphs = append(a.Graphs, g)
	}
	return a, nil
}

// inferAttrType handles IR version 1 attributes that have no type field.
func inferAttrType(p *onnxpb.AttributeProto) AttrType {
	switch {
	case p.F != nil:
		return AttrFloat
	case p.I != nil:
		return AttrInt
	case p.S != nil:
		return AttrString
	case p.T != nil:
		return AttrTensor
	case p.G != nil:
		return AttrGraph
	case len(p.Floats) > 0:
		return AttrFloats
	case len(p.Ints) > 0:
		return AttrInts
	case len(p.Strings) > 0:
		return AttrStrings
	case len(p.Tensors) > 0:
		return AttrTensors
	case len(p.Graphs) > 0:
		return AttrGraphs
	}
	return AttrUndefined
}

func (c *converter) tensor(p *onnxpb.TensorProto) (*Tensor, error) {
	t := &Tensor{Name: p.GetName(), DType: DType(p.GetDataType()), Dims: p.Dims, Doc: p.GetDocString(), unknown: unknownOf(p)}
	if t.Dims == nil {
		t.Dims = []int64{}
	}
	if p.Segment != nil {
		b, _ := proto.Marshal(p.Segment)
		t.segment = b
	}
	n, err := NumElements(t.Dims)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	if p.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		info := &ExternalInfo{Length: -1}
		for _, kv := range p.ExternalData {
			switch kv.GetKey() {
			case "location":
				info.Location = kv.GetValue()
			case "offset":
				if _, err := fmt.Sscan(kv.GetValue(), &info.Offset); err != nil || info.Offset < 0 {
					return nil, fmt.Errorf("tensor %q: bad external offset %q", t.Name, kv.GetValue())
				}
			case "length":
				if _, err := fmt.Sscan(kv.GetValue(), &info.Length); err != nil || info.Length < 0 {
					return nil, fmt.Errorf("tensor %q: bad external length %q", t.Name, kv.GetValue())
				}
			case "checksum":
				info.Checksum = kv.GetValue()
			}
		}
		if info.Location == "" {
			return nil, fmt.Errorf("tensor %q: external data without a location", t.Name)
		}
		t.External = info
		if t.DType == String || !t.DType.Known() {
			return nil, fmt.Errorf("tensor %q: external data of type %s is not supported", t.Name, t.DType)
		}
		if c.ext == nil {
			return nil, fmt.Errorf("tensor %q: stored in external file %q, which LoadBytes cannot read (use Load with the model's path, or LoadOptions.BaseDir)", t.Name, info.Location)
		}
		raw, err := c.ext(t, t.DType.ByteSize(n))
		if err != nil {
			return nil, err
		}
		t.Raw = raw
		return t, nil
	}
	if t.DType == String {
		if int64(len(p.StringData)) != n {
			return nil, fmt.Errorf("tensor %q: %d strings for shape %v", t.Name, len(p.StringData), t.Dims)
		}
		t.Strings = p.StringData
		return t, nil
	}
	if !t.DType.Known() {
		return nil, fmt.Errorf("tensor %q: unknown data type %d", t.Name, int32(t.DType))
	}
	want := t.DType.ByteSize(n)
	if p.RawData != nil {
		if int64(len(p.RawData)) != want {
			return nil, fmt.Errorf("tensor %q: raw_data has %d bytes, %s%v needs %d", t.Name, len(p.RawData), t.DType, t.Dims, want)
		}
		t.Raw = p.RawData
		return t, nil
	}
	raw, err := typedToRaw(p, t.DType, n, want)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	t.Raw = raw
	return t, nil
}

// typedToRaw converts the typed repeated fields into raw little-endian bytes.
func typedToRaw(p *onnxpb.TensorProto, dt DType, n, want int64) ([]byte, error) {
	// Every case checks the value count before raw is allocated, so a
	// tensor that claims a huge shape but carries few values costs nothing.
	var raw []byte
	count := func(have int, per int64) error {
		if int64(have) != n*per {
			return fmt.Errorf("%d values for %d elements of %s", have, n, dt)
		}
		raw = make([]byte, 0, want)
		return nil
	}
	switch dt {
	case Float, Complex64:
		per := int64(1)
		if dt == Complex64 {
			per = 2
		}
		if err := count(len(p.FloatData), per); err != nil {
			return nil, err
		}
		return append(raw, asBytes(p.FloatData)...), nil
	case Double, Complex128:
		per := int64(1)
		if dt == Complex128 {
			per = 2
		}
		if err := count(len(p.DoubleData), per); err != nil {
			return nil, err
		}
		return append(raw, asBytes(p.DoubleData)...), nil
	case Int64:
		if err := count(len(p.Int64Data), 1); err != nil {
			return nil, err
		}
		return append(raw, asBytes(p.Int64Data)...), nil
	case Uint64:
		if err := count(len(p.Uint64Data), 1); err != nil {
			return nil, err
		}
		return append(raw, asBytes(p.Uint64Data)...), nil
	case Uint32:
		if err := count(len(p.Uint64Data), 1); err != nil {
			return nil, err
		}
		for _, v := range p.Uint64Data {
			raw = binary.LittleEndian.AppendUint32(raw, uint32(v))
		}
		return raw, nil
	case Int32:
		if err := count(len(p.Int32Data), 1); err != nil {
			return nil, err
		}
		return append(raw, asBytes(p.Int32Data)...), nil
	case Int16, Uint16, Float16, BFloat16:
		if err := count(len(p.Int32Data), 1); err != nil {
			return nil, err
		}
		for _, v := range p.Int32Data {
			raw = binary.LittleEndian.AppendUint16(raw, uint16(v))
		}
		return raw, nil
	case Int8, Uint8, Bool, Float8E4M3FN, Float8E4M3FNUZ, Float8E5M2, Float8E5M2FNUZ, Float8E8M0:
		if err := count(len(p.Int32Data), 1); err != nil {
			return nil, err
		}
		for _, v := range p.Int32Data {
			raw = append(raw, byte(v))
		}
		return raw, nil
	case Int4, Uint4, Float4E2M1, Int2, Uint2:
		// Sub-byte types: each int32 holds one already-packed byte.
		if int64(len(p.Int32Data)) != want {
			return nil, fmt.Errorf("%d packed values for %d elements of %s", len(p.Int32Data), n, dt)
		}
		raw = make([]byte, 0, want)
		for _, v := range p.Int32Data {
			raw = append(raw, byte(v))
		}
		return raw, nil
	}
	return nil, fmt.Errorf("unsupported data type %s", dt)
}

// ---- IR -> protobuf ----

type exporter struct {
	// ext, when set, decides to store a tensor externally: it writes the bytes
	// and returns the external_data entries (nil to keep it inline).
	ext func(t *Tensor) ([]*onnxpb.StringStringEntryProto, error)
	// omitRaw leaves raw_data out of top-level initializers; the streaming
	// writer appends it afterwards without copying.
	omitRaw bool
}

func sp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// keepEmpty is sp, except that an empty string is written as present when
// the loaded model had it present.
func keepEmpty(s string, orig *string) *string {
	if s == "" && orig != nil {
		return proto.String("")
	}
	return sp(s)
}

func (e *exporter) model(m *Model) (*onnxpb.ModelProto, error) {
	p := &onnxpb.ModelProto{}
	if m.rest != nil {
		p.TrainingInfo = m.rest.TrainingInfo
		setUnknown(p, unknownOf(m.rest))
	}
	orig := m.rest
	if orig == nil {
		orig = &onnxpb.ModelProto{}
	}
	if m.IRVersion != 0 || orig.IrVersion != nil || m.rest == nil {
		p.IrVersion = proto.Int64(m.IRVersion)
	}
	for i, o := range m.Opsets {
		if i < len(orig.OpsetImport) {
			// Reuse the loaded entry (unknown fields, domain presence) while
			// it still says the same thing.
			if op := orig.OpsetImport[i]; op.GetDomain() == o.Domain && op.GetVersion() == o.Version {
				p.OpsetImport = append(p.OpsetImport, op)
				continue
			}
		}
		p.OpsetImport = append(p.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: proto.String(o.Domain), Version: proto.Int64(o.Version)})
	}
	p.ProducerName = keepEmpty(m.ProducerName, orig.ProducerName)
	p.ProducerVersion = keepEmpty(m.ProducerVersion, orig.ProducerVersion)
	p.Domain = keepEmpty(m.Domain, orig.Domain)
	if m.ModelVersion != 0 || orig.ModelVersion != nil {
		p.ModelVersion = proto.Int64(m.ModelVersion)
	}
	p.DocString = keepEmpty(m.Doc, orig.DocString)
	for _, kv := range m.Metadata {
		p.MetadataProps = append(p.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(kv.Key), Value: proto.String(kv.Value)})
	}
	p.Functions = m.Functions
	if m.Graph == nil {
		return nil, fmt.Errorf("graph: model has no graph")
	}
	g, err := e.graph(m.Graph, true)
	if err != nil {
		return nil, err
	}
	p.Graph = g
	return p, nil
}

func (e *exporter) graph(g *Graph, top bool) (*onnxpb.GraphProto, error) {
	p := &onnxpb.GraphProto{Name: proto.String(g.Name), DocString: sp(g.Doc)}
	if g.rest != nil {
		p.SparseInitializer = g.rest.SparseInitializer
		p.QuantizationAnnotation = g.rest.QuantizationAnnotation
		setUnknown(p, unknownOf(g.rest))
	}
	p.Input = valueInfosToProto(g.Inputs)
	p.Output = valueInfosToProto(g.Outputs)
	p.ValueInfo = valueInfosToProto(g.ValueInfo)
	p.Initializer = make([]*onnxpb.TensorProto, 0, len(g.Initializers))
	for _, t := range g.Initializers {
		tp, err := e.tensor(t, top && e.omitRaw)
		if err != nil {
			return nil, err
		}
		p.Initializer = append(p.Initializer, tp)
	}
	p.Node = make([]*onnxpb.NodeProto, 0, len(g.Nodes))
	for _, n := range g.Nodes {
		np, err := e.node(n)
		if err != nil {
			return nil, err
		}
		p.Node = append(p.Node, np)
	}
	return p, nil
}

func valueInfosToProto(vs []*ValueInfo) []*onnxpb.ValueInfoProto {
	out := make([]*onnxpb.ValueInfoProto, 0, len(vs))
	for _, v := range vs {
		out = append(out, ValueInfoToProto(v))
	}
	return out
}

// ValueInfoToProto converts a ValueInfo to its protobuf form.
func ValueInfoToProto(v *ValueInfo) *onnxpb.ValueInfoProto {
	p := &onnxpb.ValueInfoProto{Name: proto.String(v.Name), DocString: sp(v.Doc)}
	setUnknown(p, v.unknown)
	if !v.HasType {
		return p
	}
	if v.Other != nil {
		p.Type = v.Other
		return p
	}
	tt := &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(v.DType))}
	setUnknown(tt, v.tensUnknown)
	if v.HasShape {
		sh := &onnxpb.TensorShapeProto{Dim: make([]*onnxpb.TensorShapeProto_Dimension, 0, len(v.Shape))}
		for _, d := range v.Shape {
			pd := &onnxpb.TensorShapeProto_Dimension{Denotation: sp(d.Denotation)}
			switch {
			case d.Size >= 0:
				pd.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d.Size}
			case d.Param != "":
				pd.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d.Param}
			}
			sh.Dim = append(sh.Dim, pd)
		}
		tt.Shape = sh
	}
	tp := &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: tt}, Denotation: sp(v.Denotation)}
	setUnknown(tp, v.typeUnknown)
	p.Type = tp
	return p
}

func (e *exporter) node(n *Node) (*onnxpb.NodeProto, error) {
	p := &onnxpb.NodeProto{
		Input: n.Inputs, Output: n.Outputs, Name: sp(n.Name), OpType: proto.String(n.OpType),
		Domain: sp(n.Domain), DocString: sp(n.Doc),
	}
	setUnknown(p, n.unknown)
	for _, a := range n.Attrs {
		ap, err := e.attr(a)
		if err != nil {
			return nil, fmt.Errorf("node %s attribute %q: %w", n, a.Name, err)
		}
		p.Attribute = append(p.Attribute, ap)
	}
	return p, nil
}

func (e *exporter) attr(a *Attr) (*onnxpb.AttributeProto, error) {
	t := onnxpb.AttributeProto_AttributeType(a.Type)
	p := &onnxpb.AttributeProto{Name: proto.String(a.Name), RefAttrName: sp(a.RefAttrName), DocString: sp(a.Doc), Type: &t}
	setUnknown(p, a.unknown)
	if a.RefAttrName != "" {
		return p, nil
	}
	switch a.Type {
	case AttrFloat:
		p.F = proto.Float32(a.F)
	case AttrInt:
		p.I = proto.Int64(a.I)
	case AttrString:
		p.S = a.S
		if p.S == nil {
			p.S = []byte{}
		}
	case AttrTensor:
		if a.T == nil {
			return nil, fmt.Errorf("tensor attribute without a tensor")
		}
		tp, err := e.tensor(a.T, false)
		if err != nil {
			return nil, err
		}
		p.T = tp
	case AttrGraph:
		if a.G == nil {
			return nil, fmt.Errorf("graph attribute without a graph")
		}
		gp, err := e.graph(a.G, false)
		if err != nil {
			return nil, err
		}
		p.G = gp
	case AttrFloats:
		p.Floats = a.Floats
	case AttrInts:
		p.Ints = a.Ints
	case AttrStrings:
		p.Strings = a.Strings
	case AttrTensors:
		for _, t := range a.Tensors {
			tp, err := e.tensor(t, false)
			if err != nil {
				return nil, err
			}
			p.Tensors = append(p.Tensors, tp)
		}
	case AttrGraphs:
		for _, g := range a.Graphs {
			gp, err := e.graph(g, false)
			if err != nil {
				return nil, err
			}
			p.Graphs = append(p.Graphs, gp)
		}
	case AttrSparseTensor:
		p.SparseTensor = a.Sparse
	case AttrSparseTensors:
		p.SparseTensors = a.SparseList
	case AttrTypeProto:
		p.Tp = a.TP
	case AttrTypeProtos:
		p.TypeProtos = a.TPs
	}
	return p, nil
}

// TensorToProto converts a tensor to protobuf with its data in raw_data.
func TensorToProto(t *Tensor) (*onnxpb.TensorProto, error) {
	return (&exporter{}).tensor(t, false)
}

func (e *exporter) tensor(t *Tensor, omitRaw bool) (*onnxpb.TensorProto, error) {
	p := &onnxpb.TensorProto{Dims: t.Dims, DataType: proto.Int32(int32(t.DType)), Name: sp(t.Name), DocString: sp(t.Doc)}
	setUnknown(p, t.unknown)
	if t.segment != nil {
		seg := &onnxpb.TensorProto_Segment{}
		if err := proto.Unmarshal(t.segment, seg); err == nil {
			p.Segment = seg
		}
	}
	if t.DType == String {
		p.StringData = t.Strings
		return p, nil
	}
	if t.Raw == nil && t.External != nil {
		// Loaded with SkipExternal: writing raw_data would silently give an
		// empty tensor.
		return nil, fmt.Errorf("tensor %q: its external data (%q) was not read (LoadOptions.SkipExternal), so it cannot be saved", t.Name, t.External.Location)
	}
	if e.ext != nil {
		entries, err := e.ext(t)
		if err != nil {
			return nil, err
		}
		if entries != nil {
			loc := onnxpb.TensorProto_EXTERNAL
			p.DataLocation = &loc
			p.ExternalData = entries
			return p, nil
		}
	}
	if omitRaw {
		return p, nil
	}
	p.RawData = t.Raw
	if p.RawData == nil {
		p.RawData = []byte{}
	}
	return p, nil
}

// Float32 returns the first element of a tensor as float32 (0 if empty).
func (t *Tensor) Float32At(i int) float32 {
	if t.DType == Float && len(t.Raw) >= 4*(i+1) {
		return math.Float32frombits(binary.LittleEndian.Uint32(t.Raw[4*i:]))
	}
	v, err := t.AsFloat64s()
	if err != nil || i >= len(v) {
		return 0
	}
	return float32(v[i])
}

// TensorFromProto converts one TensorProto (a .pb tensor file, an attribute)
// by the same rules Load applies to initializers: raw_data or the dtype's
// typed field, sizes checked against the dims before anything is allocated.
// Tensors whose data lives in an external file are refused.
func TensorFromProto(p *onnxpb.TensorProto) (*Tensor, error) {
	t, err := (&converter{}).tensor(p)
	if err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	return t, nil
}
