package mlsbench

import (
	"time"

	"golang.org/x/sys/unix"
)

// processCPU returns the CPU time used so far by all threads of the
// process (CLOCK_PROCESS_CPUTIME_ID).
func processCPU() (time.Duration, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
