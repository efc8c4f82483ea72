package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optictl/optictl/internal/testutil"
	"github.com/optictl/optictl/pkg/bench"
	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// writeIDX writes n MNIST test images (side×side, cropped when side < 28)
// and labels as uncompressed idx files.
func writeIDX(t *testing.T, dir string, n, side, nLabels int) (images, labels string) {
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
	var img bytes.Buffer
	binary.Write(&img, binary.BigEndian, []uint32{0x803, uint32(n), uint32(side), uint32(side)})
	for _, s := range data {
		px := s[0].Float32s()
		for y := 0; y < side; y++ {
			for x := 0; x < side; x++ {
				img.WriteByte(byte(px[y*28+x]))
			}
		}
	}
	var lb bytes.Buffer
	binary.Write(&lb, binary.BigEndian, []uint32{0x801, uint32(nLabels)})
	for _, l := range lab[:nLabels] {
		lb.WriteByte(byte(l))
	}
	images = filepath.Join(dir, "images-idx3-ubyte")
	labels = filepath.Join(dir, "labels-idx1-ubyte")
	if side != 28 {
		images += ".bad"
	}
	if nLabels != n {
		labels += ".short"
	}
	if err := os.WriteFile(images, img.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(labels, lb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return images, labels
}

func TestDistillCommand(t *testing.T) {
	teacher := filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx")
	dir := t.TempDir()
	imgs, labs := writeIDX(t, dir, 96, 28, 96)
	_, short := writeIDX(t, dir, 96, 28, 10)
	badImgs, _ := writeIDX(t, dir, 96, 27, 96)
	out := filepath.Join(dir, "out.onnx")
	base := []string{"distill", teacher, "-o", out, "--backend", "interp", "--epochs", "1", "--batch", "32", "--seed", "3"}
	cases := []struct {
		name    string
		args    []string
		code    int
		stdout  string
		stderr  string
		written bool
	}{
		{"pure kd", append(cloneArgs(base), "--student-prune", "0.5", "--train", imgs, "--val", imgs, "--val-labels", labs), 0, "epoch 1: loss", "", true},
		{"val json", append(cloneArgs(base), "--student-prune", "0.5", "--train", imgs, "--val", imgs, "--val-labels", labs, "--json"), 0, `"val_top1_before"`, "", true},
		{"kd and labels json", append(cloneArgs(base), "--student", teacher, "--train", imgs, "--train-labels", labs, "--alpha", "0.3", "--temperature", "4", "--kd-standardize=false", "--json"), 0, `"loss": "0.3·KD(T=4) + 0.7·cross-entropy"`, "", true},
		{"default kd json", append(cloneArgs(base), "--student-prune", "0.5", "--train", imgs, "--json"), 0, `"loss": "KD(T=1, auto, standardized), no labels"`, "", true},
		{"raw kd auto T json", append(cloneArgs(base), "--student-prune", "0.5", "--train", imgs, "--kd-standardize=false", "--json"), 0, `auto), no labels"`, "", true},
		{"labels count", append(cloneArgs(base), "--student-prune", "0.5", "--train", imgs, "--train-labels", short), 1, "", "10 labels for 96 samples", false},
		{"image shape", append(cloneArgs(base), "--student-prune", "0.5", "--train", badImgs), 1, "", "27", false},
		{"both students", append(cloneArgs(base), "--student", teacher, "--student-prune", "0.5", "--train", imgs), 2, "", "exactly one of --student", false},
		{"alpha without labels", append(cloneArgs(base), "--student", teacher, "--train", imgs, "--alpha", "0.5"), 2, "", "--alpha", false},
		{"val without labels", append(cloneArgs(base), "--student", teacher, "--train", imgs, "--val", imgs), 2, "", "--val-labels", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(out)
			var so, se bytes.Buffer
			code := Execute(tc.args, &so, &se)
			if code != tc.code || !strings.Contains(so.String(), tc.stdout) || !strings.Contains(se.String(), tc.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tc.code, so.String(), se.String())
			}
			if _, err := os.Stat(out); (err == nil) != tc.written {
				t.Fatalf("written=%v, want %v", err == nil, tc.written)
			}
			if strings.HasSuffix(tc.name, "json") {
				var r struct {
					Epochs []struct{ Loss float64 }
				}
				if err := json.Unmarshal(so.Bytes(), &r); err != nil || len(r.Epochs) != 1 || !(r.Epochs[0].Loss > 0) {
					t.Errorf("report %s (%v)", so.String(), err)
				}
			}
		})
	}
	// Same seed, same bytes.
	var files [][]byte
	for i := 0; i < 2; i++ {
		var so, se bytes.Buffer
		if code := Execute(append(cloneArgs(base), "--student", teacher, "--train", imgs, "--train-labels", labs, "--alpha", "0.3"), &so, &se); code != 0 {
			t.Fatalf("run %d: exit %d: %s", i, code, se.String())
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b)
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Error("the same --seed wrote a different model")
	}
}

