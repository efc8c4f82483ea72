package bench

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// procStatus reads a "Key:   N kB" field of /proc/self/status in bytes; 0
// where the file or the field does not exist (not Linux).
func procStatus(key string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, key+":") {
			continue
		}
		fields := strings.Fields(line[len(key)+1:])
		if len(fields) == 0 {
			return 0
		}
		v, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0
		}
		if len(fields) > 1 && fields[1] == "kB" {
			v *= 1024
		}
		return v
	}
	return 0
}

// PeakRSS is the process's peak resident set size (VmHWM) in bytes. It is
// per process: with several models in one bench run it covers them all.
func PeakRSS() int64 { return procStatus("VmHWM") }

// RSS is the process's current resident set size (VmRSS) in bytes.
func RSS() int64 { return procStatus("VmRSS") }
