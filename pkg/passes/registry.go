package passes

// builtin lists every pass this package defines; init registers them and
// checks the registry and the pipeline table (a broken table is a
// programming error, caught by any test or binary that imports the package).
var builtin = []*Pass{
	noops, foldShapes, foldConstants, cse,
	sinkTransposes, mergeTransposes, mergeReshapes, squeezePairs,
	padIntoConv, convBN, convMul, convAdd, matmulAdd, gemmBN, layerNorm, gelu, hardSwish,
	ortConvAct, ortGemmAct, ortAttention, ortSkipLayerNorm, ortBiasGelu,
	deadNodes, unusedInits, dedupeInits,
	layoutNCHWc, schedule,
}

func init() {
	for _, p := range builtin {
		if err := Register(p); err != nil {
			panic(err)
		}
	}
	if err := Validate(); err != nil {
		panic(err)
	}
}
