package prune

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Reconstruction after structured pruning (He et al. 2017, "Channel
// Pruning for Accelerating Very Deep Neural Networks"; Luo et al. 2017,
// ThiNet): a Conv whose input channels were removed computes
// X_pruned W' + b' instead of X_full W + b. Its weights are re-fitted by
// least squares on calibration activations,
//
//	min ||[X_pruned 1] [W'; b'] - (X_full W + b)||² + λ ||[W'; b'] - [W_s; b]||²
//
// one output channel per column, where X are im2col rows of the layer's
// input sampled at random output positions, X_pruned comes from the pruned
// model with every earlier fix applied (so later layers compensate earlier
// error) and W_s is the sliced weight (the ridge pulls toward it). The
// normal equations are solved by Cholesky. A BatchNormalization whose input
// drifted (and that does not directly follow a re-fitted Conv) gets its
// running mean and variance corrected by the drift measured on the
// calibration data: the statistics the model was trained with are kept and
// only shifted and scaled by what pruning changed.

// ReconOptions configure Reconstruct.
type ReconOptions struct {
	// Backend runs the models to collect activations ("interp" when empty).
	Backend string
	// MaxRows bounds the im2col rows sampled per layer (4096 when 0).
	MaxRows int
	// Ridge is the ridge term relative to the mean diagonal of XᵀX (1e-3
	// when 0).
	Ridge float64
	// Seed seeds the row sampling.
	Seed int64
}

// ReconLayer is one fix Reconstruct applied.
type ReconLayer struct {
	Node string `json:"node"`
	// Kind is "least-squares" (Conv weights and bias re-fitted), "bias"
	// (only the Conv bias corrected: too few rows for a full fit, or a Conv
	// downstream of the pruning whose input channels were kept) or
	// "batchnorm" (running statistics corrected).
	Kind string `json:"kind"`
	// Rows is the number of calibration rows (least-squares) or values per
	// channel (batchnorm) the fix used.
	Rows int `json:"rows"`
	// ErrBefore/ErrAfter (least-squares) are the layer's relative output
	// error ||Y_pruned - Y_full|| / ||Y_full|| on the calibration rows
	// before and after the fit.
	ErrBefore float64 `json:"err_before,omitempty"`
	ErrAfter  float64 `json:"err_after,omitempty"`
	// MeanShift (batchnorm) is the largest |mean shift| / std corrected.
	MeanShift float64 `json:"mean_shift,omitempty"`
	Note      string  `json:"note,omitempty"`
}

// ReconReport says what Reconstruct did.
type ReconReport struct {
	Samples int          `json:"samples"`
	Layers  []ReconLayer `json:"layers"`
	Skipped []Skip       `json:"skipped,omitempty"`
}

type fix struct {
	idx   int
	kind  string // "ls" or "bn"
	outCh []int  // original output channels the pruned node keeps (nil: all)
}

// Reconstruct re-fits the layers of pruned (the result of a structured
// Prune of orig that returned rep) on the calibration samples calib, in
// place, and records what it did in rep.Reconstruction. On error pruned may
// be partly reconstructed; callers work on a clone.
func Reconstruct(orig, pruned *graph.Model, rep *Report, calib [][]*runtime.Tensor, o ReconOptions) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("prune: internal error in reconstruction: %v", r)
		}
	}()
	if rep == nil || rep.Mode != Structured {
		return fmt.Errorf("prune: reconstruction needs a structured prune report")
	}
	if len(calib) == 0 {
		return fmt.Errorf("prune: reconstruction needs calibration samples")
	}
	if o.Backend == "" {
		o.Backend = "interp"
	}
	if o.MaxRows <= 0 {
		o.MaxRows = 4096
	}
	if o.Ridge <= 0 {
		o.Ridge = 1e-3
	}
	og, pg := orig.Graph, pruned.Graph
	if len(og.Nodes) != len(pg.Nodes) {
		return fmt.Errorf("prune: reconstruction: the pruned model has %d nodes, the original %d", len(pg.Nodes), len(og.Nodes))
	}
	rr := &ReconReport{Samples: len(calib)}
	rep.Reconstruction = rr
	var fixes []fix
	refitted := map[string]bool{} // outputs of re-fitted convs
	first := -1
	for i, pn := range pg.Nodes {
		on := og.Nodes[i]
		if pn.OpType != on.OpType || pn.Domain != on.Domain {
			return fmt.Errorf("prune: reconstruction: node %d is %s in the pruned model and %s in the original", i, pn, on)
		}
		switch {
		case pn.Is("Conv"):
			if _, ok := rep.sliced[[3]int{i, 1, 1}]; !ok || pn.AttrInt("group", 1) != 1 {
				// Not re-fitted: downstream of a change, its bias absorbs
				// the mean drift of its output.
				if first >= 0 && len(pn.Inputs) > 1 && getConst(pg, pn.Inputs[1]) != nil && (len(pn.Inputs) < 3 || pn.Inputs[2] == "" || getConst(pg, pn.Inputs[2]) != nil) {
					fixes = append(fixes, fix{idx: i, kind: "bias", outCh: rep.sliced[[3]int{i, 1, 0}]})
				}
				continue
			}
			why := convUnsupported(on, getConst(og, on.Inputs[1]))
			if why == "" && len(on.Inputs) > 2 && on.Inputs[2] != "" && getConst(og, on.Inputs[2]) == nil {
				why = fmt.Sprintf("%s: the bias is not a constant", on)
			}
			if why != "" {
				rr.Skipped = append(rr.Skipped, Skip{Nodes: []string{pn.Name}, Reason: why})
				continue
			}
			fixes = append(fixes, fix{idx: i, kind: "ls", outCh: rep.sliced[[3]int{i, 1, 0}]})
			refitted[pn.Outputs[0]] = true
			if first < 0 {
				first = i
			}
		case pn.Is("Gemm") || pn.Is("MatMul"):
			in, out := 0, 1
			if pn.Is("Gemm") {
				in = int(pn.AttrInt("transB", 0))
				out = 1 - in
			}
			if _, ok := rep.sliced[[3]int{i, 1, in}]; !ok {
				continue
			}
			if pn.Is("Gemm") && (pn.AttrInt("transA", 0) != 0 || pn.AttrFloat("alpha", 1) != 1 || pn.AttrFloat("beta", 1) != 1) {
				rr.Skipped = append(rr.Skipped, Skip{Nodes: []string{pn.Name}, Reason: fmt.Sprintf("%s: only Gemm with transA 0, alpha 1 and beta 1 is re-fitted", pn)})
				continue
			}
			fixes = append(fixes, fix{idx: i, kind: "dense", outCh: rep.sliced[[3]int{i, 1, out}]})
			refitted[pn.Outputs[0]] = true
			if first < 0 {
				first = i
			}
		case pn.Is("BatchNormalization"):
			if first < 0 || refitted[pn.Inputs[0]] || len(pn.Inputs) != 5 {
				continue
			}
			fixes = append(fixes, fix{idx: i, kind: "bn", outCh: rep.sliced[[3]int{i, 1, 0}]})
		}
	}
	if len(fixes) == 0 {
		return nil
	}
	value := func(n *graph.Node, f fix) string {
		if f.kind == "bias" {
			return n.Outputs[0]
		}
		return n.Inputs[0]
	}
	var names []string
	for _, f := range fixes {
		names = append(names, value(og.Nodes[f.idx], f))
	}
	ref, err := collectValues(orig, names, calib, o.Backend)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewSource(o.Seed + 1))
	for _, f := range fixes {
		pn, on := pg.Nodes[f.idx], og.Nodes[f.idx]
		cur, err := collectValues(pruned, []string{value(pn, f)}, calib, o.Backend)
		if err != nil {
			return err
		}
		xo, xp := ref[value(on, f)], cur[value(pn, f)]
		var l ReconLayer
		switch f.kind {
		case "ls":
			l, err = refitConv(pruned, on, pn, og, xo, xp, f.outCh, o, rng)
		case "bn":
			l, err = correctBN(pruned, pn, xo, xp, f.outCh)
		case "dense":
			l, err = refitDense(pruned, on, pn, og, xo, xp, f.outCh, o, rng)
		default:
			l, err = correctBias(pruned, pn, xo, xp, f.outCh)
		}
		if err != nil {
			return fmt.Errorf("prune: reconstruction of %s: %w", pn, err)
		}
		if l.Node == "" {
			continue
		}
		rr.Layers = append(rr.Layers, l)
	}
	syncWeightInputs(pruned)
	return nil
}

