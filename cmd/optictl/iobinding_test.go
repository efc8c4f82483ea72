package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/runtime/ort"
)

// TestIOBindingFlag: --io-binding reaches the ort sessions of run,
// compare, bench and serve, and is a usage error for another backend.
func TestIOBindingFlag(t *testing.T) {
	// serve: the flag becomes the session option (no library needed).
	o := serveOptions{backend: "ort", device: "cpu", threads: 1, instances: 1, maxBatch: 1, queueSize: 8, http: ":0", grpc: "off"}
	o.ort.opt, o.ort.ioBind = "all", true
	cfg, err := o.config([]string{"m=" + filepath.Join(t.TempDir(), "m.onnx")})
	if err != nil || !cfg.Session.IOBinding {
		t.Fatalf("serve --io-binding: %v, session options %+v", err, cfg.Session)
	}

	if len(ort.Candidates("")) == 0 {
		testutil.Missing(t, "ONNX Runtime shared library (run `make setup`)")
		return
	}
	model := testModel(t, t.TempDir())
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"run", []string{"run", model, "--backend", "ort", "--io-binding"}, ExitOK, "on ort"},
		{"run on interp", []string{"run", model, "--backend", "interp", "--io-binding"}, ExitUsage, "--io-binding only apply to --backend ort"},
		{"compare", []string{"compare", model, "--backends", "interp,ort", "--io-binding"}, ExitOK, "PASS"},
		{"bench", []string{"bench", model, "--backend", "ort", "--io-binding", "--iterations", "20", "--rounds", "1", "--warmup", "0"}, ExitOK, "with io binding"},
		{"bench on interp", []string{"bench", model, "--backend", "interp", "--io-binding", "--iterations", "5"}, ExitUsage, "only apply to --backend ort"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var so, se bytes.Buffer
			code := Execute(tc.args, &so, &se)
			if out := so.String() + se.String(); code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s", code, tc.code, tc.want, out)
			}
		})
	}

	var so, se bytes.Buffer
	if code := Execute([]string{"bench", model, "--backend", "ort", "--io-binding", "--iterations", "10", "--rounds", "1", "--json", "-"}, &so, &se); code != ExitOK {
		t.Fatalf("bench --json: exit %d: %s", code, se.String())
	}
	var rep struct {
		IOBinding bool `json:"io_binding"`
		Results   []struct {
			Count int `json:"count"`
		} `json:"results"`
	}
	if err := json.Unmarshal(so.Bytes(), &rep); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, so.String())
	}
	if !rep.IOBinding || len(rep.Results) != 1 || rep.Results[0].Count != 10 {
		t.Fatalf("bench --json: io_binding %v, results %+v", rep.IOBinding, rep.Results)
	}
}
