package tensorio

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

const npyMagic = "\x93NUMPY"

// maxHeader bounds a .npy header; numpy itself refuses headers over 10 KB
// unless told otherwise, so 1 MiB is generous.
const maxHeader = 1 << 20

var descrToDType = map[string]graph.DType{
	"f4": graph.Float, "f8": graph.Double, "f2": graph.Float16,
	"i8": graph.Int64, "i4": graph.Int32, "i2": graph.Int16, "i1": graph.Int8,
	"u1": graph.Uint8, "u2": graph.Uint16, "u4": graph.Uint32, "u8": graph.Uint64,
	"b1": graph.Bool,
}

func dtypeDescr(dt graph.DType) (string, error) {
	for k, v := range descrToDType {
		if v == dt {
			if dt.Size() == 1 {
				return "|" + k, nil
			}
			return "<" + k, nil
		}
	}
	return "", fmt.Errorf("tensorio: dtype %s has no .npy equivalent", dt)
}

// LoadNPY reads a .npy file.
func LoadNPY(path string) (*runtime.Tensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tensorio: %w", err)
	}
	t, err := DecodeNPY(b)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return t, nil
}

// ReadNPY reads one .npy array from r (all of r is read).
func ReadNPY(r io.Reader) (*runtime.Tensor, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("tensorio: %w", err)
	}
	return DecodeNPY(b)
}

// DecodeNPY parses the bytes of a .npy file.
func DecodeNPY(b []byte) (*runtime.Tensor, error) {
	if len(b) < 10 || string(b[:6]) != npyMagic {
		return nil, fmt.Errorf("tensorio: not a .npy file (bad magic)")
	}
	major := b[6]
	var hlen, off int
	switch major {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		if len(b) < 12 {
			return nil, fmt.Errorf("tensorio: .npy: truncated header")
		}
		h := binary.LittleEndian.Uint32(b[8:12])
		if h > maxHeader {
			return nil, fmt.Errorf("tensorio: .npy: header of %d bytes is too long", h)
		}
		hlen, off = int(h), 12
	default:
		return nil, fmt.Errorf("tensorio: .npy: unsupported format version %d.%d", major, b[7])
	}
	if hlen > len(b)-off {
		return nil, fmt.Errorf("tensorio: .npy: header claims %d bytes, file has %d", hlen, len(b)-off)
	}
	hdr := string(b[off : off+hlen])
	dt, shape, err := parseNPYHeader(hdr)
	if err != nil {
		return nil, err
	}
	data := b[off+hlen:]
	n, err := graph.NumElements(shape)
	if err != nil {
		return nil, fmt.Errorf("tensorio: .npy: shape %v: %w", shape, err)
	}
	want := dt.ByteSize(n)
	if n > 0 && want/n != int64(dt.Size()) {
		return nil, fmt.Errorf("tensorio: .npy: shape %v is too large", shape)
	}
	if int64(len(data)) != want {
		return nil, fmt.Errorf("tensorio: .npy: %s%v needs %d data bytes, file has %d", dt, shape, want, len(data))
	}
	t := runtime.NewTensor(dt, shape)
	copy(t.Raw, data)
	return t, nil
}

// parseNPYHeader parses the Python dict literal of a .npy header.
func parseNPYHeader(h string) (graph.DType, []int64, error) {
	h = strings.TrimSpace(strings.TrimRight(h, "\x00 \n"))
	if !strings.HasPrefix(h, "{") || !strings.HasSuffix(h, "}") {
		return 0, nil, fmt.Errorf("tensorio: .npy: header is not a dict: %.60q", h)
	}
	body := h[1 : len(h)-1]
	var descr string
	var shape []int64
	var haveDescr, haveShape, haveOrder bool
	for len(strings.TrimSpace(body)) > 0 {
		body = strings.TrimSpace(body)
		key, rest, err := pyString(body)
		if err != nil {
			return 0, nil, err
		}
		rest = strings.TrimSpace(rest)
		if !strings.HasPrefix(rest, ":") {
			return 0, nil, fmt.Errorf("tensorio: .npy: header: missing ':' after %q", key)
		}
		rest = strings.TrimSpace(rest[1:])
		switch key {
		case "descr":
			if strings.HasPrefix(rest, "[") {
				return 0, nil, fmt.Errorf("tensorio: .npy: structured arrays are not supported")
			}
			descr, rest, err = pyString(rest)
			if err != nil {
				return 0, nil, err
			}
			haveDescr = true
		case "fortran_order":
			switch {
			case strings.HasPrefix(rest, "False"):
				rest = rest[5:]
			case strings.HasPrefix(rest, "True"):
				return 0, nil, fmt.Errorf("tensorio: .npy: Fortran-order arrays are not supported (save with np.ascontiguousarray)")
			default:
				return 0, nil, fmt.Errorf("tensorio: .npy: header: bad fortran_order value")
			}
			haveOrder = true
		case "shape":
			shape, rest, err = pyTuple(rest)
			if err != nil {
				return 0, nil, err
			}
			haveShape = true
		default:
			return 0, nil, fmt.Errorf("tensorio: .npy: header: unexpected key %q", key)
		}
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, ",") {
			rest = rest[1:]
		} else if strings.TrimSpace(rest) != "" {
			return 0, nil, fmt.Errorf("tensorio: .npy: header: expected ',' near %.20q", rest)
		}
		body = rest
	}
	if !haveDescr || !haveShape || !haveOrder {
		return 0, nil, fmt.Errorf("tensorio: .npy: header lacks descr, fortran_order or shape")
	}
	dt, err := parseDescr(descr)
	if err != nil {
		return 0, nil, err
	}
	return dt, shape, nil
}

