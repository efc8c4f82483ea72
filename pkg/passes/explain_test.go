package passes

import (
	"strings"
	"testing"
)

// TestExplainLeftGoldens runs the golden cases whose rewrite must not fire
// with Options.Explain and checks that the pass says why, per candidate
// node (or, for a pass skipped as a whole, in a note).
func TestExplainLeftGoldens(t *testing.T) {
	want := map[string]string{
		"fuse-conv-add-not-per-channel":  "not one float32 value per output channel",
		"fuse-matmul-add-3d-left":        "is not a float32 matrix of known shape",
		"fuse-layernorm-opset13-left":    "opset 13 < 17: skipped",
		"fuse-gelu-opset13-left":         "opset 13 < 20",
		"fuse-hardswish-other-clip-left": "bounds are not [0, 6]",
		"fuse-ort-attention-masked-left": "Reshape_18 (Reshape): the Softmax does not read a MatMul",
	}
	seen := 0
	for _, tc := range goldenCases() {
		reason, ok := want[tc.name]
		if !ok {
			continue
		}
		seen++
		t.Run(tc.name, func(t *testing.T) {
			_, rep, err := Optimize(tc.model(), Options{Passes: tc.passes, Target: tc.target, Explain: tc.passes[:1]})
			if err != nil {
				t.Fatal(err)
			}
			var st *PassStat
			for _, s := range rep.Passes {
				if s.Pass == tc.passes[0] {
					st = s
				}
			}
			if st == nil || st.Changed != 0 {
				t.Fatalf("pass stat %+v", st)
			}
			var all []string
			for _, m := range st.Misses {
				if m.Node == "" || m.Op == "" || m.Reason == "" {
					t.Errorf("incomplete miss %+v", m)
				}
				all = append(all, m.String())
			}
			all = append(all, st.Notes...)
			text := strings.Join(all, "\n")
			if len(all) == 0 || !strings.Contains(text, reason) {
				t.Errorf("explanation %q lacks %q", text, reason)
			}
			// Without Explain nothing is recorded.
			_, rep, err = Optimize(tc.model(), Options{Passes: tc.passes, Target: tc.target})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range rep.Passes {
				if len(s.Misses) > 0 {
					t.Errorf("%s recorded misses without Explain", s.Pass)
				}
			}
		})
	}
	if seen != len(want) {
		t.Fatalf("found %d of the %d golden cases", seen, len(want))
	}
}

// TestExplainers checks that every explainable pass exists and that
// Options.Explain refuses a pass that records no reasons.
func TestExplainers(t *testing.T) {
	for _, n := range Explainers() {
		if _, ok := Lookup(n); !ok {
			t.Errorf("explainer %s is not a registered pass", n)
		}
	}
	_, _, err := ResolvePasses(Options{Level: O2, Explain: []string{"fold-constants"}})
	if err == nil || !strings.Contains(err.Error(), "does not record why") {
		t.Fatalf("explain fold-constants: %v", err)
	}
	if _, _, err := ResolvePasses(Options{Level: O2, Explain: []string{"fuse-gelu"}}); err != nil {
		t.Fatal(err)
	}
}
