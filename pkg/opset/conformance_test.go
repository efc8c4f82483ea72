package opset

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/conformance"
	"github.com/optictl/optictl/pkg/graph"
	_ "github.com/optictl/optictl/pkg/runtime/interp"
	"github.com/optictl/optictl/pkg/runtime/ort"
)

// Floors for the conformance node models converted to Newest: how many
// compute their reference outputs after conversion (interp and ORT). They
// only ever go up.
const (
	convertInterpFloor = 1322
	convertORTFloor    = 1269
)

// convertible lists the conformance tests whose model imports a
// default-domain opset in [Oldest, Newest).
func convertible(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		m, err := graph.Load(filepath.Join(dir, e.Name(), "model.onnx"))
		if err != nil {
			continue
		}
		if v := m.Opset(""); v >= Oldest && v < Newest {
			names = append(names, e.Name())
		}
	}
	return names
}

func runConverted(t *testing.T, backend string, floor int) {
	dir := testutil.ConformanceDir(t)
	names := convertible(t, dir)
	if re := os.Getenv("CONFORMANCE_RUN"); re != "" {
		r := regexp.MustCompile(re)
		names = slicesFilter(names, r.MatchString)
	}
	if len(names) == 0 {
		t.Fatal("no conformance test below the newest opset")
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = regexp.QuoteMeta(n)
	}
	run := regexp.MustCompile("^(" + strings.Join(quoted, "|") + ")$")
	base, err := conformance.Run(dir, backend, conformance.Options{Run: run})
	if err != nil {
		t.Fatal(err)
	}
	conv, err := conformance.Run(dir, backend, conformance.Options{Run: run, Transform: func(m *graph.Model) (*graph.Model, error) {
		c, _, err := Convert(m, Newest)
		return c, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	before := map[string]conformance.Status{}
	for _, r := range base.Results {
		before[r.Name] = r.Status
	}
	var matching, refused, mismatching, failedBefore int
	var lines []string
	for _, r := range conv.Results {
		switch {
		case r.Status == conformance.Pass:
			matching++
		case strings.HasPrefix(r.Detail, "transform: "):
			refused++
			lines = append(lines, "refused "+r.Name+": "+strings.TrimPrefix(r.Detail, "transform: "))
		case before[r.Name] != conformance.Pass:
			failedBefore++ // the backend fails the original model too
		default:
			mismatching++
			lines = append(lines, string(r.Status)+" "+r.Name+": "+r.Detail)
		}
	}
	sort.Strings(lines)
	t.Logf("%s: %d conformance models at opset %d..%d converted to %d: %d match their reference outputs, %d refused, %d mismatch (%d more the backend fails unconverted too)\n%s",
		backend, len(names), Oldest, Newest-1, Newest, matching, refused, mismatching, failedBefore, strings.Join(lines, "\n"))
	if mismatching > 0 {
		t.Errorf("%d converted models no longer compute their reference outputs on %s", mismatching, backend)
	}
	if os.Getenv("CONFORMANCE_RUN") == "" && matching < floor {
		t.Errorf("%d converted models match on %s, below the floor of %d", matching, backend, floor)
	}
}

func slicesFilter(s []string, keep func(string) bool) []string {
	var out []string
	for _, x := range s {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// TestConvertConformanceInterp takes about 3 s; it runs in -short mode too.
func TestConvertConformanceInterp(t *testing.T) { runConverted(t, "interp", convertInterpFloor) }

func TestConvertConformanceORT(t *testing.T) {
	if testing.Short() {
		t.Skip("the ONNX Runtime conformance conversion (about 12 s) is skipped in -short mode")
	}
	if _, _, _, err := ort.Load(""); err != nil {
		testutil.Missing(t, "the ONNX Runtime shared library ("+err.Error()+")")
		return
	}
	runConverted(t, "ort", convertORTFloor)
}
