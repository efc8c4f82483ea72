package graph

import "fmt"

// Operator schemas: how many inputs and outputs each op takes, by opset.
//
// The table covers the default ONNX domain and the com.microsoft ops that
// optictl's passes and backends use. It is deliberately conservative: an op
// missing from it is not checked, an input count is only refused when ONNX's
// own schema for that opset refuses it, and where opsets disagree on an
// optional input the loosest reading wins. Load refuses a node that breaks
// its schema, so no backend kernel ever indexes an input that is not there.

// Arity is the input and output counts an op accepts from one opset on.
type Arity struct {
	// Since is the first opset version this entry applies to.
	Since int64
	// MinIn and MaxIn bound the number of inputs (MaxIn -1: unbounded);
	// MinOut and MaxOut the number of outputs.
	MinIn, MaxIn, MinOut, MaxOut int
	// Required is how many leading inputs must be named (not omitted with
	// ""): MinIn except for Loop and Scan. AllNamed: every input must be named (the
	// homogeneous variadic ops Concat, Sum, Max, ...).
	Required int
	AllNamed bool
}

func ar(minIn, maxIn, minOut, maxOut int) Arity {
	return Arity{MinIn: minIn, MaxIn: maxIn, MinOut: minOut, MaxOut: maxOut}
}

func since(v int64, a Arity) Arity { a.Since = v; return a }

func named(a Arity) Arity { a.AllNamed = true; return a }

// schemas: op type (default domain) or "com.microsoft.Op", entries by
// ascending Since.
var schemas = map[string][]Arity{}

