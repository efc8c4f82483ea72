package fpga

import (
	"fmt"
	"strings"
)

// chanRTL is the per-channel output stage shared by the engines that end
// in a requantizer (MVAU, VVAU, the average pools): the parameter ROMs
// (bias, multiplier, shift, offset, table), one word per fold of PE
// lanes, and the Verilog that turns PE accumulators into PE output lanes.
// Keeping it in one place keeps the engines' requantization identical to
// Requant.Apply (and the proof behind it).
type chanRTL struct {
	name    string
	pe, nf  int
	acc, mb int // accumulator and multiplier widths
	pw      int // product width
	bw, mw4 int // ROM lane widths (whole hex digits)
	ow4     int
	hasOff  bool
	rq      []Requant
	lut     bool
	ob      int // output lane bits
}

func hexLane(v int64, bits int) string {
	u := uint64(v) & (1<<uint(bits) - 1)
	return fmt.Sprintf("%0*x", bits/4, u)
}

// newChanRTL writes the ROM files of name (name_b/_m/_s/_o/_l.mem) for
// channels in nf folds of pe lanes: channel f·pe + p is lane p of word f.
// rq nil: raw accumulator outputs (32-bit lanes).
func newChanRTL(files Files, name string, pe, nf int, acc uint, bias []int64, rq []Requant, lut [][256]int32) (*chanRTL, error) {
	c := &chanRTL{name: name, pe: pe, nf: nf, acc: int(acc), rq: rq, lut: lut != nil, ob: 8}
	var mb uint = 1
	for _, r := range rq {
		if r.MultBits > mb {
			mb = r.MultBits
		}
	}
	if rq == nil {
		c.ob = 32
		if c.acc > 32 {
			return nil, fmt.Errorf("fpga: %s: accumulators need %d bits, more than the 32-bit output lanes", name, c.acc)
		}
	}
	c.mb = int(mb)
	c.pw = c.acc + c.mb + 1
	c.bw, c.mw4, c.ow4 = roundUp4(c.acc), roundUp4(c.mb), roundUp4(c.pw)
	for _, r := range rq {
		c.hasOff = c.hasOff || r.Off != 0
	}
	if len(rq) > 0 {
		r0 := rq[0]
		for _, r := range rq {
			if r.Zero != r0.Zero || r.Lo != r0.Lo || r.Hi != r0.Hi {
				return nil, fmt.Errorf("fpga: %s: output zero point and bounds must be per tensor", name)
			}
		}
	}
	var bmem, mmem, smem, lmem, omem strings.Builder
	for f := 0; f < nf; f++ {
		for p := pe - 1; p >= 0; p-- {
			ch := f*pe + p
			bmem.WriteString(hexLane(bias[ch], c.bw))
			if rq != nil {
				mmem.WriteString(hexLane(rq[ch].Mult, c.mw4))
				smem.WriteString(hexLane(int64(rq[ch].Shift), 8))
				omem.WriteString(hexLane(rq[ch].Off, c.ow4))
			}
		}
		omem.WriteByte('\n')
		bmem.WriteByte('\n')
		mmem.WriteByte('\n')
		smem.WriteByte('\n')
	}
	// LUT ROM: address f*256 + byte holds PE output bytes.
	if lut != nil {
		for f := 0; f < nf; f++ {
			for q := 0; q < 256; q++ {
				for p := pe - 1; p >= 0; p-- {
					lmem.WriteString(hexLane(int64(lut[f*pe+p][q]), 8))
				}
				lmem.WriteByte('\n')
			}
		}
		files[name+"_l.mem"] = lmem.String()
	}
	files[name+"_b.mem"] = bmem.String()
	if rq != nil {
		files[name+"_m.mem"] = mmem.String()
		files[name+"_s.mem"] = smem.String()
		if c.hasOff {
			files[name+"_o.mem"] = omem.String()
		}
	}
	return c, nil
}

// decls declares the localparams ACC, MB, PW, BW, MW4, the ROMs (brom,
// mrom, srom, orom, lrom) with their $readmemh, and the requantizer's
// temporaries.
func (c *chanRTL) decls(w func(string, ...any)) {
	w("  localparam ACC = %d, MB = %d, PW = %d, BW = %d, MW4 = %d;\n", c.acc, c.mb, c.pw, c.bw, c.mw4)
	w("  reg [%d:0] brom [0:%d];\n", c.pe*c.bw-1, c.nf-1)
	if c.rq != nil {
		w("  reg [%d:0] mrom [0:%d];\n", c.pe*c.mw4-1, c.nf-1)
		w("  reg [%d:0] srom [0:%d];\n", c.pe*8-1, c.nf-1)
		if c.hasOff {
			w("  reg [%d:0] orom [0:%d];\n", c.pe*c.ow4-1, c.nf-1)
		}
	}
	if c.lut {
		w("  reg [%d:0] lrom [0:%d];\n", c.pe*8-1, c.nf*256-1)
	}
	w("  initial begin\n")
	w("    $readmemh(\"%s_b.mem\", brom);\n", c.name)
	if c.rq != nil {
		w("    $readmemh(\"%s_m.mem\", mrom);\n", c.name)
		w("    $readmemh(\"%s_s.mem\", srom);\n", c.name)
		if c.hasOff {
			w("    $readmemh(\"%s_o.mem\", orom);\n", c.name)
		}
	}
	if c.lut {
		w("    $readmemh(\"%s_l.mem\", lrom);\n", c.name)
	}
	w("  end\n")
	if c.rq != nil {
		w("  reg signed [PW-1:0] prod, q, rem, half;\n")
		w("  reg [7:0] sh;\n")
	}
}

// lane writes the statements (inside a loop over p, in an always @*
// block) that set qout[p*OB +: OB] from the accumulator expression acc
// (ACC bits, signed) of channel fold fold.
func (c *chanRTL) lane(w func(string, ...any), acc, fold string) {
	if c.rq == nil {
		w("      qout[p*32 +: 32] = {{(33-ACC){%s[ACC-1]}}, %s[ACC-2:0]};\n", acc, acc)
		return
	}
	r0 := c.rq[0]
	w("      sh = srom[%s][p*8 +: 8];\n", fold)
	if c.hasOff {
		w("      prod = $signed(%s) * $signed({1'b0, mrom[%s][p*MW4 +: MB]}) + $signed(orom[%s][p*%d +: PW]);\n", acc, fold, fold, c.ow4)
	} else {
		w("      prod = $signed(%s) * $signed({1'b0, mrom[%s][p*MW4 +: MB]});\n", acc, fold)
	}
	w("      q = prod >>> sh;\n")
	w("      rem = prod - (q <<< sh);\n")
	w("      half = {{(PW-1){1'b0}}, 1'b1} <<< (sh - 1);\n")
	w("      if (rem > half || (rem == half && q[0])) q = q + 1;\n")
	w("      q = q + %d;\n", r0.Zero)
	w("      if (q < %d) q = %d;\n", r0.Lo, r0.Lo)
	w("      if (q > %d) q = %d;\n", r0.Hi, r0.Hi)
	if c.lut {
		w("      qout[p*8 +: 8] = lrom[{%s, q[7:0]}][p*8 +: 8];\n", fold)
	} else {
		w("      qout[p*8 +: 8] = q[7:0];\n")
	}
}

// chanOutput is the Go model of the same stage for channel c.
func chanOutput(rq []Requant, lut [][256]int32, c int, acc int64) int32 {
	if rq == nil {
		return int32(acc)
	}
	q := rq[c].Apply(acc)
	if lut != nil {
		q = lut[c][byte(q)]
	}
	return q
}
