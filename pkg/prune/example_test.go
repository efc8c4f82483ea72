package prune_test

import (
	"fmt"

	"github.com/optictl/optictl/pkg/prune"
	"github.com/optictl/optictl/testmodels"
)

func ExamplePrune() {
	m := testmodels.CNN()
	rep, err := prune.Prune(m, prune.Options{Fraction: 0.3, Mode: prune.Structured})
	if err != nil {
		panic(err)
	}
	fmt.Print(rep)
	// Output:
	// prune: structured, fraction 0.3 (per-layer, l1 norm)
	//   conv_0       Conv   stem.conv.weight         channels 16 -> 11 (tie group 1)
	//   conv_6       Conv   block.conv2.weight       channels 16 -> 11 (tie group 1)
	//   conv_3       Conv   block.conv1.weight       channels 16 -> 11 (tie group 2)
	//   conv_11      Conv   wide.conv.weight         channels 32 -> 22 (tie group 3)
	//   skipped gemm_16: reaches graph output "logits"
	//   channels 80 -> 55
	//   params 10314 -> 5114 (49.6%), FLOPs 12894848 -> 6330808 (49.1%)
	//   note: some pruned layers have channel counts that are not multiples of 8: ONNX Runtime's CPU convolutions (NCHWc layout, level all) then fall back to slower kernels and the model can be slower than the original; round with Multiple 8
}
