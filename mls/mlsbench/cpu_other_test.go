//go:build !linux

package mlsbench

import "time"

// threadCPU is unavailable here; ratios fall back to wall time.
func threadCPU() (time.Duration, bool) { return 0, false }
