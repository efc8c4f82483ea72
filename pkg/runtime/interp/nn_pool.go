package interp

import (
	"fmt"
	"math"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Pooling: MaxPool (with Indices), AveragePool (count_include_pad),
// LpPool, over 1-D to 6-D windows with strides, dilations, pads, auto_pad
// and ceil_mode; and the global pools.

func init() {
	Register("", "MaxPool", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return nnBuildPool(n, bc, nnPoolMax) })
	Register("", "AveragePool", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return nnBuildPool(n, bc, nnPoolAvg) })
	Register("", "LpPool", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return nnBuildPool(n, bc, nnPoolLp) })
	Register("", "GlobalAveragePool", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return nnBuildGlobalPool(n, nnPoolAvg) })
	Register("", "GlobalMaxPool", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return nnBuildGlobalPool(n, nnPoolMax) })
	Register("", "GlobalLpPool", func(n *graph.Node, bc *BuildContext) (Kernel, error) { return nnBuildGlobalPool(n, nnPoolLp) })
}

type nnPoolKind int

const (
	nnPoolMax nnPoolKind = iota
	nnPoolAvg
	nnPoolLp
)

type nnPool struct {
	kind         nnPoolKind
	win          nnWindow
	includePad   bool
	p            float64
	storageOrder int64
	geo          nnGeom
	shape        []int64
	xbuf, ybuf   []float32
	workFn       func(lo, hi int)
	wx, wy       []float32
	widx         []int64
}

func nnBuildPool(n *graph.Node, bc *BuildContext, kind nnPoolKind) (Kernel, error) {
	win, err := nnParseWindow(n)
	if err != nil {
		return nil, err
	}
	if win.kernel == nil {
		return nil, fmt.Errorf("kernel_shape is required")
	}
	if kind != nnPoolMax && kind != nnPoolAvg && win.ceil && bc.Opset < 18 {
		win.ceil = false
	}
	pl := &nnPool{kind: kind, win: win, includePad: n.AttrInt("count_include_pad", 0) != 0,
		p: float64(n.AttrInt("p", 2)), storageOrder: n.AttrInt("storage_order", 0)}
	if kind == nnPoolLp && bc.Opset < 2 {
		pl.p = float64(n.AttrFloat("p", 2))
	}
	if pl.p <= 0 {
		return nil, fmt.Errorf("p %v must be positive", pl.p)
	}
	return pl.run, nil
}

// nnLoadAny returns t's values as float32 for float and small integer
// dtypes (exact for 8/16-bit integers).
func nnLoadAny(t *runtime.Tensor, buf []float32) ([]float32, []float32, error) {
	switch t.DType {
	case graph.Uint8, graph.Int8, graph.Int16, graph.Uint16, graph.Int32:
		n := t.Len()
		if cap(buf) < n {
			buf = make([]float32, n)
		}
		buf = buf[:n]
		for i := range buf {
			buf[i] = float32(nnIntAt(t, i))
		}
		return buf, buf, nil
	}
	return nnToF32(t, buf)
}

func nnStoreAny(dst *runtime.Tensor, src []float32) {
	switch dst.DType {
	case graph.Uint8, graph.Int8, graph.Int16, graph.Uint16, graph.Int32:
		for i, v := range src {
			nnSetInt(dst, i, int64(v))
		}
		return
	}
	nnFromF32(dst, src)
}

func (pl *nnPool) run(c *Call) error {
	x := c.In[0]
	if x == nil || len(x.Shape) < 3 {
		return fmt.Errorf("interp: %s: X must have rank ≥ 3", c.Node)
	}
	if pl.kind != nnPoolMax && !nnIsFloatish(x.DType) {
		return unsupportedf("interp: %s: dtype %s is not supported", c.Node, x.DType)
	}
	if err := pl.win.geom(&pl.geo, x.Shape[2:], pl.win.kernel); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	g := &pl.geo
	pl.shape = nnShapeWith(pl.shape, x.Shape[:2], g)
	if err := nnCheckSize("output", pl.shape); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	y, err := c.Out(0, x.DType, pl.shape)
	if err != nil {
		return err
	}
	var idx []int64
	if c.HasOutput(1) {
		if pl.kind != nnPoolMax {
			return fmt.Errorf("interp: %s: only MaxPool has a second output", c.Node)
		}
		it, err := c.Out(1, graph.Int64, pl.shape)
		if err != nil {
			return err
		}
		idx = it.Int64s()
	}
	var xd, yd []float32
	if xd, pl.xbuf, err = nnLoadAny(x, pl.xbuf); err != nil {
		return fmt.Errorf("interp: %s: %w", c.Node, err)
	}
	if x.DType == graph.Float {
		yd = y.Float32s()
	} else {
		if cap(pl.ybuf) < y.Len() {
			pl.ybuf = make([]float32, y.Len())
		}
		yd = pl.ybuf[:y.Len()]
	}
	planes := int(x.Shape[0] * x.Shape[1])
	if pl.workFn == nil {
		pl.workFn = func(lo, hi int) { pl.planes(lo, hi) }
	}
	pl.wx, pl.wy, pl.widx = xd, yd, idx
	if planes*g.outSize()*g.kSize() < 1<<15 || c.Threads() <= 1 {
		pl.workFn(0, planes)
	} else {
		c.Parallel(planes, pl.workFn)
	}
	pl.wx, pl.wy, pl.widx = nil, nil, nil
	if x.DType != graph.Float {
		nnStoreAny(y, yd)
	}
	return nil
}

