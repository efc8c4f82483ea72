package distill

import (
	"fmt"
	"math"
)

// adam is the Adam optimizer (gorgonia's defaults: beta1 0.9, beta2
// 0.999, eps 1e-8, no batch division) with its state exported, so that a
// checkpoint can hold it and --resume continues exactly where a run
// stopped (gorgonia's AdamSolver keeps its moments private).
type adam struct {
	lr float64
	st adamState
}

// adamState is the optimizer's state: the step count and, per parameter
// (in Net.Params order), the first and second moments.
type adamState struct {
	Iter int
	M, V [][]float32
}

const (
	adamBeta1 = 0.9
	adamBeta2 = 0.999
	adamEps   = 1e-8
)

func (a *adam) step(params []*Param) error {
	if a.st.M == nil {
		a.st.M = make([][]float32, len(params))
		a.st.V = make([][]float32, len(params))
	}
	if len(a.st.M) != len(params) {
		return fmt.Errorf("distill: optimizer state has %d parameters, the student %d", len(a.st.M), len(params))
	}
	a.st.Iter++
	c1 := 1 - math.Pow(adamBeta1, float64(a.st.Iter))
	c2 := 1 - math.Pow(adamBeta2, float64(a.st.Iter))
	for i, p := range params {
		w, ok := p.Node.Value().Data().([]float32)
		if !ok {
			return fmt.Errorf("distill: parameter %q is not float32", p.Name)
		}
		gv, err := p.Node.Grad()
		if err != nil {
			return fmt.Errorf("distill: gradient of %q: %w", p.Name, err)
		}
		g, ok := gv.Data().([]float32)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("distill: gradient of %q has the wrong type or size", p.Name)
		}
		if a.st.M[i] == nil {
			a.st.M[i] = make([]float32, len(w))
			a.st.V[i] = make([]float32, len(w))
		}
		m, v := a.st.M[i], a.st.V[i]
		if len(m) != len(w) || len(v) != len(w) {
			return fmt.Errorf("distill: optimizer state of %q has %d values, the parameter %d", p.Name, len(m), len(w))
		}
		for k := range w {
			gk := float64(g[k])
			mk := adamBeta1*float64(m[k]) + (1-adamBeta1)*gk
			vk := adamBeta2*float64(v[k]) + (1-adamBeta2)*gk*gk
			m[k], v[k] = float32(mk), float32(vk)
			w[k] -= float32(a.lr * (mk / c1) / (math.Sqrt(vk/c2) + adamEps))
		}
		// The tape machine accumulates gradients: clear them for the
		// next step (as gorgonia's solvers do).
		clear(g)
	}
	return nil
}
