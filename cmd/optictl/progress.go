package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/optictl/optictl/pkg/distill"
)

// progressBar draws distill's per-step progress as one line on a terminal,
// redrawn in place with '\r' at most every progressEvery:
//
//	epoch 2/3 [#########-----------] 140/312  loss 0.41237  2210 samples/s  ETA 1m5s
//
// ETA is the training time left over all epochs at the epoch's rate
// (validation not counted). Update is distill.Options.Progress; Clear
// removes the line (before anything else is printed to the terminal) and
// the next Update draws it again; Done clears it for good. A disabled bar
// draws nothing.
type progressBar struct {
	mu      sync.Mutex
	w       io.Writer
	enabled bool
	// now is the clock (tests inject one); width, when positive, cuts the
	// line to the terminal's width so that '\r' stays on one line.
	now   func() time.Time
	width int
	last  time.Time
	drawn int // length of the line on screen (0: none)
	done  bool
}

// progressEvery is the least time between two redraws (~10 a second).
const progressEvery = 100 * time.Millisecond

// newProgressBar draws on w when enabled.
func newProgressBar(w io.Writer, enabled bool) *progressBar {
	b := &progressBar{w: w, enabled: enabled, now: time.Now}
	if f, ok := w.(*os.File); ok && enabled {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 1 {
			b.width = cols - 1
		}
	}
	return b
}

// progressMode reads --progress: auto draws when w is a terminal and the
// report is not JSON; always and never force it.
func progressMode(mode string, json bool, w io.Writer) (bool, error) {
	switch mode {
	case "auto", "":
		return !json && isTerminal(w), nil
	case "always":
		return true, nil
	case "never":
		return false, nil
	}
	return false, usageErr("--progress %q: want auto, always or never", mode)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Update redraws the line for p unless the last redraw was under
// progressEvery ago.
func (b *progressBar) Update(p distill.Progress) {
	if !b.enabled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	t := b.now()
	if !b.last.IsZero() && t.Sub(b.last) < progressEvery {
		return
	}
	b.last = t
	line := progressLine(p)
	if b.width > 0 && len(line) > b.width {
		line = line[:b.width]
	}
	pad := ""
	if n := b.drawn - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprint(b.w, "\r"+line+pad)
	b.drawn = len(line)
}

// Clear removes the line, if any.
func (b *progressBar) Clear() {
	if !b.enabled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clear()
}

func (b *progressBar) clear() {
	if b.drawn > 0 {
		fmt.Fprint(b.w, "\r"+strings.Repeat(" ", b.drawn)+"\r")
		b.drawn = 0
	}
}

// Done clears the line; later Updates draw nothing.
func (b *progressBar) Done() {
	if !b.enabled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clear()
	b.done = true
}

// ClearBefore wraps w (a writer on the same terminal, like stdout) so that
// the bar is cleared before each write: the per-epoch lines never land
// after a half-drawn bar.
func (b *progressBar) ClearBefore(w io.Writer) io.Writer {
	if !b.enabled || w == nil {
		return w
	}
	return clearingWriter{b: b, w: w}
}

type clearingWriter struct {
	b *progressBar
	w io.Writer
}

func (c clearingWriter) Write(p []byte) (int, error) {
	c.b.Clear()
	return c.w.Write(p)
}

// progressLine is the bar's text for p.
func progressLine(p distill.Progress) string {
	const cells = 20
	fill := 0
	if p.Steps > 0 {
		fill = min(cells*p.Step/p.Steps, cells)
	}
	eta := "?"
	if p.Step > 0 && p.Elapsed > 0 {
		per := p.Elapsed / time.Duration(p.Step)
		left := time.Duration(p.Steps-p.Step)*per + time.Duration(max(p.Epochs-p.Epoch, 0)*p.Steps)*per
		eta = left.Round(time.Second).String()
	}
	return fmt.Sprintf("epoch %d/%d [%s%s] %d/%d  loss %.5f  %.0f samples/s  ETA %s",
		p.Epoch, p.Epochs, strings.Repeat("#", fill), strings.Repeat("-", cells-fill), p.Step, p.Steps, p.Loss, p.SamplesPerSec, eta)
}
