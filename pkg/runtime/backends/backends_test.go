package backends

import (
	"testing"

	"github.com/optictl/optictl/pkg/runtime"
)

// TestAllRegistered: importing the package registers every backend, each
// declaring at least one device and options that the runtime knows.
func TestAllRegistered(t *testing.T) {
	for _, name := range []string{"interp", "ort"} {
		b, err := runtime.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		c := b.Capabilities()
		if len(c.Devices) == 0 || c.Devices[0] != "cpu" {
			t.Errorf("%s: devices %v, want cpu first", name, c.Devices)
		}
		if err := runtime.CheckOptions(b, runtime.Options{}); err != nil {
			t.Errorf("%s: default options refused: %v", name, err)
		}
		if err := runtime.CheckOptions(b, runtime.Options{Device: "no-such-device"}); err == nil {
			t.Errorf("%s: an unknown device accepted", name)
		}
	}
}
