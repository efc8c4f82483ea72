package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/bench"
	"github.com/optictl/optictl/pkg/runtime"
)

// writeMNISTPNGs writes the first n MNIST test digits as 28×28 gray PNGs:
// flat/00000.png ... and classes/<label>/00000.png ...
func writeMNISTPNGs(t *testing.T, dir string, n int) (flat, classes string) {
	t.Helper()
	src := testutil.MNISTDir(t)
	data, err := bench.LoadData(filepath.Join(src, "t10k-images-idx3-ubyte.gz"), []runtime.IOInfo{{Name: "x", DType: 1, Shape: []int64{1, 1, 28, 28}}}, n)
	if err != nil {
		t.Fatal(err)
	}
	lab, err := bench.LoadLabels(filepath.Join(src, "t10k-labels-idx1-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	flat, classes = filepath.Join(dir, "flat"), filepath.Join(dir, "classes")
	for i, s := range data {
		m := image.NewGray(image.Rect(0, 0, 28, 28))
		for j, v := range s[0].Float32s() {
			m.Pix[j] = byte(v)
		}
		for _, p := range []string{filepath.Join(flat, fmt.Sprintf("%05d.png", i)), filepath.Join(classes, fmt.Sprint(lab[i]), fmt.Sprintf("%05d.png", i))} {
			os.MkdirAll(filepath.Dir(p), 0o755)
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := png.Encode(f, m); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
	return flat, classes
}

// TestDistillImageFolder trains on folders of MNIST PNGs: the same bytes
// as on the idx file they came from, class folders as labels, the
// progress bar, and the errors of bad folders.
func TestDistillImageFolder(t *testing.T) {
	teacher := filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx")
	dir := t.TempDir()
	flat, classes := writeMNISTPNGs(t, dir, 64)
	idxImgs, _ := writeIDX(t, dir, 64, 28, 64)
	// Eleven classes: more than the model's 10 outputs.
	eleven := filepath.Join(dir, "eleven")
	for c := 0; c <= 10; c++ {
		d := filepath.Join(eleven, fmt.Sprintf("c%02d", c))
		os.MkdirAll(d, 0o755)
		b, _ := os.ReadFile(filepath.Join(flat, "00000.png"))
		os.WriteFile(filepath.Join(d, "a.png"), b, 0o644)
	}
	// A val folder with other classes than train's.
	otherVal := filepath.Join(dir, "otherval")
	for _, c := range []string{"0", "1", "x"} {
		os.MkdirAll(filepath.Join(otherVal, c), 0o755)
		b, _ := os.ReadFile(filepath.Join(flat, "00000.png"))
		os.WriteFile(filepath.Join(otherVal, c, "a.png"), b, 0o644)
	}
	// A broken image among good ones.
	broken := filepath.Join(dir, "broken")
	os.MkdirAll(broken, 0o755)
	b, _ := os.ReadFile(filepath.Join(flat, "00000.png"))
	os.WriteFile(filepath.Join(broken, "a.png"), b, 0o644)
	os.WriteFile(filepath.Join(broken, "b.png"), []byte("not a png"), 0o644)

	out := filepath.Join(dir, "student.onnx")
	base := []string{"distill", teacher, "-o", out, "--backend", "interp", "--student-prune", "0.5", "--epochs", "1", "--batch", "16", "--seed", "7", "--limit", "32"}
	run := func(extra ...string) (int, string, string) {
		var so, se bytes.Buffer
		os.Remove(out)
		code := Execute(append(cloneArgs(base), extra...), &so, &se)
		return code, so.String(), se.String()
	}

	// PNGs hold the idx pixels exactly: the same student bytes.
	if code, so, se := run("--train", idxImgs); code != 0 {
		t.Fatalf("idx: exit %d\n%s\n%s", code, so, se)
	}
	fromIDX, _ := os.ReadFile(out)
	code, so, se := run("--train", flat, "--progress", "always")
	if code != 0 {
		t.Fatalf("flat: exit %d\n%s\n%s", code, so, se)
	}
	fromPNG, err := os.ReadFile(out)
	if err != nil {
		t.Fatal("student not written:", err)
	}
	if !bytes.Equal(fromIDX, fromPNG) {
		t.Error("the PNG folder trained a different student than the idx file it came from")
	}
	if !strings.Contains(so, "epoch 1: loss") || strings.Contains(so, "\r") {
		t.Errorf("stdout %q", so)
	}
	if !strings.Contains(se, "\repoch 1/1 [") || !strings.Contains(se, "/2  loss ") || !strings.HasSuffix(se, " \r") {
		t.Errorf("stderr has no progress bar, or it is not cleared at the end: %q", se)
	}
	// Without a terminal (auto), nothing on stderr.
	if code, so, se := run("--train", flat); code != 0 || se != "" {
		t.Errorf("auto on a buffer: exit %d, stderr %q (stdout %s)", code, se, so)
	}

	// Class folders as labels, val from the same folders, -v and --json
	// print the mapping.
	code, so, se = run("-v", "--train", classes, "--train-labels", "folders", "--val", classes, "--val-labels", "folders", "--alpha", "0.5")
	if code != 0 || !strings.Contains(so, "classes (from class folders): 0=0 1=1") || !strings.Contains(so, "val top-1") {
		t.Fatalf("class folders: exit %d\n%s\n%s", code, so, se)
	}
	code, so, se = run("--train", classes, "--train-labels", "folders", "--json", "--pixel-scale", "0.5")
	if code != 0 {
		t.Fatalf("class folders json: exit %d\n%s\n%s", code, so, se)
	}
	var r struct {
		Classes map[string]int
		Pixels  string
		Loss    string
	}
	if err := json.Unmarshal([]byte(so), &r); err != nil || r.Classes["9"] != 9 || r.Classes["0"] != 0 || r.Pixels != "scale 0.5" || !strings.Contains(r.Loss, "cross-entropy") {
		t.Fatalf("json %s (%v)", so, err)
	}

	errs := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"too many classes", []string{"--train", eleven, "--train-labels", "folders"}, 1, "11 class folders"},
		{"class mismatch", []string{"--train", classes, "--train-labels", "folders", "--val", otherVal, "--val-labels", "folders"}, 1, "differ"},
		{"folders on idx", []string{"--train", idxImgs, "--train-labels", "folders"}, 1, "not an image folder"},
		{"broken image", []string{"--train", broken}, 1, "b.png"},
		{"pixel flags on tensors", []string{"--train", filepath.Join(testutil.ModelsDir(t), "mnist", "test_data_set_0"), "--pixel-std", "2"}, 1, "not images"},
		{"bad pixel std", []string{"--train", flat, "--pixel-std", "0"}, 2, "--pixel-std"},
		{"two means", []string{"--train", flat, "--pixel-mean", "1,2"}, 2, "1 value or 3"},
		{"bad progress", []string{"--train", flat, "--progress", "yes"}, 2, "--progress"},
	}
	for _, e := range errs {
		t.Run(e.name, func(t *testing.T) {
			code, so, se := run(e.args...)
			if code != e.code || !strings.Contains(se, e.msg) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)\nstdout %s", code, e.code, se, e.msg, so)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatal("a student was written")
			}
		})
	}
}
