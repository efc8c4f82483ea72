package bench

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/numerics"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/tensorio"
)

// maxDataFile bounds one --data or --labels file after decompression.
const maxDataFile = 1 << 30

// Sample is one set of model inputs in the model's input order.
type Sample []*runtime.Tensor

// LoadData reads --data: a folder of ONNX test_data_set_N folders (or one
// such folder), a single .pb/.npy/.npz file, or an MNIST-style idx image
// file (ubyte, optionally gzip-compressed; pixels become float32 values 0-255
// shaped like the model's single input). Tensors are matched to infos by
// name, or by position when the files carry no names. At most limit
// samples are read (0: all). A folder of images is read as LoadDataWith
// describes, with pixel values 0-255.
func LoadData(path string, infos []runtime.IOInfo, limit int) ([]Sample, error) {
	d, err := LoadDataWith(path, infos, limit, ImageOptions{})
	if err != nil {
		return nil, err
	}
	return d.Samples, nil
}

// loadData reads every kind of data but image folders.
func loadData(path string, infos []runtime.IOInfo, limit int, o ImageOptions) ([]Sample, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("bench: --data: %w", err)
	}
	names := make([]string, len(infos))
	for i, in := range infos {
		names[i] = in.Name
	}
	if st.IsDir() {
		dirs, err := tensorio.DataSets(path)
		if err != nil {
			return nil, fmt.Errorf("bench: --data: %w", err)
		}
		if len(dirs) == 0 {
			return nil, fmt.Errorf("bench: --data %s holds no test_data_set_N folders, no input_0.pb and no images (.png, .jpg, .jpeg, .gif)", path)
		}
		var out []Sample
		for _, d := range dirs {
			if limit > 0 && len(out) >= limit {
				break
			}
			ds, err := tensorio.LoadDataSet(d, names, nil)
			if err != nil {
				return nil, fmt.Errorf("bench: --data: %w", err)
			}
			s, err := match(ds.Inputs, infos, d)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	raw, err := readMaybeGzip(path)
	if err != nil {
		return nil, err
	}
	if isIDX(raw) {
		return idxImages(raw, path, infos, limit, o)
	}
	ts, err := tensorio.LoadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: --data: %w", err)
	}
	s, err := match(ts, infos, path)
	if err != nil {
		return nil, err
	}
	return []Sample{s}, nil
}

// match orders named tensors like infos: by name when every name matches,
// else by position.
func match(ts []tensorio.Named, infos []runtime.IOInfo, where string) (Sample, error) {
	if len(ts) != len(infos) {
		return nil, fmt.Errorf("bench: --data %s: %d input tensors, the model takes %d", where, len(ts), len(infos))
	}
	byName := map[string]*runtime.Tensor{}
	for _, t := range ts {
		byName[t.Name] = t.Tensor
	}
	out := make(Sample, len(infos))
	for i, in := range infos {
		if t, ok := byName[in.Name]; ok {
			out[i] = t
		} else {
			out[i] = ts[i].Tensor
		}
	}
	if err := runtime.CheckInputs(infos, out); err != nil {
		return nil, fmt.Errorf("bench: --data %s: %w", where, err)
	}
	return out, nil
}

// openMaybeGzip opens path for reading, decompressing it when it is gzip;
// close releases it.
func openMaybeGzip(path string) (r io.Reader, close func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	br := bufio.NewReader(f)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("bench: %s: %w", path, err)
		}
		return zr, func() { zr.Close(); f.Close() }, nil
	}
	return br, func() { f.Close() }, nil
}

func readMaybeGzip(path string) ([]byte, error) {
	r, done, err := openMaybeGzip(path)
	if err != nil {
		return nil, err
	}
	defer done()
	b, err := io.ReadAll(io.LimitReader(r, maxDataFile+1))
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", path, err)
	}
	if len(b) > maxDataFile {
		return nil, fmt.Errorf("bench: %s is over %d bytes", path, maxDataFile)
	}
	return b, nil
}

// readMaybeGzipHead reads the first n bytes of a file, decompressed when
// it is gzip.
func readMaybeGzipHead(path string, n int) ([]byte, error) {
	r, done, err := openMaybeGzip(path)
	if err != nil {
		return nil, err
	}
	defer done()
	b := make([]byte, n)
	k, err := io.ReadFull(r, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("bench: %s: %w", path, err)
	}
	return b[:k], nil
}

