// Package opset converts ONNX models between versions of the default
// operator set ("" / "ai.onnx"), upwards: from opset Oldest (6) to any
// version up to Newest, as onnx's own version converter does
// (onnx/version_converter), in Go.
//
// Conversion walks one version at a time. For each step v -> v+1 every
// default-domain node whose operator got a new definition at v+1 is run
// through that change's adapter (the adapters table, one entry per
// operator change): attributes that became inputs (Slice 10, Pad 11,
// Clip 11, TopK 10, Squeeze/Unsqueeze/Split/ReduceSum 13, the other
// reductions 18, Dropout 12, DFT 20), attributes removed (BatchNormalization
// spatial at 9, Dropout/BatchNormalization is_test at 7, Gemm broadcast at
// 7), meanings that changed (Softmax/LogSoftmax/Hardmax axis at 13,
// Resize's coordinate mapping at 11, RoiAlign's at 16, GridSample's mode
// names at 20, GroupNormalization's scale shape at 21) and operators
// replaced (Upsample by Resize at 10, Scatter by ScatterElements at 11,
// the experimental ops that left the standard at 10 by their plain
// equivalents: ImageScaler, Scale, Affine, ScaledTanh, ParametricSoftplus,
// DynamicSlice).
// An operator whose new version only widened its types or added
// attributes and inputs whose defaults keep the old meaning needs no
// adapter: it simply runs under the new opset.
//
// Helper nodes an adapter adds are written in the form of the version the
// step goes to; later steps adapt them like any other node.
//
// Invariants: the input model is never modified (Convert works on a
// clone) and a model is either converted completely or not at all: a node
// that cannot be converted is a *RefusalError naming the node, op, the
// versions and why, and no model is returned. Only the default domain is
// converted; other domains' imports and nodes are kept as they are.
// Subgraphs (If/Loop/Scan bodies) are converted with their parent. Names
// the adapters add (constants, helper nodes and values) are unique in the
// whole model. Every change applied is listed in the Report.
package opset
