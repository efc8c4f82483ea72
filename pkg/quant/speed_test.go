package quant

import (
	"strings"
	"testing"
	"time"
)

func TestSpeedVerdict(t *testing.T) {
	for _, tc := range []struct {
		name string
		sp   Speed
		want string
	}{
		{"faster", Speed{Speedup: 1.6, Significant: true, Float: 2 * time.Millisecond, Quant: 1250 * time.Microsecond}, "1.60x, faster"},
		{"slower", Speed{Speedup: 0.7, Significant: true}, "NOT faster than the float model"},
		{"noise", Speed{Speedup: 1.02, Significant: false}, "NOT measurably faster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s := tc.sp.String(); !strings.Contains(s, tc.want) {
				t.Fatalf("%q does not say %q", s, tc.want)
			}
		})
	}
}

// TestMeasureSpeedSelf: timing a model against itself gives consistent
// rounds, pair counts and medians (which is faster is left to chance).
func TestMeasureSpeedSelf(t *testing.T) {
	m := cnnO2()
	in := seeded(t, m, 1, 1, 3)[0]
	sp, err := MeasureSpeed(m, m, "interp", in, 21, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if sp.Rounds < 5 || sp.QuantFaster > sp.Rounds || sp.Float <= 0 || sp.Quant <= 0 {
		t.Fatalf("%+v", sp)
	}
}
