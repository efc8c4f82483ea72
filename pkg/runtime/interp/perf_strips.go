package interp

// nnCopyStripsGo is the portable nnCopyStrips.
func nnCopyStripsGo(dst []float32, dstride int, src []float32) {
	for s := 0; s*nnNR+nnNR <= len(src); s++ {
		d := dst[s*dstride : s*dstride+nnNR]
		for q, v := range src[s*nnNR : s*nnNR+nnNR] {
			d[q] = v
		}
	}
}
