// Package backends links every runtime backend into a program: import it
// for its side effect, once, where a program (cmd/optictl) or a test needs
// "all the backends" rather than one by name.
//
//	import _ "github.com/optictl/optictl/pkg/runtime/backends"
//
// Adding a backend is one package that calls runtime.Register in its init
// and declares its runtime.Capabilities, plus one import line here; nothing
// else names it. A backend that needs cgo keeps a !cgo file that still
// registers it (with the same Capabilities), so flags parse the same in a
// CGO_ENABLED=0 build and Open says why it cannot run (ort does this).
//
// Invariant: after this package is initialised, runtime.Names() lists every
// backend optictl ships.
package backends
