//go:build !linux

package interp

func seqThreadCPU() int64 { return 0 }