// convUnsupported says why a Conv cannot be re-fitted ("" when it can).
func convUnsupported(n *graph.Node, w *graph.Tensor) string {
	if w == nil || w.DType != graph.Float || len(w.Dims) != 4 {
		return fmt.Sprintf("%s: only 2-D float convolutions with a constant weight are re-fitted", n)
	}
	switch ap := n.AttrString("auto_pad", "NOTSET"); ap {
	case "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER", "":
	default:
		return fmt.Sprintf("%s: auto_pad %q", n, ap)
	}
	return ""
}

// collectValues runs m with names added as outputs and returns each name's
// value per sample.
func collectValues(m *graph.Model, names []string, calib [][]*runtime.Tensor, backend string) (map[string][]*runtime.Tensor, error) {
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	c := m.Clone()
	g := c.Graph
	for _, n := range names {
		if !g.IsGraphOutput(n) {
			g.Outputs = append(g.Outputs, &graph.ValueInfo{Name: n, DType: graph.Float, HasType: true})
		}
	}
	s, err := runtime.Open(backend, c, runtime.Options{Threads: 1})
	if err != nil {
		return nil, fmt.Errorf("prune: calibration session (%s): %w", backend, err)
	}
	defer s.Close()
	idx := map[string]int{}
	for i, o := range s.Outputs() {
		idx[o.Name] = i
	}
	out := map[string][]*runtime.Tensor{}
	for k, in := range calib {
		if err := runtime.CheckInputs(s.Inputs(), in); err != nil {
			return nil, fmt.Errorf("prune: calibration sample %d: %w", k, err)
		}
		res, err := s.Run(context.Background(), in)
		if err != nil {
			return nil, fmt.Errorf("prune: calibration sample %d: %w", k, err)
		}
		for _, n := range names {
			t := res[idx[n]]
			if t.DType != graph.Float {
				return nil, fmt.Errorf("prune: calibration value %q is %s, not float", n, t.DType)
			}
			out[n] = append(out[n], t.Clone())
		}
	}
	return out, nil
}