func cloneArgs(s []string) []string { return append([]string(nil), s...) }

// TestDistillFoldsBatchNorm: a student with BatchNormalization is folded
// (-O2) before training and trains; the written model has no BN left.
func TestDistillFoldsBatchNorm(t *testing.T) {
	dir := t.TempDir()
	imgs, _ := writeIDX(t, dir, 64, 28, 64)
	w := make([]float32, 4*1*3*3)
	for i := range w {
		w[i] = float32(i%7-3) * 0.01
	}
	fc := make([]float32, 10*4*13*13)
	for i := range fc {
		fc[i] = float32(i%11-5) * 0.001
	}
	ones := []float32{1, 1.5, 0.5, 1}
	m := &graph.Model{IRVersion: 8, Opsets: []graph.OpsetImport{{Version: 13}}, Graph: &graph.Graph{
		Name:    "bn",
		Inputs:  []*graph.ValueInfo{{Name: "x", DType: graph.Float, HasType: true, HasShape: true, Shape: graph.DimsOf(1, 1, 28, 28)}},
		Outputs: []*graph.ValueInfo{{Name: "y", DType: graph.Float, HasType: true, HasShape: true, Shape: graph.DimsOf(1, 10)}},
		Initializers: []*graph.Tensor{
			graph.NewFloat32("w", []int64{4, 1, 3, 3}, w),
			graph.NewFloat32("scale", []int64{4}, ones),
			graph.NewFloat32("bias", []int64{4}, []float32{0.1, 0, -0.1, 0.2}),
			graph.NewFloat32("mean", []int64{4}, []float32{1, 2, 3, 4}),
			graph.NewFloat32("var", []int64{4}, ones),
			graph.NewFloat32("fc", []int64{4 * 13 * 13, 10}, fc),
		},
		Nodes: []*graph.Node{
			{Name: "conv", OpType: "Conv", Inputs: []string{"x", "w"}, Outputs: []string{"c"}, Attrs: []*graph.Attr{graph.IntsAttr("kernel_shape", 3, 3)}},
			{Name: "bn", OpType: "BatchNormalization", Inputs: []string{"c", "scale", "bias", "mean", "var"}, Outputs: []string{"b"}},
			{Name: "relu", OpType: "Relu", Inputs: []string{"b"}, Outputs: []string{"r"}},
			{Name: "pool", OpType: "MaxPool", Inputs: []string{"r"}, Outputs: []string{"p"}, Attrs: []*graph.Attr{graph.IntsAttr("kernel_shape", 2, 2), graph.IntsAttr("strides", 2, 2)}},
			{Name: "flat", OpType: "Flatten", Inputs: []string{"p"}, Outputs: []string{"f"}},
			{Name: "fc", OpType: "MatMul", Inputs: []string{"f", "fc"}, Outputs: []string{"y"}},
		},
	}}
	path := filepath.Join(dir, "bn.onnx")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.onnx")
	var so, se bytes.Buffer
	if code := Execute([]string{"distill", path, "--student", path, "-o", out, "--backend", "interp", "--train", imgs, "--epochs", "1", "--batch", "16", "--lr", "1e-4"}, &so, &se); code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, so.String(), se.String())
	}
	got, err := graph.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range got.Graph.Nodes {
		if n.Is("BatchNormalization") {
			t.Fatal("the written student still has BatchNormalization")
		}
	}
}

