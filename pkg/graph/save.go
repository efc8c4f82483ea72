package graph

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/optictl/optictl/pkg/onnxpb"
)

// protobuf's hard limit for one message; larger models need external data.
const maxProtoBytes = 2<<30 - 1

// SaveOptions tune Save.
type SaveOptions struct {
	// ExternalData stores initializers of at least ExternalThreshold bytes in
	// a side file (ExternalFile, default "<model file>.data") next to the
	// model. Required for models over 2 GB.
	ExternalData      bool
	ExternalFile      string
	ExternalThreshold int64
}

// Save writes the model to path atomically (a temporary file renamed into
// place), so a failed save never leaves a truncated model behind.
func (m *Model) Save(path string) error { return m.SaveWith(path, SaveOptions{}) }

// SaveWith is Save with options.
func (m *Model) SaveWith(path string, opts SaveOptions) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".optictl-*.onnx.tmp")
	if err != nil {
		return fmt.Errorf("graph: save: %w", err)
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	e := &exporter{}
	var dataTmp *os.File
	var dataName, dataFinal string
	if opts.ExternalData {
		loc := opts.ExternalFile
		if loc == "" {
			loc = filepath.Base(path) + ".data"
		}
		if !filepath.IsLocal(loc) {
			return fmt.Errorf("graph: save: external data file %q must be a plain name inside the model's folder", loc)
		}
		dataFinal = filepath.Join(dir, loc)
		dataTmp, err = os.CreateTemp(dir, ".optictl-*.data.tmp")
		if err != nil {
			return fmt.Errorf("graph: save: %w", err)
		}
		dataName = dataTmp.Name()
		defer func() {
			if !ok {
				dataTmp.Close()
				os.Remove(dataName)
			}
		}()
		thr := opts.ExternalThreshold
		if thr <= 0 {
			thr = 1024
		}
		bw := bufio.NewWriterSize(dataTmp, 1<<20)
		var off int64
		e.ext = func(t *Tensor) ([]*onnxpb.StringStringEntryProto, error) {
			if int64(len(t.Raw)) < thr {
				return nil, nil
			}
			align := int64(64)
			if len(t.Raw) >= 1<<16 {
				align = 4096
			}
			if pad := (align - off%align) % align; pad > 0 {
				if _, err := bw.Write(make([]byte, pad)); err != nil {
					return nil, err
				}
				off += pad
			}
			if _, err := bw.Write(t.Raw); err != nil {
				return nil, err
			}
			entries := []*onnxpb.StringStringEntryProto{
				{Key: proto.String("location"), Value: proto.String(filepath.ToSlash(loc))},
				{Key: proto.String("offset"), Value: proto.String(strconv.FormatInt(off, 10))},
				{Key: proto.String("length"), Value: proto.String(strconv.FormatInt(int64(len(t.Raw)), 10))},
			}
			off += int64(len(t.Raw))
			return entries, nil
		}
		w := bufio.NewWriterSize(tmp, 1<<20)
		if err := m.write(w, e); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("graph: save: %w", err)
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("graph: save external data: %w", err)
		}
		if err := dataTmp.Close(); err != nil {
			return fmt.Errorf("graph: save external data: %w", err)
		}
	} else {
		w := bufio.NewWriterSize(tmp, 1<<20)
		if err := m.write(w, e); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("graph: save: %w", err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("graph: save: %w", err)
	}
	// os.CreateTemp makes files readable by their owner only; a saved model
	// gets the mode of the file it replaces, or rw-r--r--.
	if err := os.Chmod(tmpName, fileMode(path)); err != nil {
		return fmt.Errorf("graph: save: %w", err)
	}
	if dataTmp != nil {
		if err := os.Chmod(dataName, fileMode(dataFinal)); err != nil {
			return fmt.Errorf("graph: save external data: %w", err)
		}
		if err := os.Rename(dataName, dataFinal); err != nil {
			return fmt.Errorf("graph: save external data: %w", err)
		}
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("graph: save: %w", err)
	}
	ok = true
	return nil
}