// convGeom is a 2-D convolution's geometry for one input shape.
type convGeom struct {
	kh, kw, sh, sw, dh, dw, pt, pl, oh, ow int
}

func geometry(n *graph.Node, w *graph.Tensor, h, wd int) (convGeom, error) {
	g := convGeom{kh: int(w.Dims[2]), kw: int(w.Dims[3]), sh: 1, sw: 1, dh: 1, dw: 1}
	if s := n.AttrInts("strides"); len(s) == 2 {
		g.sh, g.sw = int(s[0]), int(s[1])
	}
	if d := n.AttrInts("dilations"); len(d) == 2 {
		g.dh, g.dw = int(d[0]), int(d[1])
	}
	ekh, ekw := (g.kh-1)*g.dh+1, (g.kw-1)*g.dw+1
	var pb, pr int
	switch ap := n.AttrString("auto_pad", "NOTSET"); ap {
	case "SAME_UPPER", "SAME_LOWER":
		g.oh, g.ow = (h+g.sh-1)/g.sh, (wd+g.sw-1)/g.sw
		th := max(0, (g.oh-1)*g.sh+ekh-h)
		tw := max(0, (g.ow-1)*g.sw+ekw-wd)
		g.pt, g.pl = th/2, tw/2
		if ap == "SAME_LOWER" {
			g.pt, g.pl = th-th/2, tw-tw/2
		}
		return g, nil
	case "VALID":
	default:
		if p := n.AttrInts("pads"); len(p) == 4 {
			g.pt, g.pl, pb, pr = int(p[0]), int(p[1]), int(p[2]), int(p[3])
		}
	}
	g.oh = (h+g.pt+pb-ekh)/g.sh + 1
	g.ow = (wd+g.pl+pr-ekw)/g.sw + 1
	if g.sh < 1 || g.sw < 1 || g.oh < 1 || g.ow < 1 {
		return g, fmt.Errorf("bad geometry for input %dx%d", h, wd)
	}
	return g, nil
}

// row writes the im2col row of x (one sample [C,H,W]) at output (oy, ox).
func (g convGeom) row(dst []float64, x []float32, c, h, w, oy, ox int) {
	k := 0
	for ci := 0; ci < c; ci++ {
		base := ci * h * w
		for i := 0; i < g.kh; i++ {
			y := oy*g.sh - g.pt + i*g.dh
			for j := 0; j < g.kw; j++ {
				xx := ox*g.sw - g.pl + j*g.dw
				if y >= 0 && y < h && xx >= 0 && xx < w {
					dst[k] = float64(x[base+y*w+xx])
				} else {
					dst[k] = 0
				}
				k++
			}
		}
	}
}