// TestDistillResume: --epochs 1 then --resume --epochs 2 writes the same
// bytes as --epochs 2 straight; the checkpoint goes to OUT's .ckpt folder
// by default, or to --checkpoint-dir.
func TestDistillResume(t *testing.T) {
	teacher := filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx")
	dir := t.TempDir()
	imgs, _ := writeIDX(t, dir, 64, 28, 64)
	run := func(out string, extra ...string) string {
		t.Helper()
		// constant: the cosine schedule spans --epochs, which grows here
		args := append([]string{"distill", teacher, "-o", out, "--backend", "interp", "--student-prune", "0.5", "--train", imgs, "--batch", "32", "--seed", "5", "--lr-schedule", "constant", "--json"}, extra...)
		var so, se bytes.Buffer
		if code := Execute(args, &so, &se); code != 0 {
			t.Fatalf("%v: exit %d: %s", extra, code, se.String())
		}
		return so.String()
	}
	straight := filepath.Join(dir, "straight.onnx")
	run(straight, "--epochs", "2")
	if _, err := os.Stat(filepath.Join(dir, "straight.ckpt", "checkpoint.json")); err != nil {
		t.Errorf("no checkpoint in OUT's default .ckpt folder: %v", err)
	}
	out := filepath.Join(dir, "resumed.onnx")
	ck := filepath.Join(dir, "ck")
	run(out, "--epochs", "1", "--checkpoint-dir", ck)
	var so, se bytes.Buffer
	if code := Execute([]string{"distill", teacher, "-o", out, "--backend", "interp", "--student-prune", "0.5", "--train", imgs, "--batch", "32", "--seed", "6", "--lr-schedule", "constant", "--epochs", "2", "--resume", "--checkpoint-dir", ck}, &so, &se); code != 1 || !strings.Contains(se.String(), "other options") {
		t.Errorf("resume with another seed: exit %d: %s", code, se.String())
	}
	rep := run(out, "--epochs", "2", "--checkpoint-dir", ck, "--resume")
	var r struct{ Epochs []struct{ Epoch int } }
	if err := json.Unmarshal([]byte(rep), &r); err != nil || len(r.Epochs) != 2 || r.Epochs[1].Epoch != 2 {
		t.Errorf("resumed report: %s (%v)", rep, err)
	}
	a, err := os.ReadFile(straight)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("1 epoch + --resume to 2 wrote another model than 2 epochs straight")
	}
}

// TestDistillStudentWidth: --student-width W keeps W of every prunable
// layer's channels (so W=0.5 is --student-prune 0.5), then trains.
func TestDistillStudentWidth(t *testing.T) {
	teacher := filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx")
	dir := t.TempDir()
	imgs, _ := writeIDX(t, dir, 64, 28, 64)
	tm, err := graph.Load(teacher)
	if err != nil {
		t.Fatal(err)
	}
	convOut := func(m *graph.Model) []int64 {
		var out []int64
		for _, n := range m.Graph.Nodes {
			if n.Is("Conv") {
				for _, in := range m.Graph.Initializers {
					if in.Name == n.Inputs[1] {
						out = append(out, in.Dims[0])
					}
				}
			}
		}
		return out
	}
	full := convOut(tm)
	if len(full) == 0 {
		t.Fatal("the mnist teacher has no Conv with an initializer weight")
	}
	base := []string{"distill", teacher, "--backend", "interp", "--train", imgs, "--batch", "32", "--epochs", "1", "--seed", "2"}
	cases := []struct {
		name, flag, val string
		code            int
		stderr          string
	}{
		{"width quarter", "--student-width", "0.25", 0, ""},
		{"width half", "--student-width", "0.5", 0, ""},
		{"prune half", "--student-prune", "0.5", 0, ""},
		{"width one", "--student-width", "1", 2, "--student-width 1 is not in (0, 1)"},
		{"width zero", "--student-width", "0", 2, "not in (0, 1)"},
	}
	written := map[string][]byte{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".onnx")
			var so, se bytes.Buffer
			code := Execute(append(cloneArgs(base), "-o", out, tc.flag, tc.val), &so, &se)
			if code != tc.code || !strings.Contains(se.String(), tc.stderr) {
				t.Fatalf("exit %d (want %d): %s", code, tc.code, se.String())
			}
			if code != 0 {
				return
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			written[tc.name] = b
			if tc.flag != "--student-width" {
				return
			}
			m, err := graph.Load(out)
			if err != nil {
				t.Fatal(err)
			}
			w := 0.25
			if tc.val == "0.5" {
				w = 0.5
			}
			// The first conv is prunable (its channels feed the next conv);
			// the last one feeds a Flatten, which blocks pruning.
			if got := convOut(m); len(got) != len(full) || float64(got[0]) > float64(full[0])*w+0.5 {
				t.Errorf("conv output channels %v at width %g, teacher %v", got, w, full)
			}
			if !strings.Contains(so.String(), "at width "+tc.val) {
				t.Errorf("report does not name the width: %s", so.String())
			}
		})
	}
	if !bytes.Equal(written["width half"], written["prune half"]) {
		t.Error("--student-width 0.5 and --student-prune 0.5 trained different models")
	}
	var so, se bytes.Buffer
	if code := Execute(append(cloneArgs(base), "-o", filepath.Join(dir, "x.onnx"), "--student-width", "0.5", "--student-prune", "0.5"), &so, &se); code != 2 || !strings.Contains(se.String(), "exactly one of") {
		t.Errorf("width and prune together: exit %d: %s", code, se.String())
	}
}

