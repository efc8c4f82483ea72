package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// capFakeBackend declares devices cpu and tensorrt and takes --device-id
// only with tensorrt: the commands must validate it from its Capabilities alone.
type capFakeBackend struct{}

func init() { runtime.Register(capFakeBackend{}) }

func (capFakeBackend) Name() string { return "capfake" }
func (capFakeBackend) Capabilities() runtime.Capabilities {
	return runtime.Capabilities{
		Devices: []string{"cpu", "tensorrt"},
		Options: []runtime.OptionSpec{{Name: runtime.OptionDeviceID, Default: "0", Doc: "accelerator index"}},
		Validate: func(o runtime.Options) error {
			if o.DeviceID != 0 && o.Device != "tensorrt" {
				return fmt.Errorf("capfake: --device-id needs --device tensorrt")
			}
			return nil
		},
	}
}
func (capFakeBackend) Open(*graph.Model, runtime.Options) (runtime.Session, error) {
	return nil, errors.New("capfake: opens nothing")
}

// TestBackendFlagsFromCapabilities: devices, which backend takes a flag and
// option combinations all come from the backends' Capabilities.
func TestBackendFlagsFromCapabilities(t *testing.T) {
	cases := []struct {
		name     string
		backends []string
		device   string
		args     []string
		bad      string // "" for success
		wantDev  string
		wantID   int
	}{
		{"declared device", []string{"capfake"}, "tensorrt", nil, "", "tensorrt", 0},
		{"device of another backend", []string{"capfake"}, "cuda", nil, "--device cuda needs --backend ort", "", 0},
		{"device on interp", []string{"interp"}, "tensorrt", nil, "--device tensorrt needs --backend capfake or ort", "", 0},
		{"no backend has it", []string{"capfake"}, "tpu", nil, `--device "tpu": want cpu, cuda or tensorrt`, "", 0},
		{"option taken", []string{"capfake"}, "tensorrt", []string{"--device-id", "2"}, "", "tensorrt", 2},
		{"backend's own validation", []string{"capfake"}, "cpu", []string{"--device-id", "2"}, "capfake: --device-id needs --device tensorrt", "", 0},
		{"option not taken", []string{"interp"}, "", []string{"--device-id", "1"}, "--device-id only apply to --backend capfake or ort", "", 0},
		{"option taken by one of two", []string{"interp", "capfake"}, "", []string{"--device-id", "1"}, "needs --device tensorrt", "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var f ortFlags
			cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
			f.register(cmd, true)
			if err := cmd.ParseFlags(c.args); err != nil {
				t.Fatal(err)
			}
			var opts runtime.Options
			err := f.apply(c.backends, c.device, &opts)
			if c.bad != "" {
				var ee *exitError
				if err == nil || !strings.Contains(err.Error(), c.bad) || !errors.As(err, &ee) || ee.code != ExitUsage {
					t.Fatalf("got %v, want a usage error with %q", err, c.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if opts.Device != c.wantDev || opts.DeviceID != c.wantID {
				t.Fatalf("options %+v, want device %q id %d", opts, c.wantDev, c.wantID)
			}
		})
	}
}