func (pl *nnPool) planes(lo, hi int) {
	inSz, outSz := pl.geo.inSize(), pl.geo.outSize()
	var buf [512]float32 // perfMaxPlane2D's row buffer: zeroed once per chunk, not per plane
	for p := lo; p < hi; p++ {
		var ip []int64
		if pl.widx != nil {
			ip = pl.widx[p*outSz : (p+1)*outSz]
		}
		pl.plane(pl.wx[p*inSz:(p+1)*inSz], pl.wy[p*outSz:(p+1)*outSz], ip, p*inSz, buf[:])
	}
}

// plane pools one (n, c) plane. base is the plane's flat offset in X (for
// Indices); buf is scratch for perfMaxPlane2D.
func (pl *nnPool) plane(x, y []float32, idx []int64, base int, buf []float32) {
	g := &pl.geo
	nd := g.nd
	if nd == 2 && g.d[0] == 1 && g.d[1] == 1 && pl.kind == nnPoolMax && idx == nil && perfPoolOn && g.k[0] > 1 && g.in[1] <= len(buf) {
		perfMaxPlane2D(g, x, y, buf)
		return
	}
	if nd == 2 && g.d[0] == 1 && g.d[1] == 1 && pl.kind != nnPoolLp {
		pl.plane2D(x, y, idx, base)
		return
	}
	var oc, kc [nnMaxND]int
	for j := range y {
		q := j
		for i := nd - 1; i >= 0; i-- {
			oc[i] = q % g.out[i]
			q /= g.out[i]
		}
		for i := 0; i < nd; i++ {
			kc[i] = 0
		}
		var acc float64
		best := float32(math.Inf(-1))
		bestIdx := -1
		count, countPad := 0, 0
		for {
			inside, inPad := true, true
			flat := 0
			for i := 0; i < nd; i++ {
				p := oc[i]*g.s[i] + kc[i]*g.d[i] - g.pb[i]
				if p < 0 || p >= g.in[i] {
					inside = false
					if p < -g.pb[i] || p >= g.in[i]+g.pe[i] {
						inPad = false
					}
				}
				flat = flat*g.in[i] + p
			}
			if inPad {
				countPad++
			}
			if inside {
				v := x[flat]
				count++
				switch pl.kind {
				case nnPoolMax:
					if v > best || bestIdx < 0 && v == best {
						best, bestIdx = v, flat
					}
				case nnPoolAvg:
					acc += float64(v)
				case nnPoolLp:
					acc += math.Pow(math.Abs(float64(v)), pl.p)
				}
			}
			// next kernel position
			i := nd - 1
			for ; i >= 0; i-- {
				kc[i]++
				if kc[i] < g.k[i] {
					break
				}
				kc[i] = 0
			}
			if i < 0 {
				break
			}
		}
		switch pl.kind {
		case nnPoolMax:
			y[j] = best
			if idx != nil {
				if bestIdx < 0 {
					idx[j] = -1
					continue
				}
				f := bestIdx
				if pl.storageOrder == 1 {
					// column-major spatial index
					var pc [nnMaxND]int
					q := f
					for i := nd - 1; i >= 0; i-- {
						pc[i] = q % g.in[i]
						q /= g.in[i]
					}
					f = 0
					for i := nd - 1; i >= 0; i-- {
						f = f*g.in[i] + pc[i]
					}
				}
				idx[j] = int64(base + f)
			}
		case nnPoolAvg:
			div := count
			if pl.includePad {
				div = countPad
			}
			if div == 0 {
				y[j] = 0
			} else {
				y[j] = float32(acc / float64(div))
			}
		case nnPoolLp:
			y[j] = float32(math.Pow(acc, 1/pl.p))
		}
	}
}

type nnGlobalPool struct {
	kind       nnPoolKind
	p          float64
	shape      []int64
	xbuf, ybuf []float32
}

func nnBuildGlobalPool(n *graph.Node, kind nnPoolKind) (Kernel, error) {
	gp := &nnGlobalPool{kind: kind, p: float64(n.AttrInt("p", 2))}
	if gp.p <= 0 {
		return nil, fmt.Errorf("p %v must be positive", gp.p)
	}
	return gp.run, nil
}

