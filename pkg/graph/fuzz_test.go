package graph_test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
)

// maxSeedBytes keeps big models out of the seed corpus (the fuzzer mutates
// small inputs far better, and `go test` runs every seed).
const maxSeedBytes = 1 << 20

// fuzzSeeds returns the seed inputs: testdata/*.onnx, the tiny model built
// in code, and, when ../shared is present, every model under it up to 1 MB
// plus truncated copies of a sample of them. A missing ../shared is not an
// error here: the fuzz target then runs on the small seeds alone.
func fuzzSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	local, _ := filepath.Glob(filepath.Join("testdata", "*.onnx"))
	sort.Strings(local)
	for _, p := range local {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	seeds = append(seeds, marshal(f, tinyProto()))
	shared := testutil.SharedDir()
	if shared == "" {
		return seeds
	}
	var files []string
	_ = filepath.WalkDir(filepath.Join(shared, "models"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(p) == ".onnx" {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	for i, p := range files {
		st, err := os.Stat(p)
		if err != nil || st.Size() > maxSeedBytes {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		seeds = append(seeds, b)
		if i%8 == 0 && len(b) > 16 {
			seeds = append(seeds, b[:len(b)/2], b[:len(b)-len(b)/7])
		}
	}
	return seeds
}

// FuzzLoad feeds arbitrary bytes to LoadBytes. It must never panic; a model
// that loads must pass CheckSchema, survive CheckORT (which must not modify
// it), and serialise, load again, and format to the same text.
//
//	go test -run '^$' -fuzz=FuzzLoad -fuzztime=60s ./pkg/graph
func FuzzLoad(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := graph.LoadBytes(data)
		if err != nil {
			if m != nil {
				t.Fatal("LoadBytes returned both a model and an error")
			}
			return
		}
		_ = m.Verify() // must not panic; a loaded model may still be invalid
		if err := m.CheckSchema(); err != nil {
			t.Fatalf("Load accepted a model that breaks its schema: %v", err)
		}
		before := m.Format()
		_ = m.CheckORT() // must not panic (it runs shape inference on a copy)
		if m.Format() != before {
			t.Fatal("Check modified the model")
		}
		text := m.Format()
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("model loads but does not save: %v", err)
		}
		m2, err := graph.LoadBytes(out)
		if err != nil {
			t.Fatalf("saved model does not load: %v", err)
		}
		if got := m2.Format(); got != text {
			t.Fatalf("text form changed after save and reload:\n%s\nvs\n%s", text, got)
		}
		out2, err := m2.Marshal()
		if err != nil {
			t.Fatalf("reloaded model does not save: %v", err)
		}
		if string(out2) != string(out) {
			t.Fatal("second save differs from the first")
		}
	})
}
