package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/optictl/optictl/pkg/bench"
)

// pixelFlags are --pixel-scale, --pixel-mean and --pixel-std: how the
// pixels of image data (an image folder, or idx images) are normalized.
// A command that registers them applies them to every image data flag it
// reads; with tensor data (.pb, .npy, test_data_set folders) they are an
// error, not ignored.
type pixelFlags struct {
	scale     pixelScale
	mean, std floatList
}

// pixelScale is a number or a fraction such as 1/255.
type pixelScale float64

func (v *pixelScale) String() string { return strconv.FormatFloat(float64(*v), 'g', -1, 64) }
func (v *pixelScale) Type() string   { return "number" }
func (v *pixelScale) Set(s string) error {
	num, den, frac := strings.Cut(strings.TrimSpace(s), "/")
	a, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil {
		return fmt.Errorf("%q is not a number or a fraction like 1/255", s)
	}
	if frac {
		b, err := strconv.ParseFloat(strings.TrimSpace(den), 64)
		if err != nil || b == 0 {
			return fmt.Errorf("%q is not a number or a fraction like 1/255", s)
		}
		a /= b
	}
	*v = pixelScale(a)
	return nil
}

// floatList is a comma-separated list of numbers (no default shown).
type floatList []float64

func (v *floatList) String() string {
	parts := make([]string, len(*v))
	for i, x := range *v {
		parts[i] = strconv.FormatFloat(x, 'g', -1, 64)
	}
	return strings.Join(parts, ",")
}
func (v *floatList) Type() string { return "numbers" }
func (v *floatList) Set(s string) error {
	var out []float64
	for _, p := range strings.Split(s, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return fmt.Errorf("%q is not a comma-separated list of numbers", s)
		}
		out = append(out, x)
	}
	*v = out
	return nil
}

// addPixelFlags registers the pixel flags on cmd; what names the data
// flags they apply to (e.g. "--train and --val").
func addPixelFlags(cmd *cobra.Command, p *pixelFlags, what string) {
	f := cmd.Flags()
	p.scale = 1
	f.Var(&p.scale, "pixel-scale", "multiply the pixels (0-255) of image data ("+what+") by this, a number or a fraction: 1/255 gives 0-1")
	f.Var(&p.mean, "pixel-mean", "then subtract: one value, or one per channel (R,G,B), e.g. 0.485,0.456,0.406")
	f.Var(&p.std, "pixel-std", "then divide by: one value, or one per channel (R,G,B), e.g. 0.229,0.224,0.225")
}

// options gives the bench.ImageOptions of p; a bad value is a usage error.
func (p *pixelFlags) options() (bench.ImageOptions, error) {
	scale := float64(p.scale)
	if scale == 0 || math.IsNaN(scale) || math.IsInf(scale, 0) {
		return bench.ImageOptions{}, usageErr("--pixel-scale %g is not a finite non-zero number", p.scale)
	}
	for _, v := range p.mean {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return bench.ImageOptions{}, usageErr("--pixel-mean %v: every value must be finite", p.mean)
		}
	}
	for _, v := range p.std {
		if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return bench.ImageOptions{}, usageErr("--pixel-std %v: every value must be finite and non-zero", p.std)
		}
	}
	for _, l := range [][]float64{p.mean, p.std} {
		if len(l) != 0 && len(l) != 1 && len(l) != 3 {
			return bench.ImageOptions{}, usageErr("--pixel-mean and --pixel-std take 1 value or 3 (R,G,B), not %d", len(l))
		}
	}
	return bench.ImageOptions{Scale: scale, Mean: p.mean, Std: p.std}, nil
}

// String describes a normalization for reports ("" when there is none).
func (p *pixelFlags) String() string {
	var parts []string
	if p.scale != 1 {
		parts = append(parts, fmt.Sprintf("scale %g", p.scale))
	}
	if len(p.mean) > 0 {
		parts = append(parts, fmt.Sprintf("mean %v", p.mean))
	}
	if len(p.std) > 0 {
		parts = append(parts, fmt.Sprintf("std %v", p.std))
	}
	return strings.Join(parts, ", ")
}
