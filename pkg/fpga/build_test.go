package fpga

import (
	"context"
	"encoding/json"
	"testing"
)

// TestBuildMNIST: the MNIST CNN built for xc7z020 at 100 MHz with a
// 50,000 FPS target: folding meets the target analytically, the RTL
// simulation is bit-exact with the Go model and measures an II within 5%
// of the estimate.
func TestBuildMNIST(t *testing.T) {
	needVerilator(t)
	q, _, _ := mnistQDQ(t, 1)
	rep, _, err := Build(context.Background(), q, t.TempDir(), BuildOptions{
		Part: "xc7z020", ClockMHz: 100, TargetFPS: 50000, SimFrames: 3,
		Progress: func(s string) { t.Log(s) },
	})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("%s", b)
	if !rep.BitExact || !rep.Simulated {
		t.Fatal("simulation not bit-exact")
	}
	if rep.IIEstimated > 2000 {
		t.Errorf("estimated II %d cycles misses the 2000-cycle target", rep.IIEstimated)
	}
	if d := float64(rep.IICycles-rep.IIEstimated) / float64(rep.IIEstimated); d > 0.05 || d < -0.05 {
		t.Errorf("simulated II %d vs estimated %d: %.1f%% apart", rep.IICycles, rep.IIEstimated, 100*d)
	}
}