// refitConv solves the ridge least-squares problem for one Conv.
func refitConv(pm *graph.Model, on, pn *graph.Node, og *graph.Graph, xo, xp []*runtime.Tensor, outCh []int, o ReconOptions, rng *rand.Rand) (ReconLayer, error) {
	pg := pm.Graph
	wo, wp := getConst(og, on.Inputs[1]), getConst(pg, pn.Inputs[1])
	if wp == nil || len(wp.Dims) != 4 {
		return ReconLayer{}, fmt.Errorf("weight %q is not a constant 4-D tensor", pn.Inputs[1])
	}
	wov, err := wo.Float32s()
	if err != nil {
		return ReconLayer{}, err
	}
	wpv, err := wp.Float32s()
	if err != nil {
		return ReconLayer{}, err
	}
	var bo, bp []float32
	if len(on.Inputs) > 2 && on.Inputs[2] != "" {
		t := getConst(og, on.Inputs[2])
		if t == nil {
			return ReconLayer{}, fmt.Errorf("bias %q is not a constant", on.Inputs[2])
		}
		if bo, err = t.Float32s(); err != nil {
			return ReconLayer{}, err
		}
		if t := getConst(pg, pn.Inputs[2]); t != nil {
			if bp, err = t.Float32s(); err != nil {
				return ReconLayer{}, err
			}
		}
	}
	co, c, kh, kw := int(wo.Dims[0]), int(wo.Dims[1]), int(wo.Dims[2]), int(wo.Dims[3])
	cop, cp := int(wp.Dims[0]), int(wp.Dims[1])
	if outCh == nil {
		outCh = make([]int, co)
		for i := range outCh {
			outCh[i] = i
		}
	}
	if len(outCh) != cop {
		return ReconLayer{}, fmt.Errorf("output channel map has %d entries, weight %d", len(outCh), cop)
	}
	if bp == nil {
		bp = make([]float32, cop)
	}
	if bo == nil {
		bo = make([]float32, co)
	}
	ko, kp := c*kh*kw, cp*kh*kw+1 // +1: bias column
	type pos struct{ s, y, x int }
	var geo []convGeom
	total := 0
	for s := range xo {
		if len(xo[s].Shape) != 4 || len(xp[s].Shape) != 4 || xo[s].Shape[1] != int64(c) || xp[s].Shape[1] != int64(cp) || xo[s].Shape[2] != xp[s].Shape[2] || xo[s].Shape[3] != xp[s].Shape[3] {
			return ReconLayer{}, fmt.Errorf("input shapes %v (original) and %v (pruned) do not match the weights", xo[s].Shape, xp[s].Shape)
		}
		g, err := geometry(on, wo, int(xo[s].Shape[2]), int(xo[s].Shape[3]))
		if err != nil {
			return ReconLayer{}, err
		}
		geo = append(geo, g)
		total += int(xo[s].Shape[0]) * g.oh * g.ow
	}
	rows := min(o.MaxRows, total)
	picks := make([]pos, 0, rows)
	for len(picks) < rows {
		s := rng.Intn(len(xo))
		n := int(xo[s].Shape[0])
		g := geo[s]
		r := rng.Intn(n * g.oh * g.ow)
		picks = append(picks, pos{s, r / g.ow, r % g.ow}) // y carries the batch index too
	}
	A := make([]float64, kp*kp)
	B := make([]float64, kp*cop)
	yy := make([]float64, cop)
	ro, rp := make([]float64, ko), make([]float64, kp)
	y := make([]float64, cop)
	for _, p := range picks {
		g := geo[p.s]
		h, w := int(xo[p.s].Shape[2]), int(xo[p.s].Shape[3])
		b, oy := p.y/g.oh, p.y%g.oh
		fo := xo[p.s].Float32s()[b*c*h*w : (b+1)*c*h*w]
		fp := xp[p.s].Float32s()[b*cp*h*w : (b+1)*cp*h*w]
		g.row(ro, fo, c, h, w, oy, p.x)
		g.row(rp[:kp-1], fp, cp, h, w, oy, p.x)
		rp[kp-1] = 1
		for j, oc := range outCh {
			s := float64(bo[oc])
			wr := wov[oc*ko : (oc+1)*ko]
			for k, v := range ro {
				s += float64(wr[k]) * v
			}
			y[j] = s
			yy[j] += s * s
		}
		for i, vi := range rp {
			if vi == 0 {
				continue
			}
			ai := A[i*kp : (i+1)*kp]
			for k := i; k < kp; k++ {
				ai[k] += vi * rp[k]
			}
			bi := B[i*cop : (i+1)*cop]
			for j, v := range y {
				bi[j] += vi * v
			}
		}
	}
	for i := 0; i < kp; i++ {
		for k := 0; k < i; k++ {
			A[i*kp+k] = A[k*kp+i]
		}
	}
	// Current solution W0 (kp x cop): the sliced weight and bias.
	W0 := make([]float64, kp*cop)
	for j := 0; j < cop; j++ {
		for k := 0; k < kp-1; k++ {
			W0[k*cop+j] = float64(wpv[j*(kp-1)+k])
		}
		W0[(kp-1)*cop+j] = float64(bp[j])
	}
	l := ReconLayer{Node: pn.Name, Kind: "least-squares", Rows: rows}
	if l.Node == "" {
		l.Node = pn.Outputs[0]
	}
	R, err := lsSolve(&l, A, B, yy, W0, kp, cop, true, o.Ridge)
	if err != nil || R == nil {
		return l, err
	}
	if l.Kind == "bias" {
		nb := make([]float32, cop)
		for j := range nb {
			nb[j] = float32(R[(kp-1)*cop+j])
		}
		putConst(pm, pn, 2, graph.NewFloat32(pn.Inputs[1]+".bias", []int64{int64(cop)}, nb))
		return l, nil
	}
	nw := make([]float32, cop*(kp-1))
	nb := make([]float32, cop)
	for j := 0; j < cop; j++ {
		for k := 0; k < kp-1; k++ {
			nw[j*(kp-1)+k] = float32(R[k*cop+j])
		}
		nb[j] = float32(R[(kp-1)*cop+j])
	}
	putConst(pm, pn, 1, graph.NewFloat32(wp.Name, append([]int64(nil), wp.Dims...), nw))
	putConst(pm, pn, 2, graph.NewFloat32(pn.Inputs[1]+".bias", []int64{int64(cop)}, nb))
	return l, nil
}

