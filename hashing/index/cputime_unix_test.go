//go:build unix

package index

import (
	"syscall"
	"time"
)

// processCPUTime returns the user+system CPU time of this process, so that
// benchmarks can report a rate per CPU-second, which on a shared machine
// is steadier than the rate per wall-clock second.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
