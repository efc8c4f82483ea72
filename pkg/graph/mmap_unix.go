//go:build unix

package graph

import (
	"fmt"
	"os"
	"syscall"
)

// mapFile maps a file read-only; release unmaps it. Small and empty files
// are read normally.
func mapFile(path string) ([]byte, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.IsDir() {
		return nil, nil, fmt.Errorf("%s is a directory, not a model file", path)
	}
	size := st.Size()
	if size < 1<<16 || !st.Mode().IsRegular() {
		b, err := os.ReadFile(path)
		return b, func() {}, err
	}
	if int64(int(size)) != size {
		return nil, nil, fmt.Errorf("%s: file too large to map", path)
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_PRIVATE)
	if err != nil {
		b, err := os.ReadFile(path)
		return b, func() {}, err
	}
	return b, func() { _ = syscall.Munmap(b) }, nil
}