func init() {
	one := ar(1, 1, 1, 1)
	for _, op := range []string{
		"Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Ceil", "Cos", "Cosh", "Erf", "Exp",
		"Floor", "HardSigmoid", "HardSwish", "Identity", "IsNaN", "IsInf", "Log", "Neg", "Not", "Reciprocal",
		"Relu", "Round", "Selu", "Sigmoid", "Sign", "Sin", "Sinh", "Softplus", "Softsign", "Sqrt", "Tan",
		"Tanh", "Elu", "LeakyRelu", "ThresholdedRelu", "Celu", "Mish", "Gelu", "Shrink", "Softmax",
		"LogSoftmax", "Hardmax", "BitwiseNot", "Transpose", "Flatten", "Shape", "Size", "Cast", "NonZero",
		"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "LRN", "LpNormalization",
		"MeanVarianceNormalization", "DepthToSpace", "SpaceToDepth", "EyeLike", "ArgMax", "ArgMin",
		"Det", "AveragePool", "LpPool", "ConstantOfShape", "Bernoulli", "RandomNormalLike",
		"RandomUniformLike",
	} {
		schemas[op] = []Arity{one}
	}
	two := ar(2, 2, 1, 1)
	for _, op := range []string{
		"Add", "Sub", "Mul", "Div", "Pow", "MatMul", "Equal", "Less", "Greater", "LessOrEqual",
		"GreaterOrEqual", "And", "Or", "Xor", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "Mod",
		"PRelu", "Expand", "Gather", "GatherElements", "GatherND", "CumSum", "Compress",
		"ReverseSequence", "MaxRoiPool", "GridSample", "CastLike", "AffineGrid", "CenterCropPad",
	} {
		schemas[op] = []Arity{two}
	}
	for _, op := range []string{
		"ReduceMax", "ReduceMin", "ReduceMean", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2",
		"ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
	} {
		schemas[op] = []Arity{ar(1, 2, 1, 1)}
	}
	for _, op := range []string{"Sum", "Max", "Min", "Mean"} {
		schemas[op] = []Arity{named(ar(1, -1, 1, 1))}
	}
	more := map[string][]Arity{
		"Concat":                    {named(ar(1, -1, 1, 1))},
		"Einsum":                    {named(ar(1, -1, 1, 1))},
		"Where":                     {ar(3, 3, 1, 1)},
		"Range":                     {ar(3, 3, 1, 1)},
		"OneHot":                    {ar(3, 3, 1, 1)},
		"Scatter":                   {ar(3, 3, 1, 1)},
		"ScatterElements":           {ar(3, 3, 1, 1)},
		"ScatterND":                 {ar(3, 3, 1, 1)},
		"RoiAlign":                  {ar(3, 3, 1, 1)},
		"Col2Im":                    {ar(3, 3, 1, 1)},
		"InstanceNormalization":     {ar(3, 3, 1, 1)},
		"GroupNormalization":        {ar(3, 3, 1, 1)},
		"RMSNormalization":          {ar(2, 3, 1, 1)},
		"LayerNormalization":        {ar(2, 3, 1, 3)},
		"BatchNormalization":        {ar(5, 5, 1, 5)},
		"Conv":                      {ar(2, 3, 1, 1)},
		"ConvTranspose":             {ar(2, 3, 1, 1)},
		"ConvInteger":               {ar(2, 4, 1, 1)},
		"QLinearConv":               {ar(8, 9, 1, 1)},
		"DeformConv":                {ar(3, 5, 1, 1)},
		"MatMulInteger":             {ar(2, 4, 1, 1)},
		"QLinearMatMul":             {ar(8, 8, 1, 1)},
		"Gemm":                      {ar(2, 3, 1, 1)},
		"MaxPool":                   {ar(1, 1, 1, 2)},
		"MaxUnpool":                 {ar(2, 3, 1, 1)},
		"Reshape":                   {ar(1, 1, 1, 1), since(5, ar(2, 2, 1, 1))},
		"Squeeze":                   {ar(1, 2, 1, 1)},
		"Unsqueeze":                 {ar(1, 1, 1, 1), since(13, ar(2, 2, 1, 1))},
		"Slice":                     {ar(1, 1, 1, 1), since(10, ar(3, 5, 1, 1))},
		"Split":                     {ar(1, 2, 1, -1)},
		"Tile":                      {ar(2, 3, 1, 1), since(6, ar(2, 2, 1, 1))},
		"TopK":                      {ar(1, 1, 2, 2), since(10, ar(2, 2, 2, 2))},
		"Pad":                       {ar(1, 1, 1, 1), since(11, ar(2, 4, 1, 1))},
		"Clip":                      {ar(1, 3, 1, 1)},
		"Dropout":                   {ar(1, 3, 1, 2)},
		"Resize":                    {ar(1, 4, 1, 1)},
		"Upsample":                  {ar(1, 2, 1, 1)},
		"Trilu":                     {ar(1, 2, 1, 1)},
		"Unique":                    {ar(1, 1, 1, 4)},
		"NonMaxSuppression":         {ar(2, 5, 1, 1)},
		"Constant":                  {ar(0, 0, 1, 1)},
		"RandomNormal":              {ar(0, 0, 1, 1)},
		"RandomUniform":             {ar(0, 0, 1, 1)},
		"Multinomial":               {ar(1, 1, 1, 1)},
		"QuantizeLinear":            {ar(2, 3, 1, 1)},
		"DequantizeLinear":          {ar(2, 3, 1, 1)},
		"DynamicQuantizeLinear":     {ar(1, 1, 3, 3)},
		"LSTM":                      {ar(3, 8, 0, 3)},
		"GRU":                       {ar(3, 6, 0, 2)},
		"RNN":                       {ar(3, 6, 0, 2)},
		"If":                        {ar(1, 1, 1, -1)},
		"Loop":                      {ar(2, -1, 1, -1)},
		"Scan":                      {ar(1, -1, 1, -1)},
		"STFT":                      {ar(2, 4, 1, 1)},
		"DFT":                       {ar(1, 3, 1, 1)},
		"RotaryEmbedding":           {ar(3, 4, 1, 1)},
		"NegativeLogLikelihoodLoss": {ar(2, 3, 1, 1)},
		"SoftmaxCrossEntropyLoss":   {ar(2, 3, 1, 2)},

		"com.microsoft.FusedConv":              {ar(2, 4, 1, 1)},
		"com.microsoft.FusedGemm":              {ar(2, 3, 1, 1)},
		"com.microsoft.FusedMatMul":            {ar(2, 2, 1, 1)},
		"com.microsoft.Gelu":                   {ar(1, 1, 1, 1)},
		"com.microsoft.QuickGelu":              {ar(1, 1, 1, 1)},
		"com.microsoft.FastGelu":               {ar(1, 2, 1, 1)},
		"com.microsoft.BiasGelu":               {ar(2, 2, 1, 1)},
		"com.microsoft.SkipLayerNormalization": {ar(3, 5, 1, 4)},
		"com.microsoft.Attention":              {ar(2, 7, 1, 2)},
	}
	for k, v := range more {
		schemas[k] = v
	}
	// Loop's first two inputs (trip count, condition) and Scan-8's first
	// (sequence_lens) are optional; every other op needs its first MinIn
	// inputs named.
	for k, list := range schemas {
		for i := range list {
			if k != "Loop" && k != "Scan" {
				list[i].Required = list[i].MinIn
			}
		}
	}
}

