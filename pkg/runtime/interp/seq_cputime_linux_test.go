//go:build linux

package interp

import "golang.org/x/sys/unix"

// seqThreadCPU is the calling thread's CPU time in ns (0 if unknown). On a
// shared, loaded machine it measures a benchmark's own work better than
// wall time; callers lock the goroutine to its thread.
func seqThreadCPU() int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
