package interp

import (
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// A fast path for float32 Add/Sub/Mul/Div where one operand is a full
// (N, C, spatial...) tensor and the other varies at most along N and C
// (a squeeze-and-excitation scale, a per-channel bias): one tight loop per
// (n, c) plane instead of the general broadcasting iterator. Anything
// else, and every error, goes to the op's own kernel, which it wraps
// (program.go). Results are bit-identical: the same float32 op per element.

// perfChanOn enables the fast path; tests turn it off to compare.
var perfChanOn = true

// perfWrapBinary wraps the kernel k of a two-input Add/Sub/Mul/Div.
func perfWrapBinary(op string, k Kernel) Kernel {
	var code int
	switch op {
	case "Add":
		code = 0
	case "Sub":
		code = 1
	case "Mul":
		code = 2
	case "Div":
		code = 3
	default:
		return k
	}
	return func(c *Call) error {
		if len(c.In) == 2 && perfChanBinary(c, code) {
			return nil
		}
		return k(c)
	}
}

// perfChanShape reports whether small broadcasts against big (rank ≥ 3)
// only along axes 0 and 1, returning small's strides for n and c.
func perfChanShape(big, small []int64) (sn, sc int, ok bool) {
	r, rs := len(big), len(small)
	if r < 3 || rs > r {
		return 0, 0, false
	}
	sn, sc = 0, 0
	for i := 0; i < rs; i++ {
		ax := r - rs + i
		d := small[i]
		switch {
		case d == 1:
		case ax == 0 && d == big[0]:
			sn = 1
		case ax == 1 && d == big[1]:
			sc = 1
		default:
			return 0, 0, false
		}
	}
	if sn == 1 && sc == 1 {
		sn = int(big[1]) // small is (N, C): n's stride is C
	}
	return sn, sc, true
}

func perfChanBinary(c *Call, code int) bool {
	a, b := c.In[0], c.In[1]
	if a == nil || b == nil || a.DType != graph.Float || b.DType != graph.Float {
		return false
	}
	if !perfChanOn || nnSameShape(a.Shape, b.Shape) {
		return false // same shapes: the ew kernel's own fast path
	}
	big, small, bigFirst := a, b, true
	sn, sc, ok := perfChanShape(a.Shape, b.Shape)
	if !ok {
		big, small, bigFirst = b, a, false
		if sn, sc, ok = perfChanShape(b.Shape, a.Shape); !ok {
			return false
		}
	}
	N, C := int(big.Shape[0]), int(big.Shape[1])
	if N <= 0 || C <= 0 {
		return false
	}
	inner := big.Len() / (N * C)
	if inner < 4 {
		return false
	}
	y, err := c.Out(0, graph.Float, big.Shape)
	if err != nil {
		return false
	}
	perfChanLoop(y, big, small, N, C, inner, sn, sc, code, bigFirst)
	return true
}

func perfChanLoop(y, big, small *runtime.Tensor, N, C, inner, sn, sc, code int, bigFirst bool) {
	yd, xd, sd := y.Float32s(), big.Float32s(), small.Float32s()
	for n := 0; n < N; n++ {
		for ch := 0; ch < C; ch++ {
			v := sd[n*sn+ch*sc]
			o := (n*C + ch) * inner
			dst, src := yd[o:o+inner], xd[o:o+inner]
			switch {
			case code == 0:
				for i, x := range src {
					dst[i] = x + v
				}
			case code == 2:
				for i, x := range src {
					dst[i] = x * v
				}
			case code == 1 && bigFirst:
				for i, x := range src {
					dst[i] = x - v
				}
			case code == 1:
				for i, x := range src {
					dst[i] = v - x
				}
			case code == 3 && bigFirst:
				for i, x := range src {
					dst[i] = x / v
				}
			default:
				for i, x := range src {
					dst[i] = v / x
				}
			}
		}
	}
}