// SchemaFor returns the arity of op in domain at the given opset version
// (0: not imported, the loosest entry is used), and false for ops the table
// does not know.
func SchemaFor(domain, op string, opset int64) (Arity, bool) {
	key := op
	switch domain {
	case "", "ai.onnx":
	case "com.microsoft":
		key = "com.microsoft." + op
	default:
		return Arity{}, false
	}
	list, ok := schemas[key]
	if !ok {
		return Arity{}, false
	}
	if opset <= 0 {
		a := list[0]
		for _, b := range list[1:] {
			a.MinIn, a.Required = min(a.MinIn, b.MinIn), min(a.Required, b.Required)
			a.MinOut = min(a.MinOut, b.MinOut)
			a.MaxIn, a.MaxOut = looser(a.MaxIn, b.MaxIn), looser(a.MaxOut, b.MaxOut)
		}
		return a, true
	}
	a := list[0]
	for _, b := range list[1:] {
		if b.Since <= opset {
			a = b
		}
	}
	return a, true
}

func looser(a, b int) int {
	if a < 0 || b < 0 {
		return -1
	}
	return max(a, b)
}

// SchemaError is a node that breaks its operator's schema.
type SchemaError struct {
	Node   string // `Conv "conv1"`
	OpType string
	Reason string
}

func (e *SchemaError) Error() string { return fmt.Sprintf("graph: node %s: %s", e.Node, e.Reason) }

// CheckSchema checks every node of the model (subgraphs included) against
// the operator schema table: the number of inputs and outputs, and that
// required inputs are named. It returns the first problem as a *SchemaError
// naming the node, op and counts.
func (m *Model) CheckSchema() error {
	if m == nil || m.Graph == nil {
		return fmt.Errorf("graph: model has no graph")
	}
	return m.checkSchemaGraph(m.Graph, 0)
}

func (m *Model) checkSchemaGraph(g *Graph, depth int) error {
	if depth > maxSubgraphDepth {
		return fmt.Errorf("graph: subgraphs nested more than %d deep", maxSubgraphDepth)
	}
	for _, n := range g.Nodes {
		if n == nil {
			continue
		}
		if err := m.checkNodeSchema(n); err != nil {
			return err
		}
		for _, sg := range n.Subgraphs() {
			if sg == nil {
				continue
			}
			if err := m.checkSchemaGraph(sg, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *Model) checkNodeSchema(n *Node) error {
	opset := m.Opset(n.Domain)
	a, ok := SchemaFor(n.Domain, n.OpType, opset)
	if !ok {
		return nil
	}
	fail := func(format string, args ...any) error {
		return &SchemaError{Node: n.String(), OpType: n.OpType, Reason: fmt.Sprintf(format, args...)}
	}
	at := ""
	if opset > 0 {
		at = fmt.Sprintf(" (opset %d)", opset)
	}
	if k := len(n.Inputs); k < a.MinIn || (a.MaxIn >= 0 && k > a.MaxIn) {
		return fail("has %d %s, %s%s takes %s", k, plural(k, "input"), n.OpType, at, rangeText(a.MinIn, a.MaxIn))
	}
	if k := len(n.Outputs); k < a.MinOut || (a.MaxOut >= 0 && k > a.MaxOut) {
		return fail("has %d %s, %s%s gives %s", k, plural(k, "output"), n.OpType, at, rangeText(a.MinOut, a.MaxOut))
	}
	for i, in := range n.Inputs {
		if in == "" && (a.AllNamed || i < a.Required) {
			return fail("input %d is empty, but %s%s requires it", i, n.OpType, at)
		}
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
