package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/runtime/ort"
)

// ortFlags are the ONNX Runtime session flags that run, compare, bench and
// serve share. They only mean something for the ort backend: given with
// another backend they are a usage error rather than silently ignored.
type ortFlags struct {
	lib      string
	opt      string
	fallback string
	deviceID int
	provider []string
	ioBind   bool
	cmd      *cobra.Command
}

// ortProviderHelp lists the provider options worth knowing.
const ortProviderHelp = "execution provider option key=value for --device cuda/tensorrt (repeatable), e.g. " +
	"cudnn_conv_algo_search=EXHAUSTIVE, enable_cuda_graph=1, trt_fp16_enable=1, trt_int8_enable=1, " +
	"trt_engine_cache_enable=1, trt_engine_cache_path=DIR"

// register adds the flags to cmd. withLib is false where the command
// already has its own --ort-lib.
func (f *ortFlags) register(cmd *cobra.Command, withLib bool) {
	f.cmd = cmd
	fs := cmd.Flags()
	if withLib {
		fs.StringVar(&f.lib, "ort-lib", "", "path of libonnxruntime.so (ort backend; default: searched, see `optictl backends`)")
	}
	fs.StringVar(&f.opt, "ort-opt", "all", "ONNX Runtime graph optimizations: "+strings.Join(ort.OptLevels(), ", "))
	fs.StringVar(&f.fallback, "fallback", "", "cpu: run on the CPU (and say so) when --device cuda/tensorrt cannot be set up; default: fail")
	fs.IntVar(&f.deviceID, "device-id", 0, "GPU index for --device cuda/tensorrt")
	fs.StringArrayVar(&f.provider, "provider-option", nil, ortProviderHelp)
	fs.BoolVar(&f.ioBind, "io-binding", false, "bind inputs and outputs once per input shape and reuse the binding (ONNX Runtime I/O binding; GPU memory with --device cuda)")
}

// apply checks the flags against backend and device and sets them in opts.
func (f *ortFlags) apply(backends []string, device string, opts *runtime.Options) error {
	usesORT := false
	for _, b := range backends {
		usesORT = usesORT || b == "ort"
	}
	var given []string
	for _, name := range []string{"ort-lib", "ort-opt", "fallback", "device-id", "provider-option", "io-binding"} {
		if f.cmd == nil {
			break // not registered (a caller building options by hand)
		}
		if fl := f.cmd.Flags().Lookup(name); fl != nil && fl.Changed {
			given = append(given, "--"+name)
		}
	}
	if f.opt == "" {
		f.opt = "all"
	}
	if !usesORT && len(given) > 0 {
		return usageErr("%s only apply to --backend ort", strings.Join(given, ", "))
	}
	valid := false
	for _, l := range ort.OptLevels() {
		valid = valid || l == f.opt
	}
	if !valid {
		return usageErr("--ort-opt %q: want one of %s", f.opt, strings.Join(ort.OptLevels(), ", "))
	}
	gpu := device == "cuda" || device == "tensorrt"
	switch {
	case f.fallback != "" && f.fallback != "cpu":
		return usageErr("--fallback %q: the only fallback is cpu", f.fallback)
	case f.fallback != "" && !gpu:
		return usageErr("--fallback cpu needs --device cuda or tensorrt")
	case f.deviceID < 0:
		return usageErr("--device-id must be >= 0")
	case f.deviceID != 0 && !gpu:
		return usageErr("--device-id needs --device cuda or tensorrt")
	case len(f.provider) > 0 && !gpu:
		return usageErr("--provider-option needs --device cuda or tensorrt")
	}
	po := map[string]string{}
	for _, kv := range f.provider {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usageErr("--provider-option %q: want key=value", kv)
		}
		if _, dup := po[k]; dup {
			return usageErr("--provider-option %s given twice", k)
		}
		po[k] = v
	}
	if f.lib != "" {
		opts.ORTLib = f.lib
	}
	opts.OptLevel, opts.Fallback, opts.DeviceID, opts.IOBinding = f.opt, f.fallback, f.deviceID, f.ioBind
	if len(po) > 0 {
		opts.ProviderOptions = po
	}
	return nil
}
