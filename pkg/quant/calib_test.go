package quant

import (
	"math"
	"testing"
)

func TestThresholds(t *testing.T) {
	// 10,000 values spread evenly over [0, 1) plus one outlier at 100:
	// absmax 100, so the data sits in the first ~20 of 2048 bins.
	hist := make([]float64, histBins)
	w := 100.0 / histBins
	for i := 0; i < 10000; i++ {
		hist[int(float64(i)/10000/w)]++
	}
	hist[histBins-1]++
	tests := []struct {
		name   string
		got    float64
		lo, hi float64
	}{
		{"percentile 99.99 clips the outlier", percentileThreshold(hist, 100, 99.99), 0.9, 1.1},
		{"percentile 100 keeps it", percentileThreshold(hist, 100, 100), 99.9, 100.1},
		{"percentile 50 halves", percentileThreshold(hist, 100, 50), 0.45, 0.6},
		// entropy starts at 128 bins (6.25): it must clip the lone outlier
		{"entropy clips the outlier", entropyThreshold(hist, 100), 0, 10},
	}
	for _, tc := range tests {
		if tc.got < tc.lo || tc.got > tc.hi || math.IsNaN(tc.got) {
			t.Errorf("%s: threshold %g not in [%g, %g]", tc.name, tc.got, tc.lo, tc.hi)
		}
	}
	// an empty histogram falls back to the full range
	if got := entropyThreshold(make([]float64, histBins), 3); got != 3 {
		t.Errorf("empty histogram: %g", got)
	}
}

func TestActParams(t *testing.T) {
	tests := []struct {
		lo, hi float64
		asym   bool
		scale  float64
		zp     byte
	}{
		{-2, 1, false, 2.0 / 127, 0},
		{0, 0, false, 1, 0},
		{0, 2.55, true, 0.01, 0},
		{-1.275, 1.275, true, 0.01, 128},
		{0.5, 2.55, true, 0.01, 0}, // the range always includes 0
	}
	for _, tc := range tests {
		s, zp := actParams(tc.lo, tc.hi, tc.asym)
		if math.Abs(s-tc.scale) > 1e-6 || zp != tc.zp {
			t.Errorf("actParams(%g, %g, %v) = %g, %d; want %g, %d", tc.lo, tc.hi, tc.asym, s, zp, tc.scale, tc.zp)
		}
	}
}
