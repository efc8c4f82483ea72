package fpga

import (
	"math/rand"
	"testing"
)

func TestRequantMatchesReferenceEverywhere(t *testing.T) {
	cases := []struct {
		name         string
		m            float64
		zero, lo, hi int32
		accLo, accHi int64
	}{
		{"uint8 typical", 0.0123456, 128, 0, 255, -30000, 30000},
		{"relu folded", 0.00071, 0, 0, 255, -200000, 200000},
		{"int8 symmetric", 0.05, 0, -128, 127, -5000, 5000},
		{"tiny multiplier", 1.7e-6, 3, 0, 255, -1 << 24, 1 << 24},
		{"multiplier near 1", 0.99999, 0, -128, 127, -300, 300},
		{"exact halves", 0.5, 0, -128, 127, -1000, 1000},
	}
	for _, c := range cases {
		c.m = float64(float32(c.m)) // scales are float32 in ONNX
		t.Run(c.name, func(t *testing.T) {
			r, err := NewRequant(c.m, c.zero, c.lo, c.hi, c.accLo, c.accHi)
			if err != nil {
				t.Fatal(err)
			}
			// The proof must agree with brute force on the whole range
			// (sampled densely where the range is large).
			step := int64(1)
			if span := c.accHi - c.accLo; span > 400000 {
				step = span / 400000
			}
			rng := rand.New(rand.NewSource(1))
			for acc := c.accLo; acc <= c.accHi; acc += step {
				a := acc
				if step > 1 {
					a += rng.Int63n(step)
				}
				if a > c.accHi {
					break
				}
				if got, want := r.Apply(a), RefRequant(a, c.m, c.zero, c.lo, c.hi); got != want {
					t.Fatalf("acc %d: hardware %d, reference %d (mult %d shift %d)", a, got, want, r.Mult, r.Shift)
				}
			}
		})
	}
}

func TestProveRequantCatchesAWrongMultiplier(t *testing.T) {
	m := 0.0123456
	r, err := NewRequant(m, 128, 0, 255, -30000, 30000)
	if err != nil {
		t.Fatal(err)
	}
	r.Mult++ // one LSB off: must show at some threshold
	r.Mult += r.Mult >> 10
	if err := ProveRequant(r, m, -30000, 30000); err == nil {
		t.Fatal("a wrong multiplier passed the proof")
	}
}

func TestRoundHalfEven(t *testing.T) {
	for _, c := range []struct {
		acc  int64
		want int32
	}{{1, 0}, {3, 2}, {5, 2}, {7, 4}, {-1, 0}, {-3, -2}, {-5, -2}} {
		// m = 0.5: acc/2 exactly on halves for odd acc
		r, err := NewRequant(0.5, 0, -128, 127, -10, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Apply(c.acc); got != c.want {
			t.Errorf("rne(%d/2) = %d, want %d", c.acc, got, c.want)
		}
	}
}

func TestNewRequantRefusesBadMultipliers(t *testing.T) {
	for _, m := range []float64{0, -1} {
		if _, err := NewRequant(m, 0, 0, 255, 0, 10); err == nil {
			t.Errorf("multiplier %g accepted", m)
		}
	}
}

func TestRequantWithOffset(t *testing.T) {
	for _, c := range []struct{ m, o float64 }{
		{0.0031, 17.25}, {0.0031, -40.5}, {0.02, 0.5}, {1.3e-5, 3.999},
	} {
		m, o := float64(float32(c.m)), float64(float32(c.o))
		r, err := NewRequantOff(m, o, 3, 3, 255, -50000, 50000)
		if err != nil {
			t.Fatal(err)
		}
		for acc := int64(-50000); acc <= 50000; acc += 7 {
			if got, want := r.Apply(acc), RefRequantOff(acc, m, o, 3, 3, 255); got != want {
				t.Fatalf("m %g o %g acc %d: hardware %d, reference %d", m, o, acc, got, want)
			}
		}
	}
}
