//go:build unix

package graph

import (
	"os"
	"syscall"
)

// openRegular opens an external data file for reading, refusing anything
// but a regular file. O_NONBLOCK keeps a FIFO swapped in after any earlier
// check from blocking the open (it has no effect on a regular file's reads);
// the mode is checked on the opened descriptor, so there is no window
// between check and use.
func openRegular(p, location string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	return checkRegular(f, location)
}
