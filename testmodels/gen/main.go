// Command gen writes every model of package testmodels to <name>.onnx in
// the current folder (go generate runs it in testmodels/).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/optictl/optictl/testmodels"
)

func main() {
	dir := "."
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	var total int64
	for _, name := range testmodels.Names() {
		m := testmodels.All()[name]()
		path := filepath.Join(dir, name+".onnx")
		if err := m.Save(path); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		st, err := os.Stat(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		total += st.Size()
		fmt.Printf("%-18s %8d bytes\n", path, st.Size())
	}
	fmt.Printf("%-18s %8d bytes\n", "total", total)
}
