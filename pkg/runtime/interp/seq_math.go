package interp

import (
	"fmt"
	"math"
	"strings"
)

// seqTanh is a float32 rational approximation of tanh (the one Eigen and
// MLAS use), accurate to a few ulp, about 5x faster than math.Tanh.
func seqTanh(x float32) float32 {
	const clampV = 7.90531110763549805
	if x > clampV {
		x = clampV
	} else if x < -clampV {
		x = -clampV
	}
	if x < 0.0004 && x > -0.0004 {
		return x
	}
	x2 := x * x
	p := x2*-2.76076847742355e-16 + 2.00018790482477e-13
	p = p*x2 + -8.60467152213735e-11
	p = p*x2 + 5.12229709037114e-08
	p = p*x2 + 1.48572235717979e-05
	p = p*x2 + 6.37261928875436e-04
	p = p*x2 + 4.89352455891786e-03
	p = p * x
	q := x2*1.19825839466702e-06 + 1.18534705686654e-04
	q = q*x2 + 2.26843463243900e-03
	q = q*x2 + 4.89352518554385e-03
	return p / q
}

// seqTanhSliceGo is the portable seqTanhSlice, with the polynomial
// written in the loop body so that iterations overlap.
func seqTanhSliceGo(v []float32, scale, outScale, outBias float32) {
	const clampV = 7.90531110763549805
	for i, x := range v {
		x *= scale
		x = min(max(x, -clampV), clampV)
		x2 := x * x
		p := x2*-2.76076847742355e-16 + 2.00018790482477e-13
		p = p*x2 + -8.60467152213735e-11
		p = p*x2 + 5.12229709037114e-08
		p = p*x2 + 1.48572235717979e-05
		p = p*x2 + 6.37261928875436e-04
		p = p*x2 + 4.89352455891786e-03
		q := x2*1.19825839466702e-06 + 1.18534705686654e-04
		q = q*x2 + 2.26843463243900e-03
		q = q*x2 + 4.89352518554385e-03
		t := p * x / q
		if x < 0.0004 && x > -0.0004 {
			t = x
		}
		v[i] = t*outScale + outBias
	}
}

// seqSigmoid is 1/(1+exp(-x)) through seqTanh.
func seqSigmoid(x float32) float32 { return 0.5 + 0.5*seqTanh(0.5*x) }

// seqAct is one RNN activation function with its alpha/beta.
type seqAct struct {
	kind        int
	alpha, beta float32
}

const (
	actSigmoid = iota
	actTanh
	actRelu
	actAffine
	actLeakyRelu
	actThresholdedRelu
	actScaledTanh
	actHardSigmoid
	actElu
	actSoftsign
	actSoftplus
)

var seqActNames = map[string]struct {
	kind         int
	nAlpha, nBet int
	alpha, beta  float32
}{
	"sigmoid":         {actSigmoid, 0, 0, 0, 0},
	"tanh":            {actTanh, 0, 0, 0, 0},
	"relu":            {actRelu, 0, 0, 0, 0},
	"affine":          {actAffine, 1, 1, 1, 0},
	"leakyrelu":       {actLeakyRelu, 1, 0, 0.01, 0},
	"thresholdedrelu": {actThresholdedRelu, 1, 0, 1, 0},
	"scaledtanh":      {actScaledTanh, 1, 1, 1, 1},
	"hardsigmoid":     {actHardSigmoid, 1, 1, 0.2, 0.5},
	"elu":             {actElu, 1, 0, 1, 0},
	"softsign":        {actSoftsign, 0, 0, 0, 0},
	"softplus":        {actSoftplus, 0, 0, 0, 0},
}

// seqParseActs reads activations/activation_alpha/activation_beta. The
// alpha and beta lists are consumed in order by the functions that take
// them (as ONNX Runtime does); missing values take the ONNX defaults.
func seqParseActs(names [][]byte, alphas, betas []float32, defaults []string, dirs int) ([]seqAct, error) {
	per := len(defaults)
	var list []string
	if len(names) == 0 {
		for d := 0; d < dirs; d++ {
			list = append(list, defaults...)
		}
	} else {
		for _, n := range names {
			list = append(list, string(n))
		}
		if len(list) == per && dirs == 2 {
			list = append(list, list...)
		}
		if len(list) != per*dirs {
			return nil, fmt.Errorf("activations lists %d functions, want %d (%d per direction)", len(list), per*dirs, per)
		}
	}
	out := make([]seqAct, len(list))
	ai, bi := 0, 0
	for i, n := range list {
		spec, ok := seqActNames[strings.ToLower(n)]
		if !ok {
			return nil, unsupportedf("unsupported activation %q", n)
		}
		a := seqAct{kind: spec.kind, alpha: spec.alpha, beta: spec.beta}
		if spec.nAlpha > 0 && ai < len(alphas) {
			a.alpha = alphas[ai]
			ai++
		}
		if spec.nBet > 0 && bi < len(betas) {
			a.beta = betas[bi]
			bi++
		}
		out[i] = a
	}
	return out, nil
}

// apply computes the activation of x in place.
func (a seqAct) apply(x []float32) {
	switch a.kind {
	case actSigmoid:
		seqTanhSlice(x, 0.5, 0.5, 0.5)
	case actTanh:
		seqTanhSlice(x, 1, 1, 0)
	case actRelu:
		for i, v := range x {
			x[i] = max(v, 0)
		}
	case actAffine:
		for i, v := range x {
			x[i] = a.alpha*v + a.beta
		}
	case actLeakyRelu:
		for i, v := range x {
			if v < 0 {
				x[i] = a.alpha * v
			}
		}
	case actThresholdedRelu:
		for i, v := range x {
			if v <= a.alpha {
				x[i] = 0
			}
		}
	case actScaledTanh:
		for i, v := range x {
			x[i] = a.alpha * seqTanh(a.beta*v)
		}
	case actHardSigmoid:
		for i, v := range x {
			x[i] = min(max(a.alpha*v+a.beta, 0), 1)
		}
	case actElu:
		for i, v := range x {
			if v < 0 {
				x[i] = a.alpha * float32(math.Expm1(float64(v)))
			}
		}
	case actSoftsign:
		for i, v := range x {
			x[i] = v / (1 + float32(math.Abs(float64(v))))
		}
	case actSoftplus:
		for i, v := range x {
			x[i] = float32(math.Log1p(math.Exp(float64(v))))
		}
	}
}

// seqMatVecAddGo is the portable seqMatVecAdd: four rows share each load
// of x.
func seqMatVecAddGo(y, m, x []float32, k, lo, hi int) {
	x = x[:k]
	r := lo
	for ; r+4 <= hi; r += 4 {
		m0 := m[r*k : r*k+k][:len(x)]
		m1 := m[(r+1)*k : (r+1)*k+k][:len(x)]
		m2 := m[(r+2)*k : (r+2)*k+k][:len(x)]
		m3 := m[(r+3)*k : (r+3)*k+k][:len(x)]
		var s0, s1, s2, s3 float32
		for j, xv := range x {
			s0 += m0[j] * xv
			s1 += m1[j] * xv
			s2 += m2[j] * xv
			s3 += m3[j] * xv
		}
		y[r] += s0
		y[r+1] += s1
		y[r+2] += s2
		y[r+3] += s3
	}
	for ; r < hi; r++ {
		row := m[r*k : r*k+k]
		var s0, s1 float32
		j := 0
		for ; j+2 <= k; j += 2 {
			s0 += row[j] * x[j]
			s1 += row[j+1] * x[j+1]
		}
		if j < k {
			s0 += row[j] * x[j]
		}
		y[r] += s0 + s1
	}
}
