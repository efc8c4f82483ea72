package fpga

import (
	"strings"
	"testing"
)

func TestLimitingLayersNamesTheLayer(t *testing.T) {
	rep := &Report{
		Layers: []LayerReport{
			{LayerInfo: LayerInfo{Node: "conv1", Engine: "SWG+MVAU", PE: 4, SIMD: 25}, EstDSP: 100},
			{LayerInfo: LayerInfo{Node: "conv2", Engine: "SWG+MVAU", PE: 2, SIMD: 200}, EstDSP: 400},
		},
		Resources: &Resources{DSP: 510, Fits: false, Limits: []string{"DSP 510 of 220 (limit 80%)"}},
	}
	got := limitingLayers(rep)
	if len(got) != 1 || !strings.Contains(got[0], "conv2") || !strings.Contains(got[0], "400 of the 500") {
		t.Fatalf("limiting %q", got)
	}
	rep.Resources.Fits, rep.Resources.Limits = true, nil
	if got := limitingLayers(rep); got != nil {
		t.Fatalf("a fitting design names limits %q", got)
	}
}
