package quant

import (
	"testing"
	"time"
)

// TestProfileWideCNN times each weighted layer of wideCNN alone (no speed
// is asserted: timings belong to benchmarks) and checks the profile's
// shape: every Conv/Gemm is listed with positive timings, and a second
// profile of the same model comes from the cache.
func TestProfileWideCNN(t *testing.T) {
	m := wideCNN()
	open(t, "ort", m).Close() // skips (fails in CI) without ORT
	in := seeded(t, m, 1, 1, 3)[0]
	cache := &ProfileCache{}
	o := ProfileOptions{Rounds: 6, Budget: 20 * time.Millisecond, Cache: cache}
	prof, err := Profile(m, in, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(prof) != 5 {
		t.Fatalf("profiled %d layers, want 5 (4 Conv, 1 Gemm): %+v", len(prof), prof)
	}
	for _, l := range prof {
		t.Logf("%-12s %-50s float %v int8 %v q %v dq %v kernel %.2fx isolated %.2fx", l.Node, l.Shape, l.Float, l.Int8, l.Quant, l.Dequant, l.Kernel, l.Isolated)
		if l.Float <= 0 || l.Int8 <= 0 || l.Quant <= 0 || l.Dequant <= 0 || l.Kernel <= 0 {
			t.Errorf("%s: a timing is not positive: %+v", l.Node, l)
		}
		if l.Cached != (l.Node == "conv_4") {
			t.Errorf("%s: cached %v on the first profile (only conv_4 repeats a shape, conv_2's)", l.Node, l.Cached)
		}
	}
	// block.conv1 and block.conv2 (conv_2, conv_4) have one shape: timed once
	if cache.Len() != 4 {
		t.Errorf("cache holds %d shapes, want 4", cache.Len())
	}
	again, err := Profile(m, in, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range again {
		if !l.Cached {
			t.Errorf("%s: timed again, want the cached timing", l.Node)
		}
	}
}

// TestProfileTimeBudget: past the deadline no layer is timed; the plan
// leaves them all in float and says why.
func TestProfileTimeBudget(t *testing.T) {
	m := wideCNN()
	open(t, "ort", m).Close() // skips (fails in CI) without ORT
	prof, err := Profile(m, seeded(t, m, 1, 1, 3)[0], ProfileOptions{Cache: &ProfileCache{}, Deadline: time.Now().Add(-time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	Plan(m.Graph, prof, MixedMargin, nil)
	for _, l := range prof {
		if !l.Untimed || l.Int8Chosen || l.Why != "not timed: the time budget ran out" {
			t.Errorf("%s: %+v", l.Node, l)
		}
	}
}