// putConst makes input i of n the constant t: in place when n is the only
// reader of the current value, else as a new initializer (appending the
// input when n does not have it).
func putConst(m *graph.Model, n *graph.Node, i int, t *graph.Tensor) {
	g := m.Graph
	if i < len(n.Inputs) && n.Inputs[i] != "" {
		name := n.Inputs[i]
		uses := 0
		for _, x := range g.Nodes {
			for _, in := range x.Inputs {
				if in == name {
					uses++
				}
			}
		}
		if uses == 1 && !g.IsGraphOutput(name) && getConst(g, name) != nil {
			t.Name = name
			setConst(g, name, t)
			return
		}
	}
	t.Name = g.UniqueName(strings.TrimSuffix(t.Name, ".bias") + ".refit")
	if i == 2 {
		t.Name = g.UniqueName(n.Inputs[1] + ".refit_bias")
	}
	g.Initializers = append(g.Initializers, t)
	for len(n.Inputs) <= i {
		n.Inputs = append(n.Inputs, "")
	}
	n.Inputs[i] = t.Name
}

// correctBN shifts and scales a BatchNormalization's running statistics by
// the drift of its input between the original (xo) and pruned (xp) models.
func correctBN(pm *graph.Model, pn *graph.Node, xo, xp []*runtime.Tensor, outCh []int) (ReconLayer, error) {
	pg := pm.Graph
	mt, vt := getConst(pg, pn.Inputs[3]), getConst(pg, pn.Inputs[4])
	if mt == nil || vt == nil || mt.DType != graph.Float || vt.DType != graph.Float {
		return ReconLayer{}, nil
	}
	mean, err := mt.Float32s()
	if err != nil {
		return ReconLayer{}, err
	}
	vr, err := vt.Float32s()
	if err != nil {
		return ReconLayer{}, err
	}
	cp := len(mean)
	if len(vr) != cp {
		return ReconLayer{}, fmt.Errorf("mean and variance have %d and %d channels", cp, len(vr))
	}
	eps := float64(pn.AttrFloat("epsilon", 1e-5))
	co := 0
	if len(xo) > 0 && len(xo[0].Shape) >= 2 {
		co = int(xo[0].Shape[1])
	}
	if outCh == nil {
		if co != cp {
			return ReconLayer{}, nil
		}
		outCh = make([]int, cp)
		for i := range outCh {
			outCh[i] = i
		}
	}
	nm, nv := make([]float32, cp), make([]float32, cp)
	shift, rows := 0.0, 0
	for j, oc := range outCh {
		mo, vo, n := channelStats(xo, oc, co)
		mp, vp, _ := channelStats(xp, j, cp)
		if n == 0 {
			return ReconLayer{}, nil
		}
		rows = n
		r2 := 1.0
		if vo > 1e-12 {
			r2 = math.Min(math.Max(vp/vo, 1.0/16), 16)
		}
		r := math.Sqrt(r2)
		nm[j] = float32(mp + r*(float64(mean[j])-mo))
		nv[j] = float32(math.Max(r2*(float64(vr[j])+eps)-eps, 0))
		if sd := math.Sqrt(float64(vr[j]) + eps); sd > 0 {
			shift = math.Max(shift, math.Abs(float64(nm[j])-float64(mean[j]))/sd)
		}
	}
	putConst(pm, pn, 3, graph.NewFloat32(pn.Inputs[3], append([]int64(nil), mt.Dims...), nm))
	putConst(pm, pn, 4, graph.NewFloat32(pn.Inputs[4], append([]int64(nil), vt.Dims...), nv))
	name := pn.Name
	if name == "" {
		name = pn.Outputs[0]
	}
	return ReconLayer{Node: name, Kind: "batchnorm", Rows: rows, MeanShift: shift}, nil
}

