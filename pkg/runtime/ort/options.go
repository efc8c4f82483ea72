package ort

import (
	"fmt"
	"sort"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// This file is built with and without cgo: what the backend declares and
// how its options are validated does not depend on ONNX Runtime being
// linked in, so a CGO_ENABLED=0 optictl parses and checks the same flags.

// OptLevels lists the accepted Options.OptLevel values.
func OptLevels() []string { return []string{"off", "basic", "extended", "all"} }

// devices the backend can use: the CPU, and GPUs through the CUDA and
// TensorRT execution providers.
var devices = []string{"cpu", "cuda", "tensorrt"}

func gpu(device string) bool { return device == "cuda" || device == "tensorrt" }

// capabilities is what the ort backend declares, with or without cgo.
func capabilities(pureGo bool) runtime.Capabilities {
	return runtime.Capabilities{
		Devices: devices,
		DTypes: []graph.DType{graph.Float, graph.Double, graph.Float16, graph.BFloat16,
			graph.Int8, graph.Uint8, graph.Int16, graph.Uint16, graph.Int32, graph.Uint32,
			graph.Int64, graph.Uint64, graph.Bool, graph.String},
		Supports:  supports,
		PureGo:    pureGo,
		Reference: true,
		Options: []runtime.OptionSpec{
			{Name: runtime.OptionLibrary, Doc: "path of libonnxruntime.so (default: searched, see `optictl backends`)"},
			{Name: runtime.OptionOptLevel, Values: OptLevels(), Default: "all", Doc: "ONNX Runtime graph optimizations"},
			{Name: runtime.OptionFallback, Values: []string{"cpu"}, Doc: "run on the CPU (and say so) when --device cuda/tensorrt cannot be set up; without it that is an error"},
			{Name: runtime.OptionDeviceID, Default: "0", Doc: "GPU index for --device cuda/tensorrt"},
			{Name: runtime.OptionProviderOption, Doc: "execution provider option key=value for --device cuda/tensorrt (repeatable), e.g. " +
				"cudnn_conv_algo_search=EXHAUSTIVE, enable_cuda_graph=1, trt_fp16_enable=1, trt_int8_enable=1, " +
				"trt_engine_cache_enable=1, trt_engine_cache_path=DIR"},
			{Name: runtime.OptionIOBinding, Default: "false", Doc: "bind inputs and outputs once per input shape and reuse the binding (ONNX Runtime I/O binding; GPU memory with --device cuda)"},
		},
		Validate: validate,
	}
}

// supports answers from what every ONNX Runtime >= 1.24 build has: kernels
// for the standard ai.onnx and ai.onnx.ml operators, the com.microsoft
// contrib ops and the com.microsoft.nchwc ops of its CPU provider's blocked
// layout (which layout-nchwc writes). Other domains need custom-op libraries, which
// this backend does not load. Whether one particular op of those domains
// has a kernel at the model's opset is only known when ONNX Runtime builds
// the session; Open then fails with runtime.ErrUnsupported.
func supports(domain, _ string, _ int64) bool {
	switch domain {
	case "", "ai.onnx", "ai.onnx.ml", "com.microsoft", "com.microsoft.nchwc":
		return true
	}
	return false
}

// validate checks option combinations (values are checked against the
// specs by runtime.CheckOptions, and again here for direct Open callers).
func validate(o runtime.Options) error {
	device := o.Device
	if device == "" {
		device = "cpu"
	}
	if o.OptLevel != "" {
		ok := false
		for _, l := range OptLevels() {
			ok = ok || l == o.OptLevel
		}
		if !ok {
			return fmt.Errorf("ort: --ort-opt %q: unknown optimization level (valid: %s)", o.OptLevel, strings.Join(OptLevels(), ", "))
		}
	}
	switch {
	case device != "cpu" && !gpu(device):
		return fmt.Errorf("ort: unknown device %q (valid: %s)", o.Device, strings.Join(devices, ", "))
	case o.Fallback != "" && o.Fallback != "cpu":
		return fmt.Errorf("ort: unknown fallback %q: the only fallback is cpu", o.Fallback)
	case o.Fallback != "" && !gpu(device):
		return fmt.Errorf("ort: --fallback cpu needs --device cuda or tensorrt")
	case o.DeviceID < 0:
		return fmt.Errorf("ort: --device-id must be >= 0")
	case o.DeviceID != 0 && !gpu(device):
		return fmt.Errorf("ort: --device-id needs --device cuda or tensorrt")
	case len(o.ProviderOptions) > 0 && !gpu(device):
		return fmt.Errorf("ort: --provider-option (%s) needs --device cuda or tensorrt", strings.Join(sortedKeys(o.ProviderOptions), ", "))
	case o.Threads < 0:
		return fmt.Errorf("ort: threads must be >= 0, got %d", o.Threads)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	sort.Strings(k)
	return k
}
