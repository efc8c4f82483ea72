package interp

import (
	"fmt"
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// com.microsoft fused ops that ONNX Runtime's transformer optimizer (and
// optictl's own fusions) emit: Gelu, BiasGelu, FastGelu, QuickGelu,
// SkipLayerNormalization. Also the default-domain LpNormalization and
// MaxUnpool, which no other kernel file covers.

func init() {
	for _, op := range []string{"Gelu", "BiasGelu", "FastGelu", "QuickGelu"} {
		op := op
		Register("com.microsoft", op, func(n *graph.Node, bc *BuildContext) (Kernel, error) { return nnBuildGeluFamily(n, op) })
	}
	Register("com.microsoft", "SkipLayerNormalization", nnBuildSkipLN)
	Register("", "LpNormalization", nnBuildLpNorm)
	Register("", "MaxUnpool", nnBuildMaxUnpool)
}

type nnGelu struct {
	op    string
	alpha float64
	in    [2]nnF32In
	out   nnF32Out
}

func nnBuildGeluFamily(n *graph.Node, op string) (Kernel, error) {
	g := &nnGelu{op: op, alpha: float64(n.AttrFloat("alpha", 1.702))}
	return g.run, nil
}

func (g *nnGelu) run(c *Call) error {
	x := c.In[0]
	if x == nil || !nnIsFloatish(x.DType) {
		return fmt.Errorf("interp: %s: X must be a float tensor", c.Node)
	}
	xd, err := g.in[0].get(x)
	if err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	var bd []float32
	if len(c.In) > 1 && c.In[1] != nil && (g.op == "BiasGelu" || g.op == "FastGelu") {
		if bd, err = g.in[1].get(c.In[1]); err != nil {
			return fmt.Errorf("interp: %s: %w", c.Node, err)
		}
		if len(x.Shape) == 0 || len(bd) != int(x.Shape[len(x.Shape)-1]) {
			return fmt.Errorf("interp: %s: bias has %d values, X%v's last dim differs", c.Node, len(bd), x.Shape)
		}
	} else if g.op == "BiasGelu" {
		return fmt.Errorf("interp: %s: missing bias", c.Node)
	}
	y, err := c.Out(0, x.DType, x.Shape)
	if err != nil {
		return err
	}
	yd := g.out.get(y)
	if g.op == "Gelu" || g.op == "BiasGelu" {
		// float32 exact GELU with the fast erf (perf2_erf.go); the bias is
		// added in float32, as ONNX Runtime does.
		src := xd
		if bd != nil {
			for i := 0; i < len(xd); i += len(bd) {
				row := yd[i : i+len(bd)]
				for j, b := range bd {
					row[j] = xd[i+j] + b
				}
			}
			src = yd
		}
		perf2Gelu(yd, src)
		g.out.done(y, yd)
		return nil
	}
	for i, v := range xd {
		f := float64(v)
		if bd != nil {
			f += float64(bd[i%len(bd)])
		}
		switch g.op {
		case "FastGelu":
			f = 0.5 * f * (1 + math.Tanh(0.7978845608028654*(f+0.044715*f*f*f)))
		case "QuickGelu":
			f = f / (1 + math.Exp(-g.alpha*f))
		}
		yd[i] = float32(f)
	}
	g.out.done(y, yd)
	return nil
}

type nnSkipLN struct {
	eps float32
	in  [5]nnF32In
	out [4]nnF32Out
	sum []float32
	st  []int64
}

func nnBuildSkipLN(n *graph.Node, bc *BuildContext) (Kernel, error) {
	return (&nnSkipLN{eps: n.AttrFloat("epsilon", 1e-12)}).run, nil
}

func (s *nnSkipLN) run(c *Call) error {
	if len(c.In) < 3 || c.In[0] == nil || c.In[1] == nil || c.In[2] == nil {
		return fmt.Errorf("interp: %s: needs input, skip and gamma", c.Node)
	}
	x := c.In[0]
	if len(x.Shape) == 0 {
		return fmt.Errorf("interp: %s: input must have rank ≥ 1", c.Node)
	}
	H := int(x.Shape[len(x.Shape)-1])
	var v [5][]float32
	for i := 0; i < 5 && i < len(c.In); i++ {
		if c.In[i] == nil {
			continue
		}
		d, err := s.in[i].get(c.In[i])
		if err != nil {
			return fmt.Errorf("interp: %s: input %d: %w", c.Node, i, err)
		}
		v[i] = d
	}
	xd, skip, gamma, beta, bias := v[0], v[1], v[2], v[3], v[4]
	if len(skip) != len(xd) && len(skip) != H*(len(xd)/max(H, 1)) && len(skip) != H {
		return fmt.Errorf("interp: %s: skip has %d values for input%v", c.Node, len(skip), x.Shape)
	}
	if len(gamma) != H || (beta != nil && len(beta) != H) || (bias != nil && len(bias) != H) {
		return fmt.Errorf("interp: %s: gamma/beta/bias must have %d values", c.Node, H)
	}
	y, err := c.Out(0, x.DType, x.Shape)
	if err != nil {
		return err
	}
	yd := s.out[0].get(y)
	rows := len(xd) / max(H, 1)
	s.st = append(s.st[:0], x.Shape[:len(x.Shape)-1]...)
	s.st = append(s.st, 1)
	var md, id, sd []float32
	var mt, it, sumT *runtime.Tensor
	if c.HasOutput(1) {
		if mt, err = c.Out(1, graph.Float, s.st); err != nil {
			return err
		}
		md = s.out[1].get(mt)
	}
	if c.HasOutput(2) {
		if it, err = c.Out(2, graph.Float, s.st); err != nil {
			return err
		}
		id = s.out[2].get(it)
	}
	if c.HasOutput(3) {
		if sumT, err = c.Out(3, x.DType, x.Shape); err != nil {
			return err
		}
		sd = s.out[3].get(sumT)
	}
	if cap(s.sum) < H {
		s.sum = make([]float32, H)
	}
	row := s.sum[:H]
	for r := 0; r < rows; r++ {
		var mean, ss float64
		for i := 0; i < H; i++ {
			f := xd[r*H+i] + skip[(r*H+i)%len(skip)]
			if bias != nil {
				f += bias[i]
			}
			row[i] = f
			mean += float64(f)
		}
		mean /= float64(H)
		for _, f := range row {
			d := float64(f) - mean
			ss += d * d
		}
		inv := 1 / math.Sqrt(ss/float64(H)+float64(s.eps))
		for i, f := range row {
			o := float32((float64(f)-mean)*inv) * gamma[i]
			if beta != nil {
				o += beta[i]
			}
			yd[r*H+i] = o
		}
		if md != nil {
			md[r] = float32(mean)
		}
		if id != nil {
			id[r] = float32(inv)
		}
		if sd != nil {
			copy(sd[r*H:(r+1)*H], row)
		}
	}
	s.out[0].done(y, yd)
	if mt != nil {
		s.out[1].done(mt, md)
	}
	if it != nil {
		s.out[2].done(it, id)
	}
	if sumT != nil {
		s.out[3].done(sumT, sd)
	}
	return nil
}

type nnLpNorm struct {
	axis int64
	p    int64
	in   nnF32In
	out  nnF32Out
}

func nnBuildLpNorm(n *graph.Node, bc *BuildContext) (Kernel, error) {
	l := &nnLpNorm{axis: n.AttrInt("axis", -1), p: n.AttrInt("p", 2)}
	if l.p != 1 && l.p != 2 {
		return nil, fmt.Errorf("p must be 1 or 2, got %d", l.p)
	}
	return l.run, nil
}

func (l *nnLpNorm) run(c *Call) error {
	x := c.In[0]
	if x == nil || len(x.Shape) == 0 {
		return fmt.Errorf("interp: %s: X must have rank ≥ 1", c.Node)
	}
	r := int64(len(x.Shape))
	ax := l.axis
	if ax < 0 {
		ax += r
	}
	if ax < 0 || ax >= r {
		return fmt.Errorf("interp: %s: axis %d out of range for X%v", c.Node, l.axis, x.Shape)
	}
	xd, err := l.in.get(x)
	if err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	y, err := c.Out(0, x.DType, x.Shape)
	if err != nil {
		return err
	}
	yd := l.out.get(y)
	outer, d, inner := nnNumel(x.Shape[:ax]), int(x.Shape[ax]), nnNumel(x.Shape[ax+1:])
	for o := 0; o < outer; o++ {
		for in := 0; in < inner; in++ {
			base := o*d*inner + in
			var s float64
			for k := 0; k < d; k++ {
				v := float64(xd[base+k*inner])
				if l.p == 1 {
					s += math.Abs(v)
				} else {
					s += v * v
				}
			}
			if l.p == 2 {
				s = math.Sqrt(s)
			}
			if s == 0 {
				s = math.Inf(1) // a zero vector stays zero
			}
			for k := 0; k < d; k++ {
				yd[base+k*inner] = float32(float64(xd[base+k*inner]) / s)
			}
		}
	}
	l.out.done(y, yd)
	return nil
}

type nnMaxUnpool struct {
	win   nnWindow
	shape []int64
	inf   []int64
	in    nnF32In
	out   nnF32Out
}

func nnBuildMaxUnpool(n *graph.Node, bc *BuildContext) (Kernel, error) {
	win, err := nnParseWindow(n)
	if err != nil {
		return nil, err
	}
	if win.kernel == nil {
		return nil, fmt.Errorf("kernel_shape is required")
	}
	return (&nnMaxUnpool{win: win}).run, nil
}

func (u *nnMaxUnpool) run(c *Call) error {
	x, ind := c.In[0], c.In[1]
	if x == nil || ind == nil || len(x.Shape) < 3 || ind.DType != graph.Int64 || !nnSameShape(x.Shape, ind.Shape) {
		return fmt.Errorf("interp: %s: X and I (int64) must have the same shape of rank ≥ 3", c.Node)
	}
	nd := len(x.Shape) - 2
	if len(u.win.kernel) != nd {
		return fmt.Errorf("interp: %s: kernel_shape %v does not match X%v", c.Node, u.win.kernel, x.Shape)
	}
	// Indices refer to the inferred shape; output_shape, when given, pads
	// that shape at the end of each spatial dim.
	u.inf = append(u.inf[:0], x.Shape[:2]...)
	for i := 0; i < nd; i++ {
		s, pb, pe := int64(1), int64(0), int64(0)
		if u.win.strides != nil {
			s = u.win.strides[i]
		}
		if u.win.pads != nil && len(u.win.pads) == 2*nd {
			pb, pe = u.win.pads[i], u.win.pads[i+nd]
		}
		u.inf = append(u.inf, (x.Shape[i+2]-1)*s+u.win.kernel[i]-pb-pe)
	}
	u.shape = append(u.shape[:0], u.inf...)
	if len(c.In) > 2 && c.In[2] != nil {
		os := c.In[2]
		if os.DType != graph.Int64 || os.Len() != len(x.Shape) {
			return fmt.Errorf("interp: %s: output_shape must be %d int64 values", c.Node, len(x.Shape))
		}
		u.shape = append(u.shape[:0], os.Int64s()...)
		for i := range u.shape {
			if u.shape[i] < u.inf[i] {
				return fmt.Errorf("interp: %s: output_shape %v is smaller than the inferred %v", c.Node, u.shape, u.inf)
			}
		}
	}
	if err := nnCheckSize("inferred output", u.inf); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	if err := nnCheckSize("output", u.shape); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	xd, err := u.in.get(x)
	if err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	y, err := c.Out(0, x.DType, u.shape)
	if err != nil {
		return err
	}
	yd := u.out.get(y)
	clear(yd)
	ninf := int64(nnNumel(u.inf))
	same := nnSameShape(u.inf, u.shape)
	for j, k := range ind.Int64s() {
		if k < 0 || k >= ninf {
			return fmt.Errorf("interp: %s: index %d out of range for shape %v", c.Node, k, u.inf)
		}
		o := k
		if !same {
			o = 0
			q, mul := k, int64(1)
			for i := len(u.inf) - 1; i >= 0; i-- {
				o += (q % u.inf[i]) * mul
				q /= u.inf[i]
				mul *= u.shape[i]
			}
		}
		yd[o] = xd[j]
	}
	u.out.done(y, yd)
	return nil
}
