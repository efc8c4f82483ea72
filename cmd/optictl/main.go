// Command optictl optimizes, verifies, benchmarks and serves ONNX models.
package main

import (
	"os"
)

func main() {
	os.Exit(Execute(os.Args[1:], os.Stdout, os.Stderr))
}
