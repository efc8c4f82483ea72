//go:build !amd64 || purego || goexperiment.simd

package interp

// nnCopyStrips copies len(src)/nnNR blocks of nnNR floats: block s of src
// goes to dst[s*dstride:].
func nnCopyStrips(dst []float32, dstride int, src []float32) { nnCopyStripsGo(dst, dstride, src) }
