//go:build !unix

package graph

import (
	"fmt"
	"os"
)

// openRegular opens an external data file for reading, refusing anything
// but a regular file (checked before opening, so a FIFO never blocks the
// open, and again on the opened file).
func openRegular(p, location string) (*os.File, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("external data file %q is %s, not a regular file", location, fileKind(st.Mode()))
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	return checkRegular(f, location)
}
