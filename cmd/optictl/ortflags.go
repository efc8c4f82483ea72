package main

import (
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/optictl/optictl/pkg/runtime"
)

// ortFlags are the backend session flags that run, compare, bench and serve
// share (today the ort backend's: --ort-lib, --ort-opt, --fallback,
// --device-id, --provider-option). Which backend takes which flag, the
// accepted values and the help text come from the backends'
// runtime.Capabilities; a flag given while no selected backend takes it is a
// usage error rather than silently ignored.
type ortFlags struct {
	lib      string
	opt      string
	fallback string
	deviceID int
	provider []string
	ioBind   bool
	cmd      *cobra.Command
}

// backendOptionNames are the options these flags set, in help order.
var backendOptionNames = []string{runtime.OptionLibrary, runtime.OptionOptLevel, runtime.OptionFallback, runtime.OptionDeviceID, runtime.OptionProviderOption, runtime.OptionIOBinding}

// optionHelp is the flag help of a backend option: its doc, its values and
// the backends that take it.
func optionHelp(name string) (help, def string) {
	spec, ok := runtime.LookupOption(name)
	if !ok {
		return "(no registered backend takes this option)", ""
	}
	takers := runtime.BackendsWith(func(c runtime.Capabilities) bool { _, ok := c.Option(name); return ok })
	note := "--backend " + strings.Join(takers, ", ")
	if len(spec.Values) > 0 {
		note = strings.Join(spec.Values, ", ") + "; " + note
	}
	return spec.Doc + " (" + note + ")", spec.Default
}

// register adds the flags to cmd. withLib is false where the command
// already has its own --ort-lib.
func (f *ortFlags) register(cmd *cobra.Command, withLib bool) {
	f.cmd = cmd
	fs := cmd.Flags()
	for _, name := range backendOptionNames {
		help, def := optionHelp(name)
		switch name {
		case runtime.OptionLibrary:
			if withLib {
				fs.StringVar(&f.lib, name, def, help)
			}
		case runtime.OptionOptLevel:
			fs.StringVar(&f.opt, name, def, help)
		case runtime.OptionFallback:
			fs.StringVar(&f.fallback, name, def, help)
		case runtime.OptionDeviceID:
			n, _ := strconv.Atoi(def)
			fs.IntVar(&f.deviceID, name, n, help)
		case runtime.OptionProviderOption:
			fs.StringArrayVar(&f.provider, name, nil, help)
		case runtime.OptionIOBinding:
			fs.BoolVar(&f.ioBind, name, def == "true", help)
		}
	}
}

// orList joins words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// apply checks the flags and device against the selected backends'
// capabilities and sets them in opts. Unknown backend names are left for
// the command to report.
func (f *ortFlags) apply(backends []string, device string, opts *runtime.Options) error {
	var sel []runtime.Backend
	for _, name := range backends {
		if b, err := runtime.Get(name); err == nil {
			sel = append(sel, b)
		}
	}
	takes := func(name string) bool {
		for _, b := range sel {
			if _, ok := b.Capabilities().Option(name); ok {
				return true
			}
		}
		return false
	}
	var given []string
	for _, name := range backendOptionNames {
		if f.cmd == nil {
			break // not registered (a caller building options by hand)
		}
		if fl := f.cmd.Flags().Lookup(name); fl != nil && fl.Changed && !takes(name) {
			given = append(given, "--"+name)
		}
	}
	if len(given) > 0 {
		name := strings.TrimPrefix(given[0], "--")
		takers := runtime.BackendsWith(func(c runtime.Capabilities) bool { _, ok := c.Option(name); return ok })
		if len(takers) == 0 {
			return usageErr("%s: no registered backend takes it", strings.Join(given, ", "))
		}
		return usageErr("%s only apply to --backend %s", strings.Join(given, ", "), orList(takers))
	}
	if device != "" {
		known := false
		for _, d := range runtime.Devices() {
			known = known || d == device
		}
		if !known {
			return usageErr("--device %q: want %s", device, orList(runtime.Devices()))
		}
		for _, b := range sel {
			c := b.Capabilities()
			if len(c.Devices) == 0 || c.HasDevice(device) {
				continue // a backend that declares no devices finds out at Open
			}
			takers := runtime.BackendsWith(func(c runtime.Capabilities) bool { return c.HasDevice(device) && len(c.Devices) > 0 })
			return usageErr("--device %s needs --backend %s", device, orList(takers))
		}
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
	if f.opt == "" {
		f.opt, _ = optionDefault(runtime.OptionOptLevel)
	}
	next := *opts
	if device != "" {
		next.Device = device
	}
	if f.lib != "" {
		next.ORTLib = f.lib
	}
	next.OptLevel, next.Fallback, next.DeviceID, next.IOBinding = f.opt, f.fallback, f.deviceID, f.ioBind
	if len(po) > 0 {
		next.ProviderOptions = po
	}
	for _, b := range sel {
		if err := runtime.CheckOptions(b, next); err != nil {
			return usageErr("%v", err)
		}
	}
	*opts = next
	return nil
}

func optionDefault(name string) (string, bool) {
	spec, ok := runtime.LookupOption(name)
	return spec.Default, ok
}