// cholSolve solves M X = R in place (M n×n symmetric positive definite,
// R n×m, row-major; X replaces R).
func cholSolve(M, R []float64, n, m int) error {
	for j := 0; j < n; j++ {
		s := M[j*n+j]
		for k := 0; k < j; k++ {
			s -= M[j*n+k] * M[j*n+k]
		}
		if s <= 0 || math.IsNaN(s) {
			return fmt.Errorf("normal equations are not positive definite (pivot %d)", j)
		}
		d := math.Sqrt(s)
		M[j*n+j] = d
		for i := j + 1; i < n; i++ {
			s := M[i*n+j]
			for k := 0; k < j; k++ {
				s -= M[i*n+k] * M[j*n+k]
			}
			M[i*n+j] = s / d
		}
	}
	// L Z = R, then Lᵀ X = Z.
	for i := 0; i < n; i++ {
		for k := 0; k < i; k++ {
			l := M[i*n+k]
			if l == 0 {
				continue
			}
			for c := 0; c < m; c++ {
				R[i*m+c] -= l * R[k*m+c]
			}
		}
		for c := 0; c < m; c++ {
			R[i*m+c] /= M[i*n+i]
		}
	}
	for i := n - 1; i >= 0; i-- {
		for k := i + 1; k < n; k++ {
			l := M[k*n+i]
			if l == 0 {
				continue
			}
			for c := 0; c < m; c++ {
				R[i*m+c] -= l * R[k*m+c]
			}
		}
		for c := 0; c < m; c++ {
			R[i*m+c] /= M[i*n+i]
		}
	}
	return nil
}

// correctBias shifts the bias of a Conv that was not re-fitted by the mean
// drift of its output (yo original, yp pruned) per kept output channel:
// BatchNorm's mean correction, for a BatchNorm folded into the Conv.
func correctBias(pm *graph.Model, pn *graph.Node, yo, yp []*runtime.Tensor, outCh []int) (ReconLayer, error) {
	pg := pm.Graph
	w := getConst(pg, pn.Inputs[1])
	if w == nil || len(w.Dims) < 1 || w.DType != graph.Float {
		return ReconLayer{}, nil
	}
	cop := int(w.Dims[0])
	var b []float32
	if len(pn.Inputs) > 2 && pn.Inputs[2] != "" {
		t := getConst(pg, pn.Inputs[2])
		if t == nil || t.DType != graph.Float {
			return ReconLayer{}, nil
		}
		var err error
		if b, err = t.Float32s(); err != nil {
			return ReconLayer{}, err
		}
	} else {
		b = make([]float32, cop)
	}
	if len(b) != cop || len(yo) == 0 || len(yo[0].Shape) < 2 {
		return ReconLayer{}, nil
	}
	co := int(yo[0].Shape[1])
	if outCh == nil {
		if co != cop {
			return ReconLayer{}, nil
		}
		outCh = identity(cop)
	}
	if len(outCh) != cop {
		return ReconLayer{}, fmt.Errorf("output channel map has %d entries, weight %d", len(outCh), cop)
	}
	nb := make([]float32, cop)
	shift, rows := 0.0, 0
	for j, oc := range outCh {
		mo, vo, n := channelStats(yo, oc, co)
		mp, _, _ := channelStats(yp, j, cop)
		if n == 0 {
			return ReconLayer{}, nil
		}
		rows = n
		nb[j] = b[j] + float32(mo-mp)
		if sd := math.Sqrt(vo); sd > 0 {
			shift = math.Max(shift, math.Abs(mo-mp)/sd)
		}
	}
	putConst(pm, pn, 2, graph.NewFloat32(pn.Inputs[1]+".bias", []int64{int64(cop)}, nb))
	name := pn.Name
	if name == "" {
		name = pn.Outputs[0]
	}
	return ReconLayer{Node: name, Kind: "bias", Rows: rows, MeanShift: shift}, nil
}