// isIDX reports an idx header of unsigned bytes: 0x00 0x00 0x08 ndim.
func isIDX(b []byte) bool {
	return len(b) >= 4 && b[0] == 0 && b[1] == 0 && b[2] == 0x08 && b[3] >= 1 && b[3] <= 4
}

// parseIDX returns the dims and data of an idx ubyte file, checking that the
// dims agree with the bytes present.
func parseIDX(b []byte, what string) ([]int64, []byte, error) {
	if !isIDX(b) {
		return nil, nil, fmt.Errorf("bench: %s is not an idx ubyte file", what)
	}
	nd := int(b[3])
	if len(b) < 4+4*nd {
		return nil, nil, fmt.Errorf("bench: %s: idx header truncated", what)
	}
	dims := make([]int64, nd)
	n := int64(1)
	for k := range nd {
		dims[k] = int64(binary.BigEndian.Uint32(b[4+4*k:]))
		if dims[k] != 0 && n > math.MaxInt64/dims[k] {
			return nil, nil, fmt.Errorf("bench: %s: idx dims %v overflow", what, dims)
		}
		n *= dims[k]
	}
	data := b[4+4*nd:]
	if int64(len(data)) != n {
		return nil, nil, fmt.Errorf("bench: %s: idx dims %v need %d bytes, the file has %d", what, dims, n, len(data))
	}
	return dims, data, nil
}

func idxImages(raw []byte, path string, infos []runtime.IOInfo, limit int, o ImageOptions) ([]Sample, error) {
	norm, err := o.norm(1)
	if err != nil {
		return nil, fmt.Errorf("bench: --data %s: idx images are grayscale: %w", path, err)
	}
	dims, data, err := parseIDX(raw, path)
	if err != nil {
		return nil, err
	}
	if len(dims) < 2 {
		return nil, fmt.Errorf("bench: --data %s: idx file of dims %v holds labels, not images (use --labels)", path, dims)
	}
	if len(infos) != 1 {
		return nil, fmt.Errorf("bench: --data %s: idx images feed a model with one input, this one takes %d", path, len(infos))
	}
	shape, err := numerics.ResolveShape(numerics.InputsFromInfos(infos[:1])[0], numerics.Dims{})
	if err != nil {
		return nil, err
	}
	per := int64(1)
	for _, d := range dims[1:] {
		per *= d
	}
	want, err := graph.NumElements(shape)
	if err != nil || want != per {
		return nil, fmt.Errorf("bench: --data %s: images of %v pixels do not fit input %q of shape %s", path, dims[1:], infos[0].Name, runtime.ShapeString(infos[0].Shape))
	}
	if infos[0].DType != graph.Float && infos[0].DType != graph.Undefined {
		return nil, fmt.Errorf("bench: --data %s: idx images become float32, input %q takes %s", path, infos[0].Name, infos[0].DType)
	}
	count := int(dims[0])
	if limit > 0 && count > limit {
		count = limit
	}
	out := make([]Sample, count)
	for i := range count {
		px := make([]float32, per)
		for j := range px {
			px[j] = float32(data[int64(i)*per+int64(j)])
		}
		if !norm.identity() {
			for j := range px {
				px[j] = px[j]*norm.mul[0] + norm.add[0]
			}
		}
		out[i] = Sample{runtime.FromFloat32(shape, px)}
	}
	return out, nil
}

// LoadLabels reads class labels: an idx ubyte label file (as MNIST's
// t10k-labels-idx1-ubyte, gzip or not), or text with one integer per line
// (blank lines and lines starting with # are skipped).
func LoadLabels(path string) ([]int, error) {
	raw, err := readMaybeGzip(path)
	if err != nil {
		return nil, err
	}
	if isIDX(raw) {
		dims, data, err := parseIDX(raw, path)
		if err != nil {
			return nil, err
		}
		if len(dims) != 1 {
			return nil, fmt.Errorf("bench: --labels %s: idx dims %v are not a label vector", path, dims)
		}
		out := make([]int, len(data))
		for i, v := range data {
			out[i] = int(v)
		}
		return out, nil
	}
	var out []int
	sc := bufio.NewScanner(bytes.NewReader(raw))
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("bench: --labels %s:%d: %q is not a class index", filepath.Base(path), line, s)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bench: --labels %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("bench: --labels %s holds no labels", path)
	}
	return out, nil
}
