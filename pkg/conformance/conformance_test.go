package conformance

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	_ "github.com/optictl/optictl/pkg/runtime/backends"
	"github.com/optictl/optictl/pkg/runtime/ort"
)

// interpFloor is the number of node tests interp passed when this floor was
// last raised. It only ever goes up.
const interpFloor = 1715

// ortFloor is the number of node tests the ort backend passed when this
// floor was last raised. It only ever goes up.
const ortFloor = 1376

func TestInterpFloor(t *testing.T) { runFloor(t, "interp", interpFloor) }

func TestORTFloor(t *testing.T) {
	if testing.Short() {
		t.Skip("full conformance run skipped in -short mode")
	}
	if _, _, _, err := ort.Load(""); err != nil {
		testutil.Missing(t, "the ONNX Runtime shared library ("+err.Error()+")")
		return
	}
	runFloor(t, "ort", ortFloor)
}

func runFloor(t *testing.T, backend string, floor int) {
	if testing.Short() {
		t.Skip("full conformance run skipped in -short mode")
	}
	dir := testutil.ConformanceDir(t)
	opts := Options{}
	if re := os.Getenv("CONFORMANCE_RUN"); re != "" {
		opts.Run = regexp.MustCompile(re)
	}
	rep, err := Run(dir, backend, opts)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("CONFORMANCE_VERBOSE") != "" {
		var lines []string
		for _, r := range rep.Results {
			if r.Status != Pass {
				lines = append(lines, string(r.Status)+" "+r.Name+" ["+r.Op+"]: "+r.Detail)
			}
		}
		sort.Strings(lines)
		t.Log("\n" + strings.Join(lines, "\n"))
	}
	t.Logf("%s: %d/%d passed (%.1f%%), %d failed, %d unsupported, %d errors",
		backend, rep.Pass, rep.Total, 100*rep.PassRate, rep.Fail, rep.Unsupported, rep.Error)
	if opts.Run == nil && rep.Pass < floor {
		t.Errorf("%s passes %d node tests, below the floor of %d", backend, rep.Pass, floor)
	}
}
