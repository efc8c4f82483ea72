//go:build unix

package graph_test

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/optictl/optictl/pkg/graph"
)

// TestLoadRefusesFIFOExternalData: a named pipe inside the model's folder
// used to block Load (and so `inspect`) forever; it is refused at once.
func TestLoadRefusesFIFOExternalData(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "w.bin"), 0o644); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	path := writeExternalModel(t, dir, "w.bin", nil)
	done := make(chan error, 1)
	go func() {
		_, err := graph.Load(path)
		done <- err
	}()
	select {
	case err := <-done:
		checkOneLine(t, err, `"W"`, `"w.bin" is a named pipe (FIFO), not a regular file`)
	case <-time.After(10 * time.Second):
		t.Fatal("Load blocked on a FIFO for 10 s")
	}
}
