package interp

import (
	"fmt"
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Normalizations: BatchNormalization (inference, and training_mode's batch
// statistics), LayerNormalization, InstanceNormalization,
// GroupNormalization, RMSNormalization, LRN, MeanVarianceNormalization.
// Statistics accumulate in float64.

func init() {
	Register("", "BatchNormalization", nnBuildBatchNorm)
	Register("", "LayerNormalization", nnBuildLayerNorm)
	Register("", "RMSNormalization", nnBuildLayerNorm)
	Register("", "InstanceNormalization", nnBuildInstanceNorm)
	Register("", "GroupNormalization", nnBuildGroupNorm)
	Register("", "LRN", nnBuildLRN)
	Register("", "MeanVarianceNormalization", nnBuildMVN)
}

// nnF32In is a reusable float32 view/conversion of an input.
type nnF32In struct{ buf []float32 }

func (b *nnF32In) get(t *runtime.Tensor) ([]float32, error) {
	v, buf, err := nnToF32(t, b.buf)
	b.buf = buf
	return v, err
}

// nnF32Out gives a float32 buffer for an output tensor and writes it back.
type nnF32Out struct{ buf []float32 }

func (b *nnF32Out) get(t *runtime.Tensor) []float32 {
	if t.DType == graph.Float {
		return t.Float32s()[:t.Len()]
	}
	if cap(b.buf) < t.Len() {
		b.buf = make([]float32, t.Len())
	}
	b.buf = b.buf[:t.Len()]
	return b.buf
}

func (b *nnF32Out) done(t *runtime.Tensor, v []float32) {
	if t.DType != graph.Float {
		nnFromF32(t, v)
	}
}

type nnBatchNorm struct {
	eps, momentum float32
	training      bool
	ins           [5]nnF32In
	out           [3]nnF32Out
	a, b          []float32
	mean, vari    []float64
	cshape        []int64
}

func nnBuildBatchNorm(n *graph.Node, bc *BuildContext) (Kernel, error) {
	bn := &nnBatchNorm{eps: n.AttrFloat("epsilon", 1e-5), momentum: n.AttrFloat("momentum", 0.9)}
	bn.training = n.AttrInt("training_mode", 0) != 0
	if bc.Opset < 14 && len(n.Outputs) > 1 && bc.Opset >= 7 {
		// Opsets 7-9 also define training outputs; only inference is run.
		bn.training = false
	}
	if n.AttrInt("spatial", 1) == 0 {
		return nil, unsupportedf("spatial=0 is not supported")
	}
	return bn.run, nil
}

func (bn *nnBatchNorm) run(c *Call) error {
	if len(c.In) < 5 {
		return fmt.Errorf("interp: %s: needs 5 inputs", c.Node)
	}
	x := c.In[0]
	for i, t := range c.In[:5] {
		if t == nil || !nnIsFloatish(t.DType) {
			return fmt.Errorf("interp: %s: input %d must be a float tensor", c.Node, i)
		}
	}
	if len(x.Shape) < 2 {
		return fmt.Errorf("interp: %s: X%v must have rank ≥ 2", c.Node, x.Shape)
	}
	N, C := int(x.Shape[0]), int(x.Shape[1])
	inner := nnNumel(x.Shape[2:])
	var p [5][]float32
	for i := 0; i < 5; i++ {
		v, err := bn.ins[i].get(c.In[i])
		if err != nil {
			return fmt.Errorf("interp: %s: %w", c.Node, err)
		}
		if i > 0 && len(v) != C {
			return fmt.Errorf("interp: %s: input %d has %d values, want %d channels", c.Node, i, len(v), C)
		}
		p[i] = v
	}
	xd, scale, bias, mean, vari := p[0], p[1], p[2], p[3], p[4]
	y, err := c.Out(0, x.DType, x.Shape)
	if err != nil {
		return err
	}
	yd := bn.out[0].get(y)
	if cap(bn.a) < C {
		bn.a, bn.b = make([]float32, C), make([]float32, C)
		bn.mean, bn.vari = make([]float64, C), make([]float64, C)
	}
	a, b := bn.a[:C], bn.b[:C]
	if bn.training {
		bm, bv := bn.mean[:C], bn.vari[:C]
		cnt := float64(N * inner)
		for ch := 0; ch < C; ch++ {
			var s, ss float64
			for n := 0; n < N; n++ {
				for _, v := range xd[(n*C+ch)*inner : (n*C+ch+1)*inner] {
					s += float64(v)
				}
			}
			m := s / cnt
			for n := 0; n < N; n++ {
				for _, v := range xd[(n*C+ch)*inner : (n*C+ch+1)*inner] {
					d := float64(v) - m
					ss += d * d
				}
			}
			bm[ch], bv[ch] = m, ss/cnt
			a[ch] = float32(float64(scale[ch]) / math.Sqrt(bv[ch]+float64(bn.eps)))
			b[ch] = float32(float64(bias[ch]) - m*float64(a[ch]))
		}
		bn.cshape = append(bn.cshape[:0], int64(C))
		for k, src := range [][]float32{mean, vari} {
			if !c.HasOutput(k + 1) {
				continue
			}
			o, err := c.Out(k+1, c.In[3+k].DType, bn.cshape)
			if err != nil {
				return err
			}
			od := bn.out[k+1].get(o)
			stat := bm
			if k == 1 {
				stat = bv
			}
			for ch := range od {
				od[ch] = float32(float64(src[ch])*float64(bn.momentum) + stat[ch]*(1-float64(bn.momentum)))
			}
			bn.out[k+1].done(o, od)
		}
	} else {
		for ch := 0; ch < C; ch++ {
			a[ch] = float32(float64(scale[ch]) / math.Sqrt(float64(vari[ch])+float64(bn.eps)))
			b[ch] = float32(float64(bias[ch]) - float64(mean[ch])*float64(a[ch]))
		}
	}
	for n := 0; n < N; n++ {
		for ch := 0; ch < C; ch++ {
			o := (n*C + ch) * inner
			src, dst := xd[o:o+inner], yd[o:o+inner]
			av, bv := a[ch], b[ch]
			for i, v := range src {
				dst[i] = v*av + bv
			}
		}
	}
	bn.out[0].done(y, yd)
	return nil
}

// nnLayerNorm serves LayerNormalization and RMSNormalization.
type nnLayerNorm struct {
	rms      bool
	axis     int64
	eps      float32
	stash    int64
	ins      [3]nnF32In
	out      [3]nnF32Out
	sshape   []int64
	sidx     []int32
	bidx     []int32
	idxShape [2][]int64
}

func nnBuildLayerNorm(n *graph.Node, bc *BuildContext) (Kernel, error) {
	ln := &nnLayerNorm{rms: n.OpType == "RMSNormalization", axis: n.AttrInt("axis", -1),
		eps: n.AttrFloat("epsilon", 1e-5), stash: n.AttrInt("stash_type", 1)}
	return ln.run, nil
}

// nnInnerIndex maps each position of the inner shape (the last len(inner)
// dims of X) to an index into a tensor of shape s broadcast to it.
func nnInnerIndex(dst []int32, s, inner []int64) ([]int32, error) {
	if len(s) > len(inner) {
		for _, d := range s[:len(s)-len(inner)] {
			if d != 1 {
				return nil, fmt.Errorf("shape %v does not broadcast to %v", s, inner)
			}
		}
		s = s[len(s)-len(inner):]
	}
	n := nnNumel(inner)
	if cap(dst) < n {
		dst = make([]int32, n)
	}
	dst = dst[:n]
	off := len(inner) - len(s)
	for j := 0; j < n; j++ {
		q, idx, mul := j, 0, 1
		for i := len(inner) - 1; i >= 0; i-- {
			c := q % int(inner[i])
			q /= int(inner[i])
			if k := i - off; k >= 0 {
				if s[k] != 1 && s[k] != inner[i] {
					return nil, fmt.Errorf("shape %v does not broadcast to %v", s, inner)
				}
				if s[k] != 1 {
					idx += c * mul
				}
				mul *= int(s[k])
			}
		}
		dst[j] = int32(idx)
	}
	return dst, nil
}

func (ln *nnLayerNorm) run(c *Call) error {
	x, sc := c.In[0], c.In[1]
	if x == nil || sc == nil {
		return fmt.Errorf("interp: %s: missing X or Scale", c.Node)
	}
	var bt *runtime.Tensor
	if len(c.In) > 2 && !ln.rms {
		bt = c.In[2]
	}
	r := int64(len(x.Shape))
	axis := ln.axis
	if axis < 0 {
		axis += r
	}
	if axis < 0 || axis >= r {
		return fmt.Errorf("interp: %s: axis %d out of range for X%v", c.Node, ln.axis, x.Shape)
	}
	outer, inner := nnNumel(x.Shape[:axis]), nnNumel(x.Shape[axis:])
	xd, err := ln.ins[0].get(x)
	if err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	sd, err := ln.ins[1].get(sc)
	if err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	var bd []float32
	if bt != nil {
		if bd, err = ln.ins[2].get(bt); err != nil {
			return fmt.Errorf("interp: %s: %w", c.Node, err)
		}
	}
	innerShape := x.Shape[axis:]
	if len(sd) != inner || !nnSameShape(ln.idxShape[0], sc.Shape) {
		if ln.sidx, err = nnInnerIndex(ln.sidx, sc.Shape, innerShape); err != nil {
			return fmt.Errorf("interp: %s: Scale: %w", c.Node, err)
		}
		ln.idxShape[0] = append(ln.idxShape[0][:0], sc.Shape...)
	}
	if bd != nil && (len(bd) != inner || !nnSameShape(ln.idxShape[1], bt.Shape)) {
		if ln.bidx, err = nnInnerIndex(ln.bidx, bt.Shape, innerShape); err != nil {
			return fmt.Errorf("interp: %s: B: %w", c.Node, err)
		}
		ln.idxShape[1] = append(ln.idxShape[1][:0], bt.Shape...)
	}
	fullS, fullB := len(sd) == inner, bd != nil && len(bd) == inner
	y, err := c.Out(0, x.DType, x.Shape)
	if err != nil {
		return err
	}
	yd := ln.out[0].get(y)
	ln.sshape = append(ln.sshape[:0], x.Shape[:axis]...)
	for i := axis; i < r; i++ {
		ln.sshape = append(ln.sshape, 1)
	}
	st := x.DType
	if ln.stash == 1 {
		st = graph.Float
	}
	var md, id []float32
	var mt, it *runtime.Tensor
	if c.HasOutput(1) && !ln.rms {
		if mt, err = c.Out(1, st, ln.sshape); err != nil {
			return err
		}
		md = ln.out[1].get(mt)
	}
	ko := 2
	if ln.rms {
		ko = 1
	}
	if c.HasOutput(ko) {
		if it, err = c.Out(ko, st, ln.sshape); err != nil {
			return err
		}
		id = ln.out[2].get(it)
	}
	for o := 0; o < outer; o++ {
		row, dst := xd[o*inner:(o+1)*inner], yd[o*inner:(o+1)*inner]
		if !ln.rms && fullS && (bd == nil || fullB) && inner > 0 {
			// Split sums (perf2_norm.go).
			mean, inv := perf2LNOpRow(dst, row, sd, bd, ln.eps)
			if md != nil {
				md[o] = float32(mean)
			}
			if id != nil {
				id[o] = float32(inv)
			}
			continue
		}
		var mean, ss float64
		if !ln.rms {
			for _, v := range row {
				mean += float64(v)
			}
			mean /= float64(inner)
		}
		for _, v := range row {
			d := float64(v) - mean
			ss += d * d
		}
		inv := 1 / math.Sqrt(ss/float64(inner)+float64(ln.eps))
		for i, v := range row {
			s := sd[0]
			if fullS {
				s = sd[i]
			} else {
				s = sd[ln.sidx[i]]
			}
			val := float32((float64(v)-mean)*inv) * s
			if bd != nil {
				if fullB {
					val += bd[i]
				} else {
					val += bd[ln.bidx[i]]
				}
			}
			dst[i] = val
		}
		if md != nil {
			md[o] = float32(mean)
		}
		if id != nil {
			id[o] = float32(inv)
		}
	}
	ln.out[0].done(y, yd)
	if mt != nil {
		ln.out[1].done(mt, md)
	}
	if it != nil {
		ln.out[2].done(it, id)
	}
	return nil
}

// nnGroupStats normalizes rows of size sz: y = (x-mean)/sqrt(var+eps)·s + b
// where chanOf(row, i) picks the scale/bias index.
type nnGroupNorm struct {
	instance bool
	groups   int
	eps      float32
	ins      [3]nnF32In
	out      nnF32Out
}

func nnBuildInstanceNorm(n *graph.Node, bc *BuildContext) (Kernel, error) {
	g := &nnGroupNorm{instance: true, eps: n.AttrFloat("epsilon", 1e-5)}
	return g.run, nil
}

func nnBuildGroupNorm(n *graph.Node, bc *BuildContext) (Kernel, error) {
	g := &nnGroupNorm{groups: int(n.AttrInt("num_groups", 0)), eps: n.AttrFloat("epsilon", 1e-5)}
	if g.groups <= 0 {
		return nil, fmt.Errorf("num_groups must be positive")
	}
	return g.run, nil
}

func (gn *nnGroupNorm) run(c *Call) error {
	if len(c.In) < 3 || c.In[0] == nil || c.In[1] == nil || c.In[2] == nil {
		return fmt.Errorf("interp: %s: needs X, scale and bias", c.Node)
	}
	x := c.In[0]
	if len(x.Shape) < 2 {
		return fmt.Errorf("interp: %s: X%v must have rank ≥ 2", c.Node, x.Shape)
	}
	N, C := int(x.Shape[0]), int(x.Shape[1])
	sp := nnNumel(x.Shape[2:])
	G := C
	if !gn.instance {
		G = gn.groups
	}
	if C%G != 0 {
		return fmt.Errorf("interp: %s: %d channels are not divisible by num_groups %d", c.Node, C, G)
	}
	var p [3][]float32
	for i := range p {
		v, err := gn.ins[i].get(c.In[i])
		if err != nil {
			return fmt.Errorf("interp: %s: %w", c.Node, err)
		}
		p[i] = v
	}
	xd, sd, bd := p[0], p[1], p[2]
	perGroup := len(sd) == G && G != C
	if (len(sd) != C && !perGroup) || len(bd) != len(sd) {
		return fmt.Errorf("interp: %s: scale/bias have %d/%d values for %d channels", c.Node, len(sd), len(bd), C)
	}
	y, err := c.Out(0, x.DType, x.Shape)
	if err != nil {
		return err
	}
	yd := gn.out.get(y)
	cpg := C / G
	sz := cpg * sp
	for n := 0; n < N; n++ {
		for g := 0; g < G; g++ {
			o := (n*C + g*cpg) * sp
			row := xd[o : o+sz]
			var mean, ss float64
			for _, v := range row {
				mean += float64(v)
			}
			mean /= float64(sz)
			for _, v := range row {
				d := float64(v) - mean
				ss += d * d
			}
			inv := 1 / math.Sqrt(ss/float64(sz)+float64(gn.eps))
			for ci := 0; ci < cpg; ci++ {
				k := g*cpg + ci
				if perGroup {
					k = g
				}
				s, b := float64(sd[k]), float64(bd[k])
				src := row[ci*sp : (ci+1)*sp]
				dst := yd[o+ci*sp : o+(ci+1)*sp]
				for i, v := range src {
					dst[i] = float32((float64(v)-mean)*inv*s + b)
				}
			}
		}
	}
	gn.out.done(y, yd)
	return nil
}

type nnLRN struct {
	size              int
	alpha, beta, bias float64
	in                nnF32In
	out               nnF32Out
}

func nnBuildLRN(n *graph.Node, bc *BuildContext) (Kernel, error) {
	l := &nnLRN{size: int(n.AttrInt("size", 0)), alpha: float64(n.AttrFloat("alpha", 1e-4)),
		beta: float64(n.AttrFloat("beta", 0.75)), bias: float64(n.AttrFloat("bias", 1))}
	if l.size <= 0 {
		return nil, fmt.Errorf("size must be positive")
	}
	return l.run, nil
}

func (l *nnLRN) run(c *Call) error {
	x := c.In[0]
	if x == nil || len(x.Shape) < 2 {
		return fmt.Errorf("interp: %s: X must have rank ≥ 2", c.Node)
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
	N, C, sp := int(x.Shape[0]), int(x.Shape[1]), nnNumel(x.Shape[2:])
	lo, hi := (l.size-1)/2, (l.size)/2 // floor((size-1)/2), ceil((size-1)/2)
	for n := 0; n < N; n++ {
		for ch := 0; ch < C; ch++ {
			c0, c1 := max(0, ch-lo), min(C-1, ch+hi)
			for i := 0; i < sp; i++ {
				var ss float64
				for k := c0; k <= c1; k++ {
					v := float64(xd[(n*C+k)*sp+i])
					ss += v * v
				}
				o := (n*C+ch)*sp + i
				yd[o] = float32(float64(xd[o]) / math.Pow(l.bias+l.alpha/float64(l.size)*ss, l.beta))
			}
		}
	}
	l.out.done(y, yd)
	return nil
}

type nnMVN struct {
	axes    []int64
	in      nnF32In
	out     nnF32Out
	sum, sq []float64
	reduced []bool
}

func nnBuildMVN(n *graph.Node, bc *BuildContext) (Kernel, error) {
	m := &nnMVN{axes: n.AttrInts("axes")}
	if m.axes == nil {
		m.axes = []int64{0, 2, 3}
	}
	return m.run, nil
}

func (m *nnMVN) run(c *Call) error {
	x := c.In[0]
	if x == nil {
		return fmt.Errorf("interp: %s: missing X", c.Node)
	}
	r := len(x.Shape)
	if cap(m.reduced) < r {
		m.reduced = make([]bool, r)
	}
	reduced := m.reduced[:r]
	clear(reduced)
	for _, a := range m.axes {
		if a < 0 {
			a += int64(r)
		}
		if a < 0 || int(a) >= r {
			return fmt.Errorf("interp: %s: axis %d out of range", c.Node, a)
		}
		reduced[a] = true
	}
	xd, err := m.in.get(x)
	if err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	y, err := c.Out(0, x.DType, x.Shape)
	if err != nil {
		return err
	}
	yd := m.out.get(y)
	keys, cnt := 1, 1
	for i, d := range x.Shape {
		if reduced[i] {
			cnt *= int(d)
		} else {
			keys *= int(d)
		}
	}
	if cap(m.sum) < keys {
		m.sum, m.sq = make([]float64, keys), make([]float64, keys)
	}
	sum, sq := m.sum[:keys], m.sq[:keys]
	clear(sum)
	clear(sq)
	key := func(j int) int {
		k, mul := 0, 1
		for i := r - 1; i >= 0; i-- {
			d := int(x.Shape[i])
			cc := j % d
			j /= d
			if !reduced[i] {
				k += cc * mul
				mul *= d
			}
		}
		return k
	}
	for j, v := range xd {
		k := key(j)
		sum[k] += float64(v)
		sq[k] += float64(v) * float64(v)
	}
	for j, v := range xd {
		k := key(j)
		mean := sum[k] / float64(cnt)
		vr := sq[k]/float64(cnt) - mean*mean
		yd[j] = float32((float64(v) - mean) / (math.Sqrt(max(vr, 0)) + 1e-9))
	}
	m.out.done(y, yd)
	return nil
}
