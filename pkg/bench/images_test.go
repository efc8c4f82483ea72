package bench

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tensorio"
)

// rgbImage is a w×h image whose pixel (x, y) is f(x, y).
func rgbImage(w, h int, f func(x, y int) color.NRGBA) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.SetNRGBA(x, y, f(x, y))
		}
	}
	return m
}

func grayImage(w, h int, f func(x, y int) uint8) *image.Gray {
	m := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.SetGray(x, y, color.Gray{Y: f(x, y)})
		}
	}
	return m
}

// writeImage writes m as PNG, or JPEG (quality 100) for a .jpg name.
func writeImage(t *testing.T, path string, m image.Image) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	var err error
	if strings.HasSuffix(path, ".jpg") {
		err = jpeg.Encode(&b, m, &jpeg.Options{Quality: 100})
	} else {
		err = png.Encode(&b, m)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// zeroWidthPNG is a PNG whose header declares a 0×1 image.
func zeroWidthPNG() []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := []byte("IHDR\x00\x00\x00\x00\x00\x00\x00\x01\x08\x00\x00\x00\x00")
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)-4))
	b.Write(ihdr)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(ihdr))
	return b.Bytes()
}

// px is the NRGBA pixel with those values, opaque.
func px(r, g, b uint8) color.NRGBA { return color.NRGBA{r, g, b, 255} }

