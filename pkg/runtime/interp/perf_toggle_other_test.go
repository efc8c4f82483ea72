//go:build !amd64 || purego || goexperiment.simd

package interp

// perfFallbackToggle: this build has no assembly kernels to switch off.
func perfFallbackToggle(fallback bool) func() { return nil }
