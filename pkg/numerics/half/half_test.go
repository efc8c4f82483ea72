package half

import (
	"math"
	"testing"
)

func TestFloat16(t *testing.T) {
	cases := []struct {
		name string
		in   float32
		bits uint16
		back float32
	}{
		{"zero", 0, 0x0000, 0},
		{"neg zero", float32(math.Copysign(0, -1)), 0x8000, float32(math.Copysign(0, -1))},
		{"one", 1, 0x3c00, 1},
		{"minus two", -2, 0xc000, -2},
		{"max", 65504, 0x7bff, 65504},
		{"overflow", 1e6, 0x7c00, float32(math.Inf(1))},
		{"smallest subnormal", 5.960464477539063e-8, 0x0001, 5.960464477539063e-8},
		{"underflow", 1e-9, 0x0000, 0},
		{"tie to even down", 1 + 1.0/2048, 0x3c00, 1},
		{"tie to even up", 1 + 3.0/2048, 0x3c02, 1 + 2.0/1024},
		{"inf", float32(math.Inf(-1)), 0xfc00, float32(math.Inf(-1))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Float32ToFloat16(c.in); got != c.bits {
				t.Fatalf("Float32ToFloat16(%g) = %#04x, want %#04x", c.in, got, c.bits)
			}
			if got := Float16ToFloat32(c.bits); got != c.back || math.Signbit(float64(got)) != math.Signbit(float64(c.back)) {
				t.Fatalf("Float16ToFloat32(%#04x) = %g, want %g", c.bits, got, c.back)
			}
		})
	}
	if v := Float16ToFloat32(Float32ToFloat16(float32(math.NaN()))); v == v {
		t.Fatalf("NaN did not survive float16: %g", v)
	}
}

func TestBFloat16(t *testing.T) {
	cases := []struct {
		name string
		in   float32
		bits uint16
	}{
		{"one", 1, 0x3f80},
		{"rounds up, not truncates", math.Float32frombits(0x3f80c000), 0x3f81},
		{"tie to even", math.Float32frombits(0x3f808000), 0x3f80},
		{"minus", -1.5, 0xbfc0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Float32ToBFloat16(c.in); got != c.bits {
				t.Fatalf("Float32ToBFloat16(%g) = %#04x, want %#04x", c.in, got, c.bits)
			}
		})
	}
	if BFloat16ToFloat32(0x3f80) != 1 {
		t.Fatal("BFloat16ToFloat32(0x3f80) != 1")
	}
	if v := BFloat16ToFloat32(Float32ToBFloat16(float32(math.NaN()))); v == v {
		t.Fatal("NaN did not survive bfloat16")
	}
}
