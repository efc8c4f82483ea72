package graph

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/optictl/optictl/pkg/onnxpb"
)

// LoadOptions tune Load and LoadBytes.
type LoadOptions struct {
	// BaseDir is the folder external data locations are relative to. Load
	// sets it to the model file's folder; LoadBytes has none by default and
	// then refuses external tensors.
	BaseDir string
	// SkipExternal leaves external tensors unread (Raw nil, External set):
	// useful for inspecting a huge model without reading its weights.
	SkipExternal bool
}

// ErrNotONNX is wrapped by errors for input that is not an ONNX model at all.
var ErrNotONNX = errors.New("not an ONNX model")

// Load reads an ONNX model file. The file is memory-mapped while it is
// parsed, so the heap holds roughly one copy of the weights.
func Load(path string) (*Model, error) {
	return LoadWith(path, LoadOptions{})
}

// LoadWith is Load with options (BaseDir defaults to the file's folder).
func LoadWith(path string, opts LoadOptions) (*Model, error) {
	data, release, err := mapFile(path)
	if err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	defer release()
	if opts.BaseDir == "" {
		opts.BaseDir = filepath.Dir(path)
	}
	m, err := LoadBytesWith(data, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// LoadBytes parses a serialized ModelProto. The returned model does not
// alias data.
func LoadBytes(data []byte) (*Model, error) { return LoadBytesWith(data, LoadOptions{}) }

// LoadBytesWith is LoadBytes with options.
func LoadBytesWith(data []byte, opts LoadOptions) (*Model, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("graph: empty file: %w", ErrNotONNX)
	}
	p := &onnxpb.ModelProto{}
	if err := (proto.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(data, p); err != nil {
		return nil, fmt.Errorf("graph: cannot parse protobuf (%s): %w", shortProtoErr(err), ErrNotONNX)
	}
	if p.Graph == nil {
		return nil, fmt.Errorf("graph: protobuf has no graph field: %w", ErrNotONNX)
	}
	if p.IrVersion == nil && len(p.OpsetImport) == 0 {
		return nil, fmt.Errorf("graph: no ir_version and no opset_import: %w", ErrNotONNX)
	}
	c := &converter{}
	var files map[string]*os.File
	if opts.BaseDir != "" {
		files = map[string]*os.File{}
		defer func() {
			for _, f := range files {
				f.Close()
			}
		}()
		c.ext = func(t *Tensor, want int64) ([]byte, error) {
			if opts.SkipExternal {
				return nil, nil
			}
			return readExternal(opts.BaseDir, files, t, want)
		}
	}
	m, err := c.model(p)
	if err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	// A node missing an input its op requires would make a backend
	// kernel index past its inputs, a zero stride divide by zero: refuse
	// them here, naming the node. (Check adds the rank checks.)
	if err := m.CheckSchema(); err != nil {
		return nil, err
	}
	if err := m.checkAttrs(); err != nil {
		return nil, err
	}
	return m, nil
}

func shortProtoErr(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "proto: ")
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// SafeJoin resolves a relative location inside base, refusing absolute
// paths, paths with "..", and symlinks that lead outside base.
func SafeJoin(base, location string) (string, error) {
	if strings.ContainsRune(location, 0) {
		return "", fmt.Errorf("location %q contains a NUL byte", location)
	}
	if location == "" || filepath.IsAbs(location) || !filepath.IsLocal(filepath.FromSlash(location)) {
		return "", fmt.Errorf("location %q is outside the model's folder", location)
	}
	p := filepath.Join(base, filepath.FromSlash(location))
	realBase, err := filepath.EvalSymlinks(base)
	if err != nil {
		return "", err
	}
	realP, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("file %q: %w", location, err)
	}
	rel, err := filepath.Rel(realBase, realP)
	if err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("location %q resolves outside the model's folder", location)
	}
	return realP, nil
}

// checkRegular returns f if it is a regular file, else closes it and says
// what it is: a FIFO, a device or a directory would block a read forever,
// never end, or fail oddly.
func checkRegular(f *os.File, location string) (*os.File, error) {
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("external data file %q is %s, not a regular file", location, fileKind(st.Mode()))
	}
	return f, nil
}

func fileKind(mode os.FileMode) string {
	switch {
	case mode.IsDir():
		return "a directory"
	case mode&os.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case mode&os.ModeSocket != 0:
		return "a socket"
	case mode&os.ModeCharDevice != 0:
		return "a character device"
	case mode&os.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file"
}

func readExternal(base string, files map[string]*os.File, t *Tensor, want int64) ([]byte, error) {
	info := t.External
	f, ok := files[info.Location]
	if !ok {
		p, err := SafeJoin(base, info.Location)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: external data %w", t.Name, err)
		}
		f, err = openRegular(p, info.Location)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		files[info.Location] = f
	}
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	if info.Offset > st.Size() {
		return nil, fmt.Errorf("tensor %q: external data offset %d is beyond the end of %q (%d bytes)", t.Name, info.Offset, info.Location, st.Size())
	}
	length := info.Length
	if length < 0 {
		length = st.Size() - info.Offset
	}
	if length != want {
		return nil, fmt.Errorf("tensor %q: external data length %d, %s%v needs %d", t.Name, length, t.DType, t.Dims, want)
	}
	if info.Offset > st.Size() || info.Offset+length > st.Size() {
		return nil, fmt.Errorf("tensor %q: external data [%d, %d) beyond the end of %q (%d bytes)", t.Name, info.Offset, info.Offset+length, info.Location, st.Size())
	}
	buf := make([]byte, length)
	if _, err := f.ReadAt(buf, info.Offset); err != nil && !(errors.Is(err, io.EOF) && length == 0) {
		return nil, fmt.Errorf("tensor %q: reading %q: %w", t.Name, info.Location, err)
	}
	return buf, nil
}