func parseDescr(d string) (graph.DType, error) {
	if len(d) < 2 {
		return 0, fmt.Errorf("tensorio: .npy: bad dtype %q", d)
	}
	order, code := d[0], d[1:]
	switch code[0] {
	case 'O':
		return 0, fmt.Errorf("tensorio: .npy: object arrays (dtype %q) are not supported", d)
	case 'U', 'S', 'V', 'a':
		return 0, fmt.Errorf("tensorio: .npy: string/void arrays (dtype %q) are not supported", d)
	}
	dt, ok := descrToDType[code]
	if !ok {
		return 0, fmt.Errorf("tensorio: .npy: unsupported dtype %q (supported: f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1)", d)
	}
	switch order {
	case '<', '|':
	case '=':
		// native order; optictl only runs on little-endian hosts
	case '>':
		if dt.Size() > 1 {
			return 0, fmt.Errorf("tensorio: .npy: big-endian dtype %q is not supported (convert with arr.astype('<%s'))", d, code)
		}
	default:
		return 0, fmt.Errorf("tensorio: .npy: bad byte order in dtype %q", d)
	}
	return dt, nil
}

// pyString parses a quoted Python string at the start of s.
func pyString(s string) (string, string, error) {
	if s == "" || (s[0] != '\'' && s[0] != '"') {
		return "", "", fmt.Errorf("tensorio: .npy: header: expected a string near %.20q", s)
	}
	q := s[0]
	end := strings.IndexByte(s[1:], q)
	if end < 0 {
		return "", "", fmt.Errorf("tensorio: .npy: header: unterminated string")
	}
	return s[1 : 1+end], s[2+end:], nil
}

// pyTuple parses "(3, 4)", "(3,)" or "()".
func pyTuple(s string) ([]int64, string, error) {
	if !strings.HasPrefix(s, "(") {
		return nil, "", fmt.Errorf("tensorio: .npy: header: shape is not a tuple")
	}
	end := strings.IndexByte(s, ')')
	if end < 0 {
		return nil, "", fmt.Errorf("tensorio: .npy: header: unterminated shape tuple")
	}
	shape := []int64{}
	for _, p := range strings.Split(s[1:end], ",") {
		p = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(p), "L"))
		if p == "" {
			continue
		}
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil || v < 0 {
			return nil, "", fmt.Errorf("tensorio: .npy: header: bad dimension %q", p)
		}
		shape = append(shape, v)
	}
	if len(shape) > 64 {
		return nil, "", fmt.Errorf("tensorio: .npy: header: %d dimensions is too many", len(shape))
	}
	return shape, s[end+1:], nil
}

// EncodeNPY returns the .npy bytes of t (version 1 header, or 2 when the
// header does not fit).
func EncodeNPY(t *runtime.Tensor) ([]byte, error) {
	var buf bytes.Buffer
	if err := WriteNPY(&buf, t); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteNPY writes t as a .npy file to w.
func WriteNPY(w io.Writer, t *runtime.Tensor) error {
	descr, err := dtypeDescr(t.DType)
	if err != nil {
		return err
	}
	if err := t.Check(); err != nil {
		return fmt.Errorf("tensorio: %w", err)
	}
	dims := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = strconv.FormatInt(d, 10)
	}
	shape := "(" + strings.Join(dims, ", ")
	if len(dims) == 1 {
		shape += ","
	}
	shape += ")"
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape)
	var pre []byte
	total := 10 + len(dict) + 1
	if total+63 < 1<<16 {
		pad := (64 - total%64) % 64
		h := dict + strings.Repeat(" ", pad) + "\n"
		pre = append([]byte(npyMagic), 1, 0)
		pre = binary.LittleEndian.AppendUint16(pre, uint16(len(h)))
		pre = append(pre, h...)
	} else {
		total += 2
		pad := (64 - total%64) % 64
		h := dict + strings.Repeat(" ", pad) + "\n"
		pre = append([]byte(npyMagic), 2, 0)
		pre = binary.LittleEndian.AppendUint32(pre, uint32(len(h)))
		pre = append(pre, h...)
	}
	if _, err := w.Write(pre); err != nil {
		return fmt.Errorf("tensorio: %w", err)
	}
	if _, err := w.Write(t.Raw); err != nil {
		return fmt.Errorf("tensorio: %w", err)
	}
	return nil
}

// SaveNPY writes t to path.
func SaveNPY(path string, t *runtime.Tensor) error {
	b, err := EncodeNPY(t)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("tensorio: %w", err)
	}
	return nil
}
