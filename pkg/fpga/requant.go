package fpga

import (
	"fmt"
	"math"
	"math/big"
)

// Requant maps an accumulator to a quantized output:
//
//	q = clamp(rne(acc · Mult / 2^Shift) + Zero, Lo, Hi)
//
// where rne rounds half to even. Lo/Hi fold a following ReLU or Clip into
// the saturation bounds.
type Requant struct {
	Mult  int64 // fixed-point multiplier, 0 < Mult < 2^MultBits
	Shift uint  // right shift, >= 1
	// Off is an offset in units of 2^-Shift (a float bias after the
	// accumulator, folded in): q = rne((acc·Mult + Off) / 2^Shift) + Zero.
	Off  int64
	Zero int32 // output zero point
	Lo   int32 // saturation lower bound (qmin, or the zero point for ReLU)
	Hi   int32 // saturation upper bound
	// MultBits is the multiplier width used (the hardware's operand width).
	MultBits uint
}

// Apply is the hardware's arithmetic, exactly.
func (r Requant) Apply(acc int64) int32 {
	p := acc*r.Mult + r.Off
	q := p >> r.Shift // arithmetic: floor
	rem := p - q<<r.Shift
	half := int64(1) << (r.Shift - 1)
	if rem > half || (rem == half && q&1 == 1) {
		q++
	}
	q += int64(r.Zero)
	if q < int64(r.Lo) {
		q = int64(r.Lo)
	}
	if q > int64(r.Hi) {
		q = int64(r.Hi)
	}
	return int32(q)
}

// RefRequant is the real-valued reference: clamp(rne(acc·m) + zero).
// m is taken as the exact rational value of its float64.
func RefRequant(acc int64, m float64, zero, lo, hi int32) int32 {
	return RefRequantOff(acc, m, 0, zero, lo, hi)
}

// RefRequantOff is clamp(rne(acc·m + o) + zero) in exact arithmetic.
func RefRequantOff(acc int64, m, o float64, zero, lo, hi int32) int32 {
	return refRequantRat(acc, new(big.Rat).SetFloat64(m), new(big.Rat).SetFloat64(o), zero, lo, hi)
}

// refRequantRat is clamp(rne(acc·m + o) + zero) for rational m and o.
func refRequantRat(acc int64, m, o *big.Rat, zero, lo, hi int32) int32 {
	x := new(big.Rat).SetInt64(acc)
	x.Mul(x, m)
	x.Add(x, o)
	q := rneRat(x)
	q += int64(zero)
	if q < int64(lo) {
		q = int64(lo)
	}
	if q > int64(hi) {
		q = int64(hi)
	}
	return int32(q)
}

// rneRat rounds a rational half to even.
func rneRat(x *big.Rat) int64 {
	num, den := x.Num(), x.Denom()
	q, r := new(big.Int), new(big.Int)
	q.DivMod(num, den, r) // Euclidean: r >= 0, so q = floor(x)
	r2 := new(big.Int).Lsh(r, 1)
	switch r2.Cmp(den) {
	case 1:
		q.Add(q, big.NewInt(1))
	case 0:
		if q.Bit(0) == 1 {
			q.Add(q, big.NewInt(1))
		}
	}
	return q.Int64()
}

// NewRequant finds the narrowest fixed-point multiplier (16 to 32 bits)
// whose arithmetic equals RefRequant for every acc in [accLo, accHi], and
// proves it. m is the real multiplier (input scale · weight scale / output
// scale), > 0. ONNX scales are float32 and so is the multiplier ONNX
// Runtime requantizes with: pass float64(float32(...)) and a 24-bit
// multiplier is always exact; narrower ones are used when the proof shows
// they give the same outputs on the reachable accumulators.
func NewRequant(m float64, zero, lo, hi int32, accLo, accHi int64) (Requant, error) {
	return NewRequantOff(m, 0, zero, lo, hi, accLo, accHi)
}

// NewRequantOff is NewRequant for rne(acc·m + o): o is a real offset (a
// float bias divided by the output scale), folded in as Off.
func NewRequantOff(m, o float64, zero, lo, hi int32, accLo, accHi int64) (Requant, error) {
	if !(m > 0) || math.IsInf(m, 0) || math.IsNaN(o) || math.IsInf(o, 0) {
		return Requant{}, fmt.Errorf("fpga: requantization multiplier %g (offset %g) must be positive and finite", m, o)
	}
	if lo > hi {
		return Requant{}, fmt.Errorf("fpga: requantization bounds [%d, %d] are empty", lo, hi)
	}
	if accLo > accHi {
		accLo, accHi = accHi, accLo
	}
	var lastErr error
	for bits := uint(16); bits <= 32; bits += 4 {
		r, err := fitRequant(m, bits)
		if err != nil {
			lastErr = err
			continue
		}
		r.Zero, r.Lo, r.Hi = zero, lo, hi
		r.Off = int64(math.Round(o * math.Ldexp(1, int(r.Shift))))
		if err := ProveRequantOff(r, m, o, accLo, accHi); err != nil {
			lastErr = err
			continue
		}
		return r, nil
	}
	return Requant{}, fmt.Errorf("fpga: no fixed-point multiplier up to 32 bits reproduces requantization by %g (offset %g) on accumulators [%d, %d]: %w", m, o, accLo, accHi, lastErr)
}

