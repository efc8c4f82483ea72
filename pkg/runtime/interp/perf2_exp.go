package interp

import "math"

// perf2ExpSubGo sets d[i] = exp(s[i]-m) in float32 (the portable path and
// the tail of the vector one).
func perf2ExpSubGo(d, s []float32, m float32) {
	d = d[:len(s)]
	for i, v := range s {
		d[i] = float32(math.Exp(float64(v - m)))
	}
}

// perf2SoftmaxRow is ewSoftmaxRow (Softmax, not LogSoftmax) with the
// exponentials computed by perf2ExpSub: max, exp(x-max) rounded to float32,
// sum in float64, scale by the float32 reciprocal.
func perf2SoftmaxRow(o, x []float32) {
	if len(x) == 0 {
		return
	}
	mx := x[0]
	for _, v := range x[1:] {
		if v > mx {
			mx = v
		}
	}
	o = o[:len(x)]
	perf2ExpSub(o, x, mx)
	var s float64
	for _, e := range o {
		s += float64(e)
	}
	inv := float32(1 / s)
	for i := range o {
		o[i] *= inv
	}
}