// TestDistillDynamicStudent: the exported ppocr-cls (dynamic N, H, W and
// Shape arithmetic in its head) is trained at the training data's shape
// and the trained weights are written into the dynamic graph, which then
// runs at other shapes on interp and ORT alike.
func TestDistillDynamicStudent(t *testing.T) {
	dir := filepath.Join(testutil.ModelsDir(t), "ppocr-cls")
	out := filepath.Join(t.TempDir(), "student.onnx")
	var so, se bytes.Buffer
	code := Execute([]string{"distill", filepath.Join(dir, "model.onnx"), "-o", out, "--student-width", "0.75", "--train", dir,
		"--epochs", "1", "--batch", "1", "--workers", "1", "--backend", "interp", "-v"}, &so, &se)
	if code != 0 || !strings.Contains(se.String(), "training the student at the data's shape x=1x3x48x192") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, so.String(), se.String())
	}
	if strings.Contains(so.String(), "note:") {
		t.Errorf("the student was not written into the dynamic graph: %s", so.String())
	}
	m, err := graph.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	in := m.Graph.RealInputs()[0]
	if in.Shape[3].Size > 0 {
		t.Errorf("written student input %v: want the width still dynamic", in.Shape)
	}
	so.Reset()
	se.Reset()
	if code := Execute([]string{"compare", out, "--backends", "interp,ort", "--shape", "x=2x3x48x320"}, &so, &se); code != 0 {
		if strings.Contains(se.String(), "onnxruntime") {
			testutil.Missing(t, "ONNX Runtime: "+se.String())
		}
		t.Fatalf("compare at 2x3x48x320: exit %d\n%s\n%s", code, so.String(), se.String())
	}
}

// TestDistillEmbedding: openWakeWord's exported embedding model (TF
// export: Max for its clipped activations, an embedding output) is
// distilled with the cosine loss, chosen from the output, and the loss
// falls; the written student runs alike on interp and ORT.
func TestDistillEmbedding(t *testing.T) {
	dir := filepath.Join(testutil.ModelsDir(t), "oww-embedding")
	out := filepath.Join(t.TempDir(), "student.onnx")
	var so, se bytes.Buffer
	code := Execute([]string{"distill", filepath.Join(dir, "model.onnx"), "-o", out, "--student-width", "0.75", "--train", dir,
		"--epochs", "3", "--batch", "1", "--workers", "1", "--backend", "interp", "--json"}, &so, &se)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, so.String(), se.String())
	}
	var r struct {
		Loss   string
		Losses map[string]string
		Epochs []struct{ Loss float64 }
	}
	if err := json.Unmarshal(so.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Loss != "cosine, no labels" || len(r.Epochs) != 3 || !(r.Epochs[2].Loss < r.Epochs[0].Loss) {
		t.Errorf("report: loss %q, losses %v, epochs %+v: want the cosine loss, falling", r.Loss, r.Losses, r.Epochs)
	}
	so.Reset()
	se.Reset()
	if code := Execute([]string{"compare", out, "--backends", "interp,ort", "--data", dir}, &so, &se); code != 0 {
		t.Fatalf("compare: exit %d\n%s\n%s", code, so.String(), se.String())
	}
}
