package interp

// Portable activation loops shared by the fused Conv output paths; the
// amd64 default build vectorises them (perf_act_amd64.s).

func perfClampGo(y []float32, lo, hi float32) {
	for i, v := range y {
		y[i] = min(max(v, lo), hi)
	}
}

func perfBiasClampGo(dst, src []float32, b, lo, hi float32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] = min(max(src[i]+b, lo), hi)
	}
}

func perfHardSwishGo(y []float32, a, lo, hi, d float32, div bool) {
	if div {
		for i, v := range y {
			y[i] = v * min(max(v+a, lo), hi) / d
		}
		return
	}
	for i, v := range y {
		y[i] = v * min(max(v+a, lo), hi) * d
	}
}

func perfMaxIntoGo(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		if v > dst[i] {
			dst[i] = v
		}
	}
}
