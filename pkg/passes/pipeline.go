package passes

// The pipeline: every built-in pass, in the order it runs. A level runs the
// entries whose pass Level is at most that level (and whose Targets include
// the chosen target). Entries with Final=false form the fixed-point loop,
// repeated until a whole round changes nothing or MaxRounds is reached;
// Final entries then run once, in order.
//
// Read it top to bottom: cleanups that expose patterns, then fusions, then
// the sweep that removes what the fusions orphaned, then scheduling.
var pipeline = []stage{
	// --- cleanups that expose patterns --------------------------------
	{"eliminate-noops", false, "Identity/Dropout/no-op Cast etc. hide producer-consumer pairs from every fusion below"},
	{"fold-shapes", false, "turns Shape of a known shape into a constant so the shape arithmetic after it can fold"},
	{"fold-constants", false, "BN statistics, reshape targets and GELU/LayerNorm constants must be constants before fusions inspect them"},
	{"dedupe-initializers", false, "equal constants (folded, or left equal by last round's fusions) become one, so CSE below sees nodes reading them as duplicates"},
	{"eliminate-common-subexpressions", false, "merges duplicated branches so fusions see one consumer instead of two"},
	// --- layout: bring transposes together, then cancel them --------------
	{"sink-transposes", false, "moves Transposes through elementwise ops so pairs become adjacent"},
	{"merge-transposes", false, "cancels or merges the adjacent Transposes sinking produced"},
	{"merge-reshapes", false, "Reshape(Reshape(x)) -> Reshape(x)"},
	{"cancel-squeeze-unsqueeze", false, "Unsqueeze(Squeeze(x)) with the same axes -> x"},
	// --- fusions --------------------------------------------------------
	{"fuse-pad-into-conv", false, "a Pad folded into Conv/Pool keeps Conv adjacent to its BN and activation"},
	{"fuse-conv-batchnorm", false, "removes the BN between Conv and its activation before activation fusion"},
	{"fuse-conv-mul", false, "Conv*scale first, so Conv->Mul->Add folds in one round"},
	{"fuse-conv-add", false, "bias after scale (see fuse-conv-mul)"},
	{"fuse-matmul-add", false, "MatMul+Add -> Gemm, the form fuse-gemm-batchnorm and FusedGemm match"},
	{"fuse-gemm-batchnorm", false, "needs the Gemm that fuse-matmul-add creates"},
	{"fuse-layernorm", false, "needs folded constants (epsilon, the 2 of Pow)"},
	{"fuse-gelu", false, "needs folded constants (sqrt(2), 0.5, 1)"},
	{"fuse-hardswish", false, "needs folded constants (3, 0, 6); before FusedConv, which would otherwise not see the activation"},
	// --- target-specific (O3) -------------------------------------------
	{"fuse-ort-conv-activation", false, "after BN and bias fusion, Conv is directly followed by its activation"},
	{"fuse-ort-gemm-activation", false, "after MatMul+Add -> Gemm"},
	{"fuse-ort-attention", false, "before skip-layernorm and bias-gelu take the Adds around the attention block"},
	{"fuse-ort-skip-layernorm", false, "after fuse-layernorm, so both the op and the written-out form are matched"},
	{"fuse-ort-bias-gelu", false, "needs the Gelu that fuse-gelu writes"},
	// --- sweep ----------------------------------------------------------
	{"eliminate-dead-nodes", false, "fusions leave the replaced nodes unread; sweep them in the same round"},
	{"eliminate-unused-initializers", false, "after dead nodes go, their weights are unread"},
	// --- once, at the end -------------------------------------------------
	{"layout-nchwc", true, "opt-in; the blocked layout hides Conv/Add/Relu from every fusion above, so it runs once they are done"},
	{"schedule-memory", true, "reorders nodes for peak memory; any later rewrite could undo the order, so it runs last"},
}

// MaxRounds bounds the fixed-point loop.
const MaxRounds = 6

type stage struct {
	Pass   string
	Final  bool
	Reason string
}

// orderConstraint says Before must come earlier in the pipeline than After.
type orderConstraint struct{ Before, After, Reason string }

// orderConstraints are checked by Validate (at init and in a test).
var orderConstraints = []orderConstraint{
	{"fold-constants", "fuse-conv-batchnorm", "BN parameters are often Constant subgraphs"},
	{"fold-shapes", "fold-constants", "shape folding feeds constant folding"},
	{"fold-constants", "dedupe-initializers", "folded weights (ConstantOfShape, BN statistics) are compared with the rest"},
	{"dedupe-initializers", "eliminate-common-subexpressions", "CSE compares inputs by name: equal weights must share one first"},
	{"eliminate-noops", "fuse-conv-batchnorm", "an Identity between Conv and BN blocks the fusion"},
	{"sink-transposes", "merge-transposes", "sinking makes transposes adjacent"},
	{"fuse-pad-into-conv", "fuse-ort-conv-activation", "FusedConv has no separate Pad"},
	{"fuse-conv-batchnorm", "fuse-ort-conv-activation", "Conv->BN->Relu: BN must go first"},
	{"fuse-conv-mul", "fuse-conv-add", "scale before bias"},
	{"fuse-conv-add", "fuse-ort-conv-activation", "Conv->Add->Relu: the bias must be folded first"},
	{"fuse-matmul-add", "fuse-gemm-batchnorm", "the Gemm must exist"},
	{"fuse-matmul-add", "fuse-ort-gemm-activation", "the Gemm must exist"},
	{"fuse-ort-gemm-activation", "eliminate-dead-nodes", "the sweep cleans up after every fusion"},
	{"fuse-layernorm", "fuse-ort-skip-layernorm", "the LayerNormalization op is one of the forms it matches"},
	{"fuse-gelu", "fuse-ort-bias-gelu", "the Gelu must exist"},
	{"fuse-ort-attention", "fuse-ort-skip-layernorm", "the output projection's bias Add feeds the residual; attention first keeps the attention block intact"},
	{"eliminate-dead-nodes", "eliminate-unused-initializers", "dead nodes hold the last reads of their weights"},
	{"eliminate-unused-initializers", "schedule-memory", "scheduling sees the final node set"},
	{"fuse-ort-conv-activation", "layout-nchwc", "NCHWc convs take FusedConv's activation attributes as they are"},
	{"layout-nchwc", "schedule-memory", "the rewrite adds reorder nodes the scheduler must place"},
}
