package main

import (
	"fmt"
	"math"
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
	scale     float64
	mean, std []float64
}

// addPixelFlags registers the pixel flags on cmd; what names the data
// flags they apply to (e.g. "--train and --val").
func addPixelFlags(cmd *cobra.Command, p *pixelFlags, what string) {
	f := cmd.Flags()
	f.Float64Var(&p.scale, "pixel-scale", 1, "multiply the pixels (0-255) of image data ("+what+") by this, e.g. 0.00392156862745098 (1/255) for 0-1")
	f.Float64SliceVar(&p.mean, "pixel-mean", nil, "subtract from the scaled pixels: one value, or one per channel (R,G,B), e.g. 0.485,0.456,0.406")
	f.Float64SliceVar(&p.std, "pixel-std", nil, "then divide by: one value, or one per channel (R,G,B), e.g. 0.229,0.224,0.225")
}

// options gives the bench.ImageOptions of p; a bad value is a usage error.
func (p *pixelFlags) options() (bench.ImageOptions, error) {
	if p.scale == 0 || math.IsNaN(p.scale) || math.IsInf(p.scale, 0) {
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
	return bench.ImageOptions{Scale: p.scale, Mean: p.mean, Std: p.std}, nil
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
