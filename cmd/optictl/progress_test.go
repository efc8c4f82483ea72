package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/optictl/optictl/pkg/distill"
)

func TestProgressLine(t *testing.T) {
	cases := []struct {
		name string
		p    distill.Progress
		want []string
	}{
		{"start", distill.Progress{Epoch: 1, Epochs: 3, Step: 1, Steps: 10, Loss: 2.5, SamplesPerSec: 320, Elapsed: time.Second},
			[]string{"epoch 1/3 ", "[##------------------] 1/10", "loss 2.50000", "320 samples/s", "ETA 29s"}},
		{"half, last epoch", distill.Progress{Epoch: 2, Epochs: 2, Step: 5, Steps: 10, Loss: 0.123456, SamplesPerSec: 99.6, Elapsed: 5 * time.Second},
			[]string{"epoch 2/2 ", "[##########----------] 5/10", "loss 0.12346", "100 samples/s", "ETA 5s"}},
		{"done", distill.Progress{Epoch: 1, Epochs: 1, Step: 3, Steps: 3, Loss: 1, SamplesPerSec: 1, Elapsed: 3 * time.Minute},
			[]string{"[####################] 3/3", "ETA 0s"}},
		{"no time yet", distill.Progress{Epoch: 1, Epochs: 1, Step: 1, Steps: 3},
			[]string{"ETA ?"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := progressLine(c.p)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Fatalf("line %q lacks %q", got, w)
				}
			}
		})
	}
}

// fakeClock is a clock that advances only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestProgressBarThrottleAndClear(t *testing.T) {
	var buf bytes.Buffer
	clk := &fakeClock{t: time.Unix(1000, 0)}
	b := newProgressBar(&buf, true)
	b.now = clk.now
	step := func(s int) distill.Progress {
		return distill.Progress{Epoch: 1, Epochs: 1, Step: s, Steps: 100, Loss: 1, SamplesPerSec: 10, Elapsed: time.Duration(s) * time.Second}
	}
	// 50 steps 10 ms apart: 500 ms, so 5 redraws (at 0, 100, ..., 400 ms).
	for s := 1; s <= 50; s++ {
		b.Update(step(s))
		clk.t = clk.t.Add(10 * time.Millisecond)
	}
	out := buf.String()
	if n := strings.Count(out, "\r"); n != 5 {
		t.Fatalf("%d redraws in 500 ms, want 5:\n%q", n, out)
	}
	if strings.Contains(out, "\n") {
		t.Fatalf("the bar wrote a newline: %q", out)
	}
	if !strings.Contains(out, "\repoch 1/1 [") || !strings.Contains(out, " 41/100 ") || strings.Contains(out, " 42/100 ") {
		t.Fatalf("redraws at the wrong steps: %q", out)
	}
	// Lines on stdout clear the bar first: spaces over its length.
	var stdout bytes.Buffer
	buf.Reset()
	w := b.ClearBefore(&stdout)
	w.Write([]byte("epoch 1: loss 1\n"))
	drawn := len(progressLine(step(41)))
	if want := "\r" + strings.Repeat(" ", drawn) + "\r"; buf.String() != want {
		t.Fatalf("clear wrote %q, want %q", buf.String(), want)
	}
	if stdout.String() != "epoch 1: loss 1\n" {
		t.Fatalf("stdout %q", stdout.String())
	}
	// Nothing to clear a second time; a redraw after the interval; Done
	// clears it and later updates draw nothing.
	buf.Reset()
	w.Write([]byte("x\n"))
	if buf.Len() != 0 {
		t.Fatalf("cleared twice: %q", buf.String())
	}
	clk.t = clk.t.Add(time.Second)
	b.Update(step(60))
	if !strings.HasPrefix(buf.String(), "\repoch 1/1") {
		t.Fatalf("no redraw after a clear: %q", buf.String())
	}
	buf.Reset()
	b.Done()
	clk.t = clk.t.Add(time.Second)
	b.Update(step(70))
	if want := "\r" + strings.Repeat(" ", len(progressLine(step(60)))) + "\r"; buf.String() != want {
		t.Fatalf("after Done: %q, want %q", buf.String(), want)
	}
}

func TestProgressBarShorterLinePadsAndWidth(t *testing.T) {
	var buf bytes.Buffer
	clk := &fakeClock{t: time.Unix(0, 0)}
	b := newProgressBar(&buf, true)
	b.now = clk.now
	long := distill.Progress{Epoch: 1, Epochs: 1, Step: 1, Steps: 1000, Loss: 12345.678, SamplesPerSec: 123456, Elapsed: time.Hour}
	short := distill.Progress{Epoch: 1, Epochs: 1, Step: 2, Steps: 1000, Loss: 1, SamplesPerSec: 1, Elapsed: time.Second}
	b.Update(long)
	clk.t = clk.t.Add(time.Second)
	buf.Reset()
	b.Update(short)
	ls, ss := progressLine(long), progressLine(short)
	if want := "\r" + ss + strings.Repeat(" ", len(ls)-len(ss)); buf.String() != want {
		t.Fatalf("shorter redraw %q, want %q", buf.String(), want)
	}
	// A narrow terminal: the line is cut to its width.
	buf.Reset()
	n := newProgressBar(&buf, true)
	n.width = 30
	n.Update(long)
	if buf.String() != "\r"+ls[:30] {
		t.Fatalf("cut line %q", buf.String())
	}
	// Disabled: nothing at all.
	buf.Reset()
	d := newProgressBar(&buf, false)
	d.Update(long)
	d.ClearBefore(&bytes.Buffer{}).Write([]byte("x"))
	d.Done()
	if buf.Len() != 0 {
		t.Fatalf("disabled bar wrote %q", buf.String())
	}
}

func TestProgressMode(t *testing.T) {
	cases := []struct {
		mode string
		json bool
		want bool
		err  bool
	}{
		{"auto", false, false, false}, // a bytes.Buffer is no terminal
		{"always", true, true, false},
		{"never", false, false, false},
		{"sometimes", false, false, true},
	}
	for _, c := range cases {
		got, err := progressMode(c.mode, c.json, &bytes.Buffer{})
		if got != c.want || (err != nil) != c.err {
			t.Errorf("progressMode(%q, %v) = %v, %v", c.mode, c.json, got, err)
		}
	}
}
