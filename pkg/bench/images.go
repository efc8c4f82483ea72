package bench

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // GIF images in image folders (first frame)
	_ "image/jpeg"
	_ "image/png"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
)

// ImageOptions configure how image data (an image folder, or idx images)
// become input tensors. Pixels are float32 values 0-255, then
// (x*Scale - Mean[c]) / Std[c] per channel c.
type ImageOptions struct {
	// Scale multiplies every pixel first (0: 1; --pixel-scale).
	Scale float64
	// Mean and Std are one value for every channel, or one per channel of
	// the input (empty: 0 and 1; --pixel-mean, --pixel-std).
	Mean, Std []float64
	// Shapes fix an input's dynamic dims by name (--shape): with them the
	// images are resized to that H×W.
	Shapes map[string][]int64
	// MaxBytes bounds the decoded float32 set (0: the 1 GiB bound of a
	// --data file; negative: none). One decoded image is bounded too.
	MaxBytes int64
	// ClassFolders takes labels from the class folders of an image folder
	// (DIR/<class>/...): class i is the i-th folder name in sorted order.
	ClassFolders bool
}

// normalizes reports whether o changes pixel values.
func (o ImageOptions) normalizes() bool {
	return (o.Scale != 0 && o.Scale != 1) || len(o.Mean) > 0 || len(o.Std) > 0
}

// Data is what LoadDataWith read.
type Data struct {
	Samples []Sample
	// Files are the image files of an image folder, one per sample.
	Files []string
	// Classes (with ClassFolders) are the class folder names: label i is
	// Classes[i]. Labels are the samples' labels.
	Classes []string
	Labels  []int
}

// imageExts are the image file types an image folder may hold.
var imageExts = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".gif": true}

// LoadDataWith is LoadData with image options: an image folder (a folder
// with no test_data_set_N and no input_0.pb, holding .png, .jpg/.jpeg or
// .gif files at any depth) gives one sample per image, read in sorted path
// order, for a model with one image input: each image is resized
// (bilinear) to the input's H×W, turned into grayscale luma (1 channel) or
// RGB (3 channels), and laid out NCHW, or NHWC when the last dim is 1 or 3
// and the second is not (a 3-D input: CHW or HWC likewise). Dynamic H and
// W take o.Shapes, else the images' own size when they all share one.
// Normalization applies to image folders and idx images; with tensor
// files it is an error, as is ClassFolders with anything but an image
// folder.
func LoadDataWith(path string, infos []runtime.IOInfo, limit int, o ImageOptions) (*Data, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("bench: --data: %w", err)
	}
	if st.IsDir() {
		img, err := isImageFolder(path)
		if err != nil {
			return nil, err
		}
		if img {
			return loadImageFolder(path, infos, limit, o)
		}
	}
	if o.ClassFolders {
		return nil, fmt.Errorf("bench: %s is not an image folder: labels from class folders need DIR/<class>/<image>.png|jpg|gif", path)
	}
	if o.normalizes() && !isIDXFile(path) {
		return nil, fmt.Errorf("bench: %s holds tensors, not images: --pixel-scale, --pixel-mean and --pixel-std apply to an image folder or idx images only", path)
	}
	ss, err := loadData(path, infos, limit, o)
	if err != nil {
		return nil, err
	}
	return &Data{Samples: ss}, nil
}

// check validates o's numbers.
func (o ImageOptions) check() error {
	if math.IsNaN(o.Scale) || math.IsInf(o.Scale, 0) {
		return fmt.Errorf("bench: pixel scale %g is not a finite number", o.Scale)
	}
	for _, v := range o.Mean {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("bench: pixel mean %v is not finite", o.Mean)
		}
	}
	for _, v := range o.Std {
		if !(v != 0) || math.IsInf(v, 0) {
			return fmt.Errorf("bench: pixel std %v: every value must be finite and non-zero", o.Std)
		}
	}
	return nil
}

// isIDXFile reports a file that starts with an idx ubyte header (gzip or
// not), without reading it all.
func isIDXFile(path string) bool {
	raw, err := readMaybeGzipHead(path, 4)
	return err == nil && isIDX(raw)
}