// fitRequant picks Shift so that Mult = round(m·2^Shift) uses exactly
// bits bits (its top bit set), keeping the product within 62 bits.
func fitRequant(m float64, bits uint) (Requant, error) {
	frac, exp := math.Frexp(m) // m = frac·2^exp, frac in [0.5, 1)
	shift := int(bits) - exp
	if shift < 1 || shift > 62 {
		return Requant{}, fmt.Errorf("multiplier %g needs a shift of %d", m, shift)
	}
	mult := int64(math.Round(frac * float64(int64(1)<<bits)))
	if mult >= int64(1)<<bits { // frac rounded up to 1
		mult >>= 1
		shift--
	}
	if shift < 1 {
		return Requant{}, fmt.Errorf("multiplier %g too large", m)
	}
	return Requant{Mult: mult, Shift: uint(shift), MultBits: bits}, nil
}

// ProveRequant checks r against the reference for every acc in
// [accLo, accHi]. Both are monotone non-decreasing in acc, so they are
// equal on the whole range iff they are equal at both ends and on both
// sides of every point where the reference steps to its next output level.
func ProveRequant(r Requant, m float64, accLo, accHi int64) error {
	return ProveRequantOff(r, m, 0, accLo, accHi)
}

// ProveRequantOff is ProveRequant against rne(acc·m + o).
func ProveRequantOff(r Requant, m, o float64, accLo, accHi int64) error {
	return proveRequantRat(r, new(big.Rat).SetFloat64(m), new(big.Rat).SetFloat64(o), accLo, accHi)
}

// NewRequantRat is NewRequant for an exact rational multiplier (no
// offset), e.g. an average pool's sx/(N·sy) with N not a power of two.
// It fails when no fixed-point multiplier of up to 32 bits reproduces
// rne(acc·m) on [accLo, accHi]: m is not dyadic and some reachable
// acc·m is exactly a half.
func NewRequantRat(m *big.Rat, zero, lo, hi int32, accLo, accHi int64) (Requant, error) {
	mf, _ := m.Float64()
	if m.Sign() <= 0 || math.IsInf(mf, 0) || mf == 0 {
		return Requant{}, fmt.Errorf("fpga: requantization multiplier %s must be positive and finite", m.RatString())
	}
	if lo > hi {
		return Requant{}, fmt.Errorf("fpga: requantization bounds [%d, %d] are empty", lo, hi)
	}
	if accLo > accHi {
		accLo, accHi = accHi, accLo
	}
	var lastErr error
	for bits := uint(16); bits <= 32; bits += 4 {
		r, err := fitRequant(mf, bits)
		if err != nil {
			lastErr = err
			continue
		}
		r.Zero, r.Lo, r.Hi = zero, lo, hi
		if err := proveRequantRat(r, m, new(big.Rat), accLo, accHi); err != nil {
			lastErr = err
			continue
		}
		return r, nil
	}
	return Requant{}, fmt.Errorf("fpga: no fixed-point multiplier up to 32 bits reproduces requantization by %s on accumulators [%d, %d]: %w", m.RatString(), accLo, accHi, lastErr)
}

func proveRequantRat(r Requant, mr, or *big.Rat, accLo, accHi int64) error {
	if accLo > accHi {
		return nil
	}
	if p := bitsOf(accLo) + r.MultBits + 1; p > 62 || bitsOf(r.Off) > 61 {
		return fmt.Errorf("product of a %d-bit multiplier and accumulator %d overflows", r.MultBits, accLo)
	}
	if p := bitsOf(accHi) + r.MultBits + 1; p > 62 {
		return fmt.Errorf("product of a %d-bit multiplier and accumulator %d overflows", r.MultBits, accHi)
	}
	check := func(acc int64) error {
		if acc < accLo || acc > accHi {
			return nil
		}
		if got, want := r.Apply(acc), refRequantRat(acc, mr, or, r.Zero, r.Lo, r.Hi); got != want {
			return fmt.Errorf("accumulator %d: fixed point gives %d, exact requantization %d", acc, got, want)
		}
		return nil
	}
	if err := check(accLo); err != nil {
		return err
	}
	if err := check(accHi); err != nil {
		return err
	}
	qLo := refRequantRat(accLo, mr, or, r.Zero, r.Lo, r.Hi)
	qHi := refRequantRat(accHi, mr, or, r.Zero, r.Lo, r.Hi)
	for q := qLo + 1; q <= qHi; q++ {
		// The reference reaches level q when rne(acc·m + o) >= q - zero,
		// i.e. acc·m + o >= (q - zero) - 1/2 (strictly more when that
		// rounds down to an even neighbour); t is the smallest integer
		// acc doing so.
		v := new(big.Rat).SetFrac64(2*int64(q-r.Zero)-1, 2)
		v.Sub(v, or)
		t := new(big.Rat).Quo(v, mr)
		ti := ceilRat(t)
		for _, a := range []int64{ti - 1, ti, ti + 1} {
			if err := check(a); err != nil {
				return err
			}
		}
	}
	return nil
}

func ceilRat(x *big.Rat) int64 {
	q, r := new(big.Int), new(big.Int)
	q.DivMod(x.Num(), x.Denom(), r)
	if r.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		if q.Sign() > 0 {
			return math.MaxInt64 / 4
		}
		return math.MinInt64 / 4
	}
	return q.Int64()
}

// bitsOf is the signed width of v (sign bit included).
func bitsOf(v int64) uint {
	if v < 0 {
		v = -v - 1
	}
	n := uint(1)
	for v > 0 {
		v >>= 1
		n++
	}
	return n
}
