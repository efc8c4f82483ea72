//go:build !purego && !goexperiment.simd

package interp

// perfFallbackToggle sets whether the portable kernels run instead of the
// assembly ones and returns a func that restores the previous setting; it
// reports true (restorer non-nil) where such a toggle exists.
func perfFallbackToggle(fallback bool) func() {
	old := perfHasAVX2
	perfHasAVX2 = old && !fallback
	return func() { perfHasAVX2 = old }
}