// isImageFolder: dir holds no test data set and at least one image.
func isImageFolder(dir string) (bool, error) {
	if _, err := os.Stat(filepath.Join(dir, "input_0.pb")); err == nil {
		return false, nil
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "test_data_set_*")); len(m) > 0 {
		return false, nil
	}
	files, err := imageFiles(dir)
	if err != nil {
		return false, err
	}
	return len(files) > 0, nil
}

// imageFiles lists the image files under dir (any depth; names starting
// with "." are skipped), sorted by path.
func imageFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() && imageExts[strings.ToLower(filepath.Ext(p))] {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench: image folder %s: %w", dir, err)
	}
	slices.Sort(out)
	return out, nil
}

// imageLayout is where an image goes in an input tensor.
type imageLayout struct {
	rank       int  // 3 (no batch) or 4
	nhwc       bool // channels last
	c          int64
	h, w       int64 // -1: dynamic
	name, decl string
}

// layoutOf reads the image layout of input in (after --shape).
func layoutOf(in runtime.IOInfo, shapes map[string][]int64) (imageLayout, error) {
	shape := in.Shape
	if _, ok := shapes[in.Name]; ok {
		r, err := numerics.ResolveShape(numerics.InputsFromInfos([]runtime.IOInfo{in})[0], numerics.Dims{Shapes: shapes})
		if err != nil {
			return imageLayout{}, fmt.Errorf("bench: --shape %s: %w", in.Name, err)
		}
		shape = r
	}
	l := imageLayout{rank: len(shape), name: in.Name, decl: runtime.ShapeString(shape)}
	bad := func(why string) error {
		return fmt.Errorf("bench: input %q of shape %s does not take images: %s (want N×C×H×W, N×H×W×C, C×H×W or H×W×C with 1 or 3 channels; fix it with --shape where the command takes it)", in.Name, l.decl, why)
	}
	if in.DType != graph.Float && in.DType != graph.Undefined {
		return l, fmt.Errorf("bench: input %q takes %s; images become float32", in.Name, in.DType)
	}
	var d []int64
	switch len(shape) {
	case 4:
		if shape[0] > 1 {
			return l, bad(fmt.Sprintf("its batch dim is fixed to %d, one image is one sample of batch 1", shape[0]))
		}
		d = shape[1:]
	case 3:
		d = shape
	default:
		return l, bad(fmt.Sprintf("rank %d", len(shape)))
	}
	ch := func(v int64) bool { return v == 1 || v == 3 }
	if ch(d[2]) && !ch(d[0]) {
		l.nhwc, l.h, l.w, l.c = true, d[0], d[1], d[2]
	} else {
		l.h, l.w, l.c = d[1], d[2], d[0]
	}
	if !ch(l.c) {
		if l.c < 0 {
			return l, bad("its channel dim is dynamic")
		}
		return l, bad(fmt.Sprintf("%d channels", l.c))
	}
	if l.h == 0 || l.w == 0 {
		return l, bad("a zero H or W")
	}
	return l, nil
}

func (l imageLayout) shape() []int64 {
	var s []int64
	if l.nhwc {
		s = []int64{l.h, l.w, l.c}
	} else {
		s = []int64{l.c, l.h, l.w}
	}
	if l.rank == 4 {
		s = append([]int64{1}, s...)
	}
	return s
}

// perChannel expands a --pixel-mean/--pixel-std list to c values.
func perChannel(v []float64, c int, def float64, what string) ([]float64, error) {
	switch len(v) {
	case 0:
		return slices.Repeat([]float64{def}, c), nil
	case 1:
		return slices.Repeat([]float64{v[0]}, c), nil
	case c:
		return v, nil
	}
	return nil, fmt.Errorf("bench: %s has %d values; the input has %d channels (give 1 or %d)", what, len(v), c, c)
}

// pixelNorm is a resolved normalization: x*scale*k[c] + b[c].
type pixelNorm struct{ mul, add []float32 }

func (o ImageOptions) norm(c int) (pixelNorm, error) {
	mean, err := perChannel(o.Mean, c, 0, "--pixel-mean")
	if err != nil {
		return pixelNorm{}, err
	}
	std, err := perChannel(o.Std, c, 1, "--pixel-std")
	if err != nil {
		return pixelNorm{}, err
	}
	scale := o.Scale
	if scale == 0 {
		scale = 1
	}
	n := pixelNorm{mul: make([]float32, c), add: make([]float32, c)}
	for k := range c {
		n.mul[k] = float32(scale / std[k])
		n.add[k] = float32(-mean[k] / std[k])
	}
	return n, nil
}