func TestLoadImageFolder(t *testing.T) {
	// A 2×2 RGB image: R = 10·(x+1), G = 100+y, B = 200.
	rgb := rgbImage(2, 2, func(x, y int) color.NRGBA { return px(uint8(10*(x+1)), uint8(100+y), 200) })
	// A 4×4 gray image with 2×2 blocks of 0, 40 / 80, 120 (+ small
	// variations averaging out).
	blocks := grayImage(4, 4, func(x, y int) uint8 { return uint8(40*(x/2)+80*(y/2)) + uint8((x+y)%2*2) })
	float := func(shape ...int64) []runtime.IOInfo {
		return []runtime.IOInfo{{Name: "img", DType: graph.Float, Shape: shape}}
	}
	type file struct {
		name string
		img  image.Image
		raw  []byte
	}
	cases := []struct {
		name    string
		files   []file
		infos   []runtime.IOInfo
		opts    ImageOptions
		limit   int
		shape   []int64
		want    [][]float32 // per sample; nil: not checked
		tol     float64
		labels  []int
		classes []string
		err     string
	}{
		{name: "gray png nchw", files: []file{{"a.png", grayImage(2, 1, func(x, _ int) uint8 { return uint8(7 + x) }), nil}},
			infos: float(1, 1, 1, 2), shape: []int64{1, 1, 1, 2}, want: [][]float32{{7, 8}}},
		{name: "rgb nchw", files: []file{{"a.png", rgb, nil}}, infos: float(1, 3, 2, 2), shape: []int64{1, 3, 2, 2},
			want: [][]float32{{10, 20, 10, 20, 100, 100, 101, 101, 200, 200, 200, 200}}},
		{name: "rgb nhwc", files: []file{{"a.png", rgb, nil}}, infos: float(1, 2, 2, 3), shape: []int64{1, 2, 2, 3},
			want: [][]float32{{10, 100, 200, 20, 100, 200, 10, 101, 200, 20, 101, 200}}},
		{name: "rgb chw without batch", files: []file{{"a.png", rgb, nil}}, infos: float(3, 2, 2), shape: []int64{3, 2, 2},
			want: [][]float32{{10, 20, 10, 20, 100, 100, 101, 101, 200, 200, 200, 200}}},
		{name: "rgb to gray luma", files: []file{{"a.png", rgbImage(1, 1, func(_, _ int) color.NRGBA { return px(200, 100, 50) }), nil}},
			infos: float(1, 1, 1, 1), shape: []int64{1, 1, 1, 1},
			want: [][]float32{{float32(color.GrayModel.Convert(px(200, 100, 50)).(color.Gray).Y)}}, tol: 0.5},
		{name: "gray to rgb", files: []file{{"a.png", grayImage(1, 1, func(_, _ int) uint8 { return 9 }), nil}},
			infos: float(1, 1, 1, 3), shape: []int64{1, 1, 1, 3}, want: [][]float32{{9, 9, 9}}},
		{name: "resize down bilinear", files: []file{{"a.png", blocks, nil}}, infos: float(1, 1, 2, 2), shape: []int64{1, 1, 2, 2},
			want: [][]float32{{1, 41, 81, 121}}},
		{name: "resize up bilinear", files: []file{{"a.png", grayImage(2, 1, func(x, _ int) uint8 { return uint8(100 * x) }), nil}},
			infos: float(1, 1, 1, 4), shape: []int64{1, 1, 1, 4}, want: [][]float32{{0, 25, 75, 100}}},
		{name: "normalize per channel", files: []file{{"a.png", rgb, nil}}, infos: float(1, 3, 2, 2), shape: []int64{1, 3, 2, 2},
			opts: ImageOptions{Scale: 0.1, Mean: []float64{1, 10, 0}, Std: []float64{1, 2, 4}},
			want: [][]float32{{0, 1, 0, 1, 0, 0, 0.05, 0.05, 5, 5, 5, 5}}, tol: 1e-5},
		{name: "normalize one value", files: []file{{"a.png", rgb, nil}}, infos: float(1, 3, 2, 2), shape: []int64{1, 3, 2, 2},
			opts: ImageOptions{Mean: []float64{100}},
			want: [][]float32{{-90, -80, -90, -80, 0, 0, 1, 1, 100, 100, 100, 100}}},
		{name: "jpeg gray", files: []file{{"a.jpg", grayImage(8, 8, func(_, _ int) uint8 { return 128 }), nil}},
			infos: float(1, 1, 8, 8), shape: []int64{1, 1, 8, 8}, want: [][]float32{slices.Repeat([]float32{128}, 64)}, tol: 1.5},
		{name: "jpeg rgb", files: []file{{"a.jpg", rgbImage(8, 8, func(_, _ int) color.NRGBA { return px(200, 50, 10) }), nil}},
			infos: float(1, 3, 8, 8), shape: []int64{1, 3, 8, 8},
			want: [][]float32{slices.Concat(slices.Repeat([]float32{200}, 64), slices.Repeat([]float32{50}, 64), slices.Repeat([]float32{10}, 64))}, tol: 4},
		{name: "sorted recursive limit", files: []file{
			{"b.png", grayImage(1, 1, func(_, _ int) uint8 { return 2 }), nil},
			{"a/z.png", grayImage(1, 1, func(_, _ int) uint8 { return 1 }), nil},
			{"c.png", grayImage(1, 1, func(_, _ int) uint8 { return 3 }), nil},
			{"notes.txt", nil, []byte("not an image")},
			{".hidden.png", nil, []byte("skipped")},
		}, infos: float(1, 1, 1, 1), limit: 2, shape: []int64{1, 1, 1, 1}, want: [][]float32{{1}, {2}}},
		{name: "dynamic hw from images", files: []file{{"a.png", rgb, nil}, {"b.png", rgb, nil}},
			infos: float(-1, 3, -1, -1), shape: []int64{1, 3, 2, 2}},
		{name: "dynamic hw from shape", files: []file{{"a.png", blocks, nil}, {"b.png", rgb, nil}},
			infos: float(-1, 1, -1, -1), opts: ImageOptions{Shapes: map[string][]int64{"img": {1, 1, 2, 2}}}, shape: []int64{1, 1, 2, 2},
			want: [][]float32{{1, 41, 81, 121}, nil}},
		{name: "class folders", files: []file{
			{"dog/1.png", grayImage(1, 1, func(_, _ int) uint8 { return 1 }), nil},
			{"cat/2.png", grayImage(1, 1, func(_, _ int) uint8 { return 2 }), nil},
			{"cat/sub/3.png", grayImage(1, 1, func(_, _ int) uint8 { return 3 }), nil},
			{"cat.x/4.png", grayImage(1, 1, func(_, _ int) uint8 { return 4 }), nil},
		}, infos: float(1, 1, 1, 1), opts: ImageOptions{ClassFolders: true}, shape: []int64{1, 1, 1, 1},
			want: [][]float32{{4}, {2}, {3}, {1}}, labels: []int{1, 0, 0, 2}, classes: []string{"cat", "cat.x", "dog"}},
		{name: "class folders limit", files: []file{
			{"b/1.png", grayImage(1, 1, func(_, _ int) uint8 { return 1 }), nil},
			{"a/2.png", grayImage(1, 1, func(_, _ int) uint8 { return 2 }), nil},
		}, infos: float(1, 1, 1, 1), opts: ImageOptions{ClassFolders: true}, limit: 1, shape: []int64{1, 1, 1, 1},
			want: [][]float32{{2}}, labels: []int{0}, classes: []string{"a", "b"}},

		{name: "image outside class folder", files: []file{{"a/1.png", rgb, nil}, {"2.png", rgb, nil}},
			infos: float(1, 3, 2, 2), opts: ImageOptions{ClassFolders: true}, err: "2.png is not in a class folder"},
		{name: "undecodable", files: []file{{"a.png", rgb, nil}, {"b.png", nil, []byte("garbage")}},
			infos: float(1, 3, 2, 2), err: "b.png: not a PNG, JPEG or GIF"},
		{name: "zero size", files: []file{{"z.png", nil, zeroWidthPNG()}}, infos: float(1, 3, 2, 2), err: "z.png"},
		{name: "truncated", files: []file{{"t.png", nil, func() []byte {
			var b bytes.Buffer
			png.Encode(&b, rgbImage(16, 16, func(x, y int) color.NRGBA { return px(uint8(x), uint8(y), 0) }))
			return b.Bytes()[:b.Len()-30]
		}()}}, infos: float(1, 3, 16, 16), err: "t.png"},
		{name: "four channels", files: []file{{"a.png", rgb, nil}}, infos: float(1, 4, 2, 2), err: "4 channels"},
		{name: "dynamic channels", files: []file{{"a.png", rgb, nil}}, infos: float(1, -1, 2, 2), err: "channel dim is dynamic"},
		{name: "rank 2", files: []file{{"a.png", rgb, nil}}, infos: float(2, 2), err: "rank 2"},
		{name: "batch fixed", files: []file{{"a.png", rgb, nil}}, infos: float(4, 3, 2, 2), err: "batch dim is fixed to 4"},
		{name: "int input", files: []file{{"a.png", rgb, nil}}, infos: []runtime.IOInfo{{Name: "img", DType: graph.Int64, Shape: []int64{1, 3, 2, 2}}}, err: "float32"},
		{name: "two inputs", files: []file{{"a.png", rgb, nil}}, infos: append(float(1, 3, 2, 2), float(1, 3, 2, 2)...), err: "one input"},
		{name: "dynamic hw mixed sizes", files: []file{{"a.png", rgb, nil}, {"b.png", blocks, nil}},
			infos: float(1, 3, -1, -1), err: "differ in size"},
		{name: "mean count", files: []file{{"a.png", rgb, nil}}, infos: float(1, 3, 2, 2), opts: ImageOptions{Mean: []float64{1, 2}}, err: "--pixel-mean has 2 values"},
		{name: "zero std", files: []file{{"a.png", rgb, nil}}, infos: float(1, 3, 2, 2), opts: ImageOptions{Std: []float64{0}}, err: "non-zero"},
		{name: "memory bound", files: []file{{"a.png", rgb, nil}, {"b.png", rgb, nil}}, infos: float(1, 3, 64, 64),
			opts: ImageOptions{MaxBytes: 64 * 64 * 3 * 4}, err: "over the 48 KiB bound on data"},
		{name: "huge image", files: []file{{"a.png", blocks, nil}}, infos: float(1, 1, 2, 2), opts: ImageOptions{MaxBytes: 100}, err: "a.png of 4x4 pixels"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range c.files {
				p := filepath.Join(dir, filepath.FromSlash(f.name))
				if f.img != nil {
					writeImage(t, p, f.img)
					continue
				}
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, f.raw, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			d, err := LoadDataWith(dir, c.infos, c.limit, c.opts)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.want != nil && len(d.Samples) != len(c.want) {
				t.Fatalf("%d samples, want %d", len(d.Samples), len(c.want))
			}
			if len(d.Files) != len(d.Samples) {
				t.Fatalf("%d files for %d samples", len(d.Files), len(d.Samples))
			}
			for i, s := range d.Samples {
				if !slices.Equal(s[0].Shape, c.shape) {
					t.Fatalf("sample %d shape %v, want %v", i, s[0].Shape, c.shape)
				}
				if c.want == nil || c.want[i] == nil {
					continue
				}
				got := s[0].Float32s()
				if len(got) != len(c.want[i]) {
					t.Fatalf("sample %d = %v, want %v", i, got, c.want[i])
				}
				for j := range got {
					if math.Abs(float64(got[j]-c.want[i][j])) > c.tol {
						t.Fatalf("sample %d = %v, want %v (±%g)", i, got, c.want[i], c.tol)
					}
				}
			}
			if !slices.Equal(d.Labels, c.labels) || !slices.Equal(d.Classes, c.classes) {
				t.Fatalf("labels %v classes %v, want %v %v", d.Labels, d.Classes, c.labels, c.classes)
			}
		})
	}
}

