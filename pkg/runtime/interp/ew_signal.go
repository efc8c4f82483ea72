package interp

import (
	"math"

	"github.com/optictl/optictl/pkg/graph"
)

// STFT and MelWeightMatrix (signal processing), following onnx's reference.

func init() {
	Register("", "STFT", ewBuildSTFT)
	Register("", "MelWeightMatrix", ewBuildMel)
}

func ewBuildSTFT(n *graph.Node, bc *BuildContext) (Kernel, error) {
	onesided := n.AttrInt("onesided", 1) != 0
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || len(x.Shape) != 3 || (x.Shape[2] != 1 && x.Shape[2] != 2) || len(c.In) < 2 || c.In[1] == nil {
			return ewErr(n, "needs signal [B, L, 1|2] and frame_step")
		}
		sv, err := ewInts(c.In[1])
		if err != nil || len(sv) != 1 || sv[0] < 1 {
			return ewErr(n, "frame_step must be a positive scalar")
		}
		step := int(sv[0])
		var win []float64
		if len(c.In) > 2 && c.In[2] != nil {
			if win, err = ewF64s(c.In[2]); err != nil {
				return ewErr(n, "%v", err)
			}
		}
		fl := len(win)
		if len(c.In) > 3 && c.In[3] != nil {
			v, err := ewInts(c.In[3])
			if err != nil || len(v) != 1 || v[0] < 1 || (win != nil && int(v[0]) != len(win)) {
				return ewErr(n, "frame_length must be a positive scalar matching the window")
			}
			fl = int(v[0])
		}
		B, L, comp := int(x.Shape[0]), int(x.Shape[1]), int(x.Shape[2])
		if fl < 1 || fl > L {
			return ewErr(n, "frame length %d does not fit the signal of %d", fl, L)
		}
		frames := 1 + (L-fl)/step
		bins := fl
		if onesided {
			bins = fl/2 + 1
		}
		xv, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		res := make([]float64, B*frames*bins*2)
		for b := 0; b < B; b++ {
			for f := 0; f < frames; f++ {
				for k := 0; k < bins; k++ {
					var re, im float64
					for t := 0; t < fl; t++ {
						p := (b*L + f*step + t) * comp
						a, bb := xv[p], 0.0
						if comp == 2 {
							bb = xv[p+1]
						}
						if win != nil {
							a *= win[t]
							bb *= win[t]
						}
						ang := -2 * math.Pi * float64(k) * float64(t) / float64(fl)
						cs, sn := math.Cos(ang), math.Sin(ang)
						re += a*cs - bb*sn
						im += a*sn + bb*cs
					}
					p := ((b*frames+f)*bins + k) * 2
					res[p], res[p+1] = re, im
				}
			}
		}
		o, err := c.Out(0, x.DType, []int64{int64(B), int64(frames), int64(bins), 2})
		if err != nil {
			return err
		}
		return ewSetF64(o, res)
	}, nil
}

func ewBuildMel(n *graph.Node, bc *BuildContext) (Kernel, error) {
	dt := graph.DType(n.AttrInt("output_datatype", int64(graph.Float)))
	return func(c *Call) error {
		var a [5]float64
		for i := range a {
			if i >= len(c.In) || c.In[i] == nil {
				return ewErr(n, "input %d is missing", i)
			}
			v, err := ewF64s(c.In[i])
			if err != nil || len(v) != 1 {
				return ewErr(n, "input %d must be a scalar", i)
			}
			a[i] = v[0]
		}
		mels, dft, rate, lo, hi := int(a[0]), int(a[1]), a[2], a[3], a[4]
		if mels < 1 || dft < 1 || rate <= 0 || mels > 1<<16 || dft > 1<<24 {
			return ewErr(n, "bad sizes: %d mel bins, dft length %d, sample rate %g", mels, dft, rate)
		}
		specBins := dft/2 + 1
		lowMel := 2595 * math.Log10(1+lo/700)
		highMel := 2595 * math.Log10(1+hi/700)
		step := (highMel - lowMel) / float64(mels+2)
		fb := make([]int, mels+2)
		for i := range fb {
			hz := 700 * (math.Pow(10, (float64(i)*step+lowMel)/2595) - 1)
			fb[i] = int(math.Floor(float64(dft+1) * hz / rate))
		}
		res := make([]float64, specBins*mels)
		set := func(j, i int, v float64) {
			if j >= 0 && j < specBins {
				res[j*mels+i] = v
			}
		}
		for i := 0; i < mels; i++ {
			l, cen, h := fb[i], fb[i+1], fb[i+2]
			if lc := cen - l; lc == 0 {
				set(cen, i, 1)
			} else {
				for j := l; j <= cen; j++ {
					set(j, i, float64(j-l)/float64(lc))
				}
			}
			if ch := h - cen; ch > 0 {
				for j := cen; j < h; j++ {
					set(j, i, float64(h-j)/float64(ch))
				}
			}
		}
		o, err := c.Out(0, dt, []int64{int64(specBins), int64(mels)})
		if err != nil {
			return err
		}
		return ewSetF64(o, res)
	}, nil
}