// identity reports a normalization that changes nothing.
func (n pixelNorm) identity() bool {
	for k := range n.mul {
		if n.mul[k] != 1 || n.add[k] != 0 {
			return false
		}
	}
	return true
}

func (o ImageOptions) maxBytes() int64 {
	if o.MaxBytes == 0 {
		return maxDataFile
	}
	return o.MaxBytes
}

func loadImageFolder(dir string, infos []runtime.IOInfo, limit int, o ImageOptions) (*Data, error) {
	files, err := imageFiles(dir)
	if err != nil {
		return nil, err
	}
	if len(infos) != 1 {
		return nil, fmt.Errorf("bench: image folder %s feeds a model with one input, this one takes %d", dir, len(infos))
	}
	l, err := layoutOf(infos[0], o.Shapes)
	if err != nil {
		return nil, fmt.Errorf("bench: image folder %s: %w", dir, err)
	}
	out := &Data{}
	if o.ClassFolders {
		idx := map[string]int{}
		for _, f := range files {
			rel, _ := filepath.Rel(dir, f)
			parts := strings.Split(filepath.ToSlash(rel), "/")
			if len(parts) < 2 {
				return nil, fmt.Errorf("bench: %s is not in a class folder (labels from folders want DIR/<class>/<image>)", f)
			}
			if _, ok := idx[parts[0]]; !ok {
				idx[parts[0]] = len(out.Classes)
				out.Classes = append(out.Classes, parts[0])
			}
			out.Labels = append(out.Labels, idx[parts[0]])
		}
		// files are sorted, so are the classes; labels follow the order.
		if !slices.IsSorted(out.Classes) {
			slices.Sort(out.Classes)
			for i, f := range files {
				rel, _ := filepath.Rel(dir, f)
				c, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
				out.Labels[i], _ = slices.BinarySearch(out.Classes, c)
			}
		}
	}
	if limit > 0 && len(files) > limit {
		files = files[:limit]
		if out.Labels != nil {
			out.Labels = out.Labels[:limit]
		}
	}
	bound := o.maxBytes()
	// Headers first: sizes, decodability and the memory bound before any
	// pixel is decoded.
	sizes := make([][2]int64, len(files))
	for i, f := range files {
		cfg, err := decodeConfig(f)
		if err != nil {
			return nil, err
		}
		w, h := int64(cfg.Width), int64(cfg.Height)
		if w <= 0 || h <= 0 {
			return nil, fmt.Errorf("bench: image %s is empty (%dx%d)", f, w, h)
		}
		if bound > 0 && (w > bound/h/16) {
			return nil, fmt.Errorf("bench: image %s of %dx%d pixels would decode to over %s, the bound on data", f, w, h, numerics.FormatBytes(bound))
		}
		sizes[i] = [2]int64{w, h}
	}
	if l.h < 0 || l.w < 0 {
		for i, s := range sizes {
			if s != sizes[0] {
				return nil, fmt.Errorf("bench: image folder %s: input %q has dynamic H×W (shape %s) and the images differ in size (%s is %dx%d, %s is %dx%d): fix the input's shape (--shape %s=... where the command takes it, or a model with a fixed H×W) or resize the images to one size",
					dir, l.name, l.decl, files[0], sizes[0][0], sizes[0][1], files[i], s[0], s[1], l.name)
			}
		}
		if l.h < 0 {
			l.h = sizes[0][1]
		}
		if l.w < 0 {
			l.w = sizes[0][0]
		}
	}
	per := l.c * l.h * l.w
	if bound > 0 && per > 0 && int64(len(files)) > bound/(4*per) {
		return nil, fmt.Errorf("bench: image folder %s: %d images of %s floats take %s decoded, over the %s bound on data: read fewer (a limit) or use smaller images",
			dir, len(files), runtime.ShapeString(l.shape()), numerics.FormatBytes(int64(len(files))*4*per), numerics.FormatBytes(bound))
	}
	norm, err := o.norm(int(l.c))
	if err != nil {
		return nil, err
	}
	out.Files = files
	out.Samples = make([]Sample, len(files))
	for i, f := range files {
		px, err := loadImage(f, l, norm)
		if err != nil {
			return nil, err
		}
		out.Samples[i] = Sample{runtime.FromFloat32(l.shape(), px)}
	}
	return out, nil
}

