package tensorio

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/optictl/optictl/pkg/runtime"
)

// Named is a tensor with its name.
type Named struct {
	Name   string
	Tensor *runtime.Tensor
}

// maxNPZEntry bounds one decompressed .npz member (zip bombs).
const maxNPZEntry = 1 << 34

// LoadNPZ reads every array of a .npz file, in archive order. Names drop
// the ".npy" suffix, as numpy.load does.
func LoadNPZ(path string) ([]Named, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tensorio: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("tensorio: %w", err)
	}
	out, err := ReadNPZ(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return out, nil
}

// ReadNPZ reads a .npz archive of the given size.
func ReadNPZ(r io.ReaderAt, size int64) ([]Named, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("tensorio: not a .npz (zip) file: %w", err)
	}
	var out []Named
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			continue
		}
		if !strings.HasSuffix(f.Name, ".npy") {
			return nil, fmt.Errorf("tensorio: .npz member %q is not a .npy file", f.Name)
		}
		if f.UncompressedSize64 > maxNPZEntry {
			return nil, fmt.Errorf("tensorio: .npz member %q is too large (%d bytes)", f.Name, f.UncompressedSize64)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("tensorio: .npz member %q: %w", f.Name, err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, int64(f.UncompressedSize64)+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("tensorio: .npz member %q: %w", f.Name, err)
		}
		t, err := DecodeNPY(b)
		if err != nil {
			return nil, fmt.Errorf("%w (.npz member %q)", err, f.Name)
		}
		out = append(out, Named{Name: strings.TrimSuffix(f.Name, ".npy"), Tensor: t})
	}
	return out, nil
}

// WriteNPZ writes tensors as an uncompressed .npz archive (numpy.savez).
func WriteNPZ(w io.Writer, ts []Named) error {
	zw := zip.NewWriter(w)
	for _, nt := range ts {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: nt.Name + ".npy", Method: zip.Store})
		if err != nil {
			return fmt.Errorf("tensorio: %w", err)
		}
		if err := WriteNPY(fw, nt.Tensor); err != nil {
			return fmt.Errorf("%w (array %q)", err, nt.Name)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("tensorio: %w", err)
	}
	return nil
}

// SaveNPZ writes a .npz file.
func SaveNPZ(path string, ts []Named) error {
	var buf bytes.Buffer
	if err := WriteNPZ(&buf, ts); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("tensorio: %w", err)
	}
	return nil
}