func (gp *nnGlobalPool) run(c *Call) error {
	x := c.In[0]
	if x == nil || len(x.Shape) < 2 {
		return fmt.Errorf("interp: %s: X must have rank ≥ 2", c.Node)
	}
	if !nnIsFloatish(x.DType) {
		return unsupportedf("interp: %s: dtype %s is not supported", c.Node, x.DType)
	}
	gp.shape = append(gp.shape[:0], x.Shape[:2]...)
	for range x.Shape[2:] {
		gp.shape = append(gp.shape, 1)
	}
	y, err := c.Out(0, x.DType, gp.shape)
	if err != nil {
		return err
	}
	var xd, yd []float32
	if xd, gp.xbuf, err = nnToF32(x, gp.xbuf); err != nil {
		return err
	}
	if x.DType == graph.Float {
		yd = y.Float32s()
	} else {
		if cap(gp.ybuf) < y.Len() {
			gp.ybuf = make([]float32, y.Len())
		}
		yd = gp.ybuf[:y.Len()]
	}
	planes := int(x.Shape[0] * x.Shape[1])
	sz := nnNumel(x.Shape[2:])
	for p := 0; p < planes; p++ {
		src := xd[p*sz : (p+1)*sz]
		switch gp.kind {
		case nnPoolAvg:
			s := perfSum(src)
			if sz > 0 {
				yd[p] = s / float32(sz)
			} else {
				yd[p] = float32(math.NaN())
			}
		case nnPoolMax:
			m := float32(math.Inf(-1))
			for _, v := range src {
				m = max(m, v)
			}
			yd[p] = m
		case nnPoolLp:
			var s float64
			for _, v := range src {
				s += math.Pow(math.Abs(float64(v)), gp.p)
			}
			yd[p] = float32(math.Pow(s, 1/gp.p))
		}
	}
	if x.DType != graph.Float {
		nnFromF32(y, yd)
	}
	return nil
}

// plane2D is plane for 2-D windows without dilation: the window is a
// rectangle clipped to the input.
func (pl *nnPool) plane2D(x, y []float32, idx []int64, base int) {
	g := &pl.geo
	H, W, OH, OW := g.in[0], g.in[1], g.out[0], g.out[1]
	KH, KW := g.k[0], g.k[1]
	for oh := 0; oh < OH; oh++ {
		h0 := oh*g.s[0] - g.pb[0]
		hlo, hhi := max(h0, 0), min(h0+KH, H)
		for ow := 0; ow < OW; ow++ {
			w0 := ow*g.s[1] - g.pb[1]
			wlo, whi := max(w0, 0), min(w0+KW, W)
			j := oh*OW + ow
			if pl.kind == nnPoolMax && idx == nil {
				// No indices wanted: a plain running max (NaN never wins,
				// an empty or all-NaN window gives -Inf, as below).
				// Branch-free max (the builtin propagates NaN; a NaN
				// result is redone with the NaN-skipping loop).
				best := float32(math.Inf(-1))
				for h := hlo; h < hhi && wlo < whi; h++ {
					for _, v := range x[h*W+wlo : h*W+whi] {
						best = max(best, v)
					}
				}
				if best != best {
					best = float32(math.Inf(-1))
					for h := hlo; h < hhi && wlo < whi; h++ {
						for _, v := range x[h*W+wlo : h*W+whi] {
							if v > best {
								best = v
							}
						}
					}
				}
				y[j] = best
				continue
			}
			if pl.kind == nnPoolMax {
				best := float32(math.Inf(-1))
				bi := -1
				for h := hlo; h < hhi; h++ {
					row := x[h*W : (h+1)*W]
					for w := wlo; w < whi; w++ {
						if v := row[w]; v > best || bi < 0 && v == best {
							best, bi = v, h*W+w
						}
					}
				}
				y[j] = best
				if idx != nil {
					switch {
					case bi < 0:
						idx[j] = -1
					case pl.storageOrder == 1:
						idx[j] = int64(base + (bi%W)*H + bi/W)
					default:
						idx[j] = int64(base + bi)
					}
				}
				continue
			}
			var acc float32
			for h := hlo; h < hhi; h++ {
				for _, v := range x[h*W+wlo : h*W+whi] {
					acc += v
				}
			}
			cnt := max(hhi-hlo, 0) * max(whi-wlo, 0)
			if pl.includePad {
				ph := min(h0+KH, H+g.pe[0]) - max(h0, -g.pb[0])
				pw := min(w0+KW, W+g.pe[1]) - max(w0, -g.pb[1])
				cnt = ph * pw
			}
			if cnt > 0 {
				y[j] = acc / float32(cnt)
			} else {
				y[j] = 0
			}
		}
	}
}