func decodeConfig(path string) (image.Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return image.Config{}, fmt.Errorf("bench: image %w", err)
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return cfg, fmt.Errorf("bench: image %s: %w", path, describeDecodeErr(err))
	}
	return cfg, nil
}

func describeDecodeErr(err error) error {
	if errors.Is(err, image.ErrFormat) {
		return fmt.Errorf("not a PNG, JPEG or GIF image (%w)", err)
	}
	return err
}

// loadImage decodes one image into the input's layout.
func loadImage(path string, l imageLayout, n pixelNorm) ([]float32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bench: image %w", err)
	}
	img, _, err := image.Decode(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("bench: image %s: %w", path, describeDecodeErr(err))
	}
	b := img.Bounds()
	if b.Empty() {
		return nil, fmt.Errorf("bench: image %s is empty", path)
	}
	planes := imagePlanes(img, int(l.c))
	c, h, w := int(l.c), int(l.h), int(l.w)
	out := make([]float32, c*h*w)
	for k, p := range planes {
		r := resizeBilinear(p, b.Dx(), b.Dy(), w, h)
		for i, v := range r {
			v = v*n.mul[k] + n.add[k]
			if l.nhwc {
				out[i*c+k] = v
			} else {
				out[k*h*w+i] = v
			}
		}
	}
	return out, nil
}

// imagePlanes gives c planes of 0-255 values at the image's own size:
// grayscale luma (Go's color.Gray weights 0.299, 0.587, 0.114 on
// un-premultiplied RGB) for c = 1, else R, G, B.
func imagePlanes(img image.Image, c int) [][]float32 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	planes := make([][]float32, c)
	for k := range planes {
		planes[k] = make([]float32, w*h)
	}
	if g, ok := img.(*image.Gray); ok {
		for y := range h {
			row := g.Pix[y*g.Stride : y*g.Stride+w]
			for x, v := range row {
				for k := range planes {
					planes[k][y*w+x] = float32(v)
				}
			}
		}
		return planes
	}
	for y := range h {
		for x := range w {
			p := color.NRGBA64Model.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA64)
			i := y*w + x
			if c == 1 {
				l := (19595*uint64(p.R) + 38470*uint64(p.G) + 7471*uint64(p.B) + 1<<15) >> 16
				planes[0][i] = float32(l) / 257
				continue
			}
			planes[0][i] = float32(p.R) / 257
			planes[1][i] = float32(p.G) / 257
			planes[2][i] = float32(p.B) / 257
		}
	}
	return planes
}

// resizeBilinear resizes a sw×sh plane to dw×dh with bilinear
// interpolation on pixel centres (half-pixel offsets, edges clamped: as
// PIL's and OpenCV's bilinear without antialiasing).
func resizeBilinear(src []float32, sw, sh, dw, dh int) []float32 {
	if sw == dw && sh == dh {
		return src
	}
	axis := func(d, s int) (i0, i1 []int, f []float32) {
		i0, i1, f = make([]int, d), make([]int, d), make([]float32, d)
		for k := range d {
			x := (float64(k)+0.5)*float64(s)/float64(d) - 0.5
			x = max(x, 0)
			a := min(int(x), s-1)
			i0[k], i1[k], f[k] = a, min(a+1, s-1), float32(x-float64(a))
		}
		return
	}
	x0, x1, fx := axis(dw, sw)
	y0, y1, fy := axis(dh, sh)
	dst := make([]float32, dw*dh)
	for y := range dh {
		r0, r1 := src[y0[y]*sw:], src[y1[y]*sw:]
		for x := range dw {
			top := r0[x0[x]] + (r0[x1[x]]-r0[x0[x]])*fx[x]
			bot := r1[x0[x]] + (r1[x1[x]]-r1[x0[x]])*fx[x]
			dst[y*dw+x] = top + (bot-top)*fy[y]
		}
	}
	return dst
}