// fileMode is the permission bits of an existing file at path, or 0644.
func fileMode(path string) os.FileMode {
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
		return st.Mode().Perm()
	}
	return 0o644
}

// Marshal serializes the model to ONNX protobuf bytes (weights inline).
func (m *Model) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	if err := m.write(&buf, &exporter{}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// write streams the ModelProto: everything but the top-level initializers'
// raw bytes is marshalled by protobuf; the raw bytes are appended straight
// from the IR so saving never holds a second copy of the weights.
func (m *Model) write(w io.Writer, e *exporter) error {
	e.omitRaw = true
	mp, err := e.model(m)
	if err != nil {
		return fmt.Errorf("graph: save: %w", err)
	}
	gp := mp.Graph
	mp.Graph = nil
	inits := gp.Initializer
	gp.Initializer = nil
	mo := proto.MarshalOptions{Deterministic: true}
	head, err := mo.Marshal(mp)
	if err != nil {
		return fmt.Errorf("graph: save: %w", err)
	}
	gbytes, err := mo.Marshal(gp)
	if err != nil {
		return fmt.Errorf("graph: save: %w", err)
	}
	raws := make([][]byte, len(inits))
	sizes := make([]int, len(inits))
	graphLen := int64(len(gbytes))
	for i, tp := range inits {
		t := m.Graph.Initializers[i]
		n := mo.Size(tp)
		if t.DType != String && tp.DataLocation == nil {
			raws[i] = t.Raw
			n += 1 + protoVarintLen(uint64(len(t.Raw))) + len(t.Raw)
		}
		sizes[i] = n
		graphLen += int64(1 + protoVarintLen(uint64(n)) + n)
	}
	total := int64(len(head)) + 1 + int64(protoVarintLen(uint64(graphLen))) + graphLen
	if total > maxProtoBytes {
		return fmt.Errorf("graph: save: model is %d bytes, over protobuf's 2 GB limit: save with external data (--external-data)", total)
	}
	var tmp [binary.MaxVarintLen64 + 1]byte
	put := func(tag byte, n uint64) error {
		tmp[0] = tag
		k := binary.PutUvarint(tmp[1:], n)
		_, err := w.Write(tmp[:1+k])
		return err
	}
	if _, err := w.Write(head); err != nil {
		return fmt.Errorf("graph: save: %w", err)
	}
	if err := put(0x3A, uint64(graphLen)); err != nil { // ModelProto.graph = 7
		return fmt.Errorf("graph: save: %w", err)
	}
	if _, err := w.Write(gbytes); err != nil {
		return fmt.Errorf("graph: save: %w", err)
	}
	var tb []byte
	for i, tp := range inits {
		if err := put(0x2A, uint64(sizes[i])); err != nil { // GraphProto.initializer = 5
			return fmt.Errorf("graph: save: %w", err)
		}
		tb, err = mo.MarshalAppend(tb[:0], tp)
		if err != nil {
			return fmt.Errorf("graph: save: %w", err)
		}
		if _, err := w.Write(tb); err != nil {
			return fmt.Errorf("graph: save: %w", err)
		}
		if raws[i] != nil || (m.Graph.Initializers[i].DType != String && tp.DataLocation == nil) {
			if err := put(0x4A, uint64(len(raws[i]))); err != nil { // TensorProto.raw_data = 9
				return fmt.Errorf("graph: save: %w", err)
			}
			if err := writeLarge(w, raws[i]); err != nil {
				return fmt.Errorf("graph: save: %w", err)
			}
		}
	}
	return nil
}

// writeLarge writes p; when w is a bufio.Writer and p is at least its size,
// the buffer is flushed first so that p goes to the file directly instead
// of being copied through the buffer.
func writeLarge(w io.Writer, p []byte) error {
	if bw, ok := w.(*bufio.Writer); ok && len(p) >= bw.Size() && bw.Buffered() > 0 {
		if err := bw.Flush(); err != nil {
			return err
		}
	}
	_, err := w.Write(p)
	return err
}

func protoVarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