// TestLoadDataKinds: test data sets keep their meaning beside images, the
// image options are refused where they cannot apply, and LoadData reads
// image folders with pixel values 0-255.
func TestLoadDataKinds(t *testing.T) {
	infos := []runtime.IOInfo{{Name: "img", DType: graph.Float, Shape: []int64{1, 1, 1, 2}}}
	img := grayImage(2, 1, func(x, _ int) uint8 { return uint8(200 + x) })

	images := t.TempDir()
	writeImage(t, filepath.Join(images, "a.png"), img)

	sets := t.TempDir()
	writeImage(t, filepath.Join(sets, "stray.png"), img)
	os.MkdirAll(filepath.Join(sets, "test_data_set_0"), 0o755)
	if err := tensorio.SavePB(filepath.Join(sets, "test_data_set_0", "input_0.pb"), "img", runtime.FromFloat32([]int64{1, 1, 1, 2}, []float32{-1, -2})); err != nil {
		t.Fatal(err)
	}
	npy := filepath.Join(t.TempDir(), "x.npy")
	if err := tensorio.SaveNPY(npy, runtime.FromFloat32([]int64{1, 1, 1, 2}, []float32{5, 6})); err != nil {
		t.Fatal(err)
	}
	idxFile := filepath.Join(t.TempDir(), "images.gz")
	os.WriteFile(idxFile, gz(idx([]uint32{1, 1, 2}, []byte{100, 200})), 0o644)
	empty := t.TempDir()
	os.WriteFile(filepath.Join(empty, "notes.txt"), []byte("x"), 0o644)

	cases := []struct {
		name string
		path string
		opts ImageOptions
		want []float32
		err  string
	}{
		{"image folder", images, ImageOptions{}, []float32{200, 201}, ""},
		{"image folder scaled", images, ImageOptions{Scale: 1.0 / 200}, []float32{1, 1.005}, ""},
		{"test data set wins", sets, ImageOptions{}, []float32{-1, -2}, ""},
		{"idx normalized", idxFile, ImageOptions{Scale: 0.01, Mean: []float64{1}, Std: []float64{0.5}}, []float32{0, 2}, ""},
		{"idx three means", idxFile, ImageOptions{Mean: []float64{1, 2, 3}}, nil, "idx images are grayscale"},
		{"npy", npy, ImageOptions{}, []float32{5, 6}, ""},
		{"npy normalized", npy, ImageOptions{Std: []float64{2}}, nil, "apply to an image folder or idx images only"},
		{"test data set normalized", sets, ImageOptions{Scale: 2}, nil, "holds tensors, not images"},
		{"idx class folders", idxFile, ImageOptions{ClassFolders: true}, nil, "not an image folder"},
		{"no data", empty, ImageOptions{}, nil, "no images (.png, .jpg, .jpeg, .gif)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := LoadDataWith(c.path, infos, 0, c.opts)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Samples) != 1 {
				t.Fatalf("%d samples", len(d.Samples))
			}
			got := d.Samples[0][0].Float32s()
			for j := range got {
				if math.Abs(float64(got[j]-c.want[j])) > 1e-5 {
					t.Fatalf("got %v, want %v", got, c.want)
				}
			}
		})
	}
	s, err := LoadData(images, infos, 0)
	if err != nil || len(s) != 1 || s[0][0].Float32s()[1] != 201 {
		t.Fatalf("LoadData on an image folder: %v %v", s, err)
	}
}
