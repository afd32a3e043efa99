//go:build !linux

package mlsbench

import "time"

// processCPU is unavailable here; ratios fall back to wall time.
func processCPU() (time.Duration, bool) { return 0, false }