func identity(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// channelStats is the mean and variance of channel ch (axis 1, nc
// channels) over every value of ts; n is 0 when the shapes do not fit.
func channelStats(ts []*runtime.Tensor, ch, nc int) (m, v float64, n int) {
	var s, ss float64
	for _, t := range ts {
		if len(t.Shape) < 2 || int(t.Shape[1]) != nc {
			return 0, 0, 0
		}
		f := t.Float32s()
		inner := 1
		for _, d := range t.Shape[2:] {
			inner *= int(d)
		}
		for b := 0; b < int(t.Shape[0]); b++ {
			for _, x := range f[(b*nc+ch)*inner : (b*nc+ch+1)*inner] {
				s += float64(x)
				ss += float64(x) * float64(x)
			}
			n += inner
		}
	}
	if n == 0 {
		return 0, 0, 0
	}
	m = s / float64(n)
	return m, math.Max(ss/float64(n)-m*m, 0), n
}

// lsSolve solves the ridge least-squares problem given its normal
// equations: A = XᵀX (kp x kp, both triangles), B = XᵀY (kp x cop), yy the
// per-output ΣY², W0 the current solution (the ridge pulls toward it; with
// bias, its last row is the bias). It fills l's errors, kind and note and
// returns the new solution, or nil when the current one stays. With fewer
// rows than unknowns only the bias is fitted (kind "bias"; nil without a
// bias).
func lsSolve(l *ReconLayer, A, B, yy, W0 []float64, kp, cop int, bias bool, ridge float64) ([]float64, error) {
	resid := func(W []float64) float64 {
		// Σ_j wᵀAw - 2 wᵀB_j + yy_j.
		tot, ref := 0.0, 0.0
		aw := make([]float64, kp)
		for j := 0; j < cop; j++ {
			for i := 0; i < kp; i++ {
				s := 0.0
				for k := 0; k < kp; k++ {
					s += A[i*kp+k] * W[k*cop+j]
				}
				aw[i] = s
			}
			e := yy[j]
			for i := 0; i < kp; i++ {
				e += W[i*cop+j] * (aw[i] - 2*B[i*cop+j])
			}
			tot += math.Max(e, 0)
			ref += yy[j]
		}
		if ref == 0 {
			return 0
		}
		return math.Sqrt(tot / ref)
	}
	before := resid(W0)
	l.ErrBefore, l.ErrAfter = before, before
	if l.Rows < kp {
		if !bias {
			l.Note = fmt.Sprintf("%d calibration rows for %d unknowns per output: not re-fitted (pass more --calib samples)", l.Rows, kp)
			return nil, nil
		}
		// Only the bias: b' = mean(y) - W_s mean(x).
		W1 := append([]float64(nil), W0...)
		cnt := A[(kp-1)*kp+kp-1]
		for j := 0; j < cop; j++ {
			s := B[(kp-1)*cop+j]
			for k := 0; k < kp-1; k++ {
				s -= W0[k*cop+j] * A[(kp-1)*kp+k]
			}
			W1[(kp-1)*cop+j] = s / cnt
		}
		l.Kind = "bias"
		l.Note = fmt.Sprintf("%d calibration rows for %d unknowns per output: only the bias re-fitted (pass more --calib samples)", l.Rows, kp)
		if after := resid(W1); after < before {
			l.ErrAfter = after
			return W1, nil
		}
		return nil, nil
	}
	trace := 0.0
	for i := 0; i < kp; i++ {
		trace += A[i*kp+i]
	}
	lambda := ridge*trace/float64(kp) + 1e-12
	M := append([]float64(nil), A...)
	for i := 0; i < kp; i++ {
		M[i*kp+i] += lambda
	}
	R := make([]float64, kp*cop)
	for i := range R {
		R[i] = B[i] + lambda*W0[i]
	}
	if err := cholSolve(M, R, kp, cop); err != nil {
		return nil, err
	}
	after := resid(R)
	if !(after < before) || math.IsNaN(after) {
		l.Note = "the fit did not lower the error: weights left as pruned"
		return nil, nil
	}
	l.ErrAfter = after
	return R, nil
}

// denseWeight returns a Gemm/MatMul weight as a K x M row-major matrix.
func denseWeight(n *graph.Node, w *graph.Tensor) ([]float64, int, int, error) {
	if w == nil || w.DType != graph.Float || len(w.Dims) != 2 {
		return nil, 0, 0, fmt.Errorf("weight of %s is not a constant 2-D float tensor", n)
	}
	v, err := w.Float32s()
	if err != nil {
		return nil, 0, 0, err
	}
	a, b := int(w.Dims[0]), int(w.Dims[1])
	trans := n.Is("Gemm") && n.AttrInt("transB", 0) != 0
	k, m := a, b
	if trans {
		k, m = b, a
	}
	out := make([]float64, k*m)
	for i := 0; i < a; i++ {
		for j := 0; j < b; j++ {
			if trans {
				out[j*m+i] = float64(v[i*b+j])
			} else {
				out[i*m+j] = float64(v[i*b+j])
			}
		}
	}
	return out, k, m, nil
}

// denseBias returns a Gemm's C as m values (nil when absent; an error when
// it is neither a scalar nor m values).
func denseBias(g *graph.Graph, n *graph.Node, m int) ([]float64, error) {
	if !n.Is("Gemm") || len(n.Inputs) < 3 || n.Inputs[2] == "" {
		return nil, nil
	}
	t := getConst(g, n.Inputs[2])
	if t == nil || t.DType != graph.Float {
		return nil, fmt.Errorf("bias %q of %s is not a float constant", n.Inputs[2], n)
	}
	v, err := t.Float32s()
	if err != nil {
		return nil, err
	}
	out := make([]float64, m)
	switch len(v) {
	case 1:
		for i := range out {
			out[i] = float64(v[0])
		}
	case m:
		for i := range out {
			out[i] = float64(v[i])
		}
	default:
		return nil, fmt.Errorf("bias %q of %s has %d values for %d outputs", n.Inputs[2], n, len(v), m)
	}
	return out, nil
}

// refitDense re-fits a Gemm or MatMul whose input rows were pruned: rows of
// its input (all leading dims flattened), the same ridge least squares as a
// Conv; a MatMul has no bias to fit.
func refitDense(pm *graph.Model, on, pn *graph.Node, og *graph.Graph, xo, xp []*runtime.Tensor, outCh []int, o ReconOptions, rng *rand.Rand) (ReconLayer, error) {
	pg := pm.Graph
	wp := getConst(pg, pn.Inputs[1])
	Wo, k, m, err := denseWeight(on, getConst(og, on.Inputs[1]))
	if err != nil {
		return ReconLayer{}, err
	}
	Wp, kq, mq, err := denseWeight(pn, wp)
	if err != nil {
		return ReconLayer{}, err
	}
	bo, err := denseBias(og, on, m)
	if err != nil {
		return ReconLayer{}, err
	}
	bp, err := denseBias(pg, pn, mq)
	if err != nil {
		return ReconLayer{}, err
	}
	bias := pn.Is("Gemm")
	if outCh == nil {
		outCh = identity(m)
	}
	if len(outCh) != mq {
		return ReconLayer{}, fmt.Errorf("output channel map has %d entries, weight %d", len(outCh), mq)
	}
	kp := kq
	if bias {
		kp++
	}
	total := 0
	for s := range xo {
		if xo[s].Len()%k != 0 || xp[s].Len()%kq != 0 || xo[s].Len()/k != xp[s].Len()/kq {
			return ReconLayer{}, fmt.Errorf("inputs of %d and %d values do not match weights of %d and %d rows", xo[s].Len(), xp[s].Len(), k, kq)
		}
		total += xo[s].Len() / k
	}
	rows := min(o.MaxRows, total)
	A := make([]float64, kp*kp)
	B := make([]float64, kp*mq)
	yy := make([]float64, mq)
	rp, y := make([]float64, kp), make([]float64, mq)
	for n := 0; n < rows; n++ {
		s := rng.Intn(len(xo))
		r := rng.Intn(xo[s].Len() / k)
		fo := xo[s].Float32s()[r*k : (r+1)*k]
		fp := xp[s].Float32s()[r*kq : (r+1)*kq]
		for i, v := range fp {
			rp[i] = float64(v)
		}
		if bias {
			rp[kq] = 1
		}
		for j, oc := range outCh {
			v := 0.0
			if bo != nil {
				v = bo[oc]
			}
			for i, x := range fo {
				v += float64(x) * Wo[i*m+oc]
			}
			y[j] = v
			yy[j] += v * v
		}
		for i, vi := range rp {
			if vi == 0 {
				continue
			}
			ai := A[i*kp : (i+1)*kp]
			for c := 0; c < kp; c++ {
				ai[c] += vi * rp[c]
			}
			bi := B[i*mq : (i+1)*mq]
			for j, v := range y {
				bi[j] += vi * v
			}
		}
	}
	W0 := make([]float64, kp*mq)
	copy(W0, Wp)
	if bias && bp != nil {
		copy(W0[kq*mq:], bp)
	}
	l := ReconLayer{Node: pn.Name, Kind: "least-squares", Rows: rows}
	if l.Node == "" {
		l.Node = pn.Outputs[0]
	}
	R, err := lsSolve(&l, A, B, yy, W0, kp, mq, bias, o.Ridge)
	if err != nil || R == nil {
		return l, err
	}
	if bias {
		nb := make([]float32, mq)
		for j := range nb {
			nb[j] = float32(R[kq*mq+j])
		}
		putConst(pm, pn, 2, graph.NewFloat32(pn.Inputs[1]+".bias", []int64{int64(mq)}, nb))
	}
	if l.Kind == "bias" {
		return l, nil
	}
	nw := make([]float32, kq*mq)
	trans := pn.Is("Gemm") && pn.AttrInt("transB", 0) != 0
	for i := 0; i < kq; i++ {
		for j := 0; j < mq; j++ {
			if trans {
				nw[j*kq+i] = float32(R[i*mq+j])
			} else {
				nw[i*mq+j] = float32(R[i*mq+j])
			}
		}
	}
	putConst(pm, pn, 1, graph.NewFloat32(wp.Name, append([]int64(nil), wp.Dims...), nw))
	return l, nil
}
